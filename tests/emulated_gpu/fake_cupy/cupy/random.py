"""``cupy.random`` of the NumPy-backed CuPy stand-in: NumPy's generators, results on the device.
CuPy's functions take a ``dtype``; NumPy's legacy ones do not, so it is applied afterwards."""
import numpy as np

from . import _wrap

_state = np.random.RandomState()


def seed(seed=None):
    _state.seed(None if seed is None else int(seed) % 2**32)


def _drawing(name):
    def draw(*args, dtype=None, **kwargs):
        out = np.asarray(getattr(_state, name)(*args, **kwargs))
        return _wrap(out if dtype is None else out.astype(dtype))
    draw.__name__ = name
    return draw


for _name in ("random_sample", "random", "rand", "randn", "standard_normal", "uniform", "normal", "randint",
              "permutation", "choice", "shuffle", "integers"):
    if hasattr(_state, _name):
        globals()[_name] = _drawing(_name)


class Generator:
    """``cupy.random.default_rng(seed)``: NumPy's Generator, results on the device."""

    def __init__(self, seed=None):
        self._gen = np.random.default_rng(seed)

    def __getattr__(self, name):
        fn = getattr(self._gen, name)

        def call(*args, **kwargs):
            return _wrap(np.asarray(fn(*args, **kwargs)))
        return call


def default_rng(seed=None):
    return Generator(seed)
