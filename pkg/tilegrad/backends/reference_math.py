"""Reference kernels of elementwise math beyond arithmetic: trigonometric and hyperbolic
functions, rounding, erf and its kin, the two-argument functions (atan2, hypot, fmod,
remainder), nan_to_num, and the running max/min scans (cummax/cummin with their indices).
Each works on NumPy and CuPy arrays alike (``xp = xp_of(x)``)."""
import functools
import math

import numpy as np

from .reference import xp_of
from .reference_nn import erfc


def _ufunc(name):
    def kernel(x):
        return getattr(xp_of(x), name)(x)
    kernel.__name__ = name
    return kernel


# kernel name -> the NumPy/CuPy function of the same meaning
_SAME = {"sin": "sin", "cos": "cos", "tan": "tan", "asin": "arcsin", "acos": "arccos", "atan": "arctan",
         "sinh": "sinh", "cosh": "cosh", "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh",
         "floor": "floor", "ceil": "ceil", "trunc": "trunc", "expm1": "expm1", "log2": "log2", "log10": "log10",
         "exp2": "exp2", "square": "square", "reciprocal": "reciprocal"}


def rsqrt(x):
    return 1 / xp_of(x).sqrt(x)


def frac(x):
    return x - xp_of(x).trunc(x)


def round_(x, decimals):
    """Round half to even, as PyTorch; with ``decimals`` the value is scaled by 10**decimals
    first (and back after), which is how PyTorch defines it too."""
    xp = xp_of(x)
    if decimals == 0:
        return xp.round(x)
    scale = x.dtype.type(10.0 ** decimals)
    return xp.round(x * scale) / scale


@functools.lru_cache(maxsize=None)
def _numba_special():
    """erf and erfinv as NumPy ufuncs, compiled by numba on first use (NumPy has neither)."""
    import numba

    @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
    def erf(v):
        return math.erf(v)

    @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
    def erfinv(v):
        # Giles' single-precision approximation, then two Newton steps on erf(y) = v, which
        # bring it to double precision. |v| = 1 gives +-inf and |v| > 1 NaN, as in PyTorch.
        y = float(v)
        if y != y or abs(y) > 1.0:
            return math.nan
        if abs(y) == 1.0:
            return math.copysign(math.inf, y)
        w = -math.log((1.0 - y) * (1.0 + y))
        if w < 5.0:
            w -= 2.5
            p = 2.81022636e-08
            for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                      -0.00417768164, 0.246640727, 1.50140941):
                p = c + p * w
        else:
            w = math.sqrt(w) - 3.0
            p = -0.000200214257
            for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                      0.00943887047, 1.00167406, 2.83297682):
                p = c + p * w
        r = p * y
        for _ in range(2):
            r -= (math.erf(r) - y) / (2.0 / math.sqrt(math.pi) * math.exp(-r * r))
        return r
    return erf, erfinv


def _special(x, numpy_index, cupy_name):
    if isinstance(x, (np.ndarray, np.generic)):
        fn = _numba_special()[numpy_index]
        return fn(x.astype(np.float32)).astype(np.float16) if x.dtype == np.float16 else fn(x)
    import cupyx.scipy.special
    return getattr(cupyx.scipy.special, cupy_name)(x)


def erf(x):
    return _special(x, 0, "erf")


def erfinv(x):
    return _special(x, 1, "erfinv")


def atan2(a, b):
    return xp_of(a).arctan2(a, b)


def hypot(a, b):
    return xp_of(a).hypot(a, b)


def fmod(a, b):
    """The remainder with the sign of the dividend (C's fmod)."""
    return xp_of(a).fmod(a, b)


def remainder(a, b):
    """The remainder with the sign of the divisor (Python's %)."""
    return xp_of(a).remainder(a, b)


def nan_to_num(x, nan, posinf, neginf):
    return xp_of(x).nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


def cum_extreme(x, dim, largest):
    """(values, int64 indices) of the running max (``largest``) or min along ``dim``. On ties
    the index moves to the later element, as PyTorch's does; a NaN wins and then sticks."""
    xp = xp_of(x)
    moved = xp.moveaxis(x, dim, 0)
    values = xp.empty_like(moved)
    indices = xp.empty(moved.shape, dtype=np.int64)
    for i in range(moved.shape[0]):
        v = moved[i]
        if i == 0:
            values[0], indices[0] = v, 0
            continue
        best = values[i - 1]
        take = (v >= best) if largest else (v <= best)
        take = take | (xp.isnan(v) & ~xp.isnan(best))
        values[i] = xp.where(take, v, best)
        indices[i] = xp.where(take, i, indices[i - 1])
    return xp.moveaxis(values, 0, dim), xp.moveaxis(indices, 0, dim)


KERNELS = {name: _ufunc(fn) for name, fn in _SAME.items()}
KERNELS.update({"rsqrt": rsqrt, "frac": frac, "round": round_, "erf": erf, "erfc": erfc, "erfinv": erfinv, "atan2": atan2,
                "hypot": hypot, "fmod": fmod, "remainder": remainder, "nan_to_num": nan_to_num,
                "cum_extreme": cum_extreme})
