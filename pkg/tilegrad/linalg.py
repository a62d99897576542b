"""``tilegrad.linalg``: the part of ``torch.linalg`` implemented so far (vector norms)."""
from .tensor_api import vector_norm  # noqa: F401

__all__ = ["vector_norm"]
