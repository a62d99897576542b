"""What ``Module`` needs besides itself: turning state-dict values and ``to()`` arguments into
tilegrad objects, and the result of ``load_state_dict``."""
from collections import namedtuple

import numpy as np

from ... import dtypes
from ...device import as_device
from ...tensor import Tensor


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: keys the module wanted but did not get, and the reverse."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def as_tensor(value, key):
    """A state-dict value as a tilegrad Tensor: tilegrad tensors as they are; PyTorch tensors,
    CuPy and NumPy arrays through DLPack or NumPy, so foreign checkpoints load."""
    if isinstance(value, Tensor):
        return value
    if hasattr(value, "detach"):  # a PyTorch tensor: leave its autograd behind
        value = value.detach().cpu()
    if hasattr(value, "__dlpack__"):
        from ...creation import from_dlpack
        try:
            return from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            pass
    try:
        return Tensor(np.asarray(value))
    except Exception:  # noqa: BLE001 - reported with the key below
        raise TypeError(f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor") from None


def parse_to(args, kwargs):
    """(device, dtype) from ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(tensor)``."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, (dtypes.DType, np.dtype)) or a in (float, int, bool):
            dtype = a
        else:
            device = a
    if dtype is not None:
        dtype = dtypes.to_dtype(dtype)
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
    return (as_device(device) if device is not None else None), dtype
