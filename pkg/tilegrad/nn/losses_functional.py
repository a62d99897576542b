"""Loss functions composed from tensor ops (``tilegrad.nn.functional`` re-exports them):
mse_loss, l1_loss, smooth_l1_loss, huber_loss, binary_cross_entropy,
binary_cross_entropy_with_logits and kl_div, with PyTorch's formulas and ``reduction``.

Written from differentiable tensor ops, so their gradients come from autograd and they run on
every device. cross_entropy and nll_loss are kernel-backed and live in ``functional``.
"""
import warnings

from ..tensor import Tensor, where

REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss, reduction, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction (expected one of {', '.join(allowed)})")
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_pointwise(name, input, target):  # noqa: A002 - PyTorch's argument names
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name}: input and target must be Tensors")
    if input.shape != target.shape:
        # PyTorch warns and broadcasts; so do we (the warning usually means a bug in the caller).
        warnings.warn(f"{name}: using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}); the two will be broadcast", stacklevel=3)


def _softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|))."""
    return x.relu() + ((-x.abs()).exp() + 1).log()


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """(input - target)^2."""
    _check_pointwise("mse_loss", input, target)
    return _reduce((input - target) ** 2, reduction)


def l1_loss(input, target, reduction="mean"):  # noqa: A002
    """|input - target|."""
    _check_pointwise("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):  # noqa: A002
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); L1 at beta = 0."""
    _check_pointwise("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):  # noqa: A002
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): smooth L1 scaled by delta."""
    _check_pointwise("huber_loss", input, target)
    d = (input - target).abs()
    return _reduce(where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):  # noqa: A002
    """-w (y log x + (1 - y) log(1 - x)) on probabilities x; each log is clamped at -100, as in
    PyTorch, so x = 0 or 1 gives a finite loss."""
    if input.shape != target.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size "
                         f"({input.shape}) is deprecated. Please ensure they have the same size.")
    if input.numel() and (float(input.detach().amin().item()) < 0 or float(input.detach().amax().item()) > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    log_x = input.log().clamp(min=-100)
    log_1mx = (1 - input).log().clamp(min=-100)
    loss = -(target * log_x + (1 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):  # noqa: A002
    """BCE of sigmoid(x), computed stably from the logits x:
    pos_weight * y * softplus(-x) + (1 - y) * softplus(x), times ``weight``."""
    if input.shape != target.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    positive = target * _softplus(-input)
    if pos_weight is not None:
        positive = positive * pos_weight  # broadcasts over the last (class) dim
    loss = positive + (1 - target) * _softplus(input)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, reduction="mean", log_target=False):  # noqa: A002
    """KL(target || exp(input)) pointwise, with ``input`` log-probabilities:
    target (log target - input), where 0 log 0 = 0; ``log_target`` means target is a log too.
    ``reduction='batchmean'`` divides the sum by the batch size (the true KL divergence);
    ``'mean'`` averages over every element, as PyTorch does."""
    _check_pointwise("kl_div", input, target)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        positive = target > 0
        safe_log = where(positive, target, 1.0).log()  # log(1) = 0 where the target is 0
        loss = where(positive, target * safe_log, 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction, REDUCTIONS + ("batchmean",))
