"""The CPU backend: ``tilegrad._cpu`` kernels (C++, OpenMP, SIMD) where they exist and apply,
the reference kernels otherwise.

The native kernels take float32 C-contiguous arrays and a preallocated output; these wrappers
route everything else (other dtypes, shapes the kernel does not cover) to the reference.
"""
import numpy as np

from . import reference
from .native import (F32, attention_covered, conv_geometry, divisor_override_covered, elementwise_covered,
                     layer_norm_covered, matmul_covered, pool_geometry, softmax_covered)

try:
    from tilegrad import _cpu
except ImportError:  # no compiler at install time: everything runs on the reference kernels
    _cpu = None

KERNELS = dict(reference.KERNELS)
REF = reference.KERNELS  # the reference kernels by name (the nn ones are not module attributes)


# Below this many elements the native call's fixed cost (argument checks, GIL release) exceeds
# the work, and NumPy's own loop is faster: measured crossover of relu on the AVX2 machine.
SMALL = 4096
# The crossover of the kernels that NumPy runs in several passes (softmax, layer norm, the
# transcendental activations, leaky_relu's where): the native call wins from 16 elements on
# (e.g. sigmoid 6.8 vs 2.0 us, softmax 5.9 vs 2.3 us at 16; measured on the AVX2 machine).
SMALL_HEAVY = 16


def _f32c(a):
    return np.asarray(a, order="C")  # keeps 0-d arrays 0-d, unlike np.ascontiguousarray


def relu(x):
    if x.size < SMALL or not elementwise_covered(x):
        return reference.relu(x)
    x = _f32c(x)
    out = np.empty_like(x)
    _cpu.relu(x, out)
    return out


def relu_backward(x, gy):
    if x.size < SMALL or not elementwise_covered(x, gy):
        return reference.relu_backward(x, gy)
    x, gy = _f32c(x), _f32c(gy)
    out = np.empty_like(x)
    _cpu.relu_backward(x, gy, out)
    return out


def _gemm_operand(x):
    """(array, transposed): x itself when C-contiguous, or the C-contiguous array that x is a
    transposed view of (a weight's .T, swapaxes(-1, -2) in backward), which the kernel reads
    in place; anything else is copied."""
    if x.flags.c_contiguous:
        return x, False
    swapped = x.swapaxes(-1, -2)
    if swapped.flags.c_contiguous:
        return swapped, True
    return np.ascontiguousarray(x), False


def matmul(a, b):
    """2-D and equal-batch 3-D float32 products run natively, and so does (..., M, K) @ (K, N)
    (a Linear layer on a batch of sequences) as one 2-D product over all leading rows; other
    broadcasting batches, vectors and dtypes use the reference."""
    if a.ndim > 2 and b.ndim == 2 and a.dtype == F32 and b.dtype == F32:
        return matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
    if not matmul_covered(a, b):
        return reference.matmul(a, b)
    out = np.empty(a.shape[:-1] + b.shape[-1:], dtype=F32)
    (a, trans_a), (b, trans_b) = _gemm_operand(a), _gemm_operand(b)
    _cpu.matmul(a, b, out, trans_a=trans_a, trans_b=trans_b)
    return out


def linear(x, w, b, activation="none"):
    """x @ w^T as one native product reading w in place (trans_b), then bias and activation in
    one pass over the fresh output; other dtypes use the reference."""
    if x.dtype != F32 or w.dtype != F32 or (b is not None and b.dtype != F32):
        return reference.linear(x, w, b, activation)
    x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    out = np.empty((x2.shape[0], w.shape[0]), dtype=F32)
    w, trans = _gemm_operand(w.T)
    _cpu.matmul(x2, w, out, trans_b=trans)
    if b is not None or activation != "none":
        _cpu.bias_act(out, None if b is None else _f32c(b), -1, activation)
    return out.reshape(x.shape[:-1] + (out.shape[1],))


def bias_act(y, b, dim, activation):
    """In place on y (the op's fresh output) for float32; the reference otherwise."""
    if y.dtype != F32 or (b is not None and b.dtype != F32) or not y.flags.c_contiguous or y.ndim == 0 \
            or activation not in ("none", "relu"):
        return reference.bias_act(y, b, dim, activation)
    _cpu.bias_act(y, None if b is None else _f32c(b), dim, activation)
    return y


def _cutoff(heavy):
    return SMALL_HEAVY if heavy else SMALL  # read per call, so tests can lower the cutoffs


def _unary(native, ref, heavy=True):
    """out = native(x, out) for float32 x above the size cutoff, else the reference."""
    def kernel(x):
        if x.size < _cutoff(heavy) or x.dtype != F32:
            return ref(x)
        x = _f32c(x)
        out = np.empty_like(x)
        native(x, out)
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _binary(native, ref, heavy=True):
    """out = native(a, gy, out) for float32 arrays of one shape, else the reference."""
    def kernel(a, gy):
        if a.size < _cutoff(heavy) or not elementwise_covered(a, gy):
            return ref(a, gy)
        a, gy = _f32c(a), _f32c(gy)
        out = np.empty_like(a)
        native(a, gy, out)
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _softmax(native, ref):
    def kernel(x, dim):
        if x.size < SMALL_HEAVY or not softmax_covered(x, dim):
            return ref(x, dim)
        x = _f32c(x)
        out = np.empty_like(x)
        native(x, dim, out)
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _softmax_backward(native, ref):
    def kernel(y, gy, dim):
        if y.size < SMALL_HEAVY or not (elementwise_covered(y, gy) and softmax_covered(y, dim)):
            return ref(y, gy, dim)
        y, gy = _f32c(y), _f32c(gy)
        out = np.empty_like(y)
        native(y, gy, dim, out)
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def gelu(x, approximate):
    if x.size < SMALL_HEAVY or x.dtype != F32 or approximate not in ("none", "tanh"):
        return REF["gelu"](x, approximate)
    x = _f32c(x)
    out = np.empty_like(x)
    _cpu.gelu(x, approximate, out)
    return out


def gelu_backward(x, gy, approximate):
    if x.size < SMALL_HEAVY or not elementwise_covered(x, gy) or approximate not in ("none", "tanh"):
        return REF["gelu_backward"](x, gy, approximate)
    x, gy = _f32c(x), _f32c(gy)
    out = np.empty_like(x)
    _cpu.gelu_backward(x, gy, approximate, out)
    return out


def leaky_relu(x, slope):
    if x.size < SMALL_HEAVY or x.dtype != F32:
        return REF["leaky_relu"](x, slope)
    x = _f32c(x)
    out = np.empty_like(x)
    _cpu.leaky_relu(x, slope, out)
    return out


def leaky_relu_backward(x, gy, slope):
    if x.size < SMALL_HEAVY or not elementwise_covered(x, gy):
        return REF["leaky_relu_backward"](x, gy, slope)
    x, gy = _f32c(x), _f32c(gy)
    out = np.empty_like(x)
    _cpu.leaky_relu_backward(x, gy, slope, out)
    return out


def layer_norm(x, weight, bias, n_dims, eps):
    if x.size < SMALL_HEAVY or not layer_norm_covered(x, n_dims, weight, bias):
        return REF["layer_norm"](x, weight, bias, n_dims, eps)
    x = _f32c(x)
    weight = None if weight is None else _f32c(weight)
    bias = None if bias is None else _f32c(bias)
    stat_shape = x.shape[:x.ndim - n_dims] + (1,) * n_dims
    y = np.empty_like(x)
    mean = np.empty(stat_shape, F32)
    rstd = np.empty(stat_shape, F32)
    _cpu.layer_norm(x, weight, bias, n_dims, eps, y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(x, weight, mean, rstd, gy, n_dims):
    stat_shape = x.shape[:x.ndim - n_dims] + (1,) * n_dims
    if x.size < SMALL_HEAVY or not layer_norm_covered(x, n_dims, weight, None, gy) \
            or mean.dtype != F32 or rstd.dtype != F32 or mean.shape != stat_shape or rstd.shape != stat_shape:
        return REF["layer_norm_backward"](x, weight, mean, rstd, gy, n_dims)
    x, gy, mean, rstd = _f32c(x), _f32c(gy), _f32c(mean), _f32c(rstd)
    weight = None if weight is None else _f32c(weight)
    gx = np.empty_like(x)
    gweight = np.empty(x.shape[x.ndim - n_dims:], F32)
    gbias = np.empty_like(gweight)
    _cpu.layer_norm_backward(x, weight, mean, rstd, gy, n_dims, gx, gweight, gbias)
    return gx, gweight, gbias


def conv2d(x, w, stride, padding, dilation, groups):
    """float32 NCHW x and OIHW w run natively (im2col + the native GEMM); the rest on the reference."""
    geo = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if x.dtype != F32 or w.dtype != F32 or geo is None or x.size < SMALL_HEAVY:
        return REF["conv2d"](x, w, stride, padding, dilation, groups)
    out = np.empty(geo[3], F32)
    _cpu.conv2d(_f32c(x), _f32c(w), *geo[:3], groups, out)
    return out


def conv2d_bias_act(x, w, b, stride, padding, dilation, groups, activation):
    """conv2d, then the epilogue in place on its fresh output (the CPU conv does not fuse it)."""
    return bias_act(conv2d(x, w, stride, padding, dilation, groups), b, 1, activation)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    geo = conv_geometry(tuple(x_shape), w.shape, stride, padding, dilation, groups)
    if gy.dtype != F32 or w.dtype != F32 or geo is None or geo[3] != gy.shape or gy.size < SMALL_HEAVY:
        return REF["conv2d_backward_input"](gy, w, x_shape, stride, padding, dilation, groups)
    gx = np.empty(tuple(x_shape), F32)
    _cpu.conv2d_backward_input(_f32c(gy), _f32c(w), *geo[:3], groups, gx)
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    geo = conv_geometry(x.shape, tuple(w_shape), stride, padding, dilation, groups)
    if gy.dtype != F32 or x.dtype != F32 or geo is None or geo[3] != gy.shape or gy.size < SMALL_HEAVY:
        return REF["conv2d_backward_weight"](gy, x, w_shape, stride, padding, dilation, groups)
    gw = np.empty(tuple(w_shape), F32)
    _cpu.conv2d_backward_weight(_f32c(gy), _f32c(x), *geo[:3], groups, gw)
    return gw


# ---- pooling ------------------------------------------------------------------------------
I64 = np.dtype(np.int64)


def _pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode):
    """native.pool_geometry (shared with the GPU), narrowed to what the CPU binding takes: a
    kernel that fits the padded input, and no window that dilation steps entirely past the
    input (the binding rejects those; the reference handles them)."""
    geo = pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode)
    if geo is None:
        return None
    kernel, stride, padding, dilation, shape = geo
    for size, n, k, s, p, d in zip(x_shape[2:], shape[2:], kernel, stride, padding, dilation):
        if size + 2 * p < d * (k - 1) + 1:
            return None
        # windows that start left of the input: does dilation step over all of it?
        for o in range(n):
            start = o * s - p
            if start >= 0:
                break
            first = -(start // d)  # taps to the first cell at or right of 0
            if first >= k or start + first * d >= size:
                return None
    return geo


def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    geo = _pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    if x.dtype != F32 or geo is None:
        return REF["max_pool2d"](x, kernel, stride, padding, dilation, ceil_mode)
    y = np.empty(geo[4], F32)
    arg = np.empty(geo[4], I64)
    _cpu.max_pool2d(_f32c(x), *geo[:4], bool(ceil_mode), y, arg)
    return y, arg


def max_pool2d_backward(gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode):
    geo = _pool_geometry(tuple(x_shape), kernel, stride, padding, dilation, ceil_mode)
    if gy.dtype != F32 or arg.dtype != I64 or geo is None or gy.shape != geo[4] or arg.shape != geo[4]:
        return REF["max_pool2d_backward"](gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode)
    gx = np.empty(tuple(x_shape), F32)
    _cpu.max_pool2d_backward(_f32c(gy), np.asarray(arg, order="C"), *geo[:4], bool(ceil_mode), gx)
    return gx


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    geo = _pool_geometry(x.shape, kernel, stride, padding, (1, 1), ceil_mode)
    if x.dtype != F32 or geo is None or not divisor_override_covered(divisor_override):
        return REF["avg_pool2d"](x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = np.empty(geo[4], F32)
    _cpu.avg_pool2d(_f32c(x), *geo[:3], bool(ceil_mode), bool(count_include_pad), divisor_override, y)
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    geo = _pool_geometry(tuple(x_shape), kernel, stride, padding, (1, 1), ceil_mode)
    if gy.dtype != F32 or geo is None or gy.shape != geo[4] or not divisor_override_covered(divisor_override):
        return REF["avg_pool2d_backward"](gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad,
                                          divisor_override)
    gx = np.empty(tuple(x_shape), F32)
    _cpu.avg_pool2d_backward(_f32c(gy), *geo[:3], bool(ceil_mode), bool(count_include_pad), divisor_override, gx)
    return gx


# ---- cross-entropy ------------------------------------------------------------------------
def _ce_covered(logits, target, weight, ignore_index, label_smoothing):
    """float32 logits (R, C >= 1), integer targets (R,), weight None or float32 (C,), an int64
    ignore_index and label_smoothing in [0, 1]."""
    return logits.dtype == F32 and logits.ndim == 2 and logits.shape[1] >= 1 \
        and target.dtype.kind in "iu" and target.shape == logits.shape[:1] \
        and (weight is None or (weight.dtype == F32 and weight.shape == logits.shape[1:])) \
        and isinstance(ignore_index, (int, np.integer)) and -2 ** 63 <= ignore_index < 2 ** 63 \
        and 0 <= label_smoothing <= 1


def _ce_args(logits, target, weight):
    return _f32c(logits), np.ascontiguousarray(target, dtype=I64), None if weight is None else _f32c(weight)


def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    if not _ce_covered(logits, target, weight, ignore_index, label_smoothing):
        return REF["cross_entropy_forward"](logits, target, weight, ignore_index, label_smoothing)
    logits, target, weight = _ce_args(logits, target, weight)
    loss = np.empty(logits.shape[0], F32)
    lse = np.empty(logits.shape[0], F32)
    _cpu.cross_entropy_forward(logits, target, weight, int(ignore_index), float(label_smoothing), loss, lse)
    return loss, lse


def cross_entropy_backward(logits, lse, target, weight, ignore_index, label_smoothing, grow):
    rows = logits.shape[:1]
    if not _ce_covered(logits, target, weight, ignore_index, label_smoothing) \
            or lse.dtype != F32 or grow.dtype != F32 or lse.shape != rows or grow.shape != rows:
        return REF["cross_entropy_backward"](logits, lse, target, weight, ignore_index, label_smoothing, grow)
    logits, target, weight = _ce_args(logits, target, weight)
    glogits = np.empty_like(logits)
    _cpu.cross_entropy_backward(logits, _f32c(lse), target, weight, int(ignore_index), float(label_smoothing),
                                _f32c(grow), glogits)
    return glogits


def _mask_arg(mask):
    return None if mask is None else _f32c(mask)


def sdpa_forward(q, k, v, mask, is_causal, scale):
    """The fused flash-style kernel for float32 (any mask form the op produces); the reference
    for other dtypes (float64 gradchecks) and mask shapes it does not cover."""
    if not attention_covered(q, k, v, mask):
        return REF["sdpa_forward"](q, k, v, mask, is_causal, scale)
    out = np.empty(q.shape[:2] + v.shape[2:], F32)
    lse = np.empty(q.shape[:2], F32)
    _cpu.sdpa_forward(_f32c(q), _f32c(k), _f32c(v), _mask_arg(mask), bool(is_causal), float(scale), out, lse)
    return out, lse


def sdpa_backward(q, k, v, mask, is_causal, scale, out, lse, gout):
    if not attention_covered(q, k, v, mask, out, lse, gout):
        return REF["sdpa_backward"](q, k, v, mask, is_causal, scale, out, lse, gout)
    q, k, v = _f32c(q), _f32c(k), _f32c(v)
    gq, gk, gv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    _cpu.sdpa_backward(q, k, v, _mask_arg(mask), bool(is_causal), float(scale), _f32c(out), _f32c(lse), _f32c(gout),
                       gq, gk, gv)
    return gq, gk, gv


if _cpu is not None:
    KERNELS.update(
        relu=relu, relu_backward=relu_backward, matmul=matmul, linear=linear, bias_act=bias_act,
        softmax=_softmax(_cpu.softmax, REF["softmax"]),
        log_softmax=_softmax(_cpu.log_softmax, REF["log_softmax"]),
        softmax_backward=_softmax_backward(_cpu.softmax_backward, REF["softmax_backward"]),
        log_softmax_backward=_softmax_backward(_cpu.log_softmax_backward, REF["log_softmax_backward"]),
        sigmoid=_unary(_cpu.sigmoid, REF["sigmoid"]),
        sigmoid_backward=_binary(_cpu.sigmoid_backward, REF["sigmoid_backward"], heavy=False),
        tanh=_unary(_cpu.tanh, REF["tanh"]),
        tanh_backward=_binary(_cpu.tanh_backward, REF["tanh_backward"], heavy=False),
        silu=_unary(_cpu.silu, REF["silu"]),
        silu_backward=_binary(_cpu.silu_backward, REF["silu_backward"]),
        gelu=gelu, gelu_backward=gelu_backward,
        leaky_relu=leaky_relu, leaky_relu_backward=leaky_relu_backward,
        layer_norm=layer_norm, layer_norm_backward=layer_norm_backward,
        conv2d=conv2d, conv2d_bias_act=conv2d_bias_act, conv2d_backward_input=conv2d_backward_input,
        conv2d_backward_weight=conv2d_backward_weight,
        max_pool2d=max_pool2d, max_pool2d_backward=max_pool2d_backward,
        avg_pool2d=avg_pool2d, avg_pool2d_backward=avg_pool2d_backward,
        cross_entropy_forward=cross_entropy_forward, cross_entropy_backward=cross_entropy_backward,
        sdpa_forward=sdpa_forward, sdpa_backward=sdpa_backward,
    )


def info():
    """What the native CPU module is and which instruction set it chose at run time."""
    if _cpu is None:
        return {"built": False}
    return {"built": True, "isa": _cpu.isa(), "threads": _cpu.num_threads()}
