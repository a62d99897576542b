"""``normalize`` and ``cosine_similarity``: compositions of the vector-norm op, so autograd
derives their backward."""
from ..tensor import Tensor
from ..tensor_api import vector_norm


def normalize(input, p=2.0, dim=1, eps=1e-12):  # noqa: A002 - PyTorch's argument names
    """``input / max(||input||_p over dim, eps)``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"normalize(): input must be a Tensor, not {type(input).__name__}")
    denom = vector_norm(input, p, dim, keepdim=True, name="normalize").clamp(min=eps)
    return input / denom


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) over ``dim``, broadcasting x1 and x2.
    As in PyTorch, each vector is divided by its own clamped norm first (no overflow of the
    product), and the clamp does not stop the gradient of the norm."""
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise TypeError("cosine_similarity(): expected two Tensors")
    a, b = x1._operands(x2, "cosine_similarity")
    shape = _broadcast(a.shape, b.shape)
    a, b = a.expand(shape), b.expand(shape)

    def unit(v):
        norm = vector_norm(v, 2, dim, keepdim=True, name="cosine_similarity")
        return v / (norm + (norm.clamp(min=eps) - norm).detach())
    return (unit(a) * unit(b)).sum(dim)


def _broadcast(s1, s2):
    import numpy as np
    try:
        return np.broadcast_shapes(s1, s2)
    except ValueError:
        raise RuntimeError(f"cosine_similarity(): shapes {s1} and {s2} do not broadcast") from None
