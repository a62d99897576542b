"""``nn.Parameter``: a tensor that a ``Module`` registers as one of its parameters."""
from ..autograd import TensorBase
from ..tensor import Tensor


class Parameter(Tensor):
    """``Parameter(data=None, requires_grad=True)``: a leaf sharing ``data``'s storage that
    requires grad by default. Assigning one to a Module attribute registers it. Ops on a
    Parameter give plain Tensors (the engine builds results as ``Tensor``), as in PyTorch."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        if not isinstance(data, TensorBase):
            raise TypeError(f"Parameter expects a Tensor, got {type(data).__name__}")
        TensorBase.__init__(self, data._data, data._device)  # a leaf, whatever data's history
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __reduce_ex__(self, protocol):
        # Pickle as (data, requires_grad): a loaded Parameter is a fresh leaf like the saved one.
        return (Parameter, (Tensor(self._data, self._device), self.requires_grad))
