"""Reference kernels: the definition of every kernel, written against ``xp`` (NumPy or CuPy).

These are the oracle of the parity tests and the fallback wherever a backend has no faster
kernel. They favour clarity: each one reads as the mathematical definition of its op.
Kernels may return NumPy scalars for 0-d inputs; the op layer turns those back into arrays.
"""
import numpy as np


def _cupy():
    import cupy
    return cupy


def xp_of(a):
    """The array module (NumPy or CuPy) that owns ``a``."""
    if isinstance(a, (np.ndarray, np.generic)):
        return np
    return _cupy()


def _xp2(a, b):
    """The array module of a binary op: CuPy if either operand lives on the GPU."""
    return np if isinstance(a, (np.ndarray, np.generic, int, float)) and \
        isinstance(b, (np.ndarray, np.generic, int, float)) else _cupy()


def _axes(dims, ndim):
    """Normalise an int, a tuple of ints or None to a tuple of non-negative axes (None = all)."""
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    return tuple(d % ndim if ndim else 0 for d in dims)


# ---- elementwise --------------------------------------------------------------------------
# Arithmetic uses the operators, which NumPy and CuPy arrays (and their scalars) share.
def add(a, b): return a + b
def sub(a, b): return a - b
def mul(a, b): return a * b
def div(a, b): return a / b
def pow(a, b): return _xp2(a, b).power(a, b)  # noqa: A001 - the kernel's name
def maximum(a, b): return _xp2(a, b).maximum(a, b)
def minimum(a, b): return _xp2(a, b).minimum(a, b)
def eq(a, b): return _xp2(a, b).equal(a, b)
def ne(a, b): return _xp2(a, b).not_equal(a, b)
def lt(a, b): return _xp2(a, b).less(a, b)
def le(a, b): return _xp2(a, b).less_equal(a, b)
def gt(a, b): return _xp2(a, b).greater(a, b)
def ge(a, b): return _xp2(a, b).greater_equal(a, b)
def neg(x): return xp_of(x).negative(x)
def exp(x): return xp_of(x).exp(x)
def log(x): return xp_of(x).log(x)
def log1p(x): return xp_of(x).log1p(x)
def sqrt(x): return xp_of(x).sqrt(x)
def abs(x): return xp_of(x).abs(x)  # noqa: A001
def sign(x): return xp_of(x).sign(x)
def where(cond, a, b): return xp_of(cond).where(cond, a, b)


def clamp(x, lo, hi):
    xp = xp_of(x)
    if lo is not None:
        x = xp.maximum(x, xp.asarray(lo, dtype=x.dtype))
    if hi is not None:
        x = xp.minimum(x, xp.asarray(hi, dtype=x.dtype))
    return x


def cast(x, np_dtype):
    return x.astype(np_dtype, copy=False)


def copy(x):
    """A fresh C-contiguous copy (``clone``/``contiguous``)."""
    return xp_of(x).array(x, copy=True, order="C")


# ---- activations --------------------------------------------------------------------------
_NP_ZEROS = {}  # dtype -> 0-d zero: NumPy's ufuncs take a 0-d array faster than a Python scalar


def relu(x):
    if type(x) is np.ndarray:
        zero = _NP_ZEROS.get(x.dtype)
        if zero is None:
            zero = _NP_ZEROS[x.dtype] = np.zeros((), x.dtype)
        return np.maximum(x, zero)
    return xp_of(x).maximum(x, 0)  # a Python 0 keeps x's dtype (NEP 50)


def relu_backward(x, gy):
    return gy * (x > 0)


def sigmoid(x):
    # Split by sign so exp never overflows: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) for x < 0.
    xp = xp_of(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(y, gy):
    return gy * y * (1 - y)


def tanh(x):
    return xp_of(x).tanh(x)


def tanh_backward(y, gy):
    return gy * (1 - y * y)


def softmax(x, dim):
    xp = xp_of(x)
    if x.size == 0:
        return xp.empty_like(x)
    e = xp.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(y, gy, dim):
    return y * (gy - (gy * y).sum(axis=dim, keepdims=True))


def log_softmax(x, dim):
    xp = xp_of(x)
    if x.size == 0:
        return xp.empty_like(x)
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax_backward(y, gy, dim):
    return gy - xp_of(y).exp(y) * gy.sum(axis=dim, keepdims=True)


# ---- reductions ---------------------------------------------------------------------------
def sum(x, dims, keepdim):  # noqa: A001
    return x.sum(axis=_axes(dims, x.ndim), keepdims=keepdim)


def mean(x, dims, keepdim):
    return x.mean(axis=_axes(dims, x.ndim), keepdims=keepdim)


def amax(x, dims, keepdim):
    return x.max(axis=_axes(dims, x.ndim), keepdims=keepdim)


def amin(x, dims, keepdim):
    return x.min(axis=_axes(dims, x.ndim), keepdims=keepdim)


def argmax(x, dim, keepdim):
    if dim is None:
        return xp_of(x).asarray(x.argmax()).reshape((1,) * x.ndim if keepdim else ())
    return x.argmax(axis=dim, keepdims=keepdim)


def argmin(x, dim, keepdim):
    if dim is None:
        return xp_of(x).asarray(x.argmin()).reshape((1,) * x.ndim if keepdim else ())
    return x.argmin(axis=dim, keepdims=keepdim)


def _extreme_dim(x, idx, dim, keepdim):
    values = xp_of(x).take_along_axis(x, idx, axis=dim)
    if not keepdim:
        values, idx = values.squeeze(dim), idx.squeeze(dim)
    return values, idx


def max_dim(x, dim, keepdim):
    """(values, indices) of the maximum along ``dim``: PyTorch's ``x.max(dim)``."""
    return _extreme_dim(x, x.argmax(axis=dim, keepdims=True), dim, keepdim)


def min_dim(x, dim, keepdim):
    return _extreme_dim(x, x.argmin(axis=dim, keepdims=True), dim, keepdim)


def var(x, dims, correction, keepdim):
    with np.errstate(divide="ignore", invalid="ignore"):
        return x.var(axis=_axes(dims, x.ndim), ddof=correction, keepdims=keepdim)


def logsumexp(x, dims, keepdim):
    xp = xp_of(x)
    axes = _axes(dims, x.ndim)
    if x.size == 0:
        return xp.log(x.sum(axis=axes, keepdims=keepdim) * 0)  # -inf where nothing is summed
    m = x.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    out = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
    return out if keepdim else out.squeeze(axes)


# ---- linear algebra -----------------------------------------------------------------------
def matmul(a, b):
    return xp_of(a).matmul(a, b)


def linear(x, w, b, activation="none"):
    """activation(x @ w^T (+ b)) over x's last dim."""
    return bias_act(xp_of(x).matmul(x, w.T), b, -1, activation)


def bias_act(y, b, dim, activation):
    """activation(y + b), b of shape (y.shape[dim],) or None; activation "none" or "relu" (the
    epilogues the Linear and Conv2d ops fuse). May return y itself when there is nothing to do."""
    if b is not None:
        shape = [1] * y.ndim
        shape[dim] = b.shape[0]
        y = y + b.reshape(shape)
    if activation == "relu":
        y = relu(y)
    elif activation != "none":
        raise ValueError(f"bias_act: activation must be 'none' or 'relu', got {activation!r}")
    return y


# ---- indexing and joining -----------------------------------------------------------------
def _is_basic_index(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


def index_backward(gy, idx, shape):
    """The gradient of ``x[idx]``: ``gy`` scattered back into zeros of ``shape``; repeated
    advanced indices add up."""
    xp = xp_of(gy)
    gx = xp.zeros(shape, dtype=gy.dtype)
    if _is_basic_index(idx):
        gx[idx] = gy
    elif xp is np:
        np.add.at(gx, idx, gy)
    else:
        import cupyx
        cupyx.scatter_add(gx, idx, gy)
    return gx


def index_put(x, idx, v):
    """A copy of ``x`` with ``x[idx] = v``."""
    out = copy(x)
    out[idx] = v
    return out


def cat(arrays, dim):
    return xp_of(arrays[0]).concatenate(arrays, axis=dim)


KERNELS = {name: fn for name, fn in globals().items()
           if callable(fn) and not name.startswith("_") and name not in ("xp_of", "np")}


def _add_nn_kernels():
    from . import (reference_activation, reference_attention, reference_index, reference_loss,  # the neural-network
                   reference_math, reference_nn, reference_sort)  # kernels live in their own files
    for family in (reference_nn.KERNELS, reference_loss.KERNELS, reference_attention.KERNELS, reference_index.KERNELS,
                   reference_sort.KERNELS, reference_activation.KERNELS, reference_math.KERNELS):
        overlap = set(KERNELS) & set(family)
        assert not overlap, f"kernels defined twice: {overlap}"
        KERNELS.update(family)


_add_nn_kernels()
