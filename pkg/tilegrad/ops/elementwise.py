"""Elementwise ops: arithmetic with broadcasting, comparisons, where, and unary math."""
from .base import (Op, Sample, away_from_zero, binary_samples, distinct, op, positive, randn,
                   unary_samples)


@op
class Add(Op):
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Add.apply(a, b)))

    @staticmethod
    def forward(ctx, a, b):
        return ctx.kernel("add", a, b)

    @staticmethod
    def backward(ctx, gy):
        return gy, gy


@op
class Sub(Op):
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Sub.apply(a, b)))

    @staticmethod
    def forward(ctx, a, b):
        return ctx.kernel("sub", a, b)

    @staticmethod
    def backward(ctx, gy):
        return gy, (-gy if ctx.needs_input_grad[1] else None)


@op
class Mul(Op):
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Mul.apply(a, b)))

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(a if need_b else None, b if need_a else None)  # only what backward uses
        return ctx.kernel("mul", a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return (gy * b if ctx.needs_input_grad[0] else None), (gy * a if ctx.needs_input_grad[1] else None)


@op
class Div(Op):
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Div.apply(a, b), gen_b=away_from_zero))

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.kernel("div", a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = gy / b if ctx.needs_input_grad[0] else None
        gb = -gy * a / (b * b) if ctx.needs_input_grad[1] else None
        return ga, gb


@op
class Pow(Op):
    """``a ** b`` for two tensors; the exponent's gradient is 0 where the base is 0."""
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Pow.apply(a, b), gen_a=positive))

    @staticmethod
    def forward(ctx, a, b):
        y = ctx.kernel("pow", a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        ga = gy * b * ctx.kernel("pow", a, b - 1) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            safe = ctx.kernel("where", a > 0, a, 1)
            gb = gy * y * ctx.kernel("log", safe) * (a > 0)
        return ga, gb


@op
class PowScalar(Op):
    """``x ** p`` for a Python number ``p``."""
    samples = staticmethod(lambda rng: [Sample((positive(rng, s),), lambda x, p=p: PowScalar.apply(x, p), f"{s}**{p}")
                                        for s, p in [((7,), 2), ((3, 5), 0.5), ((2, 3), -1.5), ((0,), 3), ((), 3)]])

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x)
        ctx.p = p
        return ctx.kernel("pow", x, x.dtype.type(p) if x.dtype.kind == "f" else p)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        p = ctx.p
        return gy * (p * ctx.kernel("pow", x, x.dtype.type(p - 1))), None


class _MaxMin(Op):
    """maximum/minimum: the gradient goes to the chosen input, split evenly on ties (PyTorch)."""
    kernel_name = ""

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.kernel(cls.kernel_name, a, b)

    @classmethod
    def backward(cls, ctx, gy):
        a, b = ctx.saved_tensors
        a_wins, b_wins = ((a > b), (b > a)) if cls.kernel_name == "maximum" else ((a < b), (b < a))
        tie = (a == b) * 0.5
        ga = gy * (a_wins + tie) if ctx.needs_input_grad[0] else None
        gb = gy * (b_wins + tie) if ctx.needs_input_grad[1] else None
        return ga, gb


@op
class Maximum(_MaxMin):
    kernel_name = "maximum"
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Maximum.apply(a, b), distinct, distinct))


@op
class Minimum(_MaxMin):
    kernel_name = "minimum"
    samples = staticmethod(lambda rng: binary_samples(rng, lambda a, b: Minimum.apply(a, b), distinct, distinct))


class _Compare(Op):
    """Comparisons return bool tensors and have no gradient."""
    differentiable = False
    kernel_name = ""

    @classmethod
    def forward(cls, ctx, a, b):
        return ctx.kernel(cls.kernel_name, a, b)


def _compare_op(name):
    cls = type(name.capitalize(), (_Compare,), {"kernel_name": name})
    cls.samples = staticmethod(lambda rng: [Sample(s.inputs, lambda a, b: cls.apply(a, b), s.desc, False)
                                            for s in binary_samples(rng, None, distinct, distinct)])
    return op(cls)


Eq, Ne, Lt, Le, Gt, Ge = (_compare_op(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))


@op
class Where(Op):
    samples = staticmethod(lambda rng: [
        Sample((rng.random(c) > 0.5, randn(rng, a), randn(rng, b)), lambda c, a, b: Where.apply(c, a, b), f"{c},{a},{b}")
        for c, a, b in [((7,), (7,), (7,)), ((3, 5), (5,), (3, 1)), ((2, 1), (2, 3), ()), ((0, 2), (2,), (2,))]])

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return ctx.kernel("where", cond, a, b)

    @staticmethod
    def backward(ctx, gy):
        (cond,) = ctx.saved_tensors
        zero = gy.dtype.type(0)
        ga = ctx.kernel("where", cond, gy, zero) if ctx.needs_input_grad[1] else None
        gb = ctx.kernel("where", cond, zero, gy) if ctx.needs_input_grad[2] else None
        return None, ga, gb


# ---- unary --------------------------------------------------------------------------------
@op
class Neg(Op):
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Neg.apply(x)))

    @staticmethod
    def forward(ctx, x):
        return ctx.kernel("neg", x)

    @staticmethod
    def backward(ctx, gy):
        return -gy


@op
class Exp(Op):
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Exp.apply(x)))

    @staticmethod
    def forward(ctx, x):
        y = ctx.kernel("exp", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


@op
class Log(Op):
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Log.apply(x), positive))

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel("log", x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / x


@op
class Log1p(Op):
    """log(1 + x), accurate for small x."""
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Log1p.apply(x), positive))

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel("log1p", x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / (1 + x)


@op
class Sqrt(Op):
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Sqrt.apply(x), positive))

    @staticmethod
    def forward(ctx, x):
        y = ctx.kernel("sqrt", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2 * y)


@op
class Abs(Op):
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Abs.apply(x), away_from_zero))

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel("abs", x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * ctx.kernel("sign", x)


@op
class Clamp(Op):
    """``clamp(x, min, max)``; the gradient passes where min <= x <= max."""
    samples = staticmethod(lambda rng: [Sample((distinct(rng, s),), lambda x, lo=lo, hi=hi: Clamp.apply(x, lo, hi), f"{s},{lo},{hi}")
                                        for s, lo, hi in [((7,), -0.52, 0.53), ((3, 5), None, 0.27), ((4, 9), -0.33, None), ((0,), 0, 1)]])

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return ctx.kernel("clamp", x, lo, hi)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        keep = 1
        if ctx.lo is not None:
            keep = keep * (x >= ctx.lo)
        if ctx.hi is not None:
            keep = keep * (x <= ctx.hi)
        return gy * keep, None, None


@op
class Cast(Op):
    """Conversion to another dtype; differentiable between floating types."""
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Cast.apply(x, "float64")))

    @staticmethod
    def forward(ctx, x, np_dtype):
        return ctx.kernel("cast", x, np_dtype)

    @staticmethod
    def backward(ctx, gy):
        return gy, None  # the engine casts the gradient back to the input's dtype


@op
class Copy(Op):
    """A fresh contiguous copy (``clone``, ``contiguous``)."""
    samples = staticmethod(lambda rng: unary_samples(rng, lambda x: Copy.apply(x)))

    @staticmethod
    def forward(ctx, x):
        return ctx.kernel("copy", x)

    @staticmethod
    def backward(ctx, gy):
        return gy
