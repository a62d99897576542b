"""Reference kernels of index-driven ops along one dim: index_select and its scatter-add
gradient, scatter / scatter_add, and ``dim_map``, a sparse linear map along one dim that pad
and interpolate are made of."""
from .reference import xp_of
from .reference_nn import _scatter_add


def _along(dim, index):
    """The index tuple that puts ``index`` at ``dim`` and takes everything elsewhere."""
    return (slice(None),) * dim + (index,)


def index_select(x, dim, index):
    return xp_of(x).take(x, index, axis=dim)


def index_add(shape, dim, index, values):
    """Zeros of ``shape`` with ``values`` added at ``index`` along ``dim`` (repeats add up)."""
    xp = xp_of(values)
    out = xp.zeros(shape, dtype=values.dtype)
    _scatter_add(out, _along(dim, index), values)
    return out


def _scatter_grids(dim, index):
    """Full index arrays addressing out[..., index[i, j, ...], ...] for scatter along ``dim``."""
    xp = xp_of(index)
    grids = list(xp.ix_(*[xp.arange(n) for n in index.shape]))
    grids[dim] = index
    return tuple(grids)


def _src_region(src, index):
    """The leading ``index.shape`` block of ``src``: PyTorch only reads that much of it."""
    return src[tuple(slice(0, n) for n in index.shape)]


def scatter_add(x, dim, index, src):
    out = xp_of(x).array(x, copy=True)
    _scatter_add(out, _scatter_grids(dim, index), _src_region(src, index))
    return out


def scatter(x, dim, index, src):
    """A copy of x with x[..index along dim..] = src (a scalar or an array)."""
    out = xp_of(x).array(x, copy=True)
    out[_scatter_grids(dim, index)] = src[()] if src.ndim == 0 else _src_region(src, index)
    return out


def scatter_backward(gy, dim, index, src_shape):
    """(gradient of x, gradient of src) of ``scatter``: the overwritten places of x get none;
    src gets the output gradient at the place each of its elements went."""
    xp = xp_of(gy)
    grids = _scatter_grids(dim, index)
    gx = xp.array(gy, copy=True)
    gx[grids] = 0
    gsrc = None
    if src_shape is not None:
        gsrc = xp.zeros(src_shape, dtype=gy.dtype)
        gsrc[tuple(slice(0, n) for n in index.shape)] = gy[grids]
    return gx, gsrc


def scatter_src_grad(gy, dim, index, src_shape):
    """The gradient of src in scatter_add: the output gradient gathered at each target."""
    xp = xp_of(gy)
    gsrc = xp.zeros(src_shape, dtype=gy.dtype)
    gsrc[tuple(slice(0, n) for n in index.shape)] = gy[_scatter_grids(dim, index)]
    return gsrc


def dim_map(x, dim, taps, valid, fill):
    """out[.., p, ..] = sum over taps (index, weight) of weight[p] * x[.., index[p], ..] along
    ``dim``; where ``valid`` (if given) is False, ``fill`` instead. A weight of None is 1."""
    xp = xp_of(x)
    taps, valid = _on(xp, taps, valid)
    out = None
    for index, weight in taps:
        term = xp.take(x, index, axis=dim)
        if weight is not None:
            term = term * _along_dim(weight.astype(x.dtype, copy=False), dim, x.ndim)
        out = term if out is None else out + term
    if valid is not None:
        out = xp.where(_along_dim(valid, dim, x.ndim), out, xp.asarray(fill, dtype=x.dtype))
    return out


def dim_map_backward(gy, dim, taps, valid, in_size):
    """The transpose of ``dim_map``: each tap's weighted gradient scatter-added to its index."""
    xp = xp_of(gy)
    taps, valid = _on(xp, taps, valid)
    if valid is not None:
        gy = xp.where(_along_dim(valid, dim, gy.ndim), gy, gy.dtype.type(0))
    shape = gy.shape[:dim] + (in_size,) + gy.shape[dim + 1:]
    gx = xp.zeros(shape, dtype=gy.dtype)
    for index, weight in taps:
        g = gy if weight is None else gy * _along_dim(weight.astype(gy.dtype, copy=False), dim, gy.ndim)
        _scatter_add(gx, _along(dim, index), g)
    return gx


def _on(xp, taps, valid):
    """The taps (built with NumPy) on the array module of the data."""
    taps = [(xp.asarray(i), None if w is None else xp.asarray(w)) for i, w in taps]
    return taps, None if valid is None else xp.asarray(valid)


def _along_dim(v, dim, ndim):
    """A 1-d ``v`` shaped to broadcast along ``dim`` of an ``ndim``-d array."""
    return v.reshape((-1,) + (1,) * (ndim - dim - 1))


KERNELS = {"index_select": index_select, "index_add": index_add, "scatter_add": scatter_add, "scatter": scatter,
           "scatter_backward": scatter_backward, "scatter_src_grad": scatter_src_grad,
           "dim_map": dim_map, "dim_map_backward": dim_map_backward}
