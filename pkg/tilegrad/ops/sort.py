"""Sorting and scans along one dim: sort and topk (values and indices; the values' gradient goes
back to where each value came from), cumsum, and prod."""
import math

import numpy as np

from .base import Cost, Op, Sample, distinct, op, randn


def _sort_cost(x, *_):
    n = max(x.shape[_[0]] if x.ndim else 1, 2)
    return Cost(x.size * math.log2(n), 2 * x.nbytes + x.size * 8)


class _Selection(Op):
    """Ops returning (values, indices) where values = x gathered at indices along dim."""
    non_differentiable_outputs = (1,)
    cost = staticmethod(_sort_cost)

    @staticmethod
    def backward(ctx, gy, _g_idx):
        (idx,) = ctx.saved_tensors
        dim, shape = ctx.meta
        return (ctx.kernel("gather_backward", gy, dim, idx, shape),) + (None,) * ctx.n_params


@op
class Sort(_Selection):
    """``x.sort(dim, descending)``: a stable sort, so ties keep their order (both directions)."""
    n_params = 2

    @staticmethod
    def forward(ctx, x, dim, descending):
        values, idx = ctx.kernel("sort", x, dim, descending)
        ctx.save_for_backward(idx)
        ctx.meta = dim, x.shape
        return values, idx


@op
class TopK(_Selection):
    """``x.topk(k, dim, largest)``: the first k of a stable sort, so the values come sorted."""
    n_params = 3

    @staticmethod
    def forward(ctx, x, k, dim, largest):
        values, idx = ctx.kernel("sort", x, dim, largest)
        keep = (slice(None),) * dim + (slice(0, k),)
        values, idx = values[keep], idx[keep]
        ctx.save_for_backward(idx)
        ctx.meta = dim, x.shape
        return values, idx


def _with_ties(rng, shape):
    """Values drawn from a few levels, so sorts meet ties (the gradient is still defined:
    each output position takes its gradient from exactly one input)."""
    return rng.integers(-3, 3, size=shape).astype(np.float64) + 0.5


Sort.samples = staticmethod(lambda rng: [
    Sample((gen(rng, s),), lambda x, d=d, desc=desc: Sort.apply(x, d, desc), f"{s},dim={d},descending={desc}",
           gradcheck=gen is not _with_ties)  # at a tie the derivative does not exist
    for gen, s, d, desc in [(distinct, (7,), 0, False), (distinct, (3, 5), 1, True), (_with_ties, (4, 6), 1, False),
                            (_with_ties, (5, 3), 0, True), (randn, (2, 0, 3), 2, False), (distinct, (2, 3, 17), 1, True),
                            (randn, (1,), 0, True)]])
TopK.samples = staticmethod(lambda rng: [
    Sample((gen(rng, s),), lambda x, k=k, d=d, lg=lg: TopK.apply(x, k, d, lg), f"{s},k={k},dim={d},largest={lg}",
           gradcheck=gen is not _with_ties)
    for gen, s, k, d, lg in [(distinct, (9,), 3, 0, True), (distinct, (3, 7), 2, 1, False), (_with_ties, (6, 4), 4, 0, True),
                             (randn, (3, 5), 0, 1, True), (distinct, (2, 3, 17), 17, 2, False)]])


@op
class Cumsum(Op):
    """Running sum along ``dim``."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return ctx.kernel("cumsum", x, dim)

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernel("cumsum_backward", gy, ctx.dim), None


Cumsum.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s),), lambda x, d=d: Cumsum.apply(x, d), f"{s},dim={d}")
    for s, d in [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 0, 4), 2), ((4, 129), 1), ((1,), 0)]])


@op
class Prod(Op):
    """Product over one dim (or all elements when ``dim`` is None)."""

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        ctx.save_for_backward(x)
        ctx.meta = dim, keepdim
        return ctx.kernel("prod", x, dim, keepdim)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        dim, keepdim = ctx.meta
        return ctx.kernel("prod_backward", x, gy, dim, keepdim), None, None


def _with_zeros(count):
    """Values in [0.5, 1.5] with ``count`` exact zeros per row of the last dim: the gradient of
    a product is still defined there (the product of the other elements)."""
    def gen(rng, shape):
        x = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        if x.size:
            for row in x.reshape(-1, shape[-1]):
                row[rng.choice(shape[-1], size=count, replace=False)] = 0.0
        return x
    return gen


Prod.samples = staticmethod(lambda rng: [
    Sample((gen(rng, s),), lambda x, d=d, k=k: Prod.apply(x, d, k), f"{s},dim={d},keepdim={k},{name}")
    for gen, name, s, d, k in [(randn, "randn", (7,), None, False), (randn, "randn", (3, 5), 1, False),
                               (randn, "randn", (3, 5), 0, True), (_with_zeros(1), "one zero", (4, 6), 1, False),
                               (_with_zeros(2), "two zeros", (3, 5), 1, True), (_with_zeros(1), "one zero", (6,), None, False),
                               (_with_zeros(1), "one zero", (2, 3, 4), 0, False), (randn, "randn", (2, 0, 3), 1, False),
                               (randn, "randn", (), None, False)]])
