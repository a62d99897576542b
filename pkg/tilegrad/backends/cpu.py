"""The CPU backend: ``tilegrad._cpu`` kernels (C++, OpenMP, SIMD) where they exist and apply,
the reference kernels otherwise.

The native kernels take float32 C-contiguous arrays and a preallocated output; these wrappers
route everything else (other dtypes, shapes the kernel does not cover) to the reference.
"""
import numpy as np

from . import reference
from .native import F32, elementwise_covered, matmul_covered

try:
    from tilegrad import _cpu
except ImportError:  # no compiler at install time: everything runs on the reference kernels
    _cpu = None

KERNELS = dict(reference.KERNELS)


# Below this many elements the native call's fixed cost (argument checks, GIL release) exceeds
# the work, and NumPy's own loop is faster: measured crossover of relu on the AVX2 machine.
SMALL = 4096


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


def matmul(a, b):
    """2-D and equal-batch 3-D float32 products run natively; broadcasting batches, vectors and
    other dtypes use the reference."""
    if not matmul_covered(a, b):
        return reference.matmul(a, b)
    a, b = _f32c(a), _f32c(b)
    out = np.empty(a.shape[:-1] + b.shape[-1:], dtype=F32)
    _cpu.matmul(a, b, out)
    return out


if _cpu is not None:
    KERNELS.update(relu=relu, relu_backward=relu_backward, matmul=matmul)


def info():
    """What the native CPU module is and which instruction set it chose at run time."""
    if _cpu is None:
        return {"built": False}
    return {"built": True, "isa": _cpu.isa(), "threads": _cpu.num_threads()}
