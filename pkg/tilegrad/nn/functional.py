"""``tilegrad.nn.functional``: PyTorch's functional API over tilegrad's ops.

Kernel-backed ops (convolution, pooling, layer norm, activations, embedding, attention) are
op-table ops; the rest (linear, dropout, batch norm, the losses) are compositions of tensor ops,
so autograd derives their backward.
"""
import math
import numbers

import numpy as np

from .. import creation, dtypes
from ..autograd import is_grad_enabled
from ..ops import activation as A, attention as AT, conv as C, gather as G, loss as L, matmul as M, norm as N
from ..tensor import Tensor, where


def _pair(v, name):
    if isinstance(v, numbers.Integral):
        return (int(v), int(v))
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v}")
    return v


def _unbatched(fn):
    """Let a 4-d (N, C, H, W) function also take one unbatched (C, H, W) input, as PyTorch does."""
    import functools

    @functools.wraps(fn)
    def wrapper(input, *args, **kwargs):  # noqa: A002
        if isinstance(input, Tensor) and input.ndim == 3:
            out = fn(input.unsqueeze(0), *args, **kwargs)
            return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
        return fn(input, *args, **kwargs)
    return wrapper


def _check(x, ndim, name, what="(N, C, H, W)"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d input {what}, got shape {x.shape}")


# ---- activations --------------------------------------------------------------------------
def relu(input, inplace=False):  # noqa: A002 - PyTorch's argument names throughout
    return input.relu_() if inplace else input.relu()


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    out = A.LeakyRelu.apply(input, float(negative_slope))
    return input._inplace(lambda _: out) if inplace else out


def gelu(input, approximate="none"):  # noqa: A002
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return A.Gelu.apply(input, approximate)


def silu(input, inplace=False):  # noqa: A002
    return A.Silu.apply(input)


def sigmoid(input):  # noqa: A002
    return input.sigmoid()


def tanh(input):  # noqa: A002
    return input.tanh()


def softmax(input, dim=None, dtype=None):  # noqa: A002
    x = input if dtype is None else input.to(dtype)
    return x.softmax(_implicit_dim(x, dim))


def log_softmax(input, dim=None, dtype=None):  # noqa: A002
    x = input if dtype is None else input.to(dtype)
    return x.log_softmax(_implicit_dim(x, dim))


def _implicit_dim(x, dim):
    """PyTorch's legacy choice when dim is omitted: 0 for 0-, 1- and 3-d inputs, else 1."""
    if dim is not None:
        return dim
    return 0 if x.ndim in (0, 1, 3) else 1


# ---- linear, dropout, embedding -----------------------------------------------------------
def linear(input, weight, bias=None):  # noqa: A002
    return _linear(input, weight, bias, None)


def _linear(input, weight, bias, activation):  # noqa: A002
    """linear, then ``activation`` (None or "relu") fused into the same op where the operands
    allow (nn.Sequential fuses Linear + ReLU through here)."""
    if input.shape[-1:] != weight.shape[-1:]:
        raise ValueError(f"linear: input has last dim {input.shape[-1:]} but weight {weight.shape} expects "
                         f"{weight.shape[-1]}")
    same = input.dtype == weight.dtype and (bias is None or bias.dtype == weight.dtype) \
        and input.device == weight.device and (bias is None or bias.device == weight.device)
    if same and weight.ndim == 2 and input.ndim >= 1:
        return M.Linear.apply(input, weight, bias, activation)
    out = input @ weight.T  # mixed dtypes or devices: the composed form promotes / reports
    out = out if bias is None else out + bias
    return out.relu() if activation == "relu" else out


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero each element with probability p and scale the rest by 1/(1-p), in training only."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    keep = creation.rand(*input.shape, device=input.device) >= p
    out = input * keep * (1 / (1 - p))
    return input._inplace(lambda _: out) if inplace else out


def embedding(input, weight, padding_idx=None):  # noqa: A002
    if not isinstance(input, Tensor) or input._data.dtype.kind not in "iu":
        raise TypeError("embedding: indices must be an integer Tensor")
    n = weight.shape[0]
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    if input.numel() and (int(input._data.min()) < 0 or int(input._data.max()) >= n):
        raise IndexError(f"embedding: index out of range for an embedding of {n} rows")
    return G.Embedding.apply(weight, input._data, padding_idx)


def one_hot(tensor, num_classes=-1):
    if tensor._data.dtype.kind not in "iu":
        raise TypeError("one_hot: expected an integer tensor")
    if num_classes < 0:
        num_classes = int(tensor._data.max()) + 1 if tensor.numel() else 0
    classes = creation.arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).long()


# ---- normalisation ------------------------------------------------------------------------
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the last dims of input {input.shape}")
    return N.LayerNorm.apply(input, weight, bias, len(shape), float(eps))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):  # noqa: A002
    """Normalise per channel (dim 1) over the batch and spatial dims. In training the batch
    statistics are used and the running ones updated in place (running_var with the unbiased
    variance, as PyTorch does); in eval the running statistics are used."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of at least 2 dims (N, C, ...), got {input.shape}")
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    if training:
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input {input.shape}")
        mean = input.mean(dims)
        var = input.var(dims, unbiased=False)
        if running_mean is not None:
            from ..autograd import no_grad
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (momentum * count / (count - 1)))
    else:
        mean, var = running_mean, running_var
    out = (input - mean.reshape(shape)) * ((var.reshape(shape) + eps) ** -0.5)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


# ---- convolution and pooling --------------------------------------------------------------
@_unbatched
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, None)


def _conv2d(input, weight, bias, stride, padding, dilation, groups, activation):  # noqa: A002
    """conv2d, then ``activation`` (None or "relu") in the op's epilogue (nn.Sequential fuses
    Conv2d + ReLU through here)."""
    _check(input, 4, "conv2d")
    _check(weight, 4, "conv2d (weight)", "(out_channels, in_channels / groups, kH, kW)")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    padding = _conv_padding(padding, weight.shape[2:], stride, dilation)
    c = input.shape[1]
    if c % groups or weight.shape[0] % groups or weight.shape[1] * groups != c:
        raise ValueError(f"conv2d: input with {c} channels does not fit weight {weight.shape} with groups={groups}")
    for size, k, p, d in zip(input.shape[2:], weight.shape[2:], padding, dilation):
        if size + 2 * p < d * (k - 1) + 1:
            raise ValueError(f"conv2d: kernel {tuple(weight.shape[2:])} (dilation {dilation}) is larger than the "
                             f"padded input {tuple(input.shape[2:])} + padding {padding}")
    return C.Conv2d.apply(input, weight, bias, stride, padding, dilation, groups, activation)


def _conv_padding(padding, kernel, stride, dilation):
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in totals):
            raise NotImplementedError("conv2d: padding='same' with an even effective kernel size needs uneven "
                                      "padding, which tilegrad does not support yet")
        return tuple(t // 2 for t in totals)
    return _pair(padding, "padding")


@_unbatched
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):  # noqa: A002
    _check(input, 4, "conv_transpose2d")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    output_padding, dilation = _pair(output_padding, "output_padding"), _pair(dilation, "dilation")
    if input.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise ValueError(f"conv_transpose2d: input with {input.shape[1]} channels does not fit weight {weight.shape} "
                         f"(in_channels, out_channels / groups, kH, kW) with groups={groups}")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller than stride or dilation")
    return C.ConvTranspose2d.apply(input, weight, bias, stride, padding, output_padding, groups, dilation)


def _pool_args(input, kernel_size, stride, padding, name):
    _check(input, 4, name)
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{name}: padding {padding} should be at most half of the kernel size {kernel}")
    return kernel, stride, padding


@_unbatched
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):  # noqa: A002
    kernel, stride, padding = _pool_args(input, kernel_size, stride, padding, "max_pool2d")
    out, indices = C.MaxPool2d.apply(input, kernel, stride, padding, _pair(dilation, "dilation"), bool(ceil_mode))
    return (out, indices) if return_indices else out


@_unbatched
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    kernel, stride, padding = _pool_args(input, kernel_size, stride, padding, "avg_pool2d")
    if divisor_override is not None:
        if not isinstance(divisor_override, numbers.Integral) or isinstance(divisor_override, bool):
            raise TypeError(f"avg_pool2d: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must be non-zero")
        divisor_override = int(divisor_override)
    return C.AvgPool2d.apply(input, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad), divisor_override)


@_unbatched
def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """Average over the bins PyTorch uses: bin i spans [floor(i*H/out), ceil((i+1)*H/out))."""
    _check(input, 4, "adaptive_avg_pool2d")
    h, w = input.shape[2:]
    out_h, out_w = _pair(output_size, "output_size") if not isinstance(output_size, numbers.Integral) \
        else (output_size, output_size)
    out_h, out_w = out_h or h, out_w or w
    if h % out_h == 0 and w % out_w == 0:  # equal bins: one pooling op
        return C.AvgPool2d.apply(input, (h // out_h, w // out_w), (h // out_h, w // out_w), (0, 0), False, True, None)
    rows = []
    for i in range(out_h):
        r0, r1 = (i * h) // out_h, -((-(i + 1) * h) // out_h)
        cells = [input[:, :, r0:r1, (j * w) // out_w: -((-(j + 1) * w) // out_w)].mean((2, 3)) for j in range(out_w)]
        rows.append(cells[0].unsqueeze(-1) if out_w == 1 else _stack(cells, -1))
    return _stack(rows, -2)


def _stack(tensors, dim):
    from ..functional import stack
    return stack(tensors, dim)


# ---- attention ----------------------------------------------------------------------------
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) v over the last two dims, PyTorch's semantics: a bool
    ``attn_mask`` marks the positions that may be attended to; a float one is added to the scores;
    ``is_causal`` masks above the top-left diagonal (and excludes ``attn_mask``). Leading dims
    broadcast. A row with nothing to attend to gives 0, as PyTorch does.

    One fused op (``ops.attention``) unless ``dropout_p > 0`` or the float mask requires grad:
    those run as a composition of tensor ops (dropout on the probabilities; the mask's
    gradient), where a fully masked row gives NaN instead."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} must have at least 2 dims, got shape {t.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: shapes query {query.shape}, key {key.shape} and value "
                         f"{value.shape} do not fit (..., L, E), (..., S, E), (..., S, Ev)")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: explicit attn_mask should not be set when is_causal=True")
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    learned_mask = attn_mask is not None and attn_mask.requires_grad and is_grad_enabled()
    if dropout_p > 0 or learned_mask:
        return _composed_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return AT.ScaledDotProductAttention.apply(query, key, value, attn_mask, bool(is_causal), scale)


def _composed_attention(query, key, value, attn_mask, dropout_p, is_causal, scale):
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        length, source = query.shape[-2], key.shape[-2]
        allowed = Tensor(np.tril(np.ones((length, source), dtype=bool))).to(query.device)
        scores = where(allowed, scores, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == dtypes.bool_:
            scores = where(attn_mask, scores, -math.inf)
        else:
            scores = scores + attn_mask
    weights = scores.softmax(-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return weights @ value


# ---- losses -------------------------------------------------------------------------------
def _reduce(loss, reduction, name):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"{name}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _class_dim_last(x):
    """(N, C, d1, ...) -> (N, d1, ..., C)."""
    return x if x.ndim <= 2 else x.permute(0, *range(2, x.ndim), 1)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):  # noqa: A002
    """-input[n, target[n]] * weight[target[n]]; 'mean' divides by the weights of the targets
    that are not ``ignore_index``."""
    if input.ndim == 1:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    if target._data.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: expected integer class indices as target, got {target.dtype}")
    if input.ndim < 2 or target.shape != (input.shape[0],) + input.shape[2:]:
        raise ValueError(f"nll_loss: input {input.shape} (N, C, ...) does not fit target {target.shape} (N, ...)")
    n_classes = input.shape[1]
    valid = target != ignore_index
    safe = where(valid, target, 0)
    if safe.numel() and (int(safe._data.min()) < 0 or int(safe._data.max()) >= n_classes):
        raise IndexError(f"nll_loss: target out of bounds for {n_classes} classes")
    picked = -_class_dim_last(input).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    w = valid.to(input.dtype) if weight is None else weight[safe] * valid
    loss = picked * w
    if reduction == "mean":
        return loss.sum() / w.sum()
    return _reduce(loss, reduction, "nll_loss")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):  # noqa: A002
    """log_softmax over dim 1 then NLL, for class-index targets (N, ...) or class-probability
    targets shaped like the input; ``label_smoothing`` mixes in the uniform distribution.
    Class indices run as one fused op (``ops.loss.CrossEntropy``); probabilities are composed."""
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in L.REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if target.is_floating_point():  # class probabilities
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    if target._data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: expected integer class indices as target, got {target.dtype}")
    expected = None if input.ndim == 0 else () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"cross_entropy: input {input.shape} (N, C, ...) does not fit target {target.shape} (N, ...)")
    if weight is not None and weight.shape != (input.shape[0 if input.ndim == 1 else 1],):
        raise ValueError(f"cross_entropy: weight {weight.shape} must have one entry per class of input {input.shape}")
    return L.CrossEntropy.apply(input, target, weight, int(ignore_index), float(label_smoothing), reduction)


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing):  # noqa: A002
    class_dim = 0 if input.ndim == 1 else 1
    logp = input.log_softmax(class_dim)
    n_classes = input.shape[class_dim]
    if target.shape != input.shape:
        raise ValueError(f"cross_entropy: probability targets must match the input's shape {input.shape}, "
                         f"got {target.shape}")
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    wshape = (n_classes,) + (1,) * (input.ndim - class_dim - 1)
    weighted = logp if weight is None else logp * weight.reshape(wshape)
    return _reduce(-(target * weighted).sum(class_dim), reduction, "cross_entropy")


# The pointwise losses are compositions of tensor ops, kept in their own file.
from .losses_functional import (binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss,  # noqa: E402,F401
                                kl_div, l1_loss, mse_loss, smooth_l1_loss)
from .resize_functional import interpolate, pad  # noqa: E402,F401
from .similarity_functional import cosine_similarity, normalize  # noqa: E402,F401
from .activations_functional import (elu, hardsigmoid, hardswish, hardtanh, logsigmoid, mish, prelu,  # noqa: E402,F401
                                     relu6, selu, softplus, softsign, tanhshrink)
from .layers_functional import (adaptive_avg_pool1d, avg_pool1d, bilinear, conv1d, dropout1d, dropout2d,  # noqa: E402,F401
                                group_norm, instance_norm, max_pool1d)
