"""Reference kernels of scaled dot-product attention, written against ``xp`` like reference.py.

They materialise the L x S score matrix (the native kernels never do), and work in any float
dtype, so float64 gradchecks run through them. The interface, shared by every backend:

    sdpa_forward(q, k, v, mask, is_causal, scale) -> (out, lse)
    sdpa_backward(q, k, v, mask, is_causal, scale, out, lse, gout) -> (gq, gk, gv)

q (B, L, E), k (B, S, E), v (B, S, Ev); out (B, L, Ev); lse (B, L) is the log-sum-exp of each
row of the scaled, masked scores ``scale * q k^T + mask``. ``mask`` is None, a bool array (True:
may attend) or an additive float array; the op passes it as (Bm, Lm, S) with Bm in {1, B} and
Lm in {1, L}, but any shape that broadcasts to (B, L, S) works here. ``is_causal`` keeps the
lower triangle ``tril(ones(L, S))`` aligned at the top left, as PyTorch does.

A row with no key left to attend to (every score -inf) gives 0 output, -inf lse and zero
gradients, as PyTorch 2.13 does on the CPU (its math and flash kernels agree on this).
"""
import math

from .reference import xp_of


def _scores(q, k, mask, is_causal, scale):
    """The scaled, masked scores (..., L, S)."""
    xp = xp_of(q)
    s = (q @ xp.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    if mask is not None:
        s = xp.where(mask, s, -math.inf) if mask.dtype == bool else s + mask.astype(s.dtype, copy=False)
    if is_causal:
        length, source = s.shape[-2:]
        s = xp.where(xp.tril(xp.ones((length, source), dtype=bool)), s, -math.inf)
    return s


def sdpa_forward(q, k, v, mask, is_causal, scale):
    xp = xp_of(q)
    s = _scores(q, k, mask, is_causal, scale)
    if s.shape[-1] == 0:  # no keys at all: every row is fully masked
        return xp.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype), xp.full(q.shape[:-1], -math.inf, dtype=q.dtype)
    m = s.max(axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)  # fully masked rows: exp(-inf - 0) = 0 below, not NaN
    e = xp.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    live = total > 0
    p = e / xp.where(live, total, 1)
    lse = xp.where(live, xp.log(xp.where(live, total, 1)) + m, -math.inf)
    return p @ v, lse[..., 0]


def sdpa_backward(q, k, v, mask, is_causal, scale, out, lse, gout):
    """Recomputes the probabilities from lse; dS = P * (dP - rowsum(gout * out))."""
    xp = xp_of(q)
    s = _scores(q, k, mask, is_causal, scale)
    lse = lse[..., None].astype(s.dtype, copy=False)
    live = xp.isfinite(lse)
    p = xp.where(live, xp.exp(s - xp.where(live, lse, 0)), 0)
    gv = xp.swapaxes(p, -1, -2) @ gout
    dp = gout @ xp.swapaxes(v, -1, -2)
    d = (gout * out).sum(axis=-1, keepdims=True)
    ds = p * (dp - d) * q.dtype.type(scale)
    return ds @ k, xp.swapaxes(ds, -1, -2) @ q, gv


KERNELS = {"sdpa_forward": sdpa_forward, "sdpa_backward": sdpa_backward}
