"""What the native kernels (tilegrad._cpu and tilegrad._cuda) cover, shared by both backends:
anything else goes to the reference kernels."""
import numpy as np

F32 = np.dtype(np.float32)


def elementwise_covered(*arrays):
    """float32 arrays of one shape."""
    shape = arrays[0].shape
    for a in arrays:
        if a.dtype != F32 or a.shape != shape:
            return False
    return True


def matmul_covered(a, b):
    """float32 2-D products and 3-D products with equal batches (no broadcasting, no vectors)."""
    return a.dtype == F32 and b.dtype == F32 and a.ndim == b.ndim and a.ndim in (2, 3) \
        and (a.ndim == 2 or a.shape[0] == b.shape[0])


def softmax_covered(x, dim):
    """float32 arrays of at least one dim, reduced along one int dim in range."""
    return x.dtype == F32 and x.ndim >= 1 and isinstance(dim, (int, np.integer)) and -x.ndim <= dim < x.ndim


def layer_norm_covered(x, n_dims, weight=None, bias=None, gy=None):
    """float32 x normalised over its last 1..ndim dims; weight and bias None or float32 of the
    normalised shape, gy None or float32 of x's shape (no broadcasting)."""
    if x.dtype != F32 or not isinstance(n_dims, (int, np.integer)) or not 1 <= n_dims <= x.ndim:
        return False
    norm_shape = x.shape[x.ndim - n_dims:]
    for p, shape in ((weight, norm_shape), (bias, norm_shape), (gy, x.shape)):
        if p is not None and (p.dtype != F32 or p.shape != shape):
            return False
    return True


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
