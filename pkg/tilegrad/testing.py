"""Shared by the tests, ``tilegrad parity`` and the bench: tolerances, the backends available
here, and running an op-table sample on a backend."""
import numpy as np

from . import cuda, dtypes
from .autograd import gradcheck  # noqa: F401 - re-exported for tests
from .backends import kernels  # noqa: F401 - re-exported for tests
from .tensor import Tensor

# (rtol, atol) per dtype, for results compared with a float64 reference.
TOLERANCES = {
    "float64": (1e-7, 1e-9),
    "float32": (1e-4, 1e-5),
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-2),
}


def tolerance(dtype):
    return TOLERANCES[dtypes.to_dtype(dtype).name]


def backends():
    """(name, device, kernel choice) of every backend that can run here."""
    found = [("reference", "cpu", "reference"), ("cpu", "cpu", "native")]
    if cuda.is_available():
        found += [("cuda-reference", "cuda", "reference"), ("cuda", "cuda", "native")]
    return found


def to_numpy(t):
    if t is None:
        return None
    a = t._data if isinstance(t, Tensor) else t
    return a if isinstance(a, np.ndarray) else a.get()


def _strided(a, xp):
    """The same values as ``a`` in a non-contiguous view (every other element of a copy)."""
    if a.ndim == 0 or a.size == 0:
        return a
    return xp.repeat(a, 2, axis=-1)[..., ::2]


def make_inputs(sample, dtype, device, noncontiguous=False):
    """Tensors for a sample's inputs: floating arrays in ``dtype`` and requiring grad; the
    others (masks, indices) as they are."""
    xp = np if device == "cpu" else cuda.require()
    tensors = []
    for a in sample.inputs:
        floating = a.dtype.kind == "f"
        arr = xp.asarray(a.astype(dtypes.to_dtype(dtype).np) if floating else a)
        if noncontiguous:
            arr = _strided(arr, xp)
        t = Tensor(arr)
        if floating and sample.differentiable:
            t.requires_grad_(True)
        tensors.append(t)
    return tensors


def run_sample(sample, dtype="float64", device="cpu", choice="reference", noncontiguous=False, seed=0):
    """Run a sample forward and, if differentiable, backward against a fixed random upstream
    gradient. Returns (outputs, input grads) as NumPy arrays."""
    with kernels(choice):
        inputs = make_inputs(sample, dtype, device, noncontiguous)
        out = sample.call(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        grads = [None] * len(inputs)
        differentiable = [o for o in outs if o.requires_grad]
        if sample.differentiable and differentiable:
            rng = np.random.default_rng(seed)
            loss = None
            for o in differentiable:
                v = Tensor(rng.standard_normal(o.shape).astype(o._data.dtype)).to(o.device)
                term = (o * v).sum()
                loss = term if loss is None else loss + term
            loss.backward()
            grads = [t.grad for t in inputs]
        return [to_numpy(o) for o in outs], [to_numpy(g) for g in grads]


def assert_close(actual, expected, dtype, what=""):
    rtol, atol = tolerance(dtype)
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    if actual.dtype.kind in "biu" or expected.dtype.kind in "biu":
        if not np.array_equal(actual, expected):
            raise AssertionError(f"{what}: integer/bool results differ:\n{actual}\nvs\n{expected}")
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.abs(a - e), -1)), a.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {a.size} values out of tolerance (rtol={rtol}, atol={atol}); "
                             f"worst at {tuple(int(j) for j in i)}: {a[i]!r} vs expected {e[i]!r}")
