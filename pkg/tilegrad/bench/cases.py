"""The kernel cases of the bench: what each op computes, through tilegrad's public API and
through each peer, at which sizes, and how close a result must be to the float64 NumPy answer
(the dtype's tolerance from ``tilegrad.testing.TOLERANCES``, widened for long sums).

Each ``OpSpec.array(xp, *arrays)`` is written against ``xp``: it is the NumPy peer, the CuPy
peer on a GPU, and, run on float64 copies of the inputs, the oracle every result is checked
against before it is timed.
"""
import math
from typing import Callable, NamedTuple

import numpy as np

from tilegrad import testing


class OpSpec(NamedTuple):
    name: str           # the bench's name for the case (``--ops``)
    table: str          # the op-table entry whose ``cost()`` gives flops and bytes
    kernel: str         # the backend kernel the op's forward calls
    inputs: Callable    # (rng, size) -> tuple of float64 NumPy arrays (cast to the dtype benched)
    params: Callable    # size -> extra arguments of the op's cost() after the arrays
    tilegrad: Callable  # (*tensors) -> Tensor, through tilegrad's public API
    array: Callable     # (xp, *arrays) -> array: the NumPy/CuPy peer and the float64 oracle
    torch: Callable     # (torch, *tensors) -> tensor
    tol: Callable       # (size, dtype) -> (rtol, atol) of a result against the float64 oracle
    label: Callable     # size -> text for the table
    from_n: Callable    # N of ``--sizes N,...`` -> this op's size (elements, or a shape)


def _randn(rng, shape):
    return rng.standard_normal(shape)


def _softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _shape_label(shape):
    return "x".join(str(n) for n in shape)


def _count_label(n):
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _tol(grow=lambda size: 1.0):
    """The dtype's tolerance, atol widened by ``grow(size)`` (rounding of long sums grows like the
    square root of their length)."""
    def tol(size, dtype):
        rtol, atol = testing.tolerance(dtype)
        return rtol, atol * grow(size)
    return tol


def _rows_of_1024(n):
    """N elements as rows of up to 1024 (softmax along the last dim)."""
    cols = min(n, 1024)
    return (max(1, n // cols), cols)


_ELEMENTWISE = dict(tol=_tol(), label=_count_label, from_n=int)

SPECS = {
    "relu": OpSpec(
        "relu", "Relu", "relu",
        inputs=lambda rng, n: (_randn(rng, (n,)),),
        params=lambda n: (),
        tilegrad=lambda x: x.relu(),
        array=lambda xp, x: xp.maximum(x, x.dtype.type(0)),
        torch=lambda torch, x: torch.relu(x),
        **_ELEMENTWISE),
    "add": OpSpec(
        "add", "Add", "add",
        inputs=lambda rng, n: (_randn(rng, (n,)), _randn(rng, (n,))),
        params=lambda n: (),
        tilegrad=lambda a, b: a + b,
        array=lambda xp, a, b: a + b,
        torch=lambda torch, a, b: a + b,
        **_ELEMENTWISE),
    "softmax": OpSpec(
        "softmax", "Softmax", "softmax",
        inputs=lambda rng, shape: (_randn(rng, shape),),
        params=lambda shape: (-1,),
        tilegrad=lambda x: x.softmax(-1),
        array=_softmax,
        torch=lambda torch, x: torch.softmax(x, -1),
        tol=_tol(), label=_shape_label, from_n=_rows_of_1024),
    "matmul": OpSpec(
        "matmul", "MatMul", "matmul",
        inputs=lambda rng, n: (_randn(rng, (n, n)), _randn(rng, (n, n))),
        params=lambda n: (),
        tilegrad=lambda a, b: a @ b,
        array=lambda xp, a, b: a @ b,
        torch=lambda torch, a, b: a @ b,
        # dot products of length n drift like sqrt(n) roundings of terms of size ~1
        tol=_tol(lambda n: 8 * math.sqrt(n)), label=lambda n: f"{n}x{n}x{n}", from_n=int),
    "sum": OpSpec(
        "sum", "Sum", "sum",
        inputs=lambda rng, n: (_randn(rng, (n,)),),
        params=lambda n: (None, False),
        tilegrad=lambda x: x.sum(),
        array=lambda xp, x: x.sum(),
        torch=lambda torch, x: x.sum(),
        tol=_tol(math.sqrt), label=_count_label, from_n=int),
}

KERNEL_OPS = tuple(SPECS)

# Sizes per op, smallest first: elementwise and sum take an element count, softmax a (rows, cols)
# shape, matmul the side of square matrices. ``--sizes N,...`` maps each N through ``from_n``.
SIZES = {
    "tiny": {"relu": [1000], "add": [1000], "softmax": [(8, 33)], "matmul": [16], "sum": [1000]},
    "quick": {"relu": [1 << 16, 1 << 22], "add": [1 << 16, 1 << 22], "softmax": [(256, 256), (1024, 4096)],
              "matmul": [128, 1024], "sum": [1 << 16, 1 << 22]},
    "full": {"relu": [1 << 12, 1 << 16, 1 << 20, 1 << 24], "add": [1 << 12, 1 << 16, 1 << 20, 1 << 24],
             "softmax": [(64, 128), (1024, 1024), (4096, 4096), (256, 32768)],
             "matmul": [64, 256, 1024, 2048], "sum": [1 << 12, 1 << 16, 1 << 20, 1 << 24]},
}


def sizes_for(name, size_set):
    """The sizes of op ``name``: a named set ("tiny", "quick", "full") or a list of N."""
    if isinstance(size_set, str):
        return SIZES[size_set][name]
    return [SPECS[name].from_n(n) for n in size_set]


def check(actual, expected, tol):
    """None when ``actual`` matches the float64 ``expected`` within ``tol``; otherwise a line
    saying how it does not."""
    rtol, atol = tol
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    a = actual.astype(np.float64)
    bad = ~np.isclose(a, expected, rtol=rtol, atol=atol)
    if not bad.any():
        return None
    err = np.where(bad, np.abs(a - expected), -1.0)
    i = np.unravel_index(int(np.argmax(err)), a.shape) if a.ndim else ()
    return (f"{int(bad.sum())} of {a.size} values out of tolerance (rtol={rtol:g}, atol={atol:g}); "
            f"worst {float(a[i]):.7g} vs expected {float(expected[i]):.7g}")
