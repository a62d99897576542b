"""The CUDA backend: arrays are CuPy arrays (its memory pool, its current stream).
``tilegrad._cuda`` kernels run where they exist and apply; elsewhere the reference kernels run
on CuPy. Kernels are launched on CuPy's current stream and never synchronise.
"""

from . import reference
from .native import F32, elementwise_covered, matmul_covered

try:
    from tilegrad import _cuda
except ImportError:  # built without a CUDA compiler: reference kernels on CuPy
    _cuda = None

KERNELS = dict(reference.KERNELS)


def _cupy():
    import cupy
    return cupy


def _stream():
    return _cupy().cuda.get_current_stream().ptr


def relu(x):
    if not elementwise_covered(x):
        return reference.relu(x)
    cp = _cupy()
    x = cp.ascontiguousarray(x)
    out = cp.empty_like(x)
    _cuda.relu(x, out, stream=_stream())
    return out


def relu_backward(x, gy):
    if not elementwise_covered(x, gy):
        return reference.relu_backward(x, gy)
    cp = _cupy()
    x, gy = cp.ascontiguousarray(x), cp.ascontiguousarray(gy)
    out = cp.empty_like(x)
    _cuda.relu_backward(x, gy, out, stream=_stream())
    return out


def matmul(a, b):
    if not matmul_covered(a, b):
        return reference.matmul(a, b)
    cp = _cupy()
    a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
    out = cp.empty(a.shape[:-1] + b.shape[-1:], dtype=F32)
    _cuda.matmul(a, b, out, stream=_stream())
    return out


if _cuda is not None:
    KERNELS.update(relu=relu, relu_backward=relu_backward, matmul=matmul)


def info():
    if _cuda is None:
        return {"built": False}
    return {"built": True, "archs": list(_cuda.compiled_archs()), "available": bool(_cuda.is_available())}
