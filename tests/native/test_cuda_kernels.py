"""tilegrad._cuda kernels on CuPy arrays against numpy. Needs a GPU and CuPy;
skips cleanly otherwise."""
import math

import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")
if not _cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

RAGGED = [1, 7, 33, 65, 127, 257]


@pytest.fixture
def stream():
    """A non-default stream: kernels must honour the one they are given."""
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        yield s
    s.synchronize()


def to_gpu(x):
    return cp.asarray(x)


def check_matmul(a, b, stream, ctx):
    da, db = to_gpu(a), to_gpu(b)
    out = cp.full(a.shape[:-1] + b.shape[-1:], cp.nan, dtype=cp.float32)
    _cuda.matmul(da, db, out, stream=stream.ptr)
    stream.synchronize()
    got = cp.asnumpy(out).astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    tol = 1e-5 * max(1.0, math.sqrt(a.shape[-1])) * (np.abs(a64) @ np.abs(b64)) + 1e-30
    bad = np.argwhere(~(np.abs(got - a64 @ b64) <= tol))
    assert bad.size == 0, f"matmul {a.shape} @ {b.shape}: {len(bad)} bad, first {tuple(bad[0])}; {ctx}"


@pytest.mark.parametrize("m", RAGGED)
@pytest.mark.parametrize("n", RAGGED)
def test_matmul_ragged(rng, stream, m, n):
    for k in (1, 17, 65, 257):
        check_matmul(rng.normal(m, k), rng.normal(k, n), stream, rng)


@pytest.mark.parametrize("batch,m,n,k", [(3, 33, 65, 17), (64, 7, 9, 5), (2, 130, 129, 257), (1, 64, 64, 64)])
def test_matmul_batched(rng, stream, batch, m, n, k):
    check_matmul(rng.normal(batch, m, k), rng.normal(batch, k, n), stream, rng)


def test_matmul_large(rng, stream):
    check_matmul(rng.normal(1031, 517), rng.normal(517, 1029), stream, rng)


def test_matmul_k_zero(stream):
    out = cp.full((3, 4), cp.nan, dtype=cp.float32)
    _cuda.matmul(cp.ones((3, 0), cp.float32), cp.ones((0, 4), cp.float32), out, stream=stream.ptr)
    stream.synchronize()
    assert (cp.asnumpy(out) == 0).all()


def test_matmul_default_stream(rng):
    a, b = rng.normal(65, 33), rng.normal(33, 7)
    out = cp.empty((65, 7), cp.float32)
    _cuda.matmul(to_gpu(a), to_gpu(b), out)  # stream=0: legacy default stream
    cp.cuda.Device().synchronize()
    np.testing.assert_allclose(cp.asnumpy(out), a @ b, rtol=1e-4, atol=1e-4, err_msg=str(rng))


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (257,), (3, 5, 7), (1_000_003,)])
def test_relu(rng, stream, shape):
    x = rng.normal(*shape)
    if x.size:
        x.flat[0] = np.nan
    out = cp.full(shape, 123.0, cp.float32)
    _cuda.relu(to_gpu(x), out, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), np.maximum(x, 0), err_msg=str(rng))


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (257,), (3, 5, 7), (1_000_003,)])
def test_relu_backward(rng, stream, shape):
    x, gy = rng.normal(*shape), rng.normal(*shape)
    out = cp.full(shape, 123.0, cp.float32)
    _cuda.relu_backward(to_gpu(x), to_gpu(gy), out, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), np.where(x > 0, gy, 0), err_msg=str(rng))


def test_relu_in_place(rng, stream):
    x = rng.normal(4097)
    d = to_gpu(x)
    _cuda.relu(d, d, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(d), np.maximum(x, 0), err_msg=str(rng))


def test_non_contiguous_cupy_rejected():
    x = cp.zeros((4, 8), cp.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _cuda.relu(x, cp.zeros((4, 4), cp.float32))


def test_queries():
    assert _cuda.device_count() >= 1
    assert _cuda.driver_version() > 0
    major, _ = _cuda.compute_capability(0)
    assert major >= 8, "the module carries code for sm_80 and newer"
    assert _cuda.device_name(0)
