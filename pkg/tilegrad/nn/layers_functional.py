"""Functional forms of the 1-d convolution and pooling, group and instance norm, channel dropout
and bilinear layers. Conv and pooling run the 2-d ops on a unit-height view (the same cost, and
autograd carries the gradient through the reshape); the rest are compositions of tensor ops."""
import numbers
import warnings

from .. import creation
from ..tensor import Tensor
from . import functional as F


def _single(v, name):
    if isinstance(v, numbers.Integral):
        return int(v)
    v = tuple(int(i) for i in v)
    if len(v) != 1:
        raise ValueError(f"{name} must be an int or a 1-tuple, got {v}")
    return v[0]


def _check(x, dims, name, what):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if x.ndim not in dims:
        raise ValueError(f"{name}: expected input of shape {what}, got shape {tuple(x.shape)}")


def _as_2d(fn, x, *args):
    """fn on (N, C, 1, L) for (N, C, L) input (or (C, L), as a batch of one), back to 1-d."""
    batched = x.ndim == 3
    b = x if batched else x.unsqueeze(0)
    out = fn(b.unsqueeze(2), *args)
    out = tuple(o.squeeze(2) for o in out) if isinstance(out, tuple) else out.squeeze(2)
    if not batched:
        out = tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    return out


# ---- convolution and pooling --------------------------------------------------------------
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """(N, C_in, L) or (C_in, L) with weight (C_out, C_in / groups, K). ``padding='same'`` with an
    even effective kernel pads one more zero on the right, as PyTorch does."""
    _check(input, (2, 3), "conv1d", "(N, C_in, L) or (C_in, L)")
    _check(weight, (3,), "conv1d (weight)", "(out_channels, in_channels / groups, K)")
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if stride != 1:
            raise ValueError("conv1d: padding='same' is not supported for strided convolutions")
        total = dilation * (weight.shape[2] - 1)
        if total % 2:
            zeros = creation.zeros(*input.shape[:-1], 1, dtype=input.dtype, device=input.device)
            input = _cat([input, zeros])
        padding = total // 2
    else:
        padding = _single(padding, "padding")
    w = weight.unsqueeze(2)
    return _as_2d(lambda b: F.conv2d(b, w, bias, (1, stride), (0, padding), (1, dilation), groups), input)


def _cat(tensors):
    from ..functional import cat
    return cat(tensors, -1)


def _pool_stride(kernel, stride):
    return kernel if stride is None or stride == () else _single(stride, "stride")


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):  # noqa: A002
    _check(input, (2, 3), "max_pool1d", "(N, C, L) or (C, L)")
    k = _single(kernel_size, "kernel_size")
    s, p, d = _pool_stride(k, stride), _single(padding, "padding"), _single(dilation, "dilation")
    return _as_2d(lambda b: F.max_pool2d(b, (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices), input)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):  # noqa: A002
    _check(input, (2, 3), "avg_pool1d", "(N, C, L) or (C, L)")
    k = _single(kernel_size, "kernel_size")
    s, p = _pool_stride(k, stride), _single(padding, "padding")
    return _as_2d(lambda b: F.avg_pool2d(b, (1, k), (1, s), (0, p), ceil_mode, count_include_pad), input)


def adaptive_avg_pool1d(input, output_size):  # noqa: A002
    _check(input, (2, 3), "adaptive_avg_pool1d", "(N, C, L) or (C, L)")
    size = _single(output_size, "output_size")
    return _as_2d(lambda b: F.adaptive_avg_pool2d(b, (1, size)), input)


# ---- normalisation ------------------------------------------------------------------------
def _affine(out, weight, bias):
    shape = (1, out.shape[1]) + (1,) * (out.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise each sample over each group of C / num_groups channels (and every spatial
    position), then scale and shift per channel."""
    _check(input, range(2, 9), "group_norm", "(N, C, ...)")
    n, c = input.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: expected the number of channels of input {tuple(input.shape)} to be "
                         f"divisible by num_groups={num_groups}")
    grouped = input.reshape(n, num_groups, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, unbiased=False, keepdim=True)
    out = ((grouped - mean) * (var + eps) ** -0.5).reshape(input.shape)
    return _affine(out, weight, bias)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) over its spatial positions. With ``use_input_stats`` the
    running statistics (if given) are updated with the batch mean of the per-instance statistics
    (the variance unbiased), as PyTorch does; otherwise they are used instead."""
    _check(input, range(3, 9), "instance_norm", "(N, C, ...)")
    n, c = input.shape[:2]
    stat_shape = (1, c) + (1,) * (input.ndim - 2)
    if not use_input_stats:
        if running_mean is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var")
        out = (input - running_mean.reshape(stat_shape)) * (running_var.reshape(stat_shape) + eps) ** -0.5
        return _affine(out, weight, bias)
    flat = input.reshape(n, c, -1)
    count = flat.shape[-1]
    mean = flat.mean(-1, keepdim=True)
    var = flat.var(-1, unbiased=False, keepdim=True)
    if running_mean is not None:
        from ..autograd import no_grad
        with no_grad():
            unbiased = var.detach() * (count / (count - 1)) if count > 1 else var.detach()
            running_mean.mul_(1 - momentum).add_(mean.detach().mean((0, 2)) * momentum)
            running_var.mul_(1 - momentum).add_(unbiased.mean((0, 2)) * momentum)
    out = ((flat - mean) * (var + eps) ** -0.5).reshape(input.shape)
    return _affine(out, weight, bias)


# ---- channel dropout ----------------------------------------------------------------------
def _channel_dropout(input, p, training, inplace, name, dims, sample_dims):  # noqa: A002
    """Zero whole channels (every position of an (n, c) pair) with probability p, scale the rest
    by 1 / (1 - p). An input of ``sample_dims`` dims is one sample: its channels are dim 0."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in dims:
        raise ValueError(f"{name}: expected a {' or '.join(f'{d}-d' for d in dims)} input, got shape {tuple(input.shape)}")
    if not training or p == 0:
        return input
    lead = 1 if input.ndim == sample_dims else 2
    mask_shape = input.shape[:lead] + (1,) * (input.ndim - lead)
    keep = creation.rand(*mask_shape, device=input.device) >= p
    out = input * keep * (1 / (1 - p)) if p < 1 else input * 0
    return input._inplace(lambda _: out) if inplace else out


def dropout1d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Channel dropout of (N, C, L) or (C, L) input."""
    return _channel_dropout(input, p, training, inplace, "dropout1d", (2, 3), 2)


def dropout2d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Channel dropout of (N, C, H, W) input. A 3-d input is taken as (N, C, L), with a warning,
    as PyTorch still does (not as an unbatched (C, H, W))."""
    if isinstance(input, Tensor) and input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), as PyTorch does. Use "
                      "dropout1d for that instead.", stacklevel=2)
    return _channel_dropout(input, p, training, inplace, "dropout2d", (3, 4), None)


# ---- bilinear -----------------------------------------------------------------------------
def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o], as two matmuls."""
    out_f, in1, in2 = weight.shape
    if input1.shape[-1] != in1 or input2.shape[-1] != in2 or input1.shape[:-1] != input2.shape[:-1]:
        raise ValueError(f"bilinear: inputs {tuple(input1.shape)} and {tuple(input2.shape)} do not fit weight "
                         f"{tuple(weight.shape)} (out, in1, in2); expected (..., {in1}) and (..., {in2})")
    t = input2 @ weight.reshape(out_f * in1, in2).mT  # (..., out * in1)
    out = (t.reshape(*input1.shape[:-1], out_f, in1) * input1.unsqueeze(-2)).sum(-1)
    return out if bias is None else out + bias
