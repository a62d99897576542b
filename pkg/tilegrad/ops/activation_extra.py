"""The activations beyond the core ones: softplus, elu/selu, mish, hardtanh/relu6, hardswish,
hardsigmoid and logsigmoid. Each saves its input and has a ``<kernel>_backward(x, gy, *params)``
kernel; they run on the reference kernels on every backend (no native kernels yet)."""
from .base import Cost, Op, Sample, distinct, op, randn

SHAPES = [(7,), (3, 5), (2, 0, 4), (), (4, 129), (2, 3, 17)]


class _ParamUnary(Op):
    """An activation ``kernel(x, *params)`` whose backward is ``kernel_backward(x, gy, *params)``."""
    kernel_name = ""
    flops_per_element = 8
    cost = classmethod(lambda cls, x, *params: Cost(cls.flops_per_element * x.size, 2 * x.nbytes))

    @classmethod
    def forward(cls, ctx, x, *params):
        ctx.save_for_backward(x)
        ctx.params = params
        return ctx.kernel(cls.kernel_name, x, *params)

    @classmethod
    def backward(cls, ctx, gy):
        (x,) = ctx.saved_tensors
        return (ctx.kernel(cls.kernel_name + "_backward", x, gy, *ctx.params),) + (None,) * len(ctx.params)


def _samples(cls, gen, params_list):
    """One sample per shape, cycling through ``params_list``; kinks are avoided by ``distinct``."""
    def samples(rng):
        return [Sample((gen(rng, s),), lambda x, p=params_list[i % len(params_list)]: cls.apply(x, *p),
                       f"{s},{params_list[i % len(params_list)]}") for i, s in enumerate(SHAPES)]
    return staticmethod(samples)


@op
class Softplus(_ParamUnary):
    kernel_name = "softplus"


@op
class Elu(_ParamUnary):
    kernel_name = "elu"


@op
class Mish(_ParamUnary):
    kernel_name = "mish"
    flops_per_element = 12


@op
class Hardtanh(_ParamUnary):
    kernel_name = "hardtanh"
    flops_per_element = 2


@op
class Hardswish(_ParamUnary):
    kernel_name = "hardswish"
    flops_per_element = 4


@op
class Hardsigmoid(_ParamUnary):
    kernel_name = "hardsigmoid"
    flops_per_element = 3


@op
class LogSigmoid(_ParamUnary):
    kernel_name = "logsigmoid"


# beta * x never lands on the threshold for distinct values (they keep 0.05 away from multiples of 0.25).
Softplus.samples = _samples(Softplus, distinct, [(1.0, 20.0), (2.0, 1.0), (0.5, 20.0)])
Elu.samples = _samples(Elu, distinct, [(1.0, 1.0), (0.5, 1.0), (1.6732632423543772, 1.0507009873554805)])
Mish.samples = _samples(Mish, randn, [()])
Hardtanh.samples = _samples(Hardtanh, distinct, [(-1.0, 1.0), (0.0, 6.0), (-0.5, 2.0)])
Hardswish.samples = _samples(Hardswish, distinct, [()])
Hardsigmoid.samples = _samples(Hardsigmoid, distinct, [()])
LogSigmoid.samples = _samples(LogSigmoid, randn, [()])
