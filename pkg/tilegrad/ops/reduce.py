"""Reductions over dims (None = all) with keepdim, as PyTorch defines them."""
from ..backends.reference import xp_of
from .base import Cost, Op, Sample, distinct, op, randn

# (shape, dims, keepdim): all dims, one dim, negative dims, several dims, size-0 and size-1 dims.
REDUCE_CASES = [((7,), None, False), ((3, 5), 1, False), ((3, 5), 0, True), ((2, 3, 4), (0, 2), False),
                ((2, 3, 4), -1, True), ((1, 6), None, True), ((4, 129), 1, False), ((0, 3), 1, False), ((), None, False)]


def _keep(gy, x_ndim, dims, keepdim):
    """``gy`` reshaped as if the reduction had kept its dims, so it broadcasts against x."""
    if keepdim or x_ndim == 0:
        return gy
    axes = range(x_ndim) if dims is None else ((dims,) if isinstance(dims, int) else dims)
    shape = list(gy.shape)
    for a in sorted(d % x_ndim for d in axes):
        shape.insert(a, 1)
    return gy.reshape(shape)


def _count(shape, dims):
    import math
    if dims is None:
        return math.prod(shape)
    dims = (dims,) if isinstance(dims, int) else dims
    return math.prod(shape[d] for d in dims)


def _reduce_samples(cls, gen=randn, cases=REDUCE_CASES, extra=()):
    return lambda rng: [Sample((gen(rng, s),), lambda x, d=d, k=k: cls.apply(x, d, *extra, k), f"{s},dims={d},keepdim={k}")
                        for s, d, k in cases]


def _reduce_cost(x, *_):
    return Cost(x.size, x.nbytes)


@op
class Sum(Op):
    cost = staticmethod(_reduce_cost)

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.meta = x.shape, dims, keepdim
        return ctx.kernel("sum", x, dims, keepdim)

    @staticmethod
    def backward(ctx, gy):
        shape, dims, keepdim = ctx.meta
        return xp_of(gy).broadcast_to(_keep(gy, len(shape), dims, keepdim), shape), None, None


@op
class Mean(Op):
    cost = staticmethod(_reduce_cost)

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.meta = x.shape, dims, keepdim
        return ctx.kernel("mean", x, dims, keepdim)

    @staticmethod
    def backward(ctx, gy):
        shape, dims, keepdim = ctx.meta
        g = _keep(gy, len(shape), dims, keepdim) / max(_count(shape, dims), 1)
        return xp_of(gy).broadcast_to(g, shape), None, None


class _Extreme(Op):
    """amax/amin over dims: the gradient is shared evenly by the elements that attain it."""
    kernel_name = ""
    cost = staticmethod(_reduce_cost)

    @classmethod
    def forward(cls, ctx, x, dims, keepdim):
        y = ctx.kernel(cls.kernel_name, x, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.meta = dims, keepdim
        return y

    @classmethod
    def backward(cls, ctx, gy):
        x, y = ctx.saved_tensors
        dims, keepdim = ctx.meta
        hit = x == _keep(y, x.ndim, dims, keepdim)
        share = hit / _keep(ctx.kernel("sum", hit, dims, keepdim), x.ndim, dims, keepdim)
        return share * _keep(gy, x.ndim, dims, keepdim), None, None


@op
class Amax(_Extreme):
    kernel_name = "amax"


@op
class Amin(_Extreme):
    kernel_name = "amin"


_NONEMPTY = [c for c in REDUCE_CASES if 0 not in c[0]]
Sum.samples = staticmethod(_reduce_samples(Sum))
Mean.samples = staticmethod(_reduce_samples(Mean, cases=_NONEMPTY))
Amax.samples = staticmethod(_reduce_samples(Amax, distinct, _NONEMPTY))
Amin.samples = staticmethod(_reduce_samples(Amin, distinct, _NONEMPTY))


class _ExtremeDim(Op):
    """``x.max(dim)`` / ``x.min(dim)``: (values, indices); the gradient goes to the index."""
    kernel_name = ""
    non_differentiable_outputs = (1,)

    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        values, idx = ctx.kernel(cls.kernel_name, x, dim, keepdim)
        ctx.save_for_backward(idx)
        ctx.meta = x.shape, dim, keepdim
        return values, idx

    @classmethod
    def backward(cls, ctx, gy, _g_idx):
        (idx,) = ctx.saved_tensors
        shape, dim, keepdim = ctx.meta
        dim = dim % len(shape)
        xp = xp_of(gy)
        positions = xp.arange(shape[dim]).reshape((-1,) + (1,) * (len(shape) - dim - 1))
        hit = positions == _keep(idx, len(shape), dim, keepdim)
        return xp.where(hit, _keep(gy, len(shape), dim, keepdim), gy.dtype.type(0)), None, None


@op
class MaxDim(_ExtremeDim):
    kernel_name = "max_dim"


@op
class MinDim(_ExtremeDim):
    kernel_name = "min_dim"


_DIM_CASES = [((7,), 0, False), ((3, 5), 1, False), ((3, 5), 0, True), ((2, 3, 4), -1, True), ((4, 129), 1, False)]
MaxDim.samples = staticmethod(_reduce_samples(MaxDim, distinct, _DIM_CASES))
MinDim.samples = staticmethod(_reduce_samples(MinDim, distinct, _DIM_CASES))


class _ArgExtreme(Op):
    differentiable = False
    kernel_name = ""

    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        return ctx.kernel(cls.kernel_name, x, dim, keepdim)


@op
class Argmax(_ArgExtreme):
    kernel_name = "argmax"


@op
class Argmin(_ArgExtreme):
    kernel_name = "argmin"


_ARG_CASES = [((7,), None, False), ((3, 5), 1, False), ((3, 5), 0, True), ((2, 3, 4), None, True)]
for _cls in (Argmax, Argmin):
    _cls.samples = staticmethod(lambda rng, c=_cls: [s._replace(differentiable=False) for s in _reduce_samples(c, distinct, _ARG_CASES)(rng)])


@op
class Var(Op):
    """Variance with Bessel's ``correction`` (1 = unbiased, PyTorch's default)."""
    cost = staticmethod(lambda x, *_: Cost(3 * x.size, x.nbytes))

    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        ctx.save_for_backward(x)
        ctx.meta = dims, correction, keepdim
        return ctx.kernel("var", x, dims, correction, keepdim)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        dims, correction, keepdim = ctx.meta
        centred = x - ctx.kernel("mean", x, dims, True)
        scale = 2 / max(_count(x.shape, dims) - correction, 0)
        return _keep(gy, x.ndim, dims, keepdim) * centred * scale, None, None, None


Var.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s),), lambda x, d=d, c=c, k=k: Var.apply(x, d, c, k), f"{s},dims={d},correction={c},keepdim={k}")
    for s, d, c, k in [((7,), None, 1, False), ((3, 5), 1, 0, False), ((3, 5), 0, 1, True), ((2, 3, 4), (0, 2), 1, False)]])


@op
class LogSumExp(Op):
    cost = staticmethod(lambda x, *_: Cost(3 * x.size, x.nbytes))

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        y = ctx.kernel("logsumexp", x, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.meta = dims, keepdim
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        dims, keepdim = ctx.meta
        return _keep(gy, x.ndim, dims, keepdim) * ctx.kernel("exp", x - _keep(y, x.ndim, dims, keepdim)), None, None


LogSumExp.samples = staticmethod(_reduce_samples(LogSumExp, cases=_NONEMPTY))

