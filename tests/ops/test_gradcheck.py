"""Central differences in float64 for every differentiable op sample."""
import numpy as np
import pytest

from tilegrad import ops, testing

CASES = [(name, i) for name, cls in sorted(ops.OPS.items()) if cls.differentiable
         for i, s in enumerate(cls.samples(np.random.default_rng(0))) if s.differentiable and s.gradcheck]


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_gradcheck(name, i, seed):
    sample = ops.OPS[name].samples(np.random.default_rng(seed))[i]
    with testing.kernels("reference"):
        inputs = testing.make_inputs(sample, "float64", "cpu")
        assert testing.gradcheck(sample.call, inputs, seed=seed)
