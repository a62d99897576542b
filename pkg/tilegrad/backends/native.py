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
