"""``cupyx.scipy.special`` of the NumPy-backed CuPy stand-in: the functions tilegrad uses."""
import math

import numpy as np

from cupy import _unwrap, _wrap

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_erf = np.vectorize(math.erf, otypes=[np.float64])


def erfc(x):
    a = _unwrap(x, "cupyx.scipy.special.erfc")
    return _wrap(_erfc(a).astype(np.result_type(a.dtype, np.float32)))


def erf(x):
    a = _unwrap(x, "cupyx.scipy.special.erf")
    return _wrap(_erf(a).astype(np.result_type(a.dtype, np.float32)))


def erfinv(x):
    # NumPy has no erfinv: the reference kernels' numba ufunc stands in for CuPy's.
    from tilegrad.backends.reference_math import _numba_special
    a = _unwrap(x, "cupyx.scipy.special.erfinv")
    return _wrap(_numba_special()[1](a.astype(np.result_type(a.dtype, np.float32))))
