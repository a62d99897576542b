"""Module-level shape functions with PyTorch's names that are not Tensor methods: eye,
meshgrid, cartesian_prod, diff and histc."""
import numbers

import numpy as np

from .autograd import TensorBase
from .backends.reference import xp_of
from .tensor import Tensor
from .tensor_shape import _norm_dim


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """An n x m matrix with ones on the diagonal."""
    from .creation import _make
    m = n if m is None else m
    for v in (n, m):
        if not isinstance(v, numbers.Integral) or v < 0:
            raise RuntimeError(f"eye(): n and m must be non-negative integers, got {n} and {m}")
    return _make(lambda xp, s, d: xp.eye(s[0], s[1], dtype=d), (int(n), int(m)), dtype, device, requires_grad)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids of 1-d (or 0-d) tensors: 'ij' gives shape (len(a), len(b), ...), 'xy'
    swaps the first two (matrix vs Cartesian indexing). The grids are broadcast views."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid(): indexing must be 'ij' or 'xy', got {indexing!r}")
    if not tensors or not all(isinstance(t, Tensor) and t.ndim <= 1 for t in tensors):
        raise RuntimeError("meshgrid(): expects one or more 0-d or 1-d Tensors")
    if len({t.dtype for t in tensors}) > 1:
        raise RuntimeError("meshgrid(): expects all tensors to have the same dtype")
    vectors = [t.reshape(-1) for t in tensors]
    shape = tuple(v.shape[0] for v in vectors)
    grids = []
    for i, v in enumerate(vectors):
        view = (1,) * i + (shape[i],) + (1,) * (len(shape) - i - 1)
        grids.append(v.reshape(view).expand(shape))
    if indexing == "xy" and len(grids) >= 2:  # Cartesian indexing: the first two dims swap
        grids = [g.transpose(0, 1) for g in grids]
    return tuple(grids)


def cartesian_prod(*tensors):
    """Every combination of the elements of 1-d tensors, one per row (a 1-d input is returned)."""
    from .functional import stack
    if len(tensors) == 1:
        return tensors[0]
    return stack([g.reshape(-1) for g in meshgrid(*tensors, indexing="ij")], dim=1)


def diff(input, n=1, dim=-1, prepend=None, append=None):  # noqa: A002 - PyTorch's argument names
    """The n-th forward difference along ``dim``, after joining prepend/append to the input."""
    from .functional import cat
    if not isinstance(input, Tensor) or input.ndim == 0:
        raise RuntimeError("diff(): expected a Tensor with at least one dimension")
    if not isinstance(n, numbers.Integral) or n < 0:
        raise RuntimeError(f"diff(): order must be non-negative, got {n}")
    d = _norm_dim(dim, input.ndim)
    x = input
    if prepend is not None or append is not None:
        parts = [p if isinstance(p, TensorBase) else x.new_full(x.shape[:d] + (1,) + x.shape[d + 1:], p)
                 for p in (prepend, append) if p is not None]
        x = cat(([parts[0]] if prepend is not None else []) + [x] + ([parts[-1]] if append is not None else []), d)
    head = (slice(None),) * d
    for _ in range(n):
        if x.shape[d] == 0:
            break
        if x._data.dtype == np.bool_:
            x = x[head + (slice(1, None),)].logical_xor(x[head + (slice(None, -1),)])
        else:
            x = x[head + (slice(1, None),)] - x[head + (slice(None, -1),)]
    return x


def histc(input, bins=100, min=0, max=0):  # noqa: A002
    """Counts of the elements in ``bins`` equal-width bins over [min, max] (the data's range
    when both are 0); elements outside are ignored. No gradient, as in PyTorch."""
    if not isinstance(input, Tensor) or input._data.dtype.kind != "f":
        raise RuntimeError("histc(): expected a floating point Tensor")
    if not isinstance(bins, numbers.Integral) or bins <= 0:
        raise RuntimeError(f"histc(): bins must be > 0, got {bins}")
    data = input.detach()._data.reshape(-1)
    xp = xp_of(data)
    lo, hi = float(min), float(max)
    if lo == hi and data.size:
        lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise RuntimeError(f"histc(): max must be larger than min, got min={min} max={max}")
    counts, _ = xp.histogram(data, bins=int(bins), range=(lo, hi))
    return Tensor(counts.astype(input._data.dtype), input.device)


__all__ = ["eye", "meshgrid", "cartesian_prod", "diff", "histc"]
