"""Elementwise math from a table: trigonometric and hyperbolic functions, rounding, erf and its
kin, powers and logs of other bases (one op class per function, made by ``_unary``), the
two-argument functions atan2, hypot, fmod and remainder, nan_to_num, and cummax/cummin."""
import math

import numpy as np

from .base import Op, Sample, away_from_zero, binary_samples, distinct, op, positive, randn, unary_samples
from .sort import _Selection as Selection


def _within(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


def _off_integers(rng, shape):
    """Values at least 0.05 from any integer and from any half-integer, so rounding is
    differentiable there (zero gradient) and finite differences never cross a step."""
    whole = rng.integers(-4, 4, size=shape).astype(np.float64)
    return whole + rng.choice([0.1, 0.3, 0.7, 0.9], size=shape) + rng.uniform(-0.04, 0.04, size=shape)


def _c(x, value):
    """A constant in x's dtype (float32 stays float32)."""
    return x.dtype.type(value)


# name: (derivative dy/dx from (kernel, x, y), or None for a zero gradient; sample generator)
_TABLE = {
    "sin": (lambda k, x, y: k("cos", x), randn),
    "cos": (lambda k, x, y: -k("sin", x), randn),
    "tan": (lambda k, x, y: 1 + y * y, _within(-1.2, 1.2)),
    "asin": (lambda k, x, y: 1 / k("sqrt", 1 - x * x), _within(-0.9, 0.9)),
    "acos": (lambda k, x, y: -1 / k("sqrt", 1 - x * x), _within(-0.9, 0.9)),
    "atan": (lambda k, x, y: 1 / (1 + x * x), randn),
    "sinh": (lambda k, x, y: k("cosh", x), randn),
    "cosh": (lambda k, x, y: k("sinh", x), randn),
    "asinh": (lambda k, x, y: 1 / k("sqrt", x * x + 1), randn),
    "acosh": (lambda k, x, y: 1 / k("sqrt", (x - 1) * (x + 1)), _within(1.2, 4.0)),
    "atanh": (lambda k, x, y: 1 / (1 - x * x), _within(-0.9, 0.9)),
    "floor": (None, _off_integers),
    "ceil": (None, _off_integers),
    "trunc": (None, _off_integers),
    "frac": (lambda k, x, y: None, _off_integers),  # None here: the gradient passes unchanged
    "rsqrt": (lambda k, x, y: _c(x, -0.5) * y * y * y, positive),
    "reciprocal": (lambda k, x, y: -(y * y), away_from_zero),
    "erf": (lambda k, x, y: _c(x, 2 / math.sqrt(math.pi)) * k("exp", -(x * x)), randn),
    "erfc": (lambda k, x, y: _c(x, -2 / math.sqrt(math.pi)) * k("exp", -(x * x)), randn),
    "erfinv": (lambda k, x, y: _c(x, math.sqrt(math.pi) / 2) * k("exp", y * y), _within(-0.9, 0.9)),
    "expm1": (lambda k, x, y: y + 1, randn),
    "log2": (lambda k, x, y: 1 / (x * _c(x, math.log(2))), positive),
    "log10": (lambda k, x, y: 1 / (x * _c(x, math.log(10))), positive),
    "exp2": (lambda k, x, y: y * _c(x, math.log(2)), randn),
    "square": (lambda k, x, y: 2 * x, randn),
}


class _Unary(Op):
    """y = f(x) with the derivative from the table; the kernel has the function's name."""
    kernel_name = ""
    derivative = None

    @classmethod
    def forward(cls, ctx, x):
        y = ctx.kernel(cls.kernel_name, x)
        if cls.derivative is not None:
            ctx.save_for_backward(x, y)
        return y

    @classmethod
    def backward(cls, ctx, gy):
        if cls.derivative is None:  # a step function: zero gradient almost everywhere, as PyTorch
            from ..backends.reference import xp_of
            return xp_of(gy).zeros_like(gy)
        x, y = ctx.saved_tensors
        d = cls.derivative(ctx.kernel, x, y)
        return gy if d is None else gy * d


def _unary(name, derivative, gen):
    cls = type(name.capitalize(), (_Unary,), {"kernel_name": name, "__doc__": f"Elementwise ``{name}``.",
                                               "derivative": staticmethod(derivative) if derivative else None})
    cls.samples = staticmethod(lambda rng: unary_samples(rng, cls.apply, gen))
    return op(cls)


UNARY = {name: _unary(name, d, gen) for name, (d, gen) in _TABLE.items()}


@op
class Round(Op):
    """Round half to even, to ``decimals`` places; zero gradient as in PyTorch."""
    samples = staticmethod(lambda rng: [Sample((_off_integers(rng, s) * 10.0 ** -d,), lambda x, d=d: Round.apply(x, d),
                                               f"{s},decimals={d}") for s, d in [((7,), 0), ((3, 5), 1), ((2, 4), 2), ((), 0)]])

    @staticmethod
    def forward(ctx, x, decimals):
        return ctx.kernel("round", x, decimals)

    @staticmethod
    def backward(ctx, gy):
        from ..backends.reference import xp_of
        return xp_of(gy).zeros_like(gy), None


# ---- two arguments -------------------------------------------------------------------------
class _Binary(Op):
    kernel_name = ""

    @classmethod
    def forward(cls, ctx, a, b):
        y = ctx.kernel(cls.kernel_name, a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @classmethod
    def backward(cls, ctx, gy):
        a, b, y = ctx.saved_tensors
        da, db = cls.derivatives(ctx.kernel, a, b, y, ctx.needs_input_grad)
        return (gy * da if da is not None else None), (gy * db if db is not None else None)


@op
class Atan2(_Binary):
    """atan2(a, b): the angle of the point (b, a)."""
    kernel_name = "atan2"
    samples = staticmethod(lambda rng: binary_samples(rng, Atan2.apply, gen_b=away_from_zero))

    @staticmethod
    def derivatives(k, a, b, y, needs):
        r2 = a * a + b * b
        return (b / r2 if needs[0] else None), (-a / r2 if needs[1] else None)


@op
class Hypot(_Binary):
    """sqrt(a^2 + b^2) without overflow in the squares."""
    kernel_name = "hypot"
    samples = staticmethod(lambda rng: binary_samples(rng, Hypot.apply, away_from_zero, away_from_zero))

    @staticmethod
    def derivatives(k, a, b, y, needs):
        return (a / y if needs[0] else None), (b / y if needs[1] else None)


def _quotients(rng, shape):
    """Dividends whose quotient by the divisors below stays clear of whole numbers."""
    return _off_integers(rng, shape) * 1.5


@op
class Fmod(_Binary):
    """a - trunc(a / b) * b (the sign of a); d/db = -trunc(a / b), as PyTorch."""
    kernel_name = "fmod"
    samples = staticmethod(lambda rng: binary_samples(rng, Fmod.apply, _quotients, lambda r, s: np.full(s, 1.5)))

    @staticmethod
    def derivatives(k, a, b, y, needs):
        return (1 if needs[0] else None), (-k("trunc", a / b) if needs[1] else None)


@op
class Remainder(_Binary):
    """a - floor(a / b) * b (the sign of b, Python's %); d/db = -floor(a / b), as PyTorch."""
    kernel_name = "remainder"
    samples = staticmethod(lambda rng: binary_samples(rng, Remainder.apply, _quotients,
                                                      lambda r, s: np.full(s, -1.5)))

    @staticmethod
    def derivatives(k, a, b, y, needs):
        return (1 if needs[0] else None), (-k("floor", a / b) if needs[1] else None)


@op
class NanToNum(Op):
    """NaN, +inf and -inf replaced by given numbers; the gradient passes where x is finite."""
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: NanToNum.apply(x, 0.0, 1e3, -1e3)))

    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        ctx.save_for_backward(x)
        return ctx.kernel("nan_to_num", x, nan, posinf, neginf)

    @staticmethod
    def backward(ctx, gy):
        from ..backends.reference import xp_of
        (x,) = ctx.saved_tensors
        return gy * xp_of(x).isfinite(x), None, None, None


# ---- running extremes ----------------------------------------------------------------------
class _CumExtreme(Selection):
    """cummax / cummin: (values, indices); each value's gradient goes to the index it came from."""
    n_params = 1
    largest = True

    @classmethod
    def forward(cls, ctx, x, dim):
        values, idx = ctx.kernel("cum_extreme", x, dim, cls.largest)
        ctx.save_for_backward(idx)
        ctx.meta = dim, x.shape
        return values, idx


def _cum_samples(cls):
    return staticmethod(lambda rng: [Sample((distinct(rng, s),), lambda x, d=d: cls.apply(x, d), f"{s},dim={d}")
                                     for s, d in [((7,), 0), ((3, 5), 1), ((4, 3), 0), ((2, 0, 3), 2), ((2, 3, 6), 1)]])


@op
class Cummax(_CumExtreme):
    largest = True


@op
class Cummin(_CumExtreme):
    largest = False


Cummax.samples = _cum_samples(Cummax)
Cummin.samples = _cum_samples(Cummin)
