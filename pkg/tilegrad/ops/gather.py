"""Gather along a dim and embedding lookup: index-driven reads whose gradients scatter-add."""

from .base import Cost, Op, Sample, op, randn


@op
class Gather(Op):
    """``x.gather(dim, index)``: out[i][j] = x[index[i][j]][j] for dim 0 (and so on)."""
    cost = staticmethod(lambda x, dim, index: Cost(0, 2 * index.size * x.itemsize + index.nbytes))

    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.save_for_backward(index)
        ctx.meta = dim, x.shape
        return ctx.kernel("gather", x, dim, index)

    @staticmethod
    def backward(ctx, gy):
        (index,) = ctx.saved_tensors
        dim, shape = ctx.meta
        return ctx.kernel("gather_backward", gy, dim, index, shape), None, None


Gather.samples = staticmethod(lambda rng: [
    Sample((randn(rng, s), rng.integers(0, s[d], size=i)), lambda x, idx, d=d: Gather.apply(x, d, idx), f"{s},dim={d},index{i}")
    for s, d, i in [((5, 3), 0, (4, 3)), ((4, 6), 1, (4, 2)), ((2, 3, 4), 2, (2, 3, 1)), ((3,), 0, (5,))]])


@op
class Embedding(Op):
    """``weight[indices]``; the row ``padding_idx`` (if not None) receives no gradient."""
    cost = staticmethod(lambda w, idx, padding_idx: Cost(0, 2 * idx.size * w.shape[1] * w.itemsize))

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.save_for_backward(indices)
        ctx.meta = weight.shape[0], padding_idx
        return weight[indices]

    @staticmethod
    def backward(ctx, gy):
        (indices,) = ctx.saved_tensors
        num, padding_idx = ctx.meta
        return ctx.kernel("embedding_backward", gy, indices, num, padding_idx), None, None


Embedding.samples = staticmethod(lambda rng: [
    Sample((randn(rng, (n, d)), rng.integers(0, n, size=i)), lambda w, idx, p=p: Embedding.apply(w, idx, p), f"{n}x{d}[{i}],pad={p}",
           gradcheck=p is None)  # the padding row is frozen on purpose
    for n, d, i, p in [(10, 3, (4,), None), (7, 5, (2, 6), 0), (4, 2, (0,), None), (5, 4, (3, 3), 2)]])

