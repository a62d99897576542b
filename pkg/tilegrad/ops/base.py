"""The pieces every op is made of: the ``Op`` base, the ``@op`` registry, samples and cost."""
import math
from typing import Callable, NamedTuple

import numpy as np

from ..autograd import Function

OPS = {}


class Op(Function):
    """An op of the table: ``forward(ctx, *arrays_and_params)`` returns an array (or a tuple of
    arrays), ``backward(ctx, *grad_arrays)`` returns one gradient per forward argument (None
    where there is none). Both work on raw NumPy/CuPy arrays; ``ctx.kernel(name, ...)`` calls
    the device backend's kernel. Broadcast gradients are reduced by the autograd engine."""

    raw_arrays = True

    @staticmethod
    def samples(rng):
        return []

    @staticmethod
    def cost(*arrays):
        """Cost(flops, bytes moved) of one forward on these inputs; elementwise by default."""
        return elementwise_cost(*arrays)


def op(cls):
    """Register an op class in ``OPS`` under its name."""
    if cls.__name__ in OPS:
        raise ValueError(f"op {cls.__name__} is defined twice")
    OPS[cls.__name__] = cls
    return cls


class Cost(NamedTuple):
    flops: float
    bytes: float


class Sample(NamedTuple):
    """One test case of an op: ``inputs`` (NumPy arrays; the floating ones become tensors of the
    dtype under test, the others keep theirs) and ``call(*tensors)`` running the op on them."""
    inputs: tuple
    call: Callable
    desc: str
    differentiable: bool = True
    gradcheck: bool = True  # False where the op's gradient deliberately is not the derivative


# ---- input generators ---------------------------------------------------------------------
BINARY_SHAPES = [((7,), (7,)), ((3, 5), (5,)), ((2, 1, 4), (3, 1)), ((0, 3), (3,)),
                 ((1,), ()), ((), ()), ((4, 129), (4, 1)), ((33,), (1,))]
UNARY_SHAPES = [(7,), (3, 5), (2, 0, 4), (1,), (), (4, 129), (2, 3, 17)]


def randn(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def distinct(rng, shape):
    """Values with no ties and no two entries within 0.1 of each other, so max/min, clamp and
    relu are differentiable at every sample point and finite differences stay on one side."""
    n = math.prod(shape)
    values = (rng.permutation(n) - n / 2) * 0.25 + rng.uniform(0.05, 0.1)
    return values.reshape(shape)


def unary_samples(rng, call, gen=randn, shapes=UNARY_SHAPES):
    return [Sample((gen(rng, s),), call, f"{s}") for s in shapes]


def binary_samples(rng, call, gen_a=randn, gen_b=randn, shapes=BINARY_SHAPES):
    return [Sample((gen_a(rng, a), gen_b(rng, b)), call, f"{a},{b}") for a, b in shapes]


def elementwise_cost(*arrays):
    """One flop per output element; every input read once and the output written once."""
    arrays = [a for a in arrays if hasattr(a, "shape")]
    size = math.prod(np.broadcast_shapes(*(a.shape for a in arrays)))
    item = max(a.itemsize for a in arrays)
    return Cost(size, sum(a.nbytes for a in arrays) + size * item)
