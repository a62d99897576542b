"""Elementwise math methods of ``tilegrad.Tensor`` (a mixin): trigonometric, rounding, erf and
kin, atan2/hypot/fmod/remainder/lerp, the is*/logical/bitwise predicates (no gradient), the
in-place forms of every elementwise method, and the random in-place fills."""
import numbers

import numpy as np

from . import dtypes
from .autograd import TensorBase
from .backends.reference import xp_of
from .ops import math as MA


def _unary_method(name):
    cls = MA.UNARY[name]

    def method(self):
        return cls.apply(self._floating())
    method.__name__ = name
    method.__doc__ = f"Elementwise ``{name}`` (integer inputs compute in the default float dtype)."
    return method


def _step_method(name):
    """floor/ceil/trunc: integers are already whole, so they come back unchanged (a copy)."""
    cls = MA.UNARY[name]

    def method(self):
        return self.clone() if self._data.dtype.kind in "biu" else cls.apply(self)
    method.__name__ = name
    return method


class MathMethods:
    """Mixin of Tensor: elementwise math over the ops of ``ops.math``."""

    __slots__ = ()

    sin, cos, tan = _unary_method("sin"), _unary_method("cos"), _unary_method("tan")
    asin, acos, atan = _unary_method("asin"), _unary_method("acos"), _unary_method("atan")
    sinh, cosh = _unary_method("sinh"), _unary_method("cosh")
    asinh, acosh, atanh = _unary_method("asinh"), _unary_method("acosh"), _unary_method("atanh")
    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
    floor, ceil, trunc = _step_method("floor"), _step_method("ceil"), _step_method("trunc")
    fix = trunc
    frac = _unary_method("frac")
    rsqrt, reciprocal = _unary_method("rsqrt"), _unary_method("reciprocal")
    erf, erfc, erfinv = _unary_method("erf"), _unary_method("erfc"), _unary_method("erfinv")
    expm1, log2, log10, exp2 = _unary_method("expm1"), _unary_method("log2"), _unary_method("log10"), _unary_method("exp2")

    def square(self):
        if self._data.dtype.kind in "biu":  # integer squares stay integers, as in PyTorch
            return self * self
        return MA.UNARY["square"].apply(self)

    def round(self, decimals=0):  # noqa: A003 - PyTorch's name
        if not isinstance(decimals, numbers.Integral):
            raise TypeError(f"round(): decimals must be an int, got {type(decimals).__name__}")
        if self._data.dtype.kind in "biu":
            if decimals:
                raise RuntimeError("round(): decimals is not supported for integer tensors")
            return self.clone()
        return MA.Round.apply(self, int(decimals))

    def clamp_min(self, min):  # noqa: A002 - PyTorch's argument name
        return self.clamp(min=min)

    def clamp_max(self, max):  # noqa: A002
        return self.clamp(max=max)

    # ---- two arguments -----------------------------------------------------------------
    def _float_pair(self, other, name):
        a, b = self._operands(other, name)
        if a._data.dtype.kind != "f":
            a = a.to(dtypes.DEFAULT_FLOAT)
            b = b.to(dtypes.DEFAULT_FLOAT) if isinstance(b, TensorBase) else dtypes.DEFAULT_FLOAT.np.type(b)
        return a, b

    def _binary_math(self, cls, other, name):
        a, b = self._float_pair(other, name)
        if not isinstance(b, TensorBase):
            b = type(self)(xp_of(a._data).asarray(b), a._device)
        return cls.apply(a, b)

    def atan2(self, other):
        return self._binary_math(MA.Atan2, other, "atan2")

    arctan2 = atan2

    def hypot(self, other):
        return self._binary_math(MA.Hypot, other, "hypot")

    def _modulo(self, cls, other, reverse=False):
        a, b = self._operands(other, cls.__name__.lower())
        if not isinstance(b, TensorBase):
            b = type(self)(xp_of(a._data).asarray(b), a._device)
        if reverse:
            a, b = b, a
        if a._data.dtype.kind in "biu":  # integer remainders: exact, no gradient
            if bool((b._data == 0).any()):
                raise ZeroDivisionError(f"{cls.__name__.lower()}(): integer division by zero")
            return type(self)(getattr(xp_of(a._data), cls.kernel_name)(a._data, b._data), a._device)
        return cls.apply(a, b)

    def fmod(self, other):
        return self._modulo(MA.Fmod, other)

    def remainder(self, other):
        return self._modulo(MA.Remainder, other)

    def __mod__(self, other): return self._modulo(MA.Remainder, other)  # noqa: E704
    def __rmod__(self, other): return self._modulo(MA.Remainder, other, reverse=True)  # noqa: E704

    def lerp(self, end, weight):
        """self + weight * (end - self); ``weight`` a number or a tensor (broadcasting)."""
        if not isinstance(end, TensorBase):
            raise TypeError(f"lerp(): end must be a Tensor, not {type(end).__name__}")
        if end.dtype != self.dtype or (isinstance(weight, TensorBase) and weight.dtype != self.dtype):
            raise RuntimeError(f"lerp(): expected dtype {self.dtype} for end and weight")
        if self._data.dtype.kind != "f":
            raise RuntimeError(f"lerp(): expected a floating point tensor, got {self.dtype}")
        return self + weight * (end - self)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        """NaN -> ``nan``, +inf -> ``posinf`` (default: the dtype's largest), -inf -> ``neginf``."""
        if self._data.dtype.kind != "f":
            return self.clone()
        info = np.finfo(self._data.dtype)
        posinf = float(info.max) if posinf is None else posinf
        neginf = float(info.min) if neginf is None else neginf
        return MA.NanToNum.apply(self, nan, posinf, neginf)

    # ---- predicates and bitwise ops (bool/integer results, no gradient) -------------------
    def _predicate(self, fn, *others):
        arrays = [o._data if isinstance(o, TensorBase) else o for o in others]
        xp = xp_of(self._data)
        return type(self)(xp.asarray(getattr(xp, fn)(self._data, *arrays)), self._device)

    def isnan(self): return self._predicate("isnan")  # noqa: E704
    def isinf(self): return self._predicate("isinf")  # noqa: E704
    def isfinite(self): return self._predicate("isfinite")  # noqa: E704
    def isposinf(self): return self._predicate("isposinf")  # noqa: E704
    def isneginf(self): return self._predicate("isneginf")  # noqa: E704
    def signbit(self): return self._predicate("signbit")  # noqa: E704
    def isreal(self): return self._predicate("isreal")  # noqa: E704
    def logical_not(self): return self._predicate("logical_not")  # noqa: E704
    def logical_and(self, other): return self._predicate("logical_and", other)  # noqa: E704
    def logical_or(self, other): return self._predicate("logical_or", other)  # noqa: E704
    def logical_xor(self, other): return self._predicate("logical_xor", other)  # noqa: E704

    def _bitwise(self, fn, *others):
        for t in (self,) + others:
            if isinstance(t, TensorBase) and t._data.dtype.kind not in "biu":
                raise TypeError(f"{fn}(): only integer and bool tensors are supported, got {t.dtype}")
        if others and isinstance(others[0], TensorBase):
            a, b = self._operands(others[0], fn)
            return a._predicate(fn, b)
        return self._predicate(fn, *others)

    def bitwise_not(self): return self._bitwise("invert")  # noqa: E704
    def bitwise_and(self, other): return self._bitwise("bitwise_and", other)  # noqa: E704
    def bitwise_or(self, other): return self._bitwise("bitwise_or", other)  # noqa: E704
    def bitwise_xor(self, other): return self._bitwise("bitwise_xor", other)  # noqa: E704
    __invert__ = bitwise_not
    __and__ = __rand__ = bitwise_and
    __or__ = __ror__ = bitwise_or
    __xor__ = __rxor__ = bitwise_xor

    def heaviside(self, values):
        """0 where x < 0, 1 where x > 0, ``values`` where x == 0 (no gradient, as PyTorch)."""
        if not isinstance(values, TensorBase) or values.dtype != self.dtype:
            raise RuntimeError("heaviside(): values must be a Tensor of the input's dtype")
        return self._predicate("heaviside", values)

    # ---- random in-place fills (outside autograd, like fill_) -------------------------------
    def _random_fill(self, draw, generator):
        """Overwrite with ``draw(rng, shape)``, rng being the (seeded) CPU generator's NumPy
        Generator. GPU tensors draw on the CPU too and copy the values over, so a seed gives the
        same numbers on every device (nn.init does the same)."""
        from .random import default_generator
        self._check_inplace()
        values = np.asarray(draw((generator or default_generator).np, self.shape)).astype(self._data.dtype)
        self._data[...] = values if self._device.type == "cpu" else xp_of(self._data).asarray(values)
        return self

    def uniform_(self, from_=0.0, to=1.0, *, generator=None):
        return self._random_fill(lambda g, s: g.uniform(from_, to, s), generator)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        if std < 0:
            raise RuntimeError(f"normal_(): expects std >= 0.0, but found std {std}")
        return self._random_fill(lambda g, s: g.normal(mean, std, s), generator)

    def bernoulli_(self, p=0.5, *, generator=None):
        p_array = p.detach().cpu()._data if isinstance(p, TensorBase) else np.asarray(p)
        if not bool(((p_array >= 0) & (p_array <= 1)).all()):
            raise RuntimeError(f"bernoulli_(): p must be in [0, 1], got {p}")
        return self._random_fill(lambda g, s: g.random(s) < p_array, generator)

    def exponential_(self, lambd=1.0, *, generator=None):
        if lambd <= 0:
            raise RuntimeError(f"exponential_(): expects lambd > 0.0, but found lambd={lambd}")
        return self._random_fill(lambda g, s: g.exponential(1.0 / lambd, s), generator)

    def random_(self, from_=0, to=None, *, generator=None):
        """Integers uniform in [from_, to); ``random_(n)`` is [0, n); with no bound, [0, 2^m]
        where m is the dtype's mantissa width (floats) or its largest value (integers)."""
        if to is None and from_ != 0:
            from_, to = 0, from_
        if to is None:
            kind = self._data.dtype
            to = (2 ** (np.finfo(kind).nmant + 1) + 1 if kind.kind == "f" else
                  2 if kind == np.bool_ else int(np.iinfo(kind).max))
        if from_ >= to:
            raise RuntimeError(f"random_(): expects 'from' to be less than 'to', but got from={from_} >= to={to}")
        return self._random_fill(lambda g, s: g.integers(from_, to, s), generator)


# In-place forms: x.sin_() is x.sin() written back into x (with the autograd rules of _inplace).
INPLACE = ("abs neg exp log log1p sqrt sigmoid tanh sign sin cos tan asin acos atan sinh cosh asinh acosh atanh "
           "floor ceil trunc frac round rsqrt reciprocal erf erfc erfinv expm1 log2 log10 exp2 square atan2 hypot "
           "fmod remainder lerp clamp_min clamp_max nan_to_num masked_fill logical_not logical_and logical_or "
           "logical_xor bitwise_not bitwise_and bitwise_or bitwise_xor arcsin arccos arctan arcsinh arccosh "
           "arctanh fix").split()


def _inplace_method(name):
    def method(self, *args, **kwargs):
        out_of_place = getattr(type(self), name)
        return self._inplace(lambda t: out_of_place(t, *args, **kwargs))
    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``."
    return method


for _name in INPLACE:
    setattr(MathMethods, _name + "_", _inplace_method(_name))
