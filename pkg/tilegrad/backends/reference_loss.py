"""Reference kernels of the fused cross-entropy of logits (R, C) and class indices (R,).
Written against ``xp`` like reference.py; the op that calls them (ops/loss.py) reduces over rows.

Per row r with target t (PyTorch's formula, weight w = 1 when there is none, eps the label
smoothing and lse the row's logsumexp):
    loss[r] = (1 - eps) w[t] (lse - x[t]) + eps / C * sum_c w[c] (lse - x[c]),   0 if t is ignored
    d loss[r] / d x[r, c] = (1 - eps) w[t] (p[c] - [c == t]) + eps / C (sum(w) p[c] - w[c]),   p = softmax(x[r])
"""
from .reference import xp_of


def _check_targets(target, n_classes, ignore_index):
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(f"cross_entropy: target {int(target[bad][0])} is out of bounds for {n_classes} classes")


def _target_weights(target, weight, ignore_index, dtype):
    """(valid rows, targets with ignored rows set to class 0, w[t] per row)."""
    xp = xp_of(target)
    valid = target != ignore_index
    safe = xp.where(valid, target, 0)
    w_t = xp.ones(target.shape, dtype=dtype) if weight is None else weight[safe]
    return valid, safe, w_t


def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """(loss (R,), lse (R,)): each row's loss, already weighted, and its logsumexp."""
    xp = xp_of(logits)
    n_classes = logits.shape[1]
    _check_targets(target, n_classes, ignore_index)
    mx = logits.max(axis=1, keepdims=True)
    lse = (xp.log(xp.exp(logits - mx).sum(axis=1, keepdims=True)) + mx)[:, 0]
    valid, safe, w_t = _target_weights(target, weight, ignore_index, logits.dtype)
    picked = xp.take_along_axis(logits, safe[:, None], axis=1)[:, 0]
    loss = (1 - label_smoothing) * w_t * (lse - picked)
    if label_smoothing:
        smooth = lse[:, None] - logits
        if weight is not None:
            smooth = smooth * weight
        loss = loss + label_smoothing / n_classes * smooth.sum(axis=1)
    return xp.where(valid, loss, 0).astype(logits.dtype, copy=False), lse


def cross_entropy_backward(logits, lse, target, weight, ignore_index, label_smoothing, grow):
    """d(sum_r grow[r] loss[r]) / d logits, (R, C)."""
    xp = xp_of(logits)
    n_classes = logits.shape[1]
    _check_targets(target, n_classes, ignore_index)
    valid, safe, w_t = _target_weights(target, weight, ignore_index, logits.dtype)
    p = xp.exp(logits - lse[:, None])
    onehot = xp.arange(n_classes) == safe[:, None]
    grad = (1 - label_smoothing) * w_t[:, None] * (p - onehot)
    if label_smoothing:
        w = 1 if weight is None else weight
        w_sum = n_classes if weight is None else weight.sum()
        grad = grad + label_smoothing / n_classes * (w_sum * p - w)
    # where, not a product: ignored rows get 0 even when grow is NaN (a mean over no valid row)
    return (grad * xp.where(valid, grow, 0)[:, None]).astype(logits.dtype, copy=False)


KERNELS = {"cross_entropy_forward": cross_entropy_forward, "cross_entropy_backward": cross_entropy_backward}
