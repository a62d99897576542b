"""What the native kernels (tilegrad._cpu and tilegrad._cuda) cover, shared by both backends:
anything else goes to the reference kernels."""
import numpy as np

from .reference_nn import conv_out_size

F32 = np.dtype(np.float32)
I64 = np.dtype(np.int64)


def elementwise_covered(*arrays, dtypes=(F32,)):
    """Arrays of one shape and one dtype, one of ``dtypes`` (float32 unless given)."""
    first = arrays[0]
    return first.dtype in dtypes and all(a.dtype == first.dtype and a.shape == first.shape for a in arrays)


def matmul_covered(a, b):
    """float32 2-D products and 3-D products with equal batches (no broadcasting, no vectors)."""
    return a.dtype == F32 and b.dtype == F32 and a.ndim == b.ndim and a.ndim in (2, 3) \
        and (a.ndim == 2 or a.shape[0] == b.shape[0])


def softmax_covered(x, dim, dtypes=(F32,)):
    """Arrays of one of ``dtypes`` (float32 unless given) and at least one dim, reduced along one
    int dim in range."""
    return x.dtype in dtypes and x.ndim >= 1 and isinstance(dim, (int, np.integer)) and -x.ndim <= dim < x.ndim


def layer_norm_covered(x, n_dims, weight=None, bias=None, gy=None, dtypes=(F32,)):
    """x of one of ``dtypes`` (float32 unless given) normalised over its last 1..ndim dims;
    weight and bias None or of x's dtype and the normalised shape, gy None or of x's dtype and
    shape (no broadcasting)."""
    if x.dtype not in dtypes or not isinstance(n_dims, (int, np.integer)) or not 1 <= n_dims <= x.ndim:
        return False
    norm_shape = x.shape[x.ndim - n_dims:]
    for p, shape in ((weight, norm_shape), (bias, norm_shape), (gy, x.shape)):
        if p is not None and (p.dtype != x.dtype or p.shape != shape):
            return False
    return True


def pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """(stride, padding, dilation, output shape) when the native kernels cover this convolution
    (4-D shapes, a valid grouping, a kernel that fits the padded input), else None."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        return None
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    n, c, h, wd = x_shape
    o, cg, kh, kw = w_shape
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if groups < 1 or cg * groups != c or o % groups or oh < 1 or ow < 1:
        return None
    return stride, padding, dilation, (n, o, oh, ow)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode):
    """(kernel, stride, padding, dilation, output shape) when the native pooling kernels cover
    this window (4-D input, pairs of ints with kernel, stride, dilation >= 1 and padding >= 0, at
    least one output per dim), else None."""
    if len(x_shape) != 4:
        return None
    kernel, stride, padding, dilation = pair(kernel), pair(stride), pair(padding), pair(dilation)
    pairs = (kernel, stride, padding, dilation)
    if any(len(p) != 2 or not all(_is_int(v) for v in p) for p in pairs):
        return None
    if min(kernel + stride + dilation) < 1 or min(padding) < 0:
        return None
    n, c, h, w = x_shape
    oh = conv_out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = conv_out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if oh < 1 or ow < 1:
        return None
    return kernel, stride, padding, dilation, (n, c, oh, ow)


def divisor_override_covered(divisor_override):
    """The native pooling kernels take divisor_override as None (the window's own count) or an
    int >= 1; a negative one (PyTorch allows it) runs on the reference. The functional API has
    already refused 0 and non-integers."""
    d = divisor_override
    return d is None or (_is_int(d) and d >= 1)


def attention_covered(q, k, v, mask, *more):
    """float32 3-D q (B, L, E), k (B, S, E), v (B, S, Ev); mask None, or bool / float32 of shape
    (Bm, Lm, S) with Bm in {1, B} and Lm in {1, L}; ``more`` (the backward's out, lse, gout)
    float32 of the shapes the forward gives."""
    if any(a.dtype != F32 or a.ndim != 3 for a in (q, k, v)):
        return False
    (b, length, e), (bk, source, ek), (bv, sv, _) = q.shape, k.shape, v.shape
    if bk != b or bv != b or ek != e or sv != source:
        return False
    if mask is not None:
        if mask.dtype not in (F32, np.dtype(bool)) or mask.ndim != 3 or mask.shape[2] != source \
                or mask.shape[0] not in (1, b) or mask.shape[1] not in (1, length):
            return False
    if more:
        out, lse, gout = more
        shapes = ((out, q.shape[:2] + v.shape[2:]), (lse, q.shape[:2]), (gout, q.shape[:2] + v.shape[2:]))
        if any(a.dtype != F32 or a.shape != shape for a, shape in shapes):
            return False
    return True
