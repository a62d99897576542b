"""A NumPy-backed stand-in for CuPy, for running tilegrad's ``cuda`` device on the CPU (tests only;
importable as ``cupy`` when tests/emulated_gpu/fake_cupy is first on sys.path, see
tests/emulated_gpu/run.py).

``cupy.ndarray`` wraps a NumPy array and is NOT an ``np.ndarray``, so tilegrad tells it apart from
CPU data as it does real CuPy arrays. It keeps CuPy's rules where they catch device bugs:

- NumPy arrays are refused as operands of ufuncs, operators and module functions (TypeError, as
  CuPy does); ``cupy.asarray`` / ``cupy.array`` copy them in and ``.get()`` / ``cupy.asnumpy``
  copy out; ``np.asarray(gpu_array)`` raises (CuPy refuses implicit conversion).
- Reductions and scalar indexing give 0-d arrays, not NumPy scalars.
- ``__cuda_array_interface__`` (version 3) gives the host address of the data (the emulated
  tilegrad._cuda kernels dereference it), strides None when C-contiguous, stream None.

Not emulated: asynchrony (every call completes before it returns, so missing synchronisation and
stream-ordering races cannot show), more than one device (``Device(i)`` for i > 0 fails), real
device memory (the memory pool only counts nothing; out-of-memory never happens), CUDA error
states, cuRAND's random streams (``cupy.random`` draws from NumPy, so GPU and CPU draws differ as
they do on a GPU, but not in the same way), kernels written with CuPy (RawKernel, ElementwiseKernel).
"""
import time
import types

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__version__ = "13.0.0+numpy-emulation"

_SCALARS = (bool, int, float, complex, np.generic)


def _wrap(x):
    """NumPy results as device arrays (NumPy scalars as 0-d arrays, as CuPy returns them)."""
    if isinstance(x, ndarray):
        return x
    if isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, np.void):
        out = ndarray.__new__(ndarray)
        out._a = np.asarray(x) if isinstance(x, np.generic) else x
        return out
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x, where, axes_ok=True):
    """Device arrays as their NumPy arrays. A NumPy array is a host array given to the GPU, which
    CuPy refuses, except (axes_ok) a 1-D integer one, which CuPy reads as axes or a shape."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray) and not (axes_ok and x.ndim == 1 and x.dtype.kind in "iu"):
        raise TypeError(f"Unsupported type {type(x)} in {where}: a NumPy (host) array given to CuPy "
                        "(use cupy.asarray to copy it to the device)")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v, where, axes_ok) for v in x)
    return x


def _unwrap_args(args, kwargs, where, axes_ok=True):
    return [_unwrap(a, where, axes_ok) for a in args], {k: _unwrap(v, where, axes_ok) for k, v in kwargs.items()}


class _MemoryPointer:
    def __init__(self, ptr):
        self.ptr = ptr


class _Device:
    """An array's ``.device`` / ``cupy.cuda.Device``: one emulated device, id 0."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"cudaErrorInvalidDevice: the emulation has one device, not {self.id}")

    compute_capability = "90"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        pass

    def synchronize(self):
        pass

    @property
    def mem_info(self):
        return (64 << 30, 80 << 30)

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class ndarray(NDArrayOperatorsMixin):
    """A device array: a NumPy array behind CuPy's interface."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = np.empty(shape, dtype, order=order)

    # --- NumPy protocols ----------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        where = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        args, kwargs = _unwrap_args(inputs, kwargs, where, axes_ok=False)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:  # NumPy passes out as a tuple; give back the device arrays themselves
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        args, kwargs = _unwrap_args(args, kwargs, func.__name__)
        return _wrap(func(*args, **kwargs))

    # --- CUDA interfaces -------------------------------------------------------------------------
    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"version": 3, "shape": a.shape, "typestr": a.dtype.str, "descr": [("", a.dtype.str)],
                "data": (a.__array_interface__["data"][0] if a.size else 0, not a.flags.writeable),
                "strides": None if a.flags.c_contiguous else a.strides, "stream": None}

    @property
    def data(self):
        return _MemoryPointer(self._a.__array_interface__["data"][0])

    @property
    def device(self):
        return _Device(0)

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0

    def __dlpack__(self, stream=None, **kwargs):
        return self._a.__dlpack__()

    def get(self, stream=None, order="C", out=None):
        if out is not None:
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        np.copyto(self._a, arr)

    # --- Python protocols ------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        # CuPy copies host values in on item assignment.
        self._a[_unwrap_index(key)] = value._a if isinstance(value, ndarray) else value

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __complex__(self):
        return complex(self._a)

    def __repr__(self):
        return repr(self._a).replace("array(", "cupy.ndarray(", 1)

    def __str__(self):
        return str(self._a)

    def __copy__(self):
        return _wrap(self._a.copy())

    def __deepcopy__(self, memo):
        return _wrap(self._a.copy())

    def __reduce__(self):
        return (_rebuild, (self._a,))

    # CuPy sorts with thrust's stable sort (and ignores ``kind``): so does the stand-in.
    def argsort(self, axis=-1, kind=None):
        return _wrap(np.argsort(self._a, axis=axis, kind="stable"))

    def sort(self, axis=-1, kind=None):
        self._a.sort(axis=axis, kind="stable")

    # --- everything else from NumPy --------------------------------------------------------------
    def __getattr__(self, name):
        # No host pointer (ctypes) and no dunders: CuPy has neither, and copy / pickle must not
        # find NumPy's through here.
        if name.startswith("__") or name in ("_a", "ctypes"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                args, kwargs = _unwrap_args(args, kwargs, f"ndarray.{name}")
                return _wrap(attr(*args, **kwargs))
            return method
        return _wrap(attr)

    @property
    def T(self):
        return _wrap(self._a.T)

    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def strides(self):
        return self._a.strides

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def flags(self):
        return self._a.flags

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()


def _rebuild(a):
    return _wrap(a)


def _unwrap_index(key):
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(k._a if isinstance(k, ndarray) else k for k in key)
    return key


def _numpy_function(name, fn):
    def call(*args, **kwargs):
        out = kwargs.get("out")
        a, k = _unwrap_args(args, kwargs, name)
        result = fn(*a, **k)
        return out if isinstance(out, ndarray) else _wrap(result)
    call.__name__ = name
    return call


# --- creation and transfer -----------------------------------------------------------------------
def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray):
        obj = obj._a
    return _wrap(np.array(obj, dtype=dtype, copy=True if copy else None, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return _wrap(np.asarray(a._a, dtype=dtype, order=order))
    # a host array (or list, scalar, other DLPack/array-interface object) is copied to the device
    return _wrap(np.array(a, dtype=dtype, order=order if order in ("C", "F") else "K", copy=True))


ascontiguousarray = lambda a, dtype=None: asarray(a, dtype=dtype, order="C")  # noqa: E731


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def copyto(dst, src, casting="same_kind", where=None):
    if isinstance(src, np.ndarray) and src.size != 1:
        raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
    src = src._a if isinstance(src, ndarray) else src
    np.copyto(_unwrap(dst, "copyto"), src, casting=casting, where=True if where is None else _unwrap(where, "copyto"))


def get_array_module(*args):
    return _this if any(isinstance(a, ndarray) for a in args) else np


def from_dlpack(obj):
    if isinstance(obj, ndarray):
        return obj
    # A tilegrad tensor on this emulated device exports its NumPy data's capsule: read it back
    # through a host-typed view of the same producer.
    host = types.SimpleNamespace(__dlpack__=obj.__dlpack__, __dlpack_device__=lambda: (1, 0))
    return _wrap(np.from_dlpack(host))


fromDlpack = from_dlpack  # noqa: N816 - CuPy's old name


def get_default_memory_pool():
    return _MEMORY_POOL


def get_default_pinned_memory_pool():
    return _MEMORY_POOL


class _MemoryPool:
    """CuPy's pool interface; arrays here are NumPy's, so nothing is pooled or counted."""

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0

    def n_free_blocks(self):
        return 0


_MEMORY_POOL = _MemoryPool()


def argsort(a, axis=-1, kind=None):
    return _wrap(np.argsort(_unwrap(a, "cupy.argsort"), axis=axis, kind="stable"))  # stable, as CuPy's


def sort(a, axis=-1, kind=None):
    return _wrap(np.sort(_unwrap(a, "cupy.sort"), axis=axis, kind="stable"))


def __getattr__(name):
    """Every other NumPy name: dtypes and constants as they are, functions rewrapped."""
    try:
        attr = getattr(np, name)
    except AttributeError:
        raise AttributeError(f"module 'cupy' (emulated) has no attribute {name!r}") from None
    if isinstance(attr, (type, np.dtype)) or not callable(attr):
        return attr
    fn = _numpy_function(name, attr)
    globals()[name] = fn
    return fn


import sys as _sys  # noqa: E402

_this = _sys.modules[__name__]

import importlib as _importlib  # noqa: E402

# Not `from . import cuda, random`: that asks the module __getattr__ above first (numpy.random).
cuda = _importlib.import_module(".cuda", __name__)
random = _importlib.import_module(".random", __name__)
