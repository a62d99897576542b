"""tilegrad._cuda.matmul's layouts and epilogue, and bias_act, on a GPU (CuPy arrays) against
float64 NumPy: every kernel version, all four transpose combinations, batches, bias, ReLU, ragged
sizes around the tiles. Skips cleanly without a GPU and CuPy."""
import itertools
import math

import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")
if not _cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

TRANS = list(itertools.product([False, True], repeat=2))
TRANS_IDS = ["NN", "NT", "TN", "TT"]


def stored(x, trans):
    """x as the kernel is given it: x itself, or the C-contiguous transpose (last two dims)."""
    return np.ascontiguousarray(np.swapaxes(x, -1, -2)) if trans else x


def check(rng, stream, version, a, b, trans_a, trans_b, bias=None, act="none"):
    out = cp.full(a.shape[:-1] + b.shape[-1:], cp.nan, dtype=cp.float32)
    _cuda.matmul(cp.asarray(stored(a, trans_a)), cp.asarray(stored(b, trans_b)), out, stream=stream.ptr,
                 version=version, trans_a=trans_a, trans_b=trans_b, bias=None if bias is None else cp.asarray(bias),
                 activation=act)
    stream.synchronize()
    got = cp.asnumpy(out).astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64 + (0.0 if bias is None else bias.astype(np.float64))
    if act == "relu":
        want = np.maximum(want, 0.0)
    rel = 1e-5 * max(1.0, math.sqrt(a.shape[-1])) + (2e-3 if version == 3 else 0.0)  # TF32: 10-bit inputs
    # relative to |a| @ |b| + |bias|: the bias add rounds too
    tol = rel * (np.abs(a64) @ np.abs(b64) + (0.0 if bias is None else np.abs(bias.astype(np.float64)))) + 1e-30
    bad = np.argwhere(~(np.abs(got - want) <= tol))
    assert bad.size == 0, (f"v{version} {a.shape} @ {b.shape} trans {trans_a, trans_b} bias={bias is not None} "
                           f"{act}: {len(bad)} bad, first {tuple(bad[0])}; {rng}")


SIZES = [1, 7, 63, 64, 65, 127, 128, 129, 257]


@pytest.mark.parametrize("trans", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("m", SIZES)
def test_matmul_layouts_ragged(rng, stream, version, trans, m):
    for n, k in ((1, 1), (7, 17), (65, 8), (129, 9), (257, 65), (64, 16)):
        a, b = rng.normal(m, k), rng.normal(k, n)
        check(rng, stream, version, a, b, *trans)
        check(rng, stream, version, a, b, *trans, bias=rng.normal(n), act="relu")


@pytest.mark.parametrize("trans", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("version", [0, 1, 2, 3])
@pytest.mark.parametrize("batch,m,n,k", [(3, 33, 65, 17), (64, 7, 9, 5), (2, 130, 129, 257), (1, 1031, 1029, 517)])
def test_matmul_layouts_batched(rng, stream, version, trans, batch, m, n, k):
    a, b = rng.normal(batch, m, k), rng.normal(batch, k, n)
    check(rng, stream, version, a, b, *trans, bias=rng.normal(n), act="none")
    check(rng, stream, version, a, b, *trans, act="relu")


@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_k_zero_is_the_epilogue_of_zero(rng, stream, version):
    bias = rng.normal(5)
    out = cp.full((130, 5), cp.nan, dtype=cp.float32)
    _cuda.matmul(cp.ones((0, 130), cp.float32), cp.ones((5, 0), cp.float32), out, stream=stream.ptr,
                 version=version, trans_a=True, trans_b=True, bias=cp.asarray(bias), activation="relu")
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), np.broadcast_to(np.maximum(bias, 0), (130, 5)))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_relu_passes_nan(stream, version):
    a = cp.asarray(np.array([[np.nan, 1.0], [-1.0, 2.0]], np.float32))
    out = cp.empty((2, 2), cp.float32)
    _cuda.matmul(a, cp.eye(2, dtype=cp.float32), out, stream=stream.ptr, version=version, activation="relu")
    stream.synchronize()
    got = cp.asnumpy(out)
    assert np.isnan(got[0]).all() and (got[1] == [0.0, 2.0]).all()


@pytest.mark.parametrize("shape,dim", [((3, 7, 5, 9), 1), ((1000, 33), -1), ((5,), 0), ((2, 70001), 1)])
@pytest.mark.parametrize("with_bias,act", [(True, "relu"), (True, "none"), (False, "relu")])
def test_bias_act(rng, stream, shape, dim, with_bias, act):
    y = rng.normal(*shape)
    bias = rng.normal(shape[dim]) if with_bias else None
    bshape = [1] * len(shape)
    bshape[dim] = shape[dim]
    want = y + (0 if bias is None else bias.reshape(bshape))
    want = np.maximum(want, 0) if act == "relu" else want
    dy = cp.asarray(y)
    _cuda.bias_act(dy, None if bias is None else cp.asarray(bias), dim, act, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(dy), want.astype(np.float32), err_msg=str(rng))
