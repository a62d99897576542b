"""Module-level functions (``tilegrad.cat``, ``tilegrad.exp``, ...) over the Tensor methods."""
from . import dtypes
from .ops import shape as S
from .tensor import Tensor, where  # noqa: F401 - re-exported


def _tensors(tensors, name):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    if not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{name}: expected a sequence of Tensors")
    target = tensors[0].dtype
    for t in tensors[1:]:
        target = dtypes.promote(target, t.dtype)
    return [t.to(target) for t in tensors]


def cat(tensors, dim=0):
    """Join tensors along an existing dim."""
    tensors = _tensors(tensors, "cat")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    d = dim % ndim if -ndim <= dim < ndim else None
    if d is None:
        raise IndexError(f"cat: dim {dim} is out of range for tensors of {ndim} dims")
    for t in tensors[1:]:
        if t.ndim != ndim or t.shape[:d] + t.shape[d + 1:] != tensors[0].shape[:d] + tensors[0].shape[d + 1:]:
            raise ValueError(f"cat: sizes of tensors must match except in dim {dim}; "
                             f"got shapes {tensors[0].shape} and {t.shape}")
    return S.Cat.apply(d, *tensors)


def stack(tensors, dim=0):
    """Join tensors of equal shape along a new dim."""
    tensors = _tensors(tensors, "stack")
    shape = tensors[0].shape
    for t in tensors[1:]:
        if t.shape != shape:
            raise ValueError(f"stack expects each tensor to be equal size, but got {shape} and {t.shape}")
    return cat([t.unsqueeze(dim) for t in tensors], dim if dim >= 0 else dim + len(shape) + 1)


def split(tensor, split_size_or_sections, dim=0):
    return tensor.split(split_size_or_sections, dim)


def chunk(tensor, chunks, dim=0):
    return tensor.chunk(chunks, dim)


def _method(name):
    method = getattr(Tensor, name)

    def fn(input, *args, **kwargs):  # noqa: A002
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
        return method(input, *args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"``tilegrad.{name}(x, ...)`` is ``x.{name}(...)``."
    return fn


_FUNCTIONS = ("add sub mul div pow neg abs exp log log1p sqrt clamp clip maximum minimum relu sigmoid tanh softmax "
              "log_softmax sum mean var std logsumexp max min amax amin argmax argmin matmul reshape transpose "
              "permute unsqueeze squeeze flatten eq ne lt le gt ge clone "
              "topk sort argsort cumsum prod norm sign index_select unique gather scatter scatter_add tril triu "
              # elementwise math (tensor_math.py)
              "sin cos tan asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan arcsinh arccosh arctanh "
              "floor ceil trunc fix frac round rsqrt reciprocal erf erfc erfinv expm1 log2 log10 exp2 square atan2 "
              "arctan2 hypot fmod remainder lerp clamp_min clamp_max nan_to_num isnan isinf isfinite isposinf "
              "isneginf signbit isreal logical_not logical_and logical_or logical_xor bitwise_not bitwise_and "
              "bitwise_or bitwise_xor heaviside "
              # shape and index (tensor_layout.py)
              "flip fliplr flipud roll movedim moveaxis swapaxes swapdims t unflatten ravel tile select unbind narrow "
              "diagonal diag trace outer ger nonzero argwhere count_nonzero masked_select take "
              # reductions (tensor_reduce.py)
              "var_mean std_mean median nansum nanmean aminmax cummax cummin").split()
globals().update({name: _method(name) for name in _FUNCTIONS})

from .functional_math import addmm, allclose, baddbmm, bmm, einsum, isclose, multinomial  # noqa: E402
from .functional_layout import cartesian_prod, diff, eye, histc, meshgrid  # noqa: E402

__all__ = ["cat", "stack", "split", "chunk", "where", "addmm", "allclose", "baddbmm", "bmm", "einsum", "isclose",
           "multinomial", "cartesian_prod", "diff", "eye", "histc", "meshgrid"] + list(_FUNCTIONS)
