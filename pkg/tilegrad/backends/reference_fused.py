"""Materialised references of the fused attention and cross-entropy kernels, written against
``xp`` (NumPy or CuPy), with the native kernels' names and signatures. The CUDA backend falls
back to them for arguments its kernels do not cover (other dtypes, head dims above 128, masks
that do not broadcast over (B, L, S) by whole dims, ...) unless ``reference.KERNELS`` has a
kernel of the same name, which then wins.

Attention: q (..., L, E), k (..., S, E), v (..., S, Ev); mask None, bool (True = may attend)
or float (added to the scores), broadcastable to (..., L, S); is_causal keeps key <= query
(top-left). lse is each row's natural log-sum-exp; a row with no key allowed gets NaN outputs
and lse = -inf, and the backward takes its probabilities as 0 (gq row 0, nothing added to gk
or gv).

Cross-entropy, class-index targets, PyTorch's reduction='none' formula:
    loss[r] = (1 - e) * -w[t] * logp[t] + (e / C) * -sum_c w[c] * logp[c]   (e = 0: first term)
0 where t == ignore_index; other targets outside [0, C) raise IndexError.
"""
import numpy as np

from .reference import xp_of


def _masked_scores(q, k, mask, is_causal, scale):
    xp = xp_of(q)
    scores = (q @ xp.swapaxes(k, -1, -2)) * scale
    allowed = None
    if is_causal:
        length, source = q.shape[-2], k.shape[-2]
        allowed = xp.tril(xp.ones((length, source), dtype=bool))
    if mask is not None:
        if mask.dtype == np.bool_:
            allowed = mask if allowed is None else allowed & mask
        else:
            scores = scores + mask
    if allowed is not None:
        scores = xp.where(allowed, scores, -np.inf)
    return scores


def sdpa_forward(q, k, v, mask, is_causal, scale):
    xp = xp_of(q)
    scores = _masked_scores(q, k, mask, is_causal, scale)
    top = scores.max(axis=-1, keepdims=True)
    dead = top == -np.inf
    with np.errstate(invalid="ignore", divide="ignore"):
        e = xp.exp(scores - xp.where(dead, 0, top))
        total = e.sum(axis=-1, keepdims=True)
        out = (e / total) @ v  # 0 / 0 = NaN on dead rows
        lse = xp.where(dead, -np.inf, top + xp.log(total))[..., 0]
    return out.astype(q.dtype, copy=False), lse.astype(np.float32 if q.dtype != np.float64 else q.dtype, copy=False)


def sdpa_backward(q, k, v, mask, is_causal, scale, out, lse, gout):
    xp = xp_of(q)
    scores = _masked_scores(q, k, mask, is_causal, scale)
    dead = (lse == -np.inf)[..., None]
    with np.errstate(invalid="ignore", over="ignore"):
        p = xp.where(dead, 0, xp.exp(scores - xp.where(dead, 0, lse[..., None])))
    gout = xp.where(dead, 0, gout)  # dead rows contribute nothing, even a NaN gradient
    delta = (gout * xp.where(dead, 0, out)).sum(axis=-1, keepdims=True)
    gv = xp.swapaxes(p, -1, -2) @ gout
    ds = p * (gout @ xp.swapaxes(v, -1, -2) - delta)
    gq = (ds @ k) * scale
    gk = (xp.swapaxes(ds, -1, -2) @ xp.where(dead, 0, q)) * scale
    return gq.astype(q.dtype, copy=False), gk.astype(k.dtype, copy=False), gv.astype(v.dtype, copy=False)


def _log_softmax_rows(logits):
    xp = xp_of(logits)
    top = logits.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        lse = xp.log(xp.exp(logits - top).sum(axis=-1, keepdims=True)) + top
    return logits - lse, lse[:, 0]


def _checked_targets(target, ignore_index, classes):
    xp = xp_of(target)
    valid = target != ignore_index
    safe = xp.where(valid, target, 0)
    if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= classes):
        raise IndexError(f"cross_entropy: target out of bounds for {classes} classes")
    return valid, safe


def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    xp = xp_of(logits)
    classes = logits.shape[-1]
    valid, safe = _checked_targets(target, ignore_index, classes)
    logp, lse = _log_softmax_rows(logits)
    w = xp.ones(classes, logits.dtype) if weight is None else weight
    loss = -w[safe] * xp.take_along_axis(logp, safe[:, None], axis=-1)[:, 0]
    if label_smoothing > 0:
        smooth = -(logp * w).sum(axis=-1)
        loss = (1 - label_smoothing) * loss + (label_smoothing / classes) * smooth
    return xp.where(valid, loss, 0).astype(logits.dtype, copy=False), lse


def cross_entropy_backward(logits, lse, target, weight, ignore_index, label_smoothing, grow):
    xp = xp_of(logits)
    classes = logits.shape[-1]
    valid, safe = _checked_targets(target, ignore_index, classes)
    p = xp.exp(logits - lse[:, None])
    w = xp.ones(classes, logits.dtype) if weight is None else weight
    onehot = xp.arange(classes)[None, :] == safe[:, None]
    g = (1 - label_smoothing) * w[safe][:, None] * (p - onehot)
    if label_smoothing > 0:
        g = g + (label_smoothing / classes) * (w.sum() * p - w)
    return xp.where(valid[:, None], g * grow[:, None], 0).astype(logits.dtype, copy=False)
