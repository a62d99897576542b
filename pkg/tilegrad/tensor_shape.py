"""Shape, view and indexing methods of ``tilegrad.Tensor`` (a mixin, kept apart so each file
stays readable). Views share storage with their base, as in PyTorch."""
import math

import numpy as np

from . import dtypes
from .autograd import TensorBase, is_grad_enabled
from .ops import gather as G, shape as S, elementwise as E


def _dims(args):
    """Sizes given as ``f(2, 3)`` or ``f((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _norm_dim(d, ndim, name="dim"):
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"{name} {d} is out of range for a tensor of {ndim} dims")
    return d % n


class ShapeMethods:
    """reshape/view/permute/expand/split/indexing for Tensor."""

    __slots__ = ()

    # ---- shape ---------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _dims(shape)
        return self if shape == self.shape else S.Reshape.apply(self, shape)

    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (dtypes.DType, np.dtype)):
            raise NotImplementedError("view(dtype) is not supported")
        return S.View.apply(self, _dims(shape))

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def permute(self, *dims):
        dims = tuple(_norm_dim(d, self.ndim) for d in _dims(dims))
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims of shape {self.shape}")
        return S.Permute.apply(self, dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        d0, d1 = _norm_dim(dim0, self.ndim), _norm_dim(dim1, self.ndim)
        if self.ndim < 2:
            return self
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return S.Permute.apply(self, tuple(dims))

    @property
    def T(self):  # noqa: N802
        return S.Permute.apply(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self):  # noqa: N802
        return self.transpose(-2, -1)

    def unsqueeze(self, dim):
        d = _norm_dim(dim, self.ndim + 1)
        return S.Reshape.apply(self, self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dims = {_norm_dim(d, self.ndim) for d in ((dim,) if isinstance(dim, int) else dim)}
            shape = tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1))
        return self if shape == self.shape else S.Reshape.apply(self, shape)

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _norm_dim(start_dim, self.ndim), _norm_dim(end_dim, self.ndim)
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def expand(self, *sizes):
        sizes = _dims(sizes)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: the number of sizes ({len(sizes)}) must be at least the number of dims ({self.ndim})")
        shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
        for i, n in enumerate(self.shape):
            if n != 1 and shape[i + lead] != n:
                raise ValueError(f"expand: the size {n} of dim {i} of shape {self.shape} cannot expand to {shape}")
        return S.Expand.apply(self, shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def contiguous(self):
        return self if self._data.flags.c_contiguous else E.Copy.apply(self)

    def split(self, split_size_or_sections, dim=0):
        d = _norm_dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            if split_size_or_sections <= 0:
                raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, n - i) for i in range(0, n, split_size_or_sections)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sections {sizes} do not add up to the size {n} of dim {dim}")
        out, start = [], 0
        for size in sizes:
            out.append(self[(slice(None),) * d + (slice(start, start + size),)])
            start += size
        return tuple(out)

    def chunk(self, chunks, dim=0):
        n = self.shape[_norm_dim(dim, self.ndim)]
        return self.split(max(math.ceil(n / chunks), 1), dim)

    # ---- indexing ------------------------------------------------------------------------
    def _index(self, idx):
        """Tensor and list indices as arrays on this tensor's device (bounds checked)."""
        items = idx if isinstance(idx, tuple) else (idx,)
        if all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items):
            return idx
        conv = []
        for i in items:
            if isinstance(i, TensorBase):
                if i._device != self._device:
                    raise RuntimeError(f"indices on {i._device} cannot index a tensor on {self._device}")
                i = i._data
            elif isinstance(i, (list, np.ndarray)) and self._device.type == "cuda":
                from . import cuda
                i = cuda.require().asarray(i)
            elif isinstance(i, list):
                i = np.asarray(i)
            conv.append(i)
        return tuple(conv)

    def __getitem__(self, idx):
        try:
            return S.Index.apply(self, self._index(idx))
        except IndexError as e:
            raise IndexError(f"index {idx!r} is out of range for a tensor of shape {self.shape}: {e}") from None

    def __setitem__(self, idx, value):
        idx = self._index(idx)
        value_requires_grad = isinstance(value, TensorBase) and value.requires_grad
        if is_grad_enabled() and (self.requires_grad or value_requires_grad):
            self._check_inplace()
            v = value if isinstance(value, TensorBase) else self._operands(value, "IndexPut")[1]
            v = v.to(self.dtype) if isinstance(v, TensorBase) else v
            self._rebase(S.IndexPut.apply(self, idx, v))
        else:
            self._data[idx] = self._value_array(value)

    def _value_array(self, value):
        if isinstance(value, TensorBase):
            if value._device != self._device:
                raise RuntimeError(f"expected a value on {self._device}, got one on {value._device}")
            return value._data
        return value

    def gather(self, dim, index):
        """out[i][j] = self[index[i][j]][j] for dim 0, and so on (``torch.gather``)."""
        if not isinstance(index, TensorBase) or index._data.dtype.kind not in "iu":
            raise TypeError("gather: index must be an integer Tensor")
        d = _norm_dim(dim, self.ndim)
        if index.ndim != self.ndim:
            raise ValueError(f"gather: index has {index.ndim} dims but the input has {self.ndim}")
        if index._data.size and (int(index._data.min()) < 0 or int(index._data.max()) >= self.shape[d]):
            raise IndexError(f"gather: index out of range for dim {dim} of size {self.shape[d]}")
        return G.Gather.apply(self, d, index._data)

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` is True, ``self`` elsewhere (broadcasting)."""
        from .tensor import where
        return where(mask, value, self)

    def _triangle(self, diagonal, upper):
        if self.ndim < 2:
            raise ValueError(f"{'triu' if upper else 'tril'}: expected at least 2 dims, got shape {self.shape}")
        rows, cols = self.shape[-2:]
        keep = np.tri(rows, cols, diagonal - 1 if upper else diagonal, dtype=bool)
        keep = ~keep if upper else keep
        from .tensor import Tensor, where
        return where(Tensor(keep).to(self._device), self, 0)

    def tril(self, diagonal=0):
        return self._triangle(diagonal, upper=False)

    def triu(self, diagonal=0):
        return self._triangle(diagonal, upper=True)
