"""Tensor factories with PyTorch's names: ``tensor``, ``zeros``, ``randn``, ``arange``, ..."""
import numbers

import numpy as np

from . import dtypes
from .device import as_device, device_of
from .ops.shape import move_array
from .random import default_generator
from .tensor import Tensor
from .tensor_shape import _dims


def _size(args, size):
    """Sizes given as ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros(size=(2, 3))``."""
    if size is not None:
        if args:
            raise TypeError("sizes given both positionally and as size=")
        return _dims((size,)) if isinstance(size, (tuple, list)) else (size,)
    return _dims(args)


def _xp(device):
    if device.type == "cpu":
        return np
    from . import cuda
    return cuda.require()


def _finish(array, device, requires_grad):
    t = Tensor(array, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _make(fill, shape, dtype, device, requires_grad):
    """An array of ``shape`` made on the device by ``fill(xp, shape, np_dtype)``."""
    device = as_device(device)
    dtype = dtypes.to_dtype(dtype) if dtype is not None else dtypes.DEFAULT_FLOAT
    for n in shape:
        if not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"invalid size {shape}: sizes must be non-negative integers")
    xp = _xp(device)
    if xp is np:
        return _finish(fill(np, shape, dtype.np), device, requires_grad)
    with xp.cuda.Device(device.index):
        return _finish(fill(xp, shape, dtype.np), device, requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (a scalar, nested lists, an array or a tensor).
    Python floats become float32, ints int64 and bools bool, as in PyTorch."""
    if isinstance(data, Tensor):
        array = data._data.copy()
        device = data.device if device is None else device
    elif hasattr(data, "__cuda_array_interface__"):
        array = data.copy()
        device = device_of(data) if device is None else device
    else:
        try:
            array = np.array(data)
        except ValueError as e:
            raise ValueError(f"tensor(): cannot make a tensor from {type(data).__name__}: {e}") from None
        if not isinstance(data, (np.ndarray, np.generic)) and array.dtype == np.float64:
            array = array.astype(dtypes.DEFAULT_FLOAT.np)
    if array.dtype.kind in "OUSVMmc":
        raise TypeError(f"tensor(): unsupported data of dtype {array.dtype}")
    if dtype is not None:
        array = array.astype(dtypes.to_dtype(dtype).np, copy=False)
    else:
        dtypes.from_numpy(array.dtype)  # TypeError for dtypes tilegrad does not support
    device = as_device(device)
    if device_of(array) != device:
        array = move_array(array, device)
    return _finish(array, device, requires_grad)


def from_numpy(array):
    """A CPU tensor sharing memory with a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    dtypes.from_numpy(array.dtype)
    return Tensor(array)


def from_dlpack(obj):
    """A tensor sharing memory with any DLPack producer (NumPy, CuPy, PyTorch, JAX, ...)."""
    if isinstance(obj, Tensor):
        return obj
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(f"from_dlpack: {type(obj).__name__} does not implement __dlpack__")
    device_type, index = obj.__dlpack_device__()
    if device_type == 1:  # kDLCPU
        array = np.from_dlpack(obj)
    elif device_type == 2:  # kDLCUDA
        from . import cuda
        array = cuda.require().from_dlpack(obj)
    else:
        raise TypeError(f"from_dlpack: DLPack device type {device_type} is not supported (CPU and CUDA are)")
    dtypes.from_numpy(array.dtype)
    return Tensor(array)


def zeros(*size_args, size=None, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.zeros(s, d), _size(size_args, size), dtype, device, requires_grad)


def ones(*size_args, size=None, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.ones(s, d), _size(size_args, size), dtype, device, requires_grad)


def empty(*size_args, size=None, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, s, d: xp.empty(s, d), _size(size_args, size), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.bool_ if isinstance(fill_value, bool) else \
            dtypes.int64 if isinstance(fill_value, numbers.Integral) else dtypes.DEFAULT_FLOAT
    return _make(lambda xp, s, d: xp.full(s, fill_value, d), _dims((size,)), dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dtypes.int64 if integral else dtypes.DEFAULT_FLOAT
    dtype = dtypes.to_dtype(dtype)
    device = as_device(device)
    return _finish(move_array(np.arange(start, end, step, dtype=dtype.np), device), device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    dtype = dtypes.to_dtype(dtype) if dtype is not None else dtypes.DEFAULT_FLOAT
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    array = np.linspace(start, end, steps, dtype=np.float64).astype(dtype.np)
    device = as_device(device)
    return _finish(move_array(array, device), device, requires_grad)


def _random(sample_cpu, sample_gpu, size, dtype, device, requires_grad, generator):
    """Random numbers drawn on the device (CPU: the tilegrad generator; GPU: CuPy's)."""
    device = as_device(device)
    dtype = dtypes.to_dtype(dtype) if dtype is not None else dtypes.DEFAULT_FLOAT
    shape = _dims(size)
    if device.type == "cpu":
        gen = (generator or default_generator).np
        return _finish(sample_cpu(gen, shape).astype(dtype.np, copy=False), device, requires_grad)
    cp = _xp(device)
    with cp.cuda.Device(device.index):
        return _finish(sample_gpu(cp.random, shape).astype(dtype.np, copy=False), device, requires_grad)


def rand(*size_args, size=None, dtype=None, device=None, requires_grad=False, generator=None):
    size = _size(size_args, size)
    return _random(lambda g, s: g.random(s), lambda r, s: r.random_sample(s), size, dtype, device, requires_grad, generator)


def randn(*size_args, size=None, dtype=None, device=None, requires_grad=False, generator=None):
    size = _size(size_args, size)
    return _random(lambda g, s: g.standard_normal(s), lambda r, s: r.standard_normal(s), size, dtype, device,
                   requires_grad, generator)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None):
    if high is None:
        low, high = 0, low
    if low >= high:
        raise ValueError(f"randint: low ({low}) must be below high ({high})")
    return _random(lambda g, s: g.integers(low, high, s), lambda r, s: r.randint(low, high, s), (tuple(size),),
                   dtype or dtypes.int64, device, False, generator)


def randperm(n, dtype=None, device=None, generator=None):
    return _random(lambda g, s: g.permutation(n), lambda r, s: r.permutation(n), ((n,),),
                   dtype or dtypes.int64, device, False, generator)


def _like(factory):
    def like(input, dtype=None, device=None, requires_grad=False):  # noqa: A002
        return factory(input.shape, dtype=dtype or input.dtype, device=device or input.device, requires_grad=requires_grad)
    like.__name__ = factory.__name__ + "_like"
    like.__doc__ = f"``{factory.__name__}`` with the shape, dtype and device of ``input``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):  # noqa: A002
    return full(input.shape, fill_value, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)
