"""Scaled dot-product attention as one op: softmax(scale * q k^T + mask) v, with the backward
recomputing the probabilities from the saved row log-sum-exps (no L x S matrix is kept).

The op flattens the leading dims into one batch before calling the kernels, so every backend
sees 3-D arrays (see backends/reference_attention.py for the kernel interface):

- q (..., L, E), k (..., S, E), v (..., S, Ev): leading dims broadcast against each other, as
  in PyTorch (k and v may be shared across q's heads); broadcast inputs are materialised, and
  autograd sums their gradients back to the input shapes.
- mask: None, bool (True = may attend) or additive float, broadcastable to (..., L, S). It
  reaches the kernels as (Bm, Lm, S) with Bm in {1, B} (1 when the mask does not vary over the
  batch, else materialised over it) and Lm in {1, L} (1 for a per-key mask, such as key
  padding), so a shared (L, S) mask is never copied B times. A float mask is cast to q's dtype
  and gets no gradient (nn.functional keeps a mask that requires grad on the composed path).
"""
import math

import numpy as np

from ..backends.reference import xp_of
from .base import Cost, Op, Sample, op, randn


def _batch(x, batch, size):
    """x (..., R, C) broadcast to batch + (R, C) and viewed as (size, R, C)."""
    return xp_of(x).broadcast_to(x, batch + x.shape[-2:]).reshape((size,) + x.shape[-2:])


def _kernel_mask(mask, xp, batch, size, length, source, dtype):
    """The mask as (Bm, Lm, S) for the kernels, or None."""
    if mask is None:
        return None
    mask = xp.asarray(mask)  # a raw NumPy mask (op samples) moves to q's device
    full = batch + (length, source)
    if mask.ndim > len(full) or np.broadcast_shapes(mask.shape, full) != full:
        raise ValueError(f"attn_mask of shape {tuple(mask.shape)} does not broadcast to {full}")
    shape = (1,) * (len(full) - mask.ndim) + tuple(mask.shape)
    rows = shape[-2]
    lead = 1 if all(n == 1 for n in shape[:-2]) else size
    mask = xp.broadcast_to(mask.reshape(shape), (batch if lead > 1 else (1,) * len(batch)) + (rows, source))
    mask = mask.reshape(lead, rows, source)
    return mask if mask.dtype == bool else mask.astype(dtype, copy=False)


def _cost(q, k, v, mask=None, is_causal=False, scale=None, with_backward=False):
    """Two products (q k^T, p v) forward, five more backward (s again, dP, dV, dK, dQ); the
    causal triangle does about half of them. Bytes: the inputs and the output, once each."""
    batch = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    length, e = q.shape[-2:]
    source, ev = v.shape[-2:]
    pairs = batch * length * source * (0.5 if is_causal else 1.0)
    flops = 2 * pairs * (e + ev) + 5 * pairs  # + scale, mask, exp, sum
    out_bytes = batch * length * ev * q.itemsize
    nbytes = q.nbytes + k.nbytes + v.nbytes + out_bytes
    if with_backward:
        flops += 2 * pairs * (3 * e + 2 * ev) + 5 * pairs
        nbytes += 2 * nbytes
    return Cost(flops, nbytes)


@op
class ScaledDotProductAttention(Op):
    """softmax(scale * q k^T + mask) v over the last two dims; ``is_causal`` masks the upper
    triangle above the top-left diagonal. PyTorch's semantics, including 0 output for a row
    with nothing to attend to."""
    cost = staticmethod(_cost)

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale):
        xp = xp_of(q)
        batch = tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
        size = math.prod(batch)
        length, source = q.shape[-2], k.shape[-2]
        q3, k3, v3 = _batch(q, batch, size), _batch(k, batch, size), _batch(v, batch, size)
        mask3 = _kernel_mask(mask, xp, batch, size, length, source, q.dtype)
        out, lse = ctx.kernel("sdpa_forward", q3, k3, v3, mask3, bool(is_causal), float(scale))
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(q3, k3, v3, mask3, out, lse)
            ctx.meta = batch, bool(is_causal), float(scale)
        return out.reshape(batch + out.shape[-2:])

    @staticmethod
    def backward(ctx, gout):
        q3, k3, v3, mask3, out, lse = ctx.saved_tensors
        batch, is_causal, scale = ctx.meta
        g3 = gout.reshape(out.shape)
        gq, gk, gv = ctx.kernel("sdpa_backward", q3, k3, v3, mask3, is_causal, scale, out, lse, g3)
        return (gq.reshape(batch + gq.shape[-2:]), gk.reshape(batch + gk.shape[-2:]),
                gv.reshape(batch + gv.shape[-2:]), None, None, None)


def _bool_mask(rng, shape, dead_row=None):
    """A random bool mask with at least one allowed key per row, except row ``dead_row``
    (every key masked: its output and gradients are 0)."""
    keep = rng.random(shape) < 0.7
    keep[..., 0] = True
    if dead_row is not None:
        keep[..., dead_row, :] = False
    return keep


def _attention_samples(rng):
    def call(is_causal=False, scale=None, mask=None):
        def run(q, k, v, *bool_mask):
            m = bool_mask[0] if bool_mask else mask  # bool masks are inputs, float ones constants
            return ScaledDotProductAttention.apply(q, k, v, m, is_causal,
                                                  1 / math.sqrt(q.shape[-1]) if scale is None else scale)
        return run

    def qkv(q, k, v):
        return randn(rng, q), randn(rng, k), randn(rng, v)
    return [
        Sample(qkv((2, 3, 5), (2, 4, 5), (2, 4, 3)), call(), "plain"),
        Sample(qkv((2, 2, 5, 4), (2, 2, 3, 4), (2, 2, 3, 6)), call(is_causal=True), "causal, L > S"),
        Sample(qkv((2, 3, 4), (2, 6, 4), (2, 6, 2)), call(is_causal=True, scale=0.7), "causal, L < S, scale"),
        Sample(qkv((2, 4, 3), (2, 7, 3), (2, 7, 5)) + (_bool_mask(rng, (4, 7), dead_row=2),), call(),
               "bool mask (L, S) with a fully masked row"),
        Sample(qkv((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 2)) + (_bool_mask(rng, (2, 1, 1, 6)),), call(is_causal=True),
               "bool key-padding mask (N, 1, 1, S), causal"),
        Sample(qkv((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 2)), call(scale=0.3, mask=randn(rng, (2, 1, 4, 6))),
               "float mask (N, 1, L, S), scale"),
        Sample(qkv((2, 3, 4, 5), (1, 3, 6, 5), (3, 6, 2)), call(mask=randn(rng, (4, 1))),
               "k, v broadcast over the batch; float mask (L, 1)"),
        Sample(qkv((3, 1, 1), (3, 5, 1), (3, 5, 1)), call(is_causal=True), "L = E = Ev = 1, causal"),
        Sample(qkv((2, 37, 13), (2, 70, 13), (2, 70, 9)) + (_bool_mask(rng, (2, 37, 70), dead_row=5),),
               call(is_causal=True), "ragged tiles, per-batch bool mask, causal", gradcheck=False),
    ]


ScaledDotProductAttention.samples = staticmethod(_attention_samples)
