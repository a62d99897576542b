"""Matrix products (batched, broadcasting over leading dims; 1-D operands are promoted by the
tensor layer, as in PyTorch)."""
import math

from .base import Cost, Op, Sample, op, randn

MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 2, 3, 4), (4, 5)), ((1, 7), (7, 1)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 6)),
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
        gb = None
        if ctx.needs_input_grad[1]:
            if a.ndim > 2 and b.ndim == 2:
                # (..., M, K) @ (K, N): one (K, rows) @ (rows, N) product over every leading row
                # instead of a batch of products summed afterwards.
                k, n = b.shape
                gb = ctx.kernel("matmul", a.reshape(-1, k).T, gy.reshape(-1, n))
            else:
                gb = ctx.kernel("matmul", _swap(a), gy)
        return ga, gb


@op
class Linear(Op):
    """y = activation(x @ w^T + b) over x's last dim (F.linear, or F.linear then ReLU when
    nn.Sequential fuses the pair): one node, where the composed form makes three or four
    (transpose, matmul, add, relu) and its weight gradient arrives as a transposed view.
    activation: None or "relu"."""

    @staticmethod
    def cost(x, w, b=None, activation=None):
        rows = math.prod(x.shape[:-1])
        out, k = w.shape
        return Cost(2 * rows * out * k, x.nbytes + w.nbytes + rows * out * x.itemsize)

    @staticmethod
    def forward(ctx, x, w, b, activation=None):
        if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[1] or (b is not None and b.shape != w.shape[:1]):
            raise ValueError(f"Linear: input {x.shape}, weight {w.shape} and bias "
                             f"{None if b is None else b.shape} do not fit (..., in), (out, in), (out,)")
        y = ctx.kernel("linear", x, w, b, activation or "none")
        # relu: the output's sign is the mask the backward needs
        ctx.save_for_backward(x, w, y if activation == "relu" else None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, y = ctx.saved_tensors
        if y is not None:
            gy = ctx.kernel("relu_backward", y, gy)
        need = ctx.needs_input_grad
        gy2 = gy.reshape(-1, w.shape[0])
        gx = ctx.kernel("matmul", gy2, w).reshape(x.shape) if need[0] else None
        # (out, rows) @ (rows, in): the weight gradient comes out in the weight's own layout.
        gw = ctx.kernel("matmul", gy2.T, x.reshape(-1, w.shape[1])) if need[1] else None
        gb = gy2.sum(axis=0) if need[2] else None
        return gx, gw, gb, None


def _linear_samples(rng):
    cases = [((5, 4), 3, True, None), ((2, 3, 4), 6, True, None), ((4,), 2, True, None), ((7, 33), 65, False, None),
             ((1, 1), 1, True, None), ((0, 3), 2, True, None),
             ((6, 5), 7, True, "relu"), ((2, 3, 9), 4, False, "relu")]
    out = []
    for xs, n_out, bias, act in cases:
        ws = (n_out, xs[-1])
        if bias:
            out.append(Sample((randn(rng, xs), randn(rng, ws), randn(rng, (n_out,))),
                              lambda x, w, b, act=act: Linear.apply(x, w, b, act), f"x{xs},w{ws},bias,act={act}"))
        else:
            out.append(Sample((randn(rng, xs), randn(rng, ws)), lambda x, w, act=act: Linear.apply(x, w, None, act),
                              f"x{xs},w{ws},act={act}"))
    return out


Linear.samples = staticmethod(_linear_samples)
