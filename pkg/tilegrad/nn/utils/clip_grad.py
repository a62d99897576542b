"""Gradient clipping with PyTorch's semantics (torch.nn.utils.clip_grad_norm_ / clip_grad_value_).

The norms stay on the gradients' device as 0-d arrays, so clipping on a GPU does not wait for the
device unless ``error_if_nonfinite`` asks for the value.
"""
import math

from ...autograd import no_grad
from ...backends.reference import xp_of
from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _norm(xp, a, norm_type):
    """The ``norm_type``-norm of all elements of ``a`` as a 0-d array (half precision upcast so
    that the sum of squares does not overflow)."""
    if a.dtype.itemsize < 4:
        a = a.astype("float32")
    if a.size == 0:
        return xp.zeros((), dtype=a.dtype)
    if norm_type == math.inf:
        return xp.abs(a).max()
    if norm_type == -math.inf:
        return xp.abs(a).min()
    if norm_type == 0:
        return (a != 0).sum().astype(a.dtype)
    if norm_type == 1:
        return xp.abs(a).sum()
    if norm_type == 2:
        return xp.sqrt((a * a).sum())
    return (xp.abs(a) ** norm_type).sum() ** (1.0 / norm_type)


def _total_norm(grads, norm_type, error_if_nonfinite):
    """(array module, 0-d total norm on the first tensor's device) of ``grads`` as one vector."""
    first = grads[0]
    xp = xp_of(first._data)
    norms = []
    for g in grads:
        n = _norm(xp_of(g._data), g._data, norm_type)
        if g.device != first.device:  # gather the per-tensor norms on the first tensor's device
            n = xp.asarray(n.get() if hasattr(n, "get") else n)
        norms.append(n)
    dtype = first._data.dtype if first._data.dtype.itemsize >= 4 else "float32"
    stacked = xp.stack([n.astype(dtype) for n in norms])
    # The 0-"norm" (count of nonzeros) of the whole vector is the sum of the counts; PyTorch takes
    # the 0-norm of the per-tensor counts instead (the number of nonzero gradients), a quirk not kept.
    total = stacked.sum() if norm_type == 0 else _norm(xp, stacked, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    return xp, total


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients of ``parameters`` together so that their total ``norm_type``-norm
    (the norm of all gradients as one vector) is at most ``max_norm``, in place. Returns the total
    norm before clipping, as a 0-d tensor on the first gradient's device."""
    grads = _grads(parameters)
    if not grads:
        from ...creation import tensor
        return tensor(0.0)
    with no_grad():
        xp, total = _total_norm(grads, float(norm_type), error_if_nonfinite)
        # PyTorch's rule: scale by max_norm / (total + 1e-6), never by more than 1 (a non-finite
        # total makes the gradients non-finite, as there; error_if_nonfinite catches it).
        coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)
        for g in grads:
            gx = xp_of(g._data)
            c = coef if g.device == grads[0].device else gx.asarray(float(coef))
            g._data *= c.astype(g._data.dtype)
    return Tensor(total.astype(grads[0]._data.dtype), grads[0].device)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of ``parameters`` into ``[-clip_value, clip_value]``, in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp_of(g._data).clip(g._data, -clip_value, clip_value, out=g._data)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of ``tensors`` taken together as one vector (a 0-d tensor)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if not tensors:
        from ...creation import tensor
        return tensor(0.0)
    _, total = _total_norm(tensors, float(norm_type), error_if_nonfinite)
    return Tensor(total.astype(tensors[0]._data.dtype), tensors[0].device)
