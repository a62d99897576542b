"""Cross-entropy of logits and class indices as one fused op (``F.cross_entropy`` with integer
targets): the forward keeps each row's logsumexp, not a log_softmax tensor, and the backward
computes softmax minus the smoothed one-hot, weighted, in one kernel pass."""
import numpy as np

from ..backends.reference import xp_of
from .base import Cost, Op, Sample, op, randn

REDUCTIONS = ("none", "mean", "sum")


def _rows(logits):
    """Logits as rows of classes: (C,) -> (1, C), (N, C) as is, (N, C, d1, ...) -> (N*d1*..., C)."""
    if logits.ndim == 1:
        return logits.reshape(1, -1)
    if logits.ndim == 2:
        return logits
    c = logits.shape[1]
    return xp_of(logits).moveaxis(logits, 1, -1).reshape(-1, c)


def _unrows(g, shape):
    """The inverse of _rows for a gradient of the rows."""
    if len(shape) <= 2:
        return g.reshape(shape)
    return xp_of(g).moveaxis(g.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1)


def _divide(a, b):
    """a / b, where b == 0 (every target ignored) gives NaN or inf silently, as in PyTorch."""
    if isinstance(b, (np.ndarray, np.generic)) and b == 0:  # NumPy warns; CuPy never does (and is not synced)
        with np.errstate(invalid="ignore", divide="ignore"):
            return a / b
    return a / b


def _cost(logits, target, *_):
    # a max, a subtraction, an exp and a sum per logit; the logits and targets read once
    return Cost(4 * logits.size, logits.nbytes + target.nbytes + 2 * target.size * logits.itemsize)


@op
class CrossEntropy(Op):
    """Cross-entropy of ``logits`` (N, C), (N, C, d1, ...) or (C,) against integer class indices
    ``target`` (N, d1, ...) (or ()), with optional class weights (C,), an ignored class index and
    label smoothing, reduced as PyTorch does: 'none' gives the target's shape, 'sum' the sum and
    'mean' the sum over the weights of the targets that are not ignored."""
    cost = staticmethod(_cost)

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, label_smoothing, reduction):
        x = _rows(logits)
        t = target.reshape(-1).astype(np.int64, copy=False)
        loss, lse = ctx.kernel("cross_entropy_forward", x, t, weight, ignore_index, label_smoothing)
        denom = total = None
        if reduction == "none":
            out = loss.reshape(target.shape)
        elif reduction == "sum":
            out = loss.sum()
        else:
            valid = t != ignore_index
            counted = valid if weight is None else xp_of(t).where(valid, weight[xp_of(t).where(valid, t, 0)], 0)
            denom = counted.sum().astype(loss.dtype)
            total = loss.sum()
            out = _divide(total, denom)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, t, weight, lse)
            ctx.meta = logits.shape, ignore_index, label_smoothing, reduction, denom, out
        return out

    @staticmethod
    def backward(ctx, gy):
        x, t, weight, lse = ctx.saved_tensors
        shape, ignore_index, eps, reduction, denom, out = ctx.meta
        xp = xp_of(gy)
        grow = xp.empty(t.shape, dtype=x.dtype)  # the upstream gradient of each row's loss
        if reduction == "none":
            grow[...] = gy.reshape(-1)
        else:
            grow[...] = gy if reduction == "sum" else _divide(gy, denom)
        need = ctx.needs_input_grad
        gx = gw = None
        if need[0]:
            gx = _unrows(ctx.kernel("cross_entropy_backward", x, lse, t, weight, ignore_index, eps, grow), shape)
        if need[2]:
            gw = _weight_grad(x, t, weight, lse, grow, ignore_index, eps)
            if reduction == "mean":  # the mean's denominator sums the targets' weights too
                scale = _divide(gy * out, denom)
                counts = xp.bincount(xp.where(t != ignore_index, t, 0), weights=(t != ignore_index).astype(x.dtype),
                                     minlength=x.shape[1])
                gw = gw - scale * counts
            gw = gw.astype(weight.dtype, copy=False)
        return gx, None, gw, None, None, None


def _weight_grad(x, t, weight, lse, grow, ignore_index, eps):
    """sum_r grow[r] d loss[r] / d weight: (1 - eps) (lse - x[t]) at the row's target and
    eps / C (lse - x[c]) at every class c, over the rows that are not ignored."""
    xp = xp_of(x)
    n_classes = x.shape[1]
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    g = grow * valid
    nll = lse - xp.take_along_axis(x, safe[:, None], axis=1)[:, 0]
    gw = xp.bincount(safe, weights=g * nll * (1 - eps), minlength=n_classes)
    if eps:
        gw = gw + eps / n_classes * ((g * lse).sum() - g @ x)
    return gw


def _ce_samples(rng):
    # (logits shape, ignore_index, ignored rows, weight, label_smoothing, reduction). Ragged
    # class counts around the vector widths, k-dim inputs, a 1-D input, an ignore_index that
    # names a real class.
    cases = [((7, 5), -100, 2, False, 0.0, "mean"),
             ((6, 4), 1, 0, True, 0.2, "mean"),
             ((3, 4, 5), -100, 3, True, 0.1, "sum"),
             ((2, 3, 4, 2), 2, 0, False, 0.3, "none"),
             ((9, 37), -1, 1, True, 0.0, "none"),
             ((5, 17), -100, 0, False, 0.15, "sum"),
             ((6,), -100, 0, True, 0.25, "mean")]
    out = []
    for shape, ignore, n_ignored, weighted, eps, reduction in cases:
        c = shape[0] if len(shape) == 1 else shape[1]
        tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
        target = np.asarray(rng.integers(0, c, size=tshape))
        if ignore >= 0:  # the ignored class is a real one: a third of the rows name it, no other row does
            target = np.asarray(rng.integers(0, c - 1, size=tshape))
            target[target >= ignore] += 1
            target.reshape(-1)[: max(1, target.size // 3)] = ignore
        else:
            target.reshape(-1)[rng.permutation(target.size)[:n_ignored]] = ignore
        desc = f"{shape},ignore={ignore},weight={weighted},eps={eps},{reduction}"
        if weighted:
            inputs = (randn(rng, shape), target, rng.uniform(0.5, 2.0, size=c))
            call = (lambda x, t, w, i=ignore, e=eps, r=reduction: CrossEntropy.apply(x, t, w, i, e, r))
        else:
            inputs = (randn(rng, shape), target)
            call = (lambda x, t, i=ignore, e=eps, r=reduction: CrossEntropy.apply(x, t, None, i, e, r))
        out.append(Sample(inputs, call, desc))
    return out


CrossEntropy.samples = staticmethod(_ce_samples)
