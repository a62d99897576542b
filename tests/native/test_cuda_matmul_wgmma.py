"""tilegrad._cuda.matmul_half with version=2, Hopper's wgmma kernel (kernels/cuda/matmul_wgmma.cu),
on a compute capability 9.0 GPU (H100 / H200): CuPy float16 arrays (bfloat16 as uint16 bits)
against float64 products of the same 16-bit values on ragged shapes the kernel takes (every
transpose, batched, bias and ReLU), an 8192^3 product against CuPy's float32 one, and version 0
choosing it. Other GPUs: version=2 must refuse with a clear error. The kernel on the CPU:
test_cuda_emulated_matmul_wgmma.py."""
import numpy as np
import pytest

from .test_cuda_matmul16 import DTYPES, GPU, TRANS, _cuda, from_16, to_16, unit

MULT8 = [(8, 8, 8), (24, 136, 40), (136, 24, 72), (128, 256, 64), (264, 304, 328), (1032, 72, 16), (256, 512, 512)]


@pytest.fixture
def cp():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    if not GPU:
        pytest.skip("no usable CUDA device")
    return cupy


@pytest.fixture
def hopper(cp):
    if cp.cuda.Device().compute_capability != "90":
        pytest.skip("wgmma needs compute capability 9.0")
    return cp


def run(cp, a, b, out, dtype, version=2, **kw):
    _cuda.matmul_half(a, b, out, stream=cp.cuda.get_current_stream().ptr, bfloat16=dtype == "bfloat16",
                      version=version, **kw)


def check(cp, rng, batch, m, n, k, dtype, trans_a=False, trans_b=False, bias=False, act="none", version=2):
    lead = () if batch is None else (batch,)
    a_h, a = to_16(rng.normal(*(lead + ((k, m) if trans_a else (m, k)))), dtype)
    b_h, b = to_16(rng.normal(*(lead + ((n, k) if trans_b else (k, n)))), dtype)
    bias_h, bias64 = to_16(rng.normal(n), dtype) if bias else (None, None)
    out = cp.full(lead + (m, n), 0x7FC0, cp.uint16) if dtype == "bfloat16" else cp.full(lead + (m, n), np.nan,
                                                                                         cp.float16)
    run(cp, cp.asarray(a_h), cp.asarray(b_h), out, dtype, version, trans_a=trans_a, trans_b=trans_b,
        bias=None if bias_h is None else cp.asarray(bias_h), activation=act)
    got = from_16(cp.asnumpy(out), dtype)
    ta = np.swapaxes(a, -1, -2) if trans_a else a
    tb = np.swapaxes(b, -1, -2) if trans_b else b
    want, scale = ta @ tb, np.abs(ta) @ np.abs(tb)
    if bias:
        want, scale = want + bias64, scale + np.abs(bias64)
    if act == "relu":
        want = np.maximum(want, 0)
    tol = unit(dtype) * np.abs(want) + (k + 1) * 2.0 ** -23 * scale + 1e-6
    err = np.abs(got - want)
    ctx = f"batch={batch} {m}x{n}x{k} {dtype} trans=({trans_a}, {trans_b}) bias={bias} {act} v{version} {rng}"
    assert np.all(err <= tol), f"max excess {np.nanmax(err - tol)}; {ctx}"


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
@pytest.mark.parametrize("shape", MULT8, ids=["x".join(map(str, s)) for s in MULT8])
def test_ragged_shapes(hopper, rng, shape, trans_a, trans_b, dtype):
    check(hopper, rng, None, *shape, dtype, trans_a, trans_b)


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_batched_bias_relu(hopper, rng, trans_a, trans_b, dtype):
    for act in ("none", "relu"):
        check(hopper, rng, 3, 72, 136, 48, dtype, trans_a, trans_b, bias=True, act=act)


@pytest.mark.cuda
@DTYPES
def test_automatic_choice(hopper, rng, dtype):
    check(hopper, rng, None, 264, 304, 328, dtype, version=0)       # mma.sync until wgmma is the default
    check(hopper, rng, None, 40, 24, 13, dtype, trans_b=True, version=0)  # the mma.sync guarded loads


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_large_aligned(hopper, rng, trans_a, trans_b, dtype):
    # 8192^3, the timed size, against CuPy's float32 product of the same values.
    cp, n = hopper, 8192
    gen = cp.random.default_rng(rng.seed)
    a32 = gen.standard_normal((n, n), dtype=cp.float32)
    b32 = gen.standard_normal((n, n), dtype=cp.float32)
    if dtype == "bfloat16":
        a16, b16 = ((x.view(cp.uint32) + 0x7FFF + ((x.view(cp.uint32) >> 16) & 1)) >> 16 for x in (a32, b32))
        a16, b16 = a16.astype(cp.uint16), b16.astype(cp.uint16)
        a32, b32 = ((x.astype(cp.uint32) << 16).view(cp.float32) for x in (a16, b16))
    else:
        a16, b16 = a32.astype(cp.float16), b32.astype(cp.float16)
        a32, b32 = a16.astype(cp.float32), b16.astype(cp.float32)
    out = cp.empty((n, n), a16.dtype)
    run(cp, a16.T.copy() if trans_a else a16, b16.T.copy() if trans_b else b16, out, dtype, trans_a=trans_a,
        trans_b=trans_b)
    want = a32 @ b32
    got = (out.astype(cp.uint32) << 16).view(cp.float32) if dtype == "bfloat16" else out.astype(cp.float32)
    err = cp.abs(got - want)
    rel = float(cp.mean(err) / cp.mean(cp.abs(want)))
    assert rel < unit(dtype), f"mean relative error {rel}; {dtype} trans=({trans_a}, {trans_b}) {rng}"
    worst = float(cp.max(err - unit(dtype) * cp.abs(want)) / cp.sqrt(cp.mean(want * want)))
    assert worst < 1e-3, f"worst excess {worst}; {dtype} trans=({trans_a}, {trans_b}) {rng}"


@pytest.mark.cuda
def test_refused_off_hopper(cp):
    if cp.cuda.Device().compute_capability == "90":
        pytest.skip("this GPU runs wgmma")
    a = cp.zeros((16, 16), cp.float16)
    with pytest.raises(RuntimeError, match="sm_90a"):
        _cuda.matmul_half(a, a, cp.empty_like(a), version=2)
