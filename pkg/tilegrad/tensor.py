"""``tilegrad.Tensor``: an n-dimensional array on a device, with autograd.

Storage is a NumPy array on the CPU and a CuPy array on a GPU. Every computing method is an op
from the op table (``tilegrad.ops``); this file only turns PyTorch-style calls into op calls:
argument normalisation, dtype promotion, and the in-place forms.
"""
import numbers
from collections import namedtuple

import numpy as np

from . import autograd, dtypes
from .autograd import TensorBase, is_grad_enabled
from .device import CPU, as_device
from .ops import elementwise as E, activation as A, reduce as R, shape as S, matmul as M
from .tensor_api import ApiMethods
from .tensor_layout import LayoutMethods
from .tensor_math import MathMethods
from .tensor_reduce import ReduceMethods
from .tensor_shape import ShapeMethods, _norm_dim

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])


def _binary_method(cls, reverse=False):
    """``Tensor.__add__`` and its kin: same-dtype tensors go straight to the op (the hot path);
    everything else goes through ``_binary``'s promotion rules."""
    def method(self, other):
        if type(other) is Tensor and other._data.dtype == self._data.dtype:
            return cls.apply(other, self) if reverse else cls.apply(self, other)
        return self._binary(cls, other, reverse)
    method.__name__ = f"__{'r' if reverse else ''}{cls.__name__.lower()}__"
    return method


class Tensor(TensorBase, ShapeMethods, ApiMethods, MathMethods, LayoutMethods, ReduceMethods):
    """An n-dimensional array with PyTorch's names and semantics."""

    __slots__ = ()
    __hash__ = object.__hash__  # == is elementwise, so hash by identity as PyTorch does

    # ---- properties ----------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self._data.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self._data.shape[dim]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    def numel(self):
        return int(self._data.size)

    @property
    def dtype(self):
        return dtypes.from_numpy(self._data.dtype)

    @property
    def device(self):
        return self._device

    @property
    def is_cuda(self):
        return self._device.type == "cuda"

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def is_contiguous(self):
        return bool(self._data.flags.c_contiguous)

    def element_size(self):
        return self._data.dtype.itemsize

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None and tuple(value.shape) != self.shape:
            raise ValueError(f"assigned grad has shape {tuple(value.shape)} but the tensor has shape {self.shape}")
        self._grad = value

    @property
    def data(self):
        """A tensor sharing this one's storage, outside autograd."""
        return Tensor(self._data, self._device)

    @data.setter
    def data(self, value):
        self._data = value._data if isinstance(value, TensorBase) else value
        self._device = value._device if isinstance(value, TensorBase) else self._device

    # ---- conversion ----------------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self._device.type != "cpu":
            raise TypeError(f"can't convert a {self._device} tensor to numpy: use tensor.cpu() first")
        return self._data

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to a Python scalar")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def to(self, *args, dtype=None, device=None, copy=False):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, dtypes.DType) or (isinstance(a, type) and a in (float, int, bool)) or isinstance(a, np.dtype):
                dtype = a
            else:
                device = a
        out = self
        if device is not None:
            device = as_device(device)
            if device != out._device:
                out = S.ToDevice.apply(out, device)
        if dtype is not None:
            dtype = dtypes.to_dtype(dtype)
            if dtype.np != out._data.dtype:
                out = E.Cast.apply(out, dtype.np)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(as_device(device if device is not None else "cuda"))

    def type_as(self, other):
        return self.to(other.dtype)

    def float(self): return self.to(dtypes.float32)  # noqa: E704
    def double(self): return self.to(dtypes.float64)  # noqa: E704
    def half(self): return self.to(dtypes.float16)  # noqa: E704
    def long(self): return self.to(dtypes.int64)  # noqa: E704
    def int(self): return self.to(dtypes.int32)  # noqa: E704
    def bool(self): return self.to(dtypes.bool_)  # noqa: E704

    def __dlpack__(self, **kwargs):
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.detach().cpu()._data, dtype=dtype)

    # ---- autograd ------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        if create_graph:
            raise NotImplementedError("create_graph=True (higher-order gradients) is not supported yet")
        autograd.backward(self, gradient, retain_graph=bool(retain_graph))

    def detach(self):
        return Tensor(self._data, self._device)

    def detach_(self):
        self._node, self.requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self._data.dtype.kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, not {self.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook):
        """``hook(grad)`` runs when this tensor's gradient is computed; a returned tensor replaces
        the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        return autograd.register_hook(self, hook)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self._node is not None:
            if self._node._retained is None:
                self._node._retained = []
            self._node._retained.append((self._out_idx, self))

    # ---- arithmetic ----------------------------------------------------------------------
    def _operands(self, other, op_name):
        """(a, b) with PyTorch's result dtype; scalars become NumPy scalars of that dtype."""
        if isinstance(other, Tensor):
            da, db = self._data.dtype, other._data.dtype
            if da == db:
                return self, other
            target = dtypes.promote(dtypes.from_numpy(da), dtypes.from_numpy(db))
            return self.to(target), other.to(target)
        if isinstance(other, (numbers.Number, np.generic)) and not isinstance(other, complex):
            target = dtypes.scalar_result(dtypes.from_numpy(self._data.dtype), other)
            a = self if target.np == self._data.dtype else self.to(target)
            return a, target.np.type(other)
        if isinstance(other, (np.ndarray, list, tuple)):
            from .creation import tensor
            return self._operands(tensor(other, device=self._device), op_name)
        raise TypeError(f"{op_name}: unsupported operand of type {type(other).__name__}")

    def _binary(self, cls, other, reverse=False):
        a, b = self._operands(other, cls.__name__)
        return cls.apply(b, a) if reverse else cls.apply(a, b)

    def _true_div(self, other, reverse=False):
        a, b = self._operands(other, "Div")
        if a._data.dtype.kind != "f":  # integer / integer is a float division, as in PyTorch
            a = a.to(dtypes.DEFAULT_FLOAT)
            b = b.to(dtypes.DEFAULT_FLOAT) if isinstance(b, Tensor) else dtypes.DEFAULT_FLOAT.np.type(b)
        return E.Div.apply(b, a) if reverse else E.Div.apply(a, b)

    __add__, __radd__ = _binary_method(E.Add), _binary_method(E.Add, reverse=True)
    __sub__, __rsub__ = _binary_method(E.Sub), _binary_method(E.Sub, reverse=True)
    __mul__, __rmul__ = _binary_method(E.Mul), _binary_method(E.Mul, reverse=True)
    __eq__, __ne__ = _binary_method(E.Eq), _binary_method(E.Ne)
    __lt__, __le__ = _binary_method(E.Lt), _binary_method(E.Le)
    __gt__, __ge__ = _binary_method(E.Gt), _binary_method(E.Ge)

    def __truediv__(self, o): return self._true_div(o)  # noqa: E704
    def __rtruediv__(self, o): return self._true_div(o, True)  # noqa: E704
    def __neg__(self): return E.Neg.apply(self)  # noqa: E704
    def __pos__(self): return self  # noqa: E704
    def __abs__(self): return E.Abs.apply(self)  # noqa: E704
    def __matmul__(self, o): return self.matmul(o)  # noqa: E704
    def __rmatmul__(self, o): return self._operands(o, "MatMul")[1].matmul(self)  # noqa: E704

    def __pow__(self, exponent):
        if isinstance(exponent, numbers.Number) and not isinstance(exponent, bool):
            target = dtypes.scalar_result(dtypes.from_numpy(self._data.dtype), exponent)
            return E.PowScalar.apply(self.to(target), exponent)
        return self._binary(E.Pow, exponent)

    def __rpow__(self, base):
        return self._binary(E.Pow, base, reverse=True)

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    pow = __pow__
    neg = __neg__
    abs = __abs__
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def exp(self): return E.Exp.apply(self._floating())  # noqa: E704
    def log(self): return E.Log.apply(self._floating())  # noqa: E704
    def log1p(self): return E.Log1p.apply(self._floating())  # noqa: E704
    def sqrt(self): return E.Sqrt.apply(self._floating())  # noqa: E704
    def relu(self): return A.Relu.apply(self)  # noqa: E704
    def sigmoid(self): return A.Sigmoid.apply(self._floating())  # noqa: E704
    def tanh(self): return A.Tanh.apply(self._floating())  # noqa: E704
    def softmax(self, dim): return A.Softmax.apply(self._floating(), _norm_dim(dim, self.ndim))  # noqa: E704
    def log_softmax(self, dim): return A.LogSoftmax.apply(self._floating(), _norm_dim(dim, self.ndim))  # noqa: E704
    def clone(self): return E.Copy.apply(self)  # noqa: E704

    def _floating(self):
        return self if self._data.dtype.kind == "f" else self.to(dtypes.DEFAULT_FLOAT)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return E.Clamp.apply(self, min, max)

    clip = clamp

    def maximum(self, other): return self._binary(E.Maximum, other)  # noqa: E704
    def minimum(self, other): return self._binary(E.Minimum, other)  # noqa: E704

    def where(self, condition, other):
        return where(condition, self, other)

    def matmul(self, other):
        if not isinstance(other, Tensor):
            other = self._operands(other, "MatMul")[1]
        a, b = self._operands(other, "MatMul")
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"MatMul: both arguments need at least 1 dim, got shapes {a.shape} and {b.shape}")
        squeeze = []
        if a.ndim == 1:
            a, squeeze = a.unsqueeze(0), squeeze + [-2]
        if b.ndim == 1:
            b, squeeze = b.unsqueeze(-1), squeeze + [-1]
        try:
            out = M.MatMul.apply(a, b)
        except ValueError:
            raise ValueError(f"MatMul: shapes {self.shape} and {other.shape} cannot be multiplied") from None
        if squeeze:
            out = out.reshape(out.shape[:-2] + tuple(n for i, n in zip((-2, -1), out.shape[-2:]) if i not in squeeze))
        return out

    # ---- reductions ----------------------------------------------------------------------
    def _reduce_dims(self, dim):
        if dim is None:
            return None
        if isinstance(dim, (tuple, list)):
            return tuple(_norm_dim(d, self.ndim) for d in dim)
        return _norm_dim(dim, self.ndim)

    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if x._data.dtype.kind in "biu":  # integer sums accumulate in int64, as in PyTorch
            x = x.to(dtypes.int64)
        return R.Sum.apply(x, self._reduce_dims(dim), keepdim)

    def mean(self, dim=None, keepdim=False, dtype=None):
        x = self._floating() if dtype is None else self.to(dtype)._floating()
        return R.Mean.apply(x, self._reduce_dims(dim), keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False, correction=None):
        correction = (1 if unbiased else 0) if correction is None else correction
        return R.Var.apply(self._floating(), self._reduce_dims(dim), correction, keepdim)

    def std(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return self.var(dim, unbiased, keepdim, correction).sqrt()

    def logsumexp(self, dim, keepdim=False):
        return R.LogSumExp.apply(self._floating(), self._reduce_dims(dim), keepdim)

    def _extreme(self, full_cls, dim_cls, result, dim, keepdim):
        if isinstance(dim, Tensor):
            return self._binary(E.Maximum if full_cls is R.Amax else E.Minimum, dim)
        if self._data.size == 0 and (dim is None or self.shape[_norm_dim(dim, self.ndim)] == 0):
            raise RuntimeError(f"{full_cls.__name__[1:].lower()}(): expected a non-empty tensor to reduce")
        if dim is None:
            return full_cls.apply(self, None, False)
        return result(*dim_cls.apply(self, _norm_dim(dim, self.ndim), keepdim))

    def max(self, dim=None, keepdim=False):
        return self._extreme(R.Amax, R.MaxDim, MaxResult, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return self._extreme(R.Amin, R.MinDim, MinResult, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return R.Amax.apply(self, self._reduce_dims(dim), keepdim)

    def amin(self, dim=None, keepdim=False):
        return R.Amin.apply(self, self._reduce_dims(dim), keepdim)

    def argmax(self, dim=None, keepdim=False):
        return R.Argmax.apply(self, self._reduce_dims(dim), keepdim)

    def argmin(self, dim=None, keepdim=False):
        return R.Argmin.apply(self, self._reduce_dims(dim), keepdim)

    # ---- in-place ------------------------------------------------------------------------
    def _check_inplace(self):
        if self._node is None and self.requires_grad and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")

    def _rebase(self, result):
        """Take over an out-of-place result's storage and graph (in-place ops in autograd).
        The old storage is left untouched, so arrays saved for backward stay valid."""
        self._data, self._node, self._out_idx, self.requires_grad = result._data, result._node, result._out_idx, True
        return self

    def _inplace(self, fn, *args):
        self._check_inplace()
        result = fn(self, *args)
        if result._data.dtype != self._data.dtype:
            if not np.can_cast(result._data.dtype, self._data.dtype, "same_kind"):
                raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output type {self.dtype}")
            result = result.to(self.dtype)
        if result.requires_grad:
            return self._rebase(result)
        if result._data.shape != self._data.shape:
            raise ValueError(f"in-place op: the result's shape {result.shape} does not match the tensor's shape {self.shape}")
        self._data[...] = result._data
        return self

    def __iadd__(self, o): return self._inplace(Tensor.__add__, o)  # noqa: E704
    def __isub__(self, o): return self._inplace(Tensor.__sub__, o)  # noqa: E704
    def __imul__(self, o): return self._inplace(Tensor.__mul__, o)  # noqa: E704
    def __itruediv__(self, o): return self._inplace(Tensor.__truediv__, o)  # noqa: E704
    def __ipow__(self, o): return self._inplace(Tensor.__pow__, o)  # noqa: E704

    def add_(self, o, alpha=1): return self._inplace(Tensor.__add__, o if alpha == 1 else o * alpha)  # noqa: E704
    def sub_(self, o, alpha=1): return self._inplace(Tensor.__sub__, o if alpha == 1 else o * alpha)  # noqa: E704
    def mul_(self, o): return self._inplace(Tensor.__mul__, o)  # noqa: E704
    def div_(self, o): return self._inplace(Tensor.__truediv__, o)  # noqa: E704
    def pow_(self, o): return self._inplace(Tensor.__pow__, o)  # noqa: E704
    def clamp_(self, min=None, max=None): return self._inplace(Tensor.clamp, min, max)  # noqa: E704,A002
    def relu_(self): return self._inplace(Tensor.relu)  # noqa: E704
    def exp_(self): return self._inplace(Tensor.exp)  # noqa: E704

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        self._check_inplace()
        self._data[...] = value.item() if isinstance(value, Tensor) else value
        return self

    def copy_(self, src):
        self._check_inplace()
        src = src if isinstance(src, Tensor) else Tensor(np.asarray(src))
        if src._device != self._device:
            src = src.to(self._device)
        self._data[...] = src._data
        return self

    # ---- Python protocol -----------------------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of a Tensor with {self._data.size} values is ambiguous")
        return bool(self._data.item())

    def __float__(self): return float(self.item())  # noqa: E704
    def __int__(self): return int(self.item())  # noqa: E704

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __repr__(self):
        data = self._data if self._device.type == "cpu" else self._data.get()
        body = np.array2string(data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self._device != CPU:
            extras.append(f"device='{self._device}'")
        if data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"



Tensor._result_type = Tensor

def where(condition, input=None, other=None):  # noqa: A002 - PyTorch's argument names
    """``condition ? input : other`` elementwise, with broadcasting; either value may be a scalar.
    With the condition alone, the indices where it holds (``nonzero(as_tuple=True)``)."""
    if input is None and other is None:
        cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition))
        return cond.nonzero(as_tuple=True)
    ref = input if isinstance(input, Tensor) else other
    if not isinstance(ref, Tensor):
        raise TypeError("where: at least one of input and other must be a Tensor")
    a = input if isinstance(input, Tensor) else ref._operands(input, "Where")[1]
    b = other if isinstance(other, Tensor) else ref._operands(other, "Where")[1]
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        a, b = a._operands(b, "Where")
    cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition))
    if cond._data.dtype != np.bool_:
        cond = cond.to(dtypes.bool_)
    return E.Where.apply(cond, a, b)
