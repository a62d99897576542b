"""Matrix products (batched, broadcasting over leading dims; 1-D operands are promoted by the
tensor layer, as in PyTorch)."""
import math

from .base import Cost, Op, Sample, op, randn

MATMUL_SHAPES = [((3, 4), (4, 5)), ((1, 7), (7, 1)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 6)),
                 ((5, 4), (3, 4, 2)), ((0, 3), (3, 4)), ((3, 0), (0, 2)), ((33, 65), (65, 17))]


def _swap(a):
    return a.swapaxes(-1, -2)


@op
class MatMul(Op):
    samples = staticmethod(lambda rng: [Sample((randn(rng, a), randn(rng, b)), lambda a, b: MatMul.apply(a, b), f"{a}@{b}")
                                        for a, b in MATMUL_SHAPES])

    @staticmethod
    def cost(a, b):
        batch = math.prod(a.shape[:-2]) if a.ndim > b.ndim else math.prod(b.shape[:-2])
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        return Cost(2 * batch * m * n * k, a.nbytes + b.nbytes + batch * m * n * a.itemsize)

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"MatMul needs operands of at least 2 dims, got {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"MatMul: shapes {a.shape} and {b.shape} cannot be multiplied "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        ctx.save_for_backward(a, b)
        return ctx.kernel("matmul", a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = ctx.kernel("matmul", gy, _swap(b)) if ctx.needs_input_grad[0] else None
        gb = ctx.kernel("matmul", _swap(a), gy) if ctx.needs_input_grad[1] else None
        return ga, gb
