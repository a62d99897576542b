"""Index-driven ops along one dim: index_select, scatter / scatter_add, repeat, and ``DimMap``
(a sparse linear map along one dim, which pad and interpolate are built from). Their
gradients are the transposed maps: scatter-adds and gathers."""
import math

import numpy as np

from .base import Cost, Op, Sample, op, randn


@op
class IndexSelect(Op):
    """``x.index_select(dim, index)`` with a 1-d int64 index (repeats allowed)."""
    cost = staticmethod(lambda x, dim, index: Cost(0, 2 * index.size * x.nbytes // max(x.shape[dim], 1)))

    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.save_for_backward(index)
        ctx.meta = dim, x.shape
        return ctx.kernel("index_select", x, dim, index)

    @staticmethod
    def backward(ctx, gy):
        (index,) = ctx.saved_tensors
        dim, shape = ctx.meta
        return ctx.kernel("index_add", shape, dim, index, gy), None, None


IndexSelect.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s), rng.integers(0, s[d], size=n) if s[d] else np.zeros(0, np.int64)),
           lambda x, i, d=d: IndexSelect.apply(x, d, i), f"{s},dim={d},index[{n}]")
    for s, d, n in [((5, 3), 0, 7), ((4, 6), 1, 2), ((2, 3, 4), 2, 4), ((3,), 0, 0), ((2, 5), 1, 3), ((0, 3), 1, 2)]])


@op
class ScatterAdd(Op):
    """``x.scatter_add(dim, index, src)``: out = x, then out[index[i][j]][j] += src[i][j] (dim 0)."""
    cost = staticmethod(lambda x, dim, index, src: Cost(index.size, x.nbytes * 2 + index.size * (8 + x.itemsize)))

    @staticmethod
    def forward(ctx, x, dim, index, src):
        ctx.save_for_backward(index)
        ctx.meta = dim, src.shape
        return ctx.kernel("scatter_add", x, dim, index, src)

    @staticmethod
    def backward(ctx, gy):
        (index,) = ctx.saved_tensors
        dim, src_shape = ctx.meta
        gsrc = ctx.kernel("scatter_src_grad", gy, dim, index, src_shape) if ctx.needs_input_grad[3] else None
        return gy, None, None, gsrc


@op
class Scatter(Op):
    """``x.scatter(dim, index, src)`` where src is an array or a 0-d value: out = x, then
    out[index[i][j]][j] = src[i][j] (dim 0). Where indices repeat, which write wins is undefined
    (as in PyTorch)."""
    cost = staticmethod(lambda x, dim, index, src: Cost(0, x.nbytes * 2 + index.size * (8 + x.itemsize)))

    @staticmethod
    def forward(ctx, x, dim, index, src):
        ctx.save_for_backward(index)
        ctx.meta = dim, (src.shape if ctx.needs_input_grad[3] else None)
        return ctx.kernel("scatter", x, dim, index, src)

    @staticmethod
    def backward(ctx, gy):
        (index,) = ctx.saved_tensors
        dim, src_shape = ctx.meta
        gx, gsrc = ctx.kernel("scatter_backward", gy, dim, index, src_shape)
        return gx, None, None, gsrc


def _scatter_index(rng, x_shape, dim, index_shape, unique):
    """An index of ``index_shape`` into dim ``dim`` of x; ``unique``: no target written twice."""
    if not unique:
        return rng.integers(0, x_shape[dim], size=index_shape)
    index = np.argsort(rng.random(index_shape[:dim] + (x_shape[dim],) + index_shape[dim + 1:]), axis=dim)
    return index[tuple(slice(0, n) for n in index_shape)]


# (x shape, dim, index shape, src shape): src larger than index (only its leading block is read),
# index narrower than x, negative-free dims normalised by the tensor layer, an empty index.
_SCATTER_CASES = [((5, 3), 0, (4, 3), (4, 3)), ((4, 6), 1, (3, 2), (4, 5)), ((2, 3, 4), 2, (2, 3, 3), (2, 3, 4)),
                  ((6,), 0, (4,), (5,)), ((3, 4), 0, (0, 4), (0, 4)), ((4, 129), 1, (4, 40), (4, 40))]
ScatterAdd.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s), _scatter_index(rng, s, d, i, False), randn(rng, src)),
           lambda x, idx, v, d=d: ScatterAdd.apply(x, d, idx, v), f"{s},dim={d},index{i},src{src}")
    for s, d, i, src in _SCATTER_CASES])
Scatter.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s), _scatter_index(rng, s, d, i, True), randn(rng, src)),
           lambda x, idx, v, d=d: Scatter.apply(x, d, idx, v), f"{s},dim={d},index{i},src{src}")
    for s, d, i, src in _SCATTER_CASES] + [
    Sample((randn(rng, (4, 5)), _scatter_index(rng, (4, 5), 1, (4, 2), True)),
           lambda x, idx: Scatter.apply(x, 1, idx, np.asarray(1.5, dtype=x._data.dtype)), "(4, 5),dim=1,value=1.5")])


@op
class Repeat(Op):
    """``x.repeat(*sizes)``: tile x ``sizes[i]`` times along each dim (new leading dims first)."""
    cost = staticmethod(lambda x, sizes: Cost(0, x.nbytes * (1 + math.prod(sizes))))

    @staticmethod
    def forward(ctx, x, sizes):
        from ..backends.reference import xp_of
        padded = (1,) * (len(sizes) - x.ndim) + x.shape
        ctx.meta = x.shape, padded, sizes
        return xp_of(x).tile(x.reshape(padded), sizes)

    @staticmethod
    def backward(ctx, gy):
        shape, padded, sizes = ctx.meta
        # Split every dim into (repeat, original size) and sum the repeats away.
        split = [n for pair in zip(sizes, padded) for n in pair]
        return gy.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(shape), None


Repeat.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s),), lambda x, r=r: Repeat.apply(x, r), f"{s}x{r}")
    for s, r in [((3,), (2,)), ((2, 3), (2, 1)), ((2, 3), (3, 1, 2)), ((1, 4), (1, 3)), ((2, 0), (2, 2)), ((), (3,)),
                 ((3, 5), (0, 2))]])


@op
class DimMap(Op):
    """A sparse linear map along one dim: out[.., p, ..] = sum over taps (index, weight) of
    weight[p] * x[.., index[p], ..], or ``fill`` where ``valid[p]`` is False. Padding (every
    mode) is one tap with index clipped or reflected; nearest resizing is one tap; linear
    resizing is two weighted taps. The index/weight arrays are NumPy; the kernel moves them."""
    cost = staticmethod(lambda x, dim, taps, valid, fill: Cost(
        2 * len(taps) * x.size // max(x.shape[dim], 1) * len(taps[0][0]), 2 * x.nbytes))

    @staticmethod
    def forward(ctx, x, dim, taps, valid, fill):
        ctx.meta = dim, taps, valid, x.shape[dim]
        return ctx.kernel("dim_map", x, dim, taps, valid, fill)

    @staticmethod
    def backward(ctx, gy):
        dim, taps, valid, in_size = ctx.meta
        return ctx.kernel("dim_map_backward", gy, dim, taps, valid, in_size), None, None, None, None


def _dim_map_samples(rng):
    def linear_taps(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        w1 = src - i0
        return [(i0, 1 - w1), (np.minimum(i0 + 1, n_in - 1), w1)]
    reflect = np.array([2, 1, 0, 1, 2, 3, 4, 3])  # reflect-pad 5 by (2, 1)... and a crop at the end
    valid = np.array([False, True, True, True, False])
    return [
        Sample((randn(rng, (3, 5)),), lambda x: DimMap.apply(x, 1, [(reflect, None)], None, 0.0), "reflect along dim 1"),
        Sample((randn(rng, (2, 4, 3)),), lambda x: DimMap.apply(x, 1, linear_taps(4, 7), None, 0.0), "linear 4->7"),
        Sample((randn(rng, (5, 2)),), lambda x: DimMap.apply(x, 0, linear_taps(5, 2), None, 0.0), "linear 5->2"),
        Sample((randn(rng, (2, 3)),), lambda x: DimMap.apply(x, 1, [(np.array([0, 0, 1, 2, 2]), None)], valid, 0.5),
               "constant pad with fill"),
        Sample((randn(rng, (2, 0, 3)),), lambda x: DimMap.apply(x, 2, [(np.array([0, 0, 1, 1, 2, 2]), None)], None, 0.0),
               "nearest, empty batch")]


DimMap.samples = staticmethod(_dim_map_samples)
