"""More reductions of ``tilegrad.Tensor`` (a mixin): var_mean/std_mean, median, nansum/nanmean,
aminmax, cummax/cummin, and the Tensor forms of bmm/addmm/multinomial. Compositions of the
sort, amax, where and sum ops (so gradients are exact and follow PyTorch's tie rules) plus the
cummax/cummin ops of ``ops.math``."""
from collections import namedtuple

from .ops import math as MA

MedianResult = namedtuple("median", ["values", "indices"])
AminmaxResult = namedtuple("aminmax", ["min", "max"])
CummaxResult = namedtuple("cummax", ["values", "indices"])
CumminResult = namedtuple("cummin", ["values", "indices"])


class ReduceMethods:
    """Mixin of Tensor."""

    __slots__ = ()

    def var_mean(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return self.var(dim, unbiased, keepdim, correction), self.mean(dim, keepdim)

    def std_mean(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return self.std(dim, unbiased, keepdim, correction), self.mean(dim, keepdim)

    def median(self, dim=None, keepdim=False):
        """The lower median (the ((n-1)//2)-th smallest). Over all elements: a 0-d tensor whose
        gradient is split evenly between the elements equal to it; along ``dim``: (values,
        indices) with the gradient going to the index returned, as in PyTorch."""
        if dim is None:
            if self.numel() == 0:
                raise RuntimeError("median() input tensor cannot be empty")
            flat = self.reshape(-1)
            value = flat.detach().sort().values[(flat.shape[0] - 1) // 2]
            if not flat._data.dtype.kind == "f" or not flat.requires_grad:
                return value
            # amax over the elements equal to the median is the median, with amax's even split.
            return flat.where(flat.detach() == value, float("-inf")).amax()
        x, d = self._as_1d_if_scalar(dim)
        if x.shape[d] == 0:
            raise IndexError(f"median(): cannot compute the median of an empty dimension {dim}")
        values, indices = x.sort(d)
        k = (x.shape[d] - 1) // 2
        values, indices = values.select(d, k), indices.select(d, k)
        if keepdim and self.ndim:
            values, indices = values.unsqueeze(d), indices.unsqueeze(d)
        return MedianResult(values, indices)

    def nansum(self, dim=None, keepdim=False, dtype=None):
        x = self if self._data.dtype.kind != "f" else self.where(~self.isnan(), 0.0)
        return x.sum(dim, keepdim, dtype)

    def nanmean(self, dim=None, keepdim=False, dtype=None):
        if (self._data.dtype.kind != "f") and dtype is None:
            raise RuntimeError(f"nanmean(): expected a floating point tensor, got {self.dtype}")
        x = self if dtype is None else self.to(dtype)
        count = (~x.isnan()).sum(dim, keepdim)
        return x.nansum(dim, keepdim) / count.to(x.dtype)

    def aminmax(self, *, dim=None, keepdim=False):
        if self.numel() == 0:
            raise RuntimeError("aminmax(): cannot compute aminmax over an empty tensor")
        return AminmaxResult(self.amin(dim, keepdim), self.amax(dim, keepdim))

    def _cum_extreme(self, cls, result, dim):
        x, d = self._as_1d_if_scalar(dim)
        values, indices = cls.apply(x, d)
        if self.ndim == 0:
            values, indices = values.reshape(()), indices.reshape(())
        return result(values, indices)

    def cummax(self, dim):
        return self._cum_extreme(MA.Cummax, CummaxResult, dim)

    def cummin(self, dim):
        return self._cum_extreme(MA.Cummin, CumminResult, dim)

    # ---- Tensor forms of the module-level products and sampling ------------------------------
    def bmm(self, mat2):
        from .functional_math import bmm
        return bmm(self, mat2)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        from .functional_math import addmm
        return addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        from .functional_math import baddbmm
        return baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        from .functional_math import multinomial
        return multinomial(self, num_samples, replacement, generator=generator)
