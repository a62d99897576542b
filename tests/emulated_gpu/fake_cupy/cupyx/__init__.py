"""``cupyx`` of the NumPy-backed CuPy stand-in (see cupy/__init__.py): what tilegrad uses."""
import importlib

import numpy as np

from cupy import _unwrap, _wrap


def scatter_add(a, slices, value):
    """a[slices] += value with repeated indices accumulated (np.add.at), in place on the device array."""
    np.add.at(_unwrap(a, "cupyx.scatter_add"), _unwrap(slices, "cupyx.scatter_add"), _unwrap(value, "cupyx.scatter_add"))


def rsqrt(x):
    return _wrap(1 / np.sqrt(_unwrap(x, "cupyx.rsqrt")))


scipy = importlib.import_module(".scipy", __name__)
