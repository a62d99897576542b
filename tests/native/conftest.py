"""Fixtures for the compiled-module tests (tilegrad._cpu, tilegrad._cuda)."""
import os

import numpy as np
import pytest


class Rng:
    """float32 test data from a seeded generator; str(rng) names the seed."""

    def __init__(self, seed):
        self.seed = seed
        self.gen = np.random.default_rng(seed)

    def normal(self, *shape):
        return self.gen.standard_normal(shape, dtype=np.float32)

    def __str__(self):
        return f"seed={self.seed} (reproduce with TILEGRAD_TEST_SEED={self.seed})"


@pytest.fixture
def rng(request):
    """Fresh random data per run (or TILEGRAD_TEST_SEED); the seed is recorded on
    the test and belongs in every assertion message."""
    seed = int(os.environ.get("TILEGRAD_TEST_SEED", np.random.SeedSequence().entropy % 2**32))
    request.node.user_properties.append(("seed", seed))
    return Rng(seed)


@pytest.fixture
def stream():
    """A non-default CuPy stream, current for the test: kernels must honour the one they are given."""
    cp = pytest.importorskip("cupy", reason="CuPy is not installed")
    import tilegrad
    if not tilegrad.cuda.is_available():
        pytest.skip("no usable CUDA device")
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        yield s
    s.synchronize()
