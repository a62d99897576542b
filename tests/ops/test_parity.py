"""Every op x every sample x every backend available here, against the float64 reference:
forward outputs and input gradients, on contiguous and non-contiguous inputs."""
import numpy as np
import pytest

from tilegrad import ops, testing

CASES = [(name, i) for name, cls in sorted(ops.OPS.items()) for i in range(len(cls.samples(np.random.default_rng(0))))]
BACKENDS = [pytest.param(b, marks=[pytest.mark.cuda] if b[1] == "cuda" else [], id=b[0]) for b in testing.backends()]


def _sample(name, i, seed):
    return ops.OPS[name].samples(np.random.default_rng(seed))[i]


def test_every_op_has_samples():
    missing = [name for name, cls in ops.OPS.items() if not cls.samples(np.random.default_rng(0)) and name != "ToDevice"]
    assert not missing, f"ops without samples: {missing}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("noncontiguous", [False, True], ids=["contig", "strided"])
@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_parity(name, i, backend, dtype, noncontiguous, seed):
    _, device, choice = backend
    sample = _sample(name, i, seed)
    expected_out, expected_grads = testing.run_sample(sample, "float64", "cpu", "reference", False, seed)
    out, grads = testing.run_sample(sample, dtype, device, choice, noncontiguous, seed)
    what = f"{name}[{sample.desc}] on {backend[0]} {dtype}"
    assert len(out) == len(expected_out)
    for k, (a, e) in enumerate(zip(out, expected_out)):
        testing.assert_close(a, e, dtype, f"{what} output {k}")
    for k, (g, e) in enumerate(zip(grads, expected_grads)):
        assert (g is None) == (e is None), f"{what}: grad {k} presence differs"
        if e is not None:
            testing.assert_close(g, e, dtype, f"{what} grad of input {k}")
