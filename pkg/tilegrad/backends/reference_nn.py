"""Reference kernels of the neural-network ops: activations beyond relu, layer norm, 2-D
convolution and pooling, gather and embedding. Written against ``xp`` like reference.py.

Convolution and pooling loop over the kernel's (kh, kw) offsets only — each step is a strided
slice of the whole batch — so they stay vectorized without building a sliding-window copy per
output pixel, and their backward passes (col2im, window scatter) are the same loops with ``+=``.
"""
import functools
import math

import numpy as np

from .reference import bias_act, xp_of

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# ---- activations --------------------------------------------------------------------------
def leaky_relu(x, slope):
    return xp_of(x).where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_backward(x, gy, slope):
    return xp_of(x).where(x > 0, gy, gy * gy.dtype.type(slope))


@functools.lru_cache(maxsize=None)
def _numba_erfc():
    """erfc as a NumPy ufunc, compiled by numba on first use (NumPy has no erf of its own)."""
    import numba

    @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
    def erfc(v):
        return math.erfc(v)
    return erfc


def erfc(x):
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype == np.float16:
            return _numba_erfc()(x.astype(np.float32)).astype(np.float16)
        return _numba_erfc()(x)
    import cupyx.scipy.special
    return cupyx.scipy.special.erfc(x)


def gelu(x, approximate):
    """x * Phi(x) = 0.5 x erfc(-x / sqrt 2); ``approximate="tanh"`` is PyTorch's
    0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as x sigmoid(2u). Both forms
    avoid 1 + (something near -1), which loses every digit for large negative x."""
    if approximate == "tanh":
        return x * _sigmoid(2 * _gelu_u(x))
    return 0.5 * x * erfc(x * x.dtype.type(-1 / math.sqrt(2)))


def _gelu_u(x):
    return x.dtype.type(SQRT_2_OVER_PI) * (x + 0.044715 * x ** 3)


def gelu_backward(x, gy, approximate):
    xp = xp_of(x)
    if approximate == "tanh":
        s = _sigmoid(2 * _gelu_u(x))
        du = x.dtype.type(SQRT_2_OVER_PI) * (1 + 3 * 0.044715 * x * x)
        return gy * (s + 2 * x * s * (1 - s) * du)
    cdf = 0.5 * erfc(x * x.dtype.type(-1 / math.sqrt(2)))
    pdf = xp.exp(-0.5 * x * x) * x.dtype.type(1 / math.sqrt(2 * math.pi))
    return gy * (cdf + x * pdf)


def _sigmoid(x):
    from .reference import sigmoid
    return sigmoid(x)


def silu(x):
    return x * _sigmoid(x)


def silu_backward(x, gy):
    s = _sigmoid(x)
    return gy * s * (1 + x * (1 - s))


# ---- layer norm ---------------------------------------------------------------------------
def layer_norm(x, weight, bias, n_dims, eps):
    """Normalise over the last ``n_dims`` dims; returns (y, mean, rstd) for the backward."""
    axes = tuple(range(x.ndim - n_dims, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    rstd = 1 / xp_of(x).sqrt((centred * centred).mean(axis=axes, keepdims=True) + x.dtype.type(eps))
    y = centred * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(x, weight, mean, rstd, gy, n_dims):
    """(gx, gweight, gbias) of layer_norm."""
    axes = tuple(range(x.ndim - n_dims, x.ndim))
    lead = tuple(range(x.ndim - n_dims))
    xhat = (x - mean) * rstd
    gbias = gy.sum(axis=lead) if lead else gy
    gweight = (gy * xhat).sum(axis=lead) if lead else gy * xhat
    g = gy * weight if weight is not None else gy
    gx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return gx, gweight, gbias


# ---- gather and embedding -----------------------------------------------------------------
def gather(x, dim, index):
    return xp_of(x).take_along_axis(x, index, axis=dim)


def _scatter_add(target, index, values):
    xp = xp_of(target)
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


def gather_backward(gy, dim, index, shape):
    xp = xp_of(gy)
    gx = xp.zeros(shape, dtype=gy.dtype)
    grids = list(xp.ix_(*[xp.arange(n) for n in index.shape]))
    grids[dim] = index
    _scatter_add(gx, tuple(grids), gy)
    return gx


def embedding_backward(gy, indices, num_embeddings, padding_idx):
    """Rows of ``gy`` added into the rows their indices name; the padding row gets none."""
    xp = xp_of(gy)
    dim = gy.shape[-1]
    gw = xp.zeros((num_embeddings, dim), dtype=gy.dtype)
    _scatter_add(gw, indices.reshape(-1), gy.reshape(-1, dim))
    if padding_idx is not None:
        gw[padding_idx] = 0
    return gw


# ---- convolution --------------------------------------------------------------------------
def conv_out_size(size, k, stride, padding, dilation, ceil_mode=False):
    span = size + 2 * padding - dilation * (k - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:  # the last window must start inside the input
            out -= 1
        return out
    return span // stride + 1


def _windows(xpad, kh, kw, out_h, out_w, stride, dilation):
    """Yield (i, j, view): the input under kernel offset (i, j) for every output pixel."""
    sh, sw = stride
    dh, dw = dilation
    for i in range(kh):
        for j in range(kw):
            yield i, j, xpad[:, :, i * dh: i * dh + sh * (out_h - 1) + 1: sh, j * dw: j * dw + sw * (out_w - 1) + 1: sw]


def _pad(x, padding, value=0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return xp_of(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _im2col(x, kh, kw, out_h, out_w, stride, padding, dilation):
    """(N, C*kh*kw, out_h*out_w) columns of the padded input, channel-major like the weight."""
    xp = xp_of(x)
    n, c = x.shape[:2]
    cols = xp.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for i, j, view in _windows(_pad(x, padding), kh, kw, out_h, out_w, stride, dilation):
        cols[:, :, i, j] = view
    return cols.reshape(n, c * kh * kw, out_h * out_w)


def _col2im(cols, shape, kh, kw, out_h, out_w, stride, padding, dilation):
    """The adjoint of _im2col: add every column entry back to the input pixel it came from."""
    xp = xp_of(cols)
    n, c, h, w = shape
    ph, pw = padding
    gpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    cols = cols.reshape(n, c, kh, kw, out_h, out_w)
    for i, j, view in _windows(gpad, kh, kw, out_h, out_w, stride, dilation):
        view += cols[:, :, i, j]
    return gpad[:, :, ph: ph + h, pw: pw + w]


def conv2d(x, w, stride, padding, dilation, groups):
    """Cross-correlation of NCHW ``x`` with OIHW ``w`` (I = C / groups): im2col + a batched matmul."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    out_h = conv_out_size(h, kh, stride[0], padding[0], dilation[0])
    out_w = conv_out_size(wd, kw, stride[1], padding[1], dilation[1])
    cols = _im2col(x, kh, kw, out_h, out_w, stride, padding, dilation).reshape(n, groups, cg * kh * kw, out_h * out_w)
    y = w.reshape(groups, o // groups, cg * kh * kw) @ cols  # (n, groups, o/groups, L)
    return y.reshape(n, o, out_h, out_w)


def conv2d_bias_act(x, w, b, stride, padding, dilation, groups, activation):
    """activation(conv2d(x, w) + b), b (O,) or None: the Conv2d layer with its epilogue, which the
    native kernels may apply as the output is stored."""
    return bias_act(conv2d(x, w, stride, padding, dilation, groups), b, 1, activation)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    n, o, out_h, out_w = gy.shape
    _, cg, kh, kw = w.shape
    wg = w.reshape(groups, o // groups, cg * kh * kw)
    gcols = wg.swapaxes(-1, -2) @ gy.reshape(n, groups, o // groups, out_h * out_w)  # (n, g, cg*k*k, L)
    return _col2im(gcols.reshape(n, groups * cg * kh * kw, out_h * out_w), x_shape, kh, kw, out_h, out_w,
                   stride, padding, dilation)


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    n, o, out_h, out_w = gy.shape
    _, cg, kh, kw = w_shape
    cols = _im2col(x, kh, kw, out_h, out_w, stride, padding, dilation).reshape(n, groups, cg * kh * kw, out_h * out_w)
    gw = (gy.reshape(n, groups, o // groups, out_h * out_w) @ cols.swapaxes(-1, -2)).sum(axis=0)
    return gw.reshape(w_shape)


# ---- pooling ------------------------------------------------------------------------------
def _pool_geometry(x, kernel, stride, padding, dilation, ceil_mode):
    out_h = conv_out_size(x.shape[2], kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    out_w = conv_out_size(x.shape[3], kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    # Right/bottom room so that windows that ceil mode adds stay inside the padded array.
    need_h = (out_h - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (out_w - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    extra = (max(need_h - x.shape[2] - 2 * padding[0], 0), max(need_w - x.shape[3] - 2 * padding[1], 0))
    return out_h, out_w, extra


def _pad_pool(x, padding, extra, value):
    ph, pw = padding
    return xp_of(x).pad(x, ((0, 0), (0, 0), (ph, ph + extra[0]), (pw, pw + extra[1])), constant_values=value)


def _tap_indices(xp, i, j, out_h, out_w, width, stride, padding, dilation):
    """(out_h, out_w) flat indices ih * width + iw in the input plane of kernel tap (i, j)."""
    rows = xp.arange(out_h).reshape(-1, 1) * stride[0] - padding[0] + i * dilation[0]
    cols = xp.arange(out_w).reshape(1, -1) * stride[1] - padding[1] + j * dilation[1]
    return rows * width + cols


def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    """(y, arg): the maximum of each window and its flat index ih * W + iw in the input plane
    (int64, PyTorch's return_indices). The first maximum in window order wins; a NaN wins over
    everything (the last NaN in the window), as in PyTorch."""
    xp = xp_of(x)
    out_h, out_w, extra = _pool_geometry(x, kernel, stride, padding, dilation, ceil_mode)
    xpad = _pad_pool(x, padding, extra, -xp.inf)
    y = arg = None
    for i, j, view in _windows(xpad, kernel[0], kernel[1], out_h, out_w, stride, dilation):
        tap = _tap_indices(xp, i, j, out_h, out_w, x.shape[3], stride, padding, dilation)
        if y is None:
            y, arg = view.copy(), xp.broadcast_to(tap, view.shape).copy()
        else:
            better = (view > y) | xp.isnan(view)
            y = xp.where(better, view, y)
            arg = xp.where(better, tap, arg)
    return y, arg


def max_pool2d_backward(gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode):
    """Each gy added at its arg (the input-plane index max_pool2d returned)."""
    xp = xp_of(gy)
    n, c, h, w = x_shape
    out_h, out_w = gy.shape[2:]
    _, _, extra = _pool_geometry(xp.empty((0, 0, h, w)), kernel, stride, padding, dilation, ceil_mode)
    gpad = xp.zeros((n, c, h + 2 * padding[0] + extra[0], w + 2 * padding[1] + extra[1]), dtype=gy.dtype)
    for i, j, view in _windows(gpad, kernel[0], kernel[1], out_h, out_w, stride, dilation):
        # A padding tap may share its flat index with a real cell, but it lands in the padding
        # (sliced away below); each real cell has one index, so no gradient is counted twice.
        view += xp.where(arg == _tap_indices(xp, i, j, out_h, out_w, w, stride, padding, dilation), gy, 0)
    return gpad[:, :, padding[0]: padding[0] + h, padding[1]: padding[1] + w]


def _avg_divisor(x_shape, dtype, xp, kernel, stride, padding, ceil_mode, count_include_pad):
    """How many inputs each window averages: PyTorch counts padding (if asked) but never the
    cells that ceil mode adds past the padding."""
    n, c, h, w = x_shape
    ones = xp.ones((1, 1, h, w), dtype=dtype)
    out_h, out_w, extra = _pool_geometry(ones, kernel, stride, padding, (1, 1), ceil_mode)
    counted = _pad_pool(ones, padding, extra, 1 if count_include_pad else 0)
    if count_include_pad:  # the padding counts, the ceil-mode overhang does not
        counted[:, :, counted.shape[2] - extra[0]:, :] = 0
        counted[:, :, :, counted.shape[3] - extra[1]:] = 0
    total = 0
    for _, _, view in _windows(counted, kernel[0], kernel[1], out_h, out_w, stride, (1, 1)):
        total = total + view
    return total


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    xp = xp_of(x)
    out_h, out_w, extra = _pool_geometry(x, kernel, stride, padding, (1, 1), ceil_mode)
    total = 0
    for _, _, view in _windows(_pad_pool(x, padding, extra, 0), kernel[0], kernel[1], out_h, out_w, stride, (1, 1)):
        total = total + view
    if divisor_override:
        return total / x.dtype.type(divisor_override)
    return total / _avg_divisor(x.shape, x.dtype, xp, kernel, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    xp = xp_of(gy)
    n, c, h, w = x_shape
    out_h, out_w = gy.shape[2:]
    if divisor_override:
        g = gy / gy.dtype.type(divisor_override)
    else:
        g = gy / _avg_divisor(x_shape, gy.dtype, xp, kernel, stride, padding, ceil_mode, count_include_pad)
    _, _, extra = _pool_geometry(xp.empty((0, 0, h, w)), kernel, stride, padding, (1, 1), ceil_mode)
    gpad = xp.zeros((n, c, h + 2 * padding[0] + extra[0], w + 2 * padding[1] + extra[1]), dtype=gy.dtype)
    for _, _, view in _windows(gpad, kernel[0], kernel[1], out_h, out_w, stride, (1, 1)):
        view += g
    return gpad[:, :, padding[0]: padding[0] + h, padding[1]: padding[1] + w]


KERNELS = {
    "leaky_relu": leaky_relu, "leaky_relu_backward": leaky_relu_backward,
    "gelu": gelu, "gelu_backward": gelu_backward, "silu": silu, "silu_backward": silu_backward,
    "layer_norm": layer_norm, "layer_norm_backward": layer_norm_backward,
    "gather": gather, "gather_backward": gather_backward, "embedding_backward": embedding_backward,
    "conv2d": conv2d, "conv2d_bias_act": conv2d_bias_act,
    "conv2d_backward_input": conv2d_backward_input, "conv2d_backward_weight": conv2d_backward_weight,
    "max_pool2d": max_pool2d, "max_pool2d_backward": max_pool2d_backward,
    "avg_pool2d": avg_pool2d, "avg_pool2d_backward": avg_pool2d_backward,
}
