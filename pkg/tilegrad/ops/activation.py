"""Activations and (log-)softmax: the ops the native backends accelerate first."""
from .base import Cost, Op, Sample, distinct, op, randn, unary_samples

SOFTMAX_CASES = [((7,), -1), ((3, 5), -1), ((3, 5), 0), ((2, 0, 4), -1), ((4, 129), 1), ((2, 3, 4), 1), ((1,), 0)]


@op
class Relu(Op):
    # One sample above the native kernels' small-size cutoff, so parity covers the native path too;
    # gradcheck skips it (thousands of elements).
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Relu.apply(x), distinct) + [
        Sample((distinct(rng, (70, 131)),), lambda x: Relu.apply(x), "(70, 131) above the native cutoff", gradcheck=False)])

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel("relu", x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return ctx.kernel("relu_backward", x, gy)


class _OutputSavingUnary(Op):
    """An activation whose backward needs only its output: ``<kernel>_backward(y, gy)``."""
    kernel_name = ""
    cost = staticmethod(lambda x: Cost(4 * x.size, 2 * x.nbytes))

    @classmethod
    def forward(cls, ctx, x):
        y = ctx.kernel(cls.kernel_name, x)
        ctx.save_for_backward(y)
        return y

    @classmethod
    def backward(cls, ctx, gy):
        (y,) = ctx.saved_tensors
        return ctx.kernel(cls.kernel_name + "_backward", y, gy)


@op
class Sigmoid(_OutputSavingUnary):
    kernel_name = "sigmoid"
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Sigmoid.apply(x)))


@op
class Tanh(_OutputSavingUnary):
    kernel_name = "tanh"
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Tanh.apply(x)))


class _SoftmaxLike(Op):
    """softmax / log_softmax over ``dim``: the backward kernel needs only the output."""
    kernel_name = ""
    cost = staticmethod(lambda x, dim: Cost(5 * x.size, 2 * x.nbytes))

    @classmethod
    def forward(cls, ctx, x, dim):
        y = ctx.kernel(cls.kernel_name, x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @classmethod
    def backward(cls, ctx, gy):
        (y,) = ctx.saved_tensors
        return ctx.kernel(cls.kernel_name + "_backward", y, gy, ctx.dim), None


def _softmax_samples(cls):
    return lambda rng: [Sample((randn(rng, s),), lambda x, d=d: cls.apply(x, d), f"{s},dim={d}") for s, d in SOFTMAX_CASES]


@op
class Softmax(_SoftmaxLike):
    kernel_name = "softmax"


@op
class LogSoftmax(_SoftmaxLike):
    kernel_name = "log_softmax"


Softmax.samples = staticmethod(_softmax_samples(Softmax))
LogSoftmax.samples = staticmethod(_softmax_samples(LogSoftmax))


@op
class LeakyRelu(Op):
    samples = staticmethod(lambda rng: [Sample((distinct(rng, s),), lambda x, a=a: LeakyRelu.apply(x, a), f"{s},slope={a}")
                                        for s, a in [((7,), 0.01), ((3, 5), 0.2), ((0, 2), 0.1), ((), 0.3)]])

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return ctx.kernel("leaky_relu", x, slope)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return ctx.kernel("leaky_relu_backward", x, gy, ctx.slope), None


@op
class Gelu(Op):
    """x * Phi(x), exactly (``approximate="none"``, with erf) or with PyTorch's tanh form."""
    samples = staticmethod(lambda rng: [Sample((randn(rng, s),), lambda x, a=a: Gelu.apply(x, a), f"{s},{a}")
                                        for s, a in [((7,), "none"), ((3, 5), "tanh"), ((4, 129), "none"), ((0,), "tanh"), ((), "none")]])
    cost = staticmethod(lambda x, approximate: Cost(10 * x.size, 2 * x.nbytes))

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return ctx.kernel("gelu", x, approximate)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return ctx.kernel("gelu_backward", x, gy, ctx.approximate), None


@op
class Silu(Op):
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Silu.apply(x)))
    cost = staticmethod(lambda x: Cost(5 * x.size, 2 * x.nbytes))

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel("silu", x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return ctx.kernel("silu_backward", x, gy)
