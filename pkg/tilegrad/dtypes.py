"""tilegrad's dtypes: thin names over NumPy dtypes, with PyTorch's promotion rules.

CuPy uses NumPy's dtype objects too, so one table serves every device.
"""
import builtins as _builtins
import numbers

import numpy as np

try:  # bfloat16 exists only where a storage library provides it (ml_dtypes for NumPy).
    import ml_dtypes as _ml_dtypes
except ImportError:  # pragma: no cover - depends on the environment
    _ml_dtypes = None


class DType:
    """A tensor element type. Compare with ``==``; ``.np`` is the NumPy dtype."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_kind")

    def __init__(self, name, np_dtype, kind):
        self.name = name
        self.np = np.dtype(np_dtype) if np_dtype is not None else None
        self._kind = kind  # 0 bool, 1 integer, 2 floating: the order of PyTorch's categories
        self.is_floating_point = kind == 2
        self.is_signed = name not in ("bool", "uint8")
        self.itemsize = self.np.itemsize if self.np is not None else 2

    def __repr__(self):
        return f"tilegrad.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


float32 = DType("float32", np.float32, 2)
float64 = DType("float64", np.float64, 2)
float16 = DType("float16", np.float16, 2)
bfloat16 = DType("bfloat16", _ml_dtypes.bfloat16 if _ml_dtypes else None, 2)
int64 = DType("int64", np.int64, 1)
int32 = DType("int32", np.int32, 1)
int16 = DType("int16", np.int16, 1)
int8 = DType("int8", np.int8, 1)
uint8 = DType("uint8", np.uint8, 1)
bool_ = DType("bool", np.bool_, 0)

# PyTorch's aliases.
float = float32  # noqa: A001 - deliberate, as torch.float
double = float64
half = float16
long = int64
int = int32  # noqa: A001 - deliberate, as torch.int
short = int16

ALL = (float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool_)
_BY_NAME = {d.name: d for d in ALL}
_BY_NP = {d.np: d for d in ALL if d.np is not None}

DEFAULT_FLOAT = float32


def from_name(name):
    return _BY_NAME[name]


def from_numpy(np_dtype):
    """The tilegrad dtype of a NumPy dtype; TypeError for those tilegrad does not support."""
    try:
        return _BY_NP[np_dtype]
    except (KeyError, TypeError):
        pass
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"tilegrad does not support the dtype {np_dtype!r}; "
                        f"supported: {', '.join(d.name for d in ALL if d.np is not None)}") from None


def to_dtype(d):
    """Accept a tilegrad dtype, a NumPy dtype, a Python type or a name; return a DType."""
    if isinstance(d, DType):
        if d.np is None:
            raise TypeError(f"{d} is not available: install the ml_dtypes package for bfloat16 on NumPy")
        return d
    if d is _builtins.float:
        return DEFAULT_FLOAT
    if d is _builtins.int:
        return int64
    if d is _builtins.bool:
        return bool_
    if isinstance(d, str) and d in _BY_NAME:
        return to_dtype(_BY_NAME[d])
    return from_numpy(d)


def promote(a, b):
    """PyTorch's result type of two tensor dtypes: a higher category (bool < int < float) wins
    outright; within one category the wider type wins."""
    if a is b:
        return a
    if a._kind != b._kind:
        return a if a._kind > b._kind else b
    return from_numpy(np.promote_types(a.np, b.np))


def scalar_result(t, value):
    """The result dtype of ``tensor <op> python scalar`` under PyTorch's rules: the tensor keeps
    its dtype unless the scalar is of a higher category (then the default of that category)."""
    if isinstance(value, _builtins.bool):
        kind = 0
    elif isinstance(value, numbers.Integral):
        kind = 1
    elif isinstance(value, (numbers.Real, np.floating)):
        kind = 2
    else:
        raise TypeError(f"unsupported scalar {value!r} of type {type(value).__name__}")
    if kind <= t._kind:
        return t
    return DEFAULT_FLOAT if kind == 2 else int64
