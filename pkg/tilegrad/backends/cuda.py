"""The CUDA backend: arrays are CuPy arrays (its memory pool, its current stream).
``tilegrad._cuda`` kernels run where they exist and apply; elsewhere the reference kernels run
on CuPy. Kernels are launched on CuPy's current stream and never synchronise.

The native kernels take float32 arrays (made C-contiguous here) and a preallocated output;
other dtypes and arguments the kernels do not cover go to the reference kernels.
"""

from . import reference
from .native import (F32, I64, conv_geometry, divisor_override_covered, elementwise_covered, layer_norm_covered,
                     matmul_covered, pool_geometry, softmax_covered)

try:
    from tilegrad import _cuda
except ImportError:  # built without a CUDA compiler: reference kernels on CuPy
    _cuda = None

KERNELS = dict(reference.KERNELS)
REF = reference.KERNELS  # the reference kernels by name (the nn ones are not module attributes)


def _cupy():
    import cupy
    return cupy


def _stream():
    return _cupy().cuda.get_current_stream().ptr


def _c(a):
    return _cupy().asarray(a, order="C")  # keeps 0-d arrays 0-d


def relu(x):
    if not elementwise_covered(x):
        return reference.relu(x)
    cp = _cupy()
    x = _c(x)
    out = cp.empty_like(x)
    _cuda.relu(x, out, stream=_stream())
    return out


def relu_backward(x, gy):
    if not elementwise_covered(x, gy):
        return reference.relu_backward(x, gy)
    cp = _cupy()
    x, gy = _c(x), _c(gy)
    out = cp.empty_like(x)
    _cuda.relu_backward(x, gy, out, stream=_stream())
    return out


def matmul(a, b):
    if not matmul_covered(a, b):
        return reference.matmul(a, b)
    cp = _cupy()
    a, b = _c(a), _c(b)
    out = cp.empty(a.shape[:-1] + b.shape[-1:], dtype=F32)
    _cuda.matmul(a, b, out, stream=_stream())
    return out


# ---- softmax / log_softmax: any dim (the kernels take (outer, n, inner) layouts) ----------
def _softmax(native, ref):
    def kernel(x, dim):
        if not softmax_covered(x, dim):
            return ref(x, dim)
        x = _c(x)
        out = _cupy().empty_like(x)
        native(x, int(dim), out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _softmax_backward(native, ref):
    def kernel(y, gy, dim):
        if not (elementwise_covered(y, gy) and softmax_covered(y, dim)):
            return ref(y, gy, dim)
        y, gy = _c(y), _c(gy)
        out = _cupy().empty_like(y)
        native(y, gy, int(dim), out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


# ---- activations --------------------------------------------------------------------------
def _unary(native, ref):
    def kernel(x):
        if x.dtype != F32:
            return ref(x)
        x = _c(x)
        out = _cupy().empty_like(x)
        native(x, out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _binary(native, ref):
    def kernel(a, gy):
        if not elementwise_covered(a, gy):
            return ref(a, gy)
        a, gy = _c(a), _c(gy)
        out = _cupy().empty_like(a)
        native(a, gy, out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def gelu(x, approximate):
    if x.dtype != F32 or approximate not in ("none", "tanh"):
        return REF["gelu"](x, approximate)
    x = _c(x)
    out = _cupy().empty_like(x)
    _cuda.gelu(x, approximate, out, stream=_stream())
    return out


def gelu_backward(x, gy, approximate):
    if not elementwise_covered(x, gy) or approximate not in ("none", "tanh"):
        return REF["gelu_backward"](x, gy, approximate)
    x, gy = _c(x), _c(gy)
    out = _cupy().empty_like(x)
    _cuda.gelu_backward(x, gy, approximate, out, stream=_stream())
    return out


def leaky_relu(x, slope):
    if x.dtype != F32:
        return REF["leaky_relu"](x, slope)
    x = _c(x)
    out = _cupy().empty_like(x)
    _cuda.leaky_relu(x, float(slope), out, stream=_stream())
    return out


def leaky_relu_backward(x, gy, slope):
    if not elementwise_covered(x, gy):
        return REF["leaky_relu_backward"](x, gy, slope)
    x, gy = _c(x), _c(gy)
    out = _cupy().empty_like(x)
    _cuda.leaky_relu_backward(x, gy, float(slope), out, stream=_stream())
    return out


# ---- layer norm ---------------------------------------------------------------------------
def _stat_shape(x, n_dims):
    return x.shape[:x.ndim - n_dims] + (1,) * n_dims


def layer_norm(x, weight, bias, n_dims, eps):
    if not layer_norm_covered(x, n_dims, weight, bias):
        return REF["layer_norm"](x, weight, bias, n_dims, eps)
    cp = _cupy()
    x = _c(x)
    weight = None if weight is None else _c(weight)
    bias = None if bias is None else _c(bias)
    y = cp.empty_like(x)
    mean = cp.empty(_stat_shape(x, n_dims), F32)
    rstd = cp.empty(_stat_shape(x, n_dims), F32)
    _cuda.layer_norm(x, weight, bias, int(n_dims), float(eps), y, mean, rstd, stream=_stream())
    return y, mean, rstd


def layer_norm_backward(x, weight, mean, rstd, gy, n_dims):
    if not layer_norm_covered(x, n_dims, weight, None, gy) or mean.dtype != F32 or rstd.dtype != F32 \
            or mean.shape != _stat_shape(x, n_dims) or rstd.shape != _stat_shape(x, n_dims):
        return REF["layer_norm_backward"](x, weight, mean, rstd, gy, n_dims)
    cp = _cupy()
    x, gy, mean, rstd = _c(x), _c(gy), _c(mean), _c(rstd)
    weight = None if weight is None else _c(weight)
    gx = cp.empty_like(x)
    gweight = cp.empty(x.shape[x.ndim - n_dims:], F32)
    gbias = cp.empty_like(gweight)
    rows = x.size // gweight.size if gweight.size else 0
    need = _cuda.layer_norm_backward_workspace(rows, gweight.size)
    workspace = cp.empty(need, F32) if need else None  # from CuPy's pool, freed back to it
    _cuda.layer_norm_backward(x, weight, mean, rstd, gy, int(n_dims), gx, gweight, gbias, stream=_stream(),
                              workspace=workspace)
    return gx, gweight, gbias


# ---- conv2d: float32 NCHW / OIHW of any valid geometry --------------------------------------
def conv2d(x, w, stride, padding, dilation, groups):
    geo = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if x.dtype != F32 or w.dtype != F32 or geo is None:
        return REF["conv2d"](x, w, stride, padding, dilation, groups)
    out = _cupy().empty(geo[3], F32)
    _cuda.conv2d(_c(x), _c(w), *geo[:3], groups, out, stream=_stream())
    return out


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    x_shape = tuple(int(n) for n in x_shape)
    geo = conv_geometry(x_shape, w.shape, stride, padding, dilation, groups)
    if gy.dtype != F32 or w.dtype != F32 or geo is None or geo[3] != gy.shape:
        return REF["conv2d_backward_input"](gy, w, x_shape, stride, padding, dilation, groups)
    gx = _cupy().empty(x_shape, F32)
    _cuda.conv2d_backward_input(_c(gy), _c(w), *geo[:3], groups, gx, stream=_stream())
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    w_shape = tuple(int(n) for n in w_shape)
    geo = conv_geometry(x.shape, w_shape, stride, padding, dilation, groups)
    if gy.dtype != F32 or x.dtype != F32 or geo is None or geo[3] != gy.shape:
        return REF["conv2d_backward_weight"](gy, x, w_shape, stride, padding, dilation, groups)
    cp = _cupy()
    gw = cp.empty(w_shape, F32)
    need = _cuda.conv2d_backward_weight_workspace(x.shape, w_shape, *geo[:3], groups)
    workspace = cp.empty(need, F32) if need else None  # from CuPy's pool, freed back to it
    _cuda.conv2d_backward_weight(_c(gy), _c(x), *geo[:3], groups, gw, stream=_stream(), workspace=workspace)
    return gw


# ---- pooling --------------------------------------------------------------------------------
def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    geo = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    if x.dtype != F32 or geo is None:
        return REF["max_pool2d"](x, kernel, stride, padding, dilation, ceil_mode)
    cp = _cupy()
    out = cp.empty(geo[4], F32)
    arg = cp.empty(geo[4], I64)
    _cuda.max_pool2d(_c(x), *geo[:4], bool(ceil_mode), out, arg, stream=_stream())
    return out, arg


def max_pool2d_backward(gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode):
    x_shape = tuple(int(n) for n in x_shape)
    geo = pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode)
    if gy.dtype != F32 or arg.dtype != I64 or geo is None or gy.shape != geo[4] or arg.shape != geo[4]:
        return REF["max_pool2d_backward"](gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode)
    gx = _cupy().empty(x_shape, F32)
    _cuda.max_pool2d_backward(_c(gy), _c(arg), *geo[:4], bool(ceil_mode), gx, stream=_stream())
    return gx


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    geo = pool_geometry(x.shape, kernel, stride, padding, (1, 1), ceil_mode)
    if x.dtype != F32 or geo is None or not divisor_override_covered(divisor_override):
        return REF["avg_pool2d"](x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    out = _cupy().empty(geo[4], F32)
    _cuda.avg_pool2d(_c(x), *geo[:3], bool(ceil_mode), bool(count_include_pad), divisor_override or None, out,
                     stream=_stream())
    return out


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x_shape = tuple(int(n) for n in x_shape)
    geo = pool_geometry(x_shape, kernel, stride, padding, (1, 1), ceil_mode)
    if gy.dtype != F32 or geo is None or gy.shape != geo[4] or not divisor_override_covered(divisor_override):
        return REF["avg_pool2d_backward"](gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad,
                                          divisor_override)
    gx = _cupy().empty(x_shape, F32)
    _cuda.avg_pool2d_backward(_c(gy), *geo[:3], bool(ceil_mode), bool(count_include_pad), divisor_override or None,
                              gx, stream=_stream())
    return gx


if _cuda is not None:
    KERNELS.update(
        relu=relu, relu_backward=relu_backward, matmul=matmul,
        softmax=_softmax(_cuda.softmax, REF["softmax"]),
        log_softmax=_softmax(_cuda.log_softmax, REF["log_softmax"]),
        softmax_backward=_softmax_backward(_cuda.softmax_backward, REF["softmax_backward"]),
        log_softmax_backward=_softmax_backward(_cuda.log_softmax_backward, REF["log_softmax_backward"]),
        sigmoid=_unary(_cuda.sigmoid, REF["sigmoid"]),
        sigmoid_backward=_binary(_cuda.sigmoid_backward, REF["sigmoid_backward"]),
        tanh=_unary(_cuda.tanh, REF["tanh"]),
        tanh_backward=_binary(_cuda.tanh_backward, REF["tanh_backward"]),
        silu=_unary(_cuda.silu, REF["silu"]),
        silu_backward=_binary(_cuda.silu_backward, REF["silu_backward"]),
        gelu=gelu, gelu_backward=gelu_backward,
        leaky_relu=leaky_relu, leaky_relu_backward=leaky_relu_backward,
        layer_norm=layer_norm, layer_norm_backward=layer_norm_backward,
        conv2d=conv2d, conv2d_backward_input=conv2d_backward_input, conv2d_backward_weight=conv2d_backward_weight,
        max_pool2d=max_pool2d, max_pool2d_backward=max_pool2d_backward,
        avg_pool2d=avg_pool2d, avg_pool2d_backward=avg_pool2d_backward,
    )


def info():
    if _cuda is None:
        return {"built": False}
    return {"built": True, "archs": list(_cuda.compiled_archs()), "available": bool(_cuda.is_available())}
