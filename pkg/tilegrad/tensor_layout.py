"""More shape and index methods of ``tilegrad.Tensor`` (a mixin): flip/roll, unbind, select and
narrow, diagonals, nonzero and masked_select, take, tile, movedim, unflatten. All are
compositions of the indexing, reshape, permute and cat ops, so their gradients are exact."""
import math
import numbers

import numpy as np

from .autograd import TensorBase
from .backends.reference import xp_of
from .tensor_shape import _dims, _norm_dim


def _dim_list(dims, ndim, name):
    dims = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
    out = [_norm_dim(d, ndim) for d in dims]
    if len(set(out)) != len(out):
        raise RuntimeError(f"{name}(): dims {dims} contain a repeated dim")
    return out


class LayoutMethods:
    """Mixin of Tensor."""

    __slots__ = ()

    # ---- reordering ----------------------------------------------------------------------
    def flip(self, *dims):
        """A copy with the order of elements reversed along ``dims``."""
        dims = _dim_list(_dims(dims), self.ndim, "flip")
        if self.ndim == 0 or not dims:
            return self.clone()
        out = self[tuple(slice(None, None, -1) if i in dims else slice(None) for i in range(self.ndim))]
        return out.contiguous()

    def fliplr(self):
        if self.ndim < 2:
            raise RuntimeError(f"fliplr(): input must be >= 2-d, got shape {self.shape}")
        return self.flip(1)

    def flipud(self):
        if self.ndim < 1:
            raise RuntimeError("flipud(): input must be >= 1-d")
        return self.flip(0)

    def roll(self, shifts, dims=None):
        """Shift elements cyclically by ``shifts`` along ``dims`` (the flattened tensor when None)."""
        if dims is None:
            if not isinstance(shifts, numbers.Integral):
                if len(shifts) != 1:
                    raise RuntimeError("roll(): without dims, shifts must be a single number")
                shifts = shifts[0]
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts)
        dims = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
        if len(shifts) != len(dims):
            raise RuntimeError(f"roll(): shifts and dims must align, got {len(shifts)} shifts and {len(dims)} dims")
        from .functional import cat
        out = self
        for shift, dim in zip(shifts, dims):
            d = _norm_dim(dim, self.ndim)
            n = self.shape[d]
            s = shift % n if n else 0
            if s:
                head = (slice(None),) * d
                out = cat([out[head + (slice(n - s, None),)], out[head + (slice(0, n - s),)]], d)
        return out if out is not self else self.clone()

    def movedim(self, source, destination):
        src = _dim_list(source, self.ndim, "movedim")
        dst = _dim_list(destination, self.ndim, "movedim")
        if len(src) != len(dst):
            raise RuntimeError(f"movedim(): source and destination must have the same number of dims, "
                               f"got {len(src)} and {len(dst)}")
        order = [None] * self.ndim
        for s, d in zip(src, dst):
            order[d] = s
        rest = iter(i for i in range(self.ndim) if i not in src)
        return self.permute(*[next(rest) if o is None else o for o in order])

    moveaxis = movedim

    def swapaxes(self, axis0, axis1):
        return self.transpose(axis0, axis1)

    swapdims = swapaxes

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.transpose(0, 1) if self.ndim == 2 else self

    def unflatten(self, dim, sizes):
        d = _norm_dim(dim, self.ndim)
        sizes = tuple(sizes)
        if sizes.count(-1) > 1:
            raise RuntimeError("unflatten(): only one dimension can be inferred")
        known = math.prod(n for n in sizes if n != -1)
        n = self.shape[d]
        if -1 in sizes:
            if known == 0 or n % known:
                raise RuntimeError(f"unflatten(): sizes {sizes} don't multiply up to the size of dim {dim} ({n})")
            sizes = tuple(n // known if s == -1 else s for s in sizes)
        elif known != n:
            raise RuntimeError(f"unflatten(): sizes {sizes} don't multiply up to the size of dim {dim} ({n})")
        return self.reshape(self.shape[:d] + sizes + self.shape[d + 1:])

    def ravel(self):
        return self.reshape(-1)

    def tile(self, *dims):
        """``repeat`` with ``dims`` padded by leading 1s when shorter than the tensor's dims."""
        dims = _dims(dims)
        return self.repeat(*((1,) * (self.ndim - len(dims)) + tuple(dims)))

    # ---- picking parts -------------------------------------------------------------------
    def select(self, dim, index):
        d = _norm_dim(dim, self.ndim)
        n = self.shape[d]
        if not -n <= index < n:
            raise IndexError(f"select(): index {index} out of range for tensor of size {self.shape} at dimension {dim}")
        return self[(slice(None),) * d + (index,)]

    def unbind(self, dim=0):
        d = _norm_dim(dim, self.ndim)
        return tuple(self.select(d, i) for i in range(self.shape[d]))

    def narrow(self, dim, start, length):
        d = _norm_dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(start, TensorBase):
            start = int(start.item())
        if not -n <= start <= n:
            raise IndexError(f"narrow(): start ({start}) is out of range for dimension {dim} of size {n}")
        start = start + n if start < 0 else start
        if length < 0 or start + length > n:
            raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size ({n})")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def diagonal(self, offset=0, dim1=0, dim2=1):
        """The diagonal of the (dim1, dim2) planes as the last dim (``offset`` > 0: above)."""
        if self.ndim < 2:
            raise RuntimeError(f"diagonal(): expected a tensor with at least 2 dims, got shape {self.shape}")
        d1, d2 = _norm_dim(dim1, self.ndim), _norm_dim(dim2, self.ndim)
        if d1 == d2:
            raise RuntimeError(f"diagonal(): dim1 and dim2 cannot be the same dimension ({dim1})")
        rest = [i for i in range(self.ndim) if i not in (d1, d2)]
        x = self.permute(*rest, d1, d2)
        rows, cols = x.shape[-2:]
        first_row, first_col = max(-offset, 0), max(offset, 0)
        length = max(min(rows - first_row, cols - first_col), 0)
        r = np.arange(length) + first_row
        return x[(Ellipsis, r, r - first_row + first_col)]

    def diag(self, diagonal=0):
        """1-d: a square matrix with the vector on the ``diagonal``; 2-d: that diagonal."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise RuntimeError(f"diag(): expected a 1-d or 2-d tensor, got shape {self.shape}")
        n = self.shape[0] + abs(diagonal)
        out = self.new_zeros(n, n)
        r = np.arange(self.shape[0])
        out[(r + max(-diagonal, 0), r + max(diagonal, 0))] = self
        return out

    def trace(self):
        if self.ndim != 2:
            raise RuntimeError(f"trace(): expected a matrix, got shape {self.shape}")
        return self.diagonal().sum()

    def outer(self, vec2):
        if not isinstance(vec2, TensorBase) or self.ndim != 1 or vec2.ndim != 1:
            raise RuntimeError("outer(): expected two 1-d tensors")
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    ger = outer

    def nonzero(self, *, as_tuple=False):
        """Indices of the non-zero elements: an (n, ndim) int64 tensor, or one 1-d tensor per dim."""
        xp = xp_of(self._data)
        found = xp.nonzero(self._data.reshape(1) if self.ndim == 0 else self._data)
        found = [i.astype(np.int64, copy=False) for i in found]
        if as_tuple:
            return tuple(type(self)(i, self._device) for i in found)
        return type(self)(xp.stack(found, axis=1) if self.ndim else xp.zeros((len(found[0]), 0), np.int64),
                          self._device)

    def argwhere(self):
        return self.nonzero()

    def count_nonzero(self, dim=None):
        axis = None if dim is None else tuple(_dim_list(dim, self.ndim, "count_nonzero"))
        xp = xp_of(self._data)
        return type(self)(xp.asarray(xp.count_nonzero(self._data, axis=axis)).astype(np.int64), self._device)

    def masked_select(self, mask):
        """The elements where ``mask`` (broadcast with self) is True, as a 1-d tensor."""
        if not isinstance(mask, TensorBase) or mask._data.dtype != np.bool_:
            raise RuntimeError("masked_select(): expected a bool Tensor as mask")
        shape = np.broadcast_shapes(self.shape, mask.shape)
        x = self.expand(shape) if self.shape != shape else self
        m = mask.expand(shape) if mask.shape != shape else mask
        return x[m]

    def take(self, index):
        """The elements at ``index`` in the flattened tensor (negative indices count from the end)."""
        if not isinstance(index, TensorBase) or index._data.dtype.kind not in "iu":
            raise RuntimeError("take(): index must be an integer Tensor")
        n = self.numel()
        if index.numel() and (int(index._data.min()) < -n or int(index._data.max()) >= n):
            raise IndexError(f"take(): index out of range for a tensor of {n} elements")
        return self.reshape(-1)[index]
