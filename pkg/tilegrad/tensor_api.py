"""More of PyTorch's Tensor methods (a mixin of ``tilegrad.Tensor``): sort/topk, scans and
products, norms, index_select and scatter, repeat, unique, and the ``new_*`` factories.
Arguments are checked here, as PyTorch checks them, so a misuse names the method rather than
failing deep inside an array library."""
import math
import numbers
from collections import namedtuple

import numpy as np

from . import dtypes
from .autograd import TensorBase
from .backends.reference import xp_of
from .ops import linalg as LA, select as SE, sort as SO
from .tensor_shape import _norm_dim

SortResult = namedtuple("sort", ["values", "indices"])
TopKResult = namedtuple("topk", ["values", "indices"])


def _as_index(self, index, name):
    """The raw integer array of an index tensor on ``self``'s device."""
    if not isinstance(index, TensorBase) or index._data.dtype.kind not in "iu":
        raise TypeError(f"{name}(): index must be an integer Tensor")
    if index._device != self._device:
        raise RuntimeError(f"{name}(): index is on {index._device} but the tensor is on {self._device}")
    return index._data


def _check_range(index, size, dim, name, error=RuntimeError):
    if index.size and (int(index.min()) < 0 or int(index.max()) >= size):
        bad = int(index.min()) if int(index.min()) < 0 else int(index.max())
        raise error(f"{name}(): index {bad} is out of bounds for dimension {dim} with size {size}")


def _wide_int(t):
    """Integer and bool sums and products accumulate in int64, as in PyTorch."""
    return t.to(dtypes.int64) if t._data.dtype.kind in "biu" else t


class ApiMethods:
    """Mixin of Tensor: the methods below only check arguments and call ops."""

    __slots__ = ()

    # ---- sorting -------------------------------------------------------------------------
    def _as_1d_if_scalar(self, dim):
        """0-d tensors sort as one-element vectors along dim 0 or -1, as in PyTorch."""
        d = _norm_dim(dim, self.ndim)
        return (self.reshape(1), 0) if self.ndim == 0 else (self, d)

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) sorted along ``dim``. The sort is always stable, so ``stable``
        only documents intent: equal elements keep their order either way."""
        x, d = self._as_1d_if_scalar(dim)
        values, indices = SO.Sort.apply(x, d, bool(descending))
        if self.ndim == 0:
            values, indices = values.reshape(()), indices.reshape(())
        return SortResult(values, indices)

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable).indices

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's argument name
        """The k largest (or smallest) values along ``dim`` and their indices, largest first
        (smallest first when ``largest=False``); ``sorted=False`` returns them sorted too."""
        x, d = self._as_1d_if_scalar(dim)
        if not isinstance(k, numbers.Integral) or not 0 <= k <= x.shape[d]:
            raise RuntimeError(f"topk(): selected index k={k} out of range for dim {dim} of size {x.shape[d]}")
        values, indices = SO.TopK.apply(x, int(k), d, bool(largest))
        if self.ndim == 0:
            values, indices = values.reshape(()), indices.reshape(())
        return TopKResult(values, indices)

    # ---- scans, products, norms ------------------------------------------------------------
    def cumsum(self, dim, dtype=None):
        x = _wide_int(self if dtype is None else self.to(dtype))
        if x.ndim == 0:
            _norm_dim(dim, 0)
            return SO.Cumsum.apply(x.reshape(1), 0).reshape(())
        return SO.Cumsum.apply(x, _norm_dim(dim, x.ndim))

    def prod(self, dim=None, keepdim=False, dtype=None):
        """Product of all elements, or over one dim (``keepdim`` applies to that case)."""
        x = _wide_int(self if dtype is None else self.to(dtype))
        if dim is None:
            return SO.Prod.apply(x, None, False)
        if not isinstance(dim, numbers.Integral):
            raise TypeError(f"prod(): dim must be an int, got {type(dim).__name__}")
        if x.ndim == 0:
            _norm_dim(dim, 0)
            return SO.Prod.apply(x, None, False)
        return SO.Prod.apply(x, _norm_dim(dim, x.ndim), bool(keepdim))

    def sign(self):
        if self._data.dtype == np.bool_:
            return self.clone()
        return LA.Sign.apply(self)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """``torch.norm``: a vector p-norm over ``dim`` (all dims when None); 'fro' is the
        2-norm over the dims given. The nuclear norm is not supported."""
        if p == "nuc":
            raise NotImplementedError("norm(p='nuc') (the nuclear norm) is not supported")
        if isinstance(p, str) and p != "fro":
            raise ValueError(f"norm(): p must be a number, 'fro' or 'nuc', got {p!r}")
        return vector_norm(self, 2 if p == "fro" else p, dim, keepdim, dtype, name="norm")

    # ---- indexing ----------------------------------------------------------------------
    def index_select(self, dim, index):
        """The entries at ``index`` (a 1-d integer tensor, repeats allowed) along ``dim``."""
        idx = _as_index(self, index, "index_select")
        if idx.ndim > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        x, d = self._as_1d_if_scalar(dim)
        _check_range(idx, x.shape[d], dim, "index_select", IndexError)
        out = SE.IndexSelect.apply(x, d, idx.reshape(-1).astype(np.int64, copy=False))
        return out.reshape(()) if self.ndim == 0 and idx.ndim == 0 else out

    def _scatter_args(self, dim, index, src, name):
        idx = _as_index(self, index, name)
        if idx.ndim != self.ndim:
            raise RuntimeError(f"{name}(): index tensor must have the same number of dimensions as self "
                               f"({idx.ndim} vs {self.ndim})")
        d = _norm_dim(dim, self.ndim)
        for i, n in enumerate(idx.shape):
            if i != d and n > self.shape[i]:
                raise RuntimeError(f"{name}(): index {idx.shape} is larger than self {self.shape} in dim {i}")
        if isinstance(src, TensorBase):
            if src._data.dtype != self._data.dtype:
                raise RuntimeError(f"{name}(): expected self.dtype to be equal to src.dtype ({self.dtype} vs {src.dtype})")
            if src.ndim != self.ndim or any(n > m for n, m in zip(idx.shape, src.shape)):
                raise RuntimeError(f"{name}(): index {idx.shape} is larger than src {src.shape}")
        _check_range(idx, self.shape[d] if self.ndim else 1, dim, name)
        return d, idx

    def scatter_add(self, dim, index, src):
        """A copy with src added at ``index`` along ``dim`` (repeated targets add up)."""
        if not isinstance(src, TensorBase):
            raise TypeError("scatter_add(): src must be a Tensor")
        d, idx = self._scatter_args(dim, index, src, "scatter_add")
        return SE.ScatterAdd.apply(self, d, idx, src)

    def scatter(self, dim, index, src=None, value=None, reduce=None):  # noqa: A002
        """A copy with src (a tensor, or a scalar ``value``) written at ``index`` along dim."""
        if reduce is not None:
            raise NotImplementedError("scatter(reduce=...) is not supported; use scatter_add")
        src = value if src is None else src
        if src is None:
            raise TypeError("scatter(): expected a src tensor or a value")
        d, idx = self._scatter_args(dim, index, src, "scatter")
        if not isinstance(src, TensorBase):
            src = np.asarray(src, dtype=self._data.dtype)
        return SE.Scatter.apply(self, d, idx, src)

    def scatter_add_(self, dim, index, src):
        return self._inplace(type(self).scatter_add, dim, index, src)

    def scatter_(self, dim, index, src=None, value=None, reduce=None):  # noqa: A002
        return self._inplace(type(self).scatter, dim, index, src, value, reduce)

    def repeat(self, *sizes):
        """Tile the tensor ``sizes[i]`` times along each dim (extra sizes add leading dims)."""
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        if len(sizes) < self.ndim:
            raise RuntimeError(f"repeat(): the number of repeat dims ({len(sizes)}) can not be smaller than "
                               f"the number of dims of the tensor ({self.ndim})")
        if any(not isinstance(n, numbers.Integral) or n < 0 for n in sizes):
            raise RuntimeError(f"repeat(): repeats must be non-negative integers, got {sizes}")
        return SE.Repeat.apply(self, tuple(int(n) for n in sizes))

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
        """The distinct values, sorted (always: ``sorted=False`` is allowed to sort too), with the
        inverse indices (shaped like the input) and the counts on request. No gradient."""
        from .tensor import Tensor
        data = self._data
        xp = xp_of(data)
        if dim is not None:
            d = _norm_dim(dim, self.ndim)
            values, inverse, counts = xp.unique(data, return_inverse=True, return_counts=True, axis=d)
            inverse = inverse.reshape(-1)
        else:
            values, inverse, counts = xp.unique(data, return_inverse=True, return_counts=True)
            inverse = inverse.reshape(data.shape)
        out = [Tensor(values, self._device)]
        if return_inverse:
            out.append(Tensor(inverse.astype(np.int64, copy=False), self._device))
        if return_counts:
            out.append(Tensor(counts.astype(np.int64, copy=False), self._device))
        return out[0] if len(out) == 1 else tuple(out)

    # ---- logical reductions (no gradient) --------------------------------------------------
    def _logical(self, fn, dim, keepdim):
        from .tensor import Tensor
        axis = None if dim is None else _norm_dim(dim, self.ndim)
        if self.ndim == 0:
            axis = None
        out = getattr(xp_of(self._data), fn)(self._data, axis=axis, keepdims=bool(keepdim))
        return Tensor(xp_of(self._data).asarray(out), self._device)

    def all(self, dim=None, keepdim=False):  # noqa: A003 - PyTorch's name
        return self._logical("all", dim, keepdim)

    def any(self, dim=None, keepdim=False):  # noqa: A003
        return self._logical("any", dim, keepdim)

    # ---- factories -----------------------------------------------------------------------
    def _new(self, factory, size, dtype, device, requires_grad, *extra):
        from . import creation
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        return getattr(creation, factory)(shape, *extra, dtype=dtype or self.dtype, device=device or self.device,
                                          requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("zeros", size, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("ones", size, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("empty", size, dtype, device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return self._new("full", (size,), dtype, device, requires_grad, fill_value)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from . import creation
        return creation.tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def vector_norm(x, ord=2, dim=None, keepdim=False, dtype=None, name="linalg.vector_norm"):  # noqa: A002
    """(sum |x|^ord)^(1/ord) over ``dim`` (an int, a tuple, or None for all dims)."""
    if not isinstance(x, TensorBase):
        raise TypeError(f"{name}(): expected a Tensor, got {type(x).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"{name}(): expected a floating point tensor as input, got {x.dtype}")
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real):
        raise ValueError(f"{name}(): ord must be a number, got {ord!r}")
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        dims = None
    else:
        dims = tuple(sorted({_norm_dim(d, x.ndim) for d in ((dim,) if isinstance(dim, numbers.Integral) else dim)}))
    reduced = range(x.ndim) if dims is None else dims
    if (ord < 0 or math.isinf(ord)) and any(x.shape[d] == 0 for d in reduced):
        raise RuntimeError(f"{name}(): ord={ord} over an empty dim is not defined (no identity element)")
    if x.ndim == 0:
        dims = None
    return LA.VectorNorm.apply(x, float(ord) if math.isinf(ord) else ord, dims, bool(keepdim))
