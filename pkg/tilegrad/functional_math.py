"""Module-level math with PyTorch's names that is not a Tensor method: einsum, batched and fused
matrix products (bmm, baddbmm, addmm), closeness tests, and multinomial sampling."""
import numbers

import numpy as np

from . import dtypes
from .backends.reference import xp_of
from .ops import linalg as LA, matmul as M
from .random import default_generator
from .tensor import Tensor


def einsum(equation, *operands):
    """``einsum("ij,jk->ik", a, b)``: the sum of products over the letters missing from the
    output; '...' broadcasts, a letter repeated in one operand takes its diagonal. The operands
    may also come as one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError("einsum(): the sublist form is not supported; pass an equation string")
    if not operands or not all(isinstance(t, Tensor) for t in operands):
        raise TypeError("einsum(): expected one or more Tensor operands")
    target = operands[0].dtype
    for t in operands[1:]:
        target = dtypes.promote(target, t.dtype)
    operands = [t.to(target) for t in operands]
    subs, out = LA.parse_einsum(equation, [t.shape for t in operands])
    return LA.Einsum.apply(subs, out, *operands)


def _check_batches(a, b, name, ndim, first="batch1", second="batch2"):
    for t, what in ((a, first), (b, second)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}(): {what} must be a Tensor, not {type(t).__name__}")
        if t.ndim != ndim:
            raise RuntimeError(f"{name}(): {what} must be a {ndim}D tensor, got shape {t.shape}")
    if a.dtype != b.dtype:
        raise RuntimeError(f"{name}(): expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")
    if ndim == 3 and a.shape[0] != b.shape[0]:
        raise RuntimeError(f"{name}(): batch sizes differ: {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(f"{name}(): shapes {a.shape} and {b.shape} cannot be multiplied")


def bmm(input, mat2):  # noqa: A002 - PyTorch's argument names
    """Batched matrix product of two 3-d tensors (no broadcasting, as PyTorch checks)."""
    _check_batches(input, mat2, "bmm", 3, "input", "mat2")
    return M.MatMul.apply(input, mat2)


def _fused(name, input, product, beta, alpha):  # noqa: A002
    """beta * input + alpha * product, where input broadcasts to the product's shape; with
    beta = 0 input is ignored (NaN and inf in it do not propagate), as in PyTorch."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): input must be a Tensor")
    try:
        shape = np.broadcast_shapes(input.shape, product.shape)
    except ValueError:
        shape = None
    if shape != product.shape:
        raise RuntimeError(f"{name}(): input of shape {input.shape} does not broadcast to the product's shape {product.shape}")
    out = product if alpha == 1 else product * alpha
    if beta == 0:
        return out
    return out + (input if beta == 1 else input * beta)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):  # noqa: A002
    _check_batches(batch1, batch2, "baddbmm", 3)
    return _fused("baddbmm", input, M.MatMul.apply(batch1, batch2), beta, alpha)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):  # noqa: A002
    _check_batches(mat1, mat2, "addmm", 2, "mat1", "mat2")
    return _fused("addmm", input, M.MatMul.apply(mat1, mat2), beta, alpha)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):  # noqa: A002
    """|input - other| <= atol + rtol * |other| elementwise, as a bool tensor."""
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError("isclose(): expected two Tensors")
    if input.dtype != other.dtype:
        raise RuntimeError(f"isclose(): expected both tensors to have the same dtype, got {input.dtype} and {other.dtype}")
    if input.device != other.device:
        raise RuntimeError(f"isclose(): tensors on different devices: {input.device} and {other.device}")
    a, b = input._data, other._data
    try:
        close = xp_of(a).isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    except ValueError:
        raise RuntimeError(f"isclose(): shapes {input.shape} and {other.shape} do not broadcast") from None
    return Tensor(close, input.device)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):  # noqa: A002
    return bool(isclose(input, other, rtol, atol, equal_nan)._data.all())


def multinomial(input, num_samples, replacement=False, *, generator=None):  # noqa: A002
    """Category indices drawn from each row of ``input`` (non-negative weights, not
    necessarily normalised): (num_samples,) for a vector, (rows, num_samples) for a matrix.
    Without replacement each row's samples are distinct (the Gumbel top-k trick)."""
    if not isinstance(input, Tensor) or input._data.dtype.kind != "f":
        raise RuntimeError("multinomial(): expected a floating point Tensor of probabilities")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial(): prob_dist must be 1 or 2 dim, got shape {input.shape}")
    if not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
        raise RuntimeError(f"multinomial(): cannot sample {num_samples} samples (must be positive)")
    n = input.shape[-1]
    if n == 0:
        raise RuntimeError("multinomial(): the number of categories must be positive")
    if not replacement and num_samples > n:
        raise RuntimeError(f"multinomial(): cannot sample n_sample > prob_dist.size(-1) ({num_samples} > {n}) "
                           "without replacement")
    p = input.detach()._data.astype(np.float64).reshape(-1, n)
    xp = xp_of(p)
    if not bool(xp.isfinite(p).all()) or bool((p < 0).any()):
        raise RuntimeError("multinomial(): probability tensor contains either inf, nan or element < 0")
    if bool((p.sum(axis=1) <= 0).any()):
        raise RuntimeError("multinomial(): invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and bool(((p > 0).sum(axis=1) < num_samples).any()):
        raise RuntimeError("multinomial(): invalid multinomial distribution (with replacement=False, not enough "
                           "non-zero categories to sample)")
    if xp is np:
        u = (generator or default_generator).np.random((p.shape[0], num_samples if replacement else n))
    else:
        u = xp.random.random_sample((p.shape[0], num_samples if replacement else n))
    if replacement:
        cdf = xp.cumsum(p, axis=1)
        cdf /= cdf[:, -1:]
        rows = [xp.searchsorted(cdf[r], u[r], side="right") for r in range(p.shape[0])]
        out = xp.minimum(xp.stack(rows), n - 1)
    else:
        # The k largest of log p - log(-log u) are a sample of k categories without replacement.
        with np.errstate(divide="ignore"):
            keys = xp.log(p) - xp.log(-xp.log(xp.maximum(u, 1e-300)))
        out = xp.argsort(-keys, axis=1)[:, :num_samples]
    out = out.astype(np.int64, copy=False)
    return Tensor(out.reshape(num_samples) if input.ndim == 1 else out, input.device)
