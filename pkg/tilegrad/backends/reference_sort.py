"""Reference kernels of sorting and scans along one dim: sort (values and indices), cumsum and
prod with the gradient PyTorch defines where the input holds zeros."""
import numpy as np

from .reference import xp_of


def _stable_argsort(x, dim):
    xp = xp_of(x)
    # CuPy's sort is always stable and takes no ``kind``; NumPy needs to be asked.
    return np.argsort(x, axis=dim, kind="stable") if xp is np else xp.argsort(x, axis=dim)


def sort(x, dim, descending):
    """(values, int64 indices) of a stable sort along ``dim``. Descending keeps equal elements
    in their original order too (as PyTorch's stable sort does): sort the reversed array
    ascending, reverse the result, and map positions back. NaN sorts as the largest value."""
    xp = xp_of(x)
    if descending:
        n = x.shape[dim]
        flipped = xp.flip(x, axis=dim)
        idx = (n - 1) - xp.flip(_stable_argsort(flipped, dim), axis=dim)
    else:
        idx = _stable_argsort(x, dim)
    idx = idx.astype(np.int64, copy=False)
    return xp.take_along_axis(x, idx, axis=dim), idx


def cumsum(x, dim):
    return xp_of(x).cumsum(x, axis=dim, dtype=x.dtype)


def cumsum_backward(gy, dim):
    """The sum of every later gradient: a reversed cumsum."""
    xp = xp_of(gy)
    return xp.flip(xp.cumsum(xp.flip(gy, axis=dim), axis=dim, dtype=gy.dtype), axis=dim)


def prod(x, dim, keepdim):
    """Product over one dim, or over all elements when ``dim`` is None."""
    xp = xp_of(x)
    if dim is None:
        out = xp.prod(x, dtype=x.dtype)
        return out.reshape((1,) * x.ndim) if keepdim else out
    return xp.prod(x, axis=dim, keepdims=keepdim, dtype=x.dtype)


def _exclusive_cumprod(x, dim):
    """out[i] = prod(x[:i]) along ``dim`` (1 for the first element)."""
    xp = xp_of(x)
    ones = xp.ones_like(xp.take(x, xp.arange(min(1, x.shape[dim])), axis=dim))
    head = xp.take(x, xp.arange(max(x.shape[dim] - 1, 0)), axis=dim)
    return xp.cumprod(xp.concatenate([ones, head], axis=dim), axis=dim)


def prod_backward(x, gy, dim, keepdim):
    """d prod / d x_i = product of all the other elements, computed as (product before i) *
    (product after i) so it is exact where x holds zeros (no division by x), as PyTorch's is."""
    xp = xp_of(x)
    if dim is None:
        flat = x.reshape(-1)
        others = _exclusive_cumprod(flat, 0) * xp.flip(_exclusive_cumprod(xp.flip(flat, axis=0), 0), axis=0)
        return (others * gy.reshape(())).reshape(x.shape)
    others = _exclusive_cumprod(x, dim) * xp.flip(_exclusive_cumprod(xp.flip(x, axis=dim), dim), axis=dim)
    return others * (gy if keepdim else xp.expand_dims(gy, dim))


KERNELS = {"sort": sort, "cumsum": cumsum, "cumsum_backward": cumsum_backward, "prod": prod,
           "prod_backward": prod_backward}
