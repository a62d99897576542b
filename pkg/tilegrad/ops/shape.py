"""Shape ops. Reshape, permute, expand and basic indexing only change metadata (they return
views, as in PyTorch), so they call no kernel; copying ops go through kernels."""
import numpy as np

from ..backends.reference import xp_of
from .base import Cost, Op, Sample, op, randn


def _view_cost(*_):
    return Cost(0, 0)


@op
class Reshape(Op):
    cost = staticmethod(_view_cost)
    samples = staticmethod(lambda rng: [Sample((randn(rng, s),), lambda x, t=t: Reshape.apply(x, t), f"{s}->{t}")
                                        for s, t in [((3, 4), (12,)), ((2, 3, 4), (4, -1)), ((0, 3), (3, 0)), ((1,), ()), ((6,), (2, 1, 3))]])

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.in_shape), None


@op
class View(Op):
    """Like reshape, but never copies: a shape the strides cannot express is an error."""
    cost = staticmethod(_view_cost)
    samples = staticmethod(lambda rng: [Sample((randn(rng, s),), lambda x, t=t: View.apply(x, t), f"{s}->{t}")
                                        for s, t in [((3, 4), (12,)), ((2, 3, 4), (6, -1)), ((5,), (5, 1))]])

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        y = x.view()
        try:
            y.shape = x.reshape(shape).shape if -1 in tuple(shape) else shape
        except AttributeError:
            raise RuntimeError(f"view: shape {tuple(shape)} is not compatible with the input's shape {x.shape} and "
                               f"strides {x.strides}; use .reshape(...) instead") from None
        return y

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.in_shape), None


@op
class Permute(Op):
    cost = staticmethod(_view_cost)
    samples = staticmethod(lambda rng: [Sample((randn(rng, s),), lambda x, p=p: Permute.apply(x, p), f"{s},{p}")
                                        for s, p in [((3, 4), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((0, 2, 3), (1, 2, 0)), ((5,), (0,))]])

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, gy):
        return gy.transpose(np.argsort(ctx.dims)), None


@op
class Expand(Op):
    """Broadcast to a larger shape without copying; the engine sums the gradient back down."""
    cost = staticmethod(_view_cost)
    samples = staticmethod(lambda rng: [Sample((randn(rng, s),), lambda x, t=t: Expand.apply(x, t), f"{s}->{t}")
                                        for s, t in [((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((1, 1), (0, 5)), ((), (3,))]])

    @staticmethod
    def forward(ctx, x, shape):
        return xp_of(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, gy):
        return gy, None


@op
class Index(Op):
    """``x[idx]`` with basic (ints, slices, None, ...) and advanced (int/bool arrays) indices;
    repeated advanced indices add their gradients up."""
    cost = staticmethod(_view_cost)

    @staticmethod
    def forward(ctx, x, idx):
        ctx.meta = x.shape, idx
        return x[idx]

    @staticmethod
    def backward(ctx, gy):
        shape, idx = ctx.meta
        return ctx.kernel("index_backward", gy, idx, shape), None


Index.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s),), lambda x, i=i: x[i], f"{s}[{d}]") for s, i, d in [
        ((5, 4), (1,), "1"), ((5, 4), (slice(1, 4), slice(None, None, 2)), "1:4,::2"), ((3, 4), (Ellipsis, None, -1), "...,None,-1"),
        ((6,), ([0, 2, 2, 5],), "[0,2,2,5]"), ((4, 3), ([1, 3], [0, 2]), "[1,3],[0,2]"), ((4, 3), (slice(None), [2, 0, 2]), ":,[2,0,2]"),
        ((5,), (np.array([True, False, True, True, False]),), "bool mask")]])


@op
class IndexPut(Op):
    """Out-of-place ``x[idx] = v``: the result of an in-place index assignment in autograd."""

    @staticmethod
    def forward(ctx, x, idx, v):
        ctx.meta = idx, x[idx].shape
        return ctx.kernel("index_put", x, idx, v)

    @staticmethod
    def backward(ctx, gy):
        idx, _ = ctx.meta
        gx = ctx.kernel("index_put", gy, idx, gy.dtype.type(0)) if ctx.needs_input_grad[0] else None
        gv = gy[idx] if ctx.needs_input_grad[2] else None
        return gx, None, gv


IndexPut.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s), randn(rng, v)), lambda x, v, i=i: IndexPut.apply(x, i, v), f"{s}[{i}]={v}") for s, i, v in [
        ((5, 4), (1,), (4,)), ((5, 4), (slice(1, 3),), (1, 4)), ((6,), (np.array([0, 3, 5]),), (3,)), ((3, 4), (Ellipsis, 2), ())]])


@op
class Cat(Op):
    """``cat(tensors, dim)``; takes the dim first so the tensors can follow as arguments."""
    cost = staticmethod(lambda dim, *xs: Cost(0, 2 * sum(x.nbytes for x in xs)))

    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.meta = dim, [x.shape[dim] for x in xs]
        return ctx.kernel("cat", xs, dim)

    @staticmethod
    def backward(ctx, gy):
        dim, sizes = ctx.meta
        return (None,) + tuple(xp_of(gy).split(gy, np.cumsum(sizes)[:-1].tolist(), axis=dim))


Cat.samples = staticmethod(lambda rng: [
    Sample(tuple(randn(rng, s) for s in shapes), lambda *xs, d=d: Cat.apply(d, *xs), f"{shapes},dim={d}") for shapes, d in [
        (((2, 3), (4, 3)), 0), (((2, 3), (2, 1), (2, 5)), 1), (((0, 3), (2, 3)), 0), (((3,),), 0), (((2, 2, 3), (2, 1, 3)), -2)]])


@op
class ToDevice(Op):
    """Move to another device; the gradient moves back."""
    same_device = False
    samples = staticmethod(lambda rng: [])  # needs two devices: tested in tests/cuda

    @staticmethod
    def forward(ctx, x, device):
        ctx.source = "cpu" if isinstance(x, np.ndarray) else "cuda"
        return move_array(x, device)

    @staticmethod
    def backward(ctx, gy):
        return move_array(gy, ctx.source), None


def move_array(a, device):
    """``a`` (a NumPy or CuPy array) on ``device``: no copy when it is already there."""
    device = str(device)
    if device.startswith("cpu"):
        return a if isinstance(a, np.ndarray) else a.get()
    from .. import cuda
    cp = cuda.require()
    index = int(device.partition(":")[2] or 0)
    with cp.cuda.Device(index):
        return cp.asarray(a)
