"""tilegrad._cuda.matmul_half, the float16 / bfloat16 tensor-core matmul, on a GPU: CuPy float16
arrays (bfloat16 as uint16 / int16 bits) against float64 products of the same 16-bit values on
ragged shapes (both kernel paths, every transpose combination, batched, bias and ReLU), and a
large 8192-aligned product against CuPy's float32 one. The argument checks:
test_cuda_matmul16_bindings.py; the kernel on the CPU: test_cuda_emulated_matmul16.py."""
import numpy as np
import pytest

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

GPU = _cuda is not None and _cuda.is_available()
TRANS = [(False, False), (False, True), (True, False), (True, True)]
DTYPES = pytest.mark.parametrize("dtype", ["float16", "bfloat16"])


@pytest.fixture
def cp():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    if not GPU:
        pytest.skip("no usable CUDA device")
    return cupy


def to_bfloat16_bits(x):
    w = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def to_16(x, dtype, bits_dtype=np.uint16):
    """(16-bit host array to upload, its exact values as float64)."""
    if dtype == "bfloat16":
        bits = to_bfloat16_bits(x)
        return bits.view(bits_dtype), from_bfloat16_bits(bits).astype(np.float64)
    h = x.astype(np.float16)
    return h, h.astype(np.float64)


def from_16(out, dtype):
    out = np.asarray(out)
    return from_bfloat16_bits(out.view(np.uint16)) if dtype == "bfloat16" else out.astype(np.float32)


def unit(dtype):
    return 2.0 ** -8 if dtype == "bfloat16" else 2.0 ** -11


def upload(cp, host, offset_elems=0):
    """host on the GPU, starting offset_elems 16-bit elements past an allocation's start (an
    offset of 1 leaves the data only 2-byte aligned: the kernel's guarded-load path)."""
    if offset_elems == 0:
        return cp.asarray(host)
    buf = cp.empty(host.size + offset_elems, host.dtype)
    view = buf[offset_elems:].reshape(host.shape)
    view.set(np.ascontiguousarray(host))
    return view


def check(cp, rng, batch, m, n, k, dtype, trans_a=False, trans_b=False, bias=False, act="none", offset=0,
          bits_dtype=np.uint16, version=0):
    lead = () if batch is None else (batch,)
    a_h, a = to_16(rng.normal(*(lead + ((k, m) if trans_a else (m, k)))), dtype, bits_dtype)
    b_h, b = to_16(rng.normal(*(lead + ((n, k) if trans_b else (k, n)))), dtype, bits_dtype)
    bias_h, bias64 = to_16(rng.normal(n), dtype, bits_dtype) if bias else (None, None)
    out = cp.full(lead + (m, n), np.nan, cp.float16)  # NaN in both types' bits where not written
    if dtype == "bfloat16":
        out = cp.full(lead + (m, n), 0x7FC0, bits_dtype)
    _cuda.matmul_half(upload(cp, a_h, offset), upload(cp, b_h, offset), out, trans_a=trans_a, trans_b=trans_b,
                      bias=None if bias_h is None else cp.asarray(bias_h), activation=act,
                      bfloat16=dtype == "bfloat16", version=version)
    got = from_16(cp.asnumpy(out), dtype)
    ta = np.swapaxes(a, -1, -2) if trans_a else a
    tb = np.swapaxes(b, -1, -2) if trans_b else b
    want, scale = ta @ tb, np.abs(ta) @ np.abs(tb)
    if bias:
        want, scale = want + bias64, scale + np.abs(bias64)
    if act == "relu":
        want = np.maximum(want, 0)
    # float32 accumulation (any order), then one rounding to the 16-bit type.
    tol = unit(dtype) * np.abs(want) + (k + 1) * 2.0 ** -23 * scale + 1e-6
    err = np.abs(got - want)
    ctx = (f"batch={batch} {m}x{n}x{k} {dtype} trans=({trans_a}, {trans_b}) bias={bias} {act} offset={offset} "
           f"v{version} {rng}")
    assert np.all(err <= tol), f"max excess {np.nanmax(err - tol)}; {ctx}"


RAGGED = [(1, 1, 8), (17, 130, 40), (130, 17, 136), (128, 256, 64), (257, 300, 264), (1030, 70, 16)]


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
@pytest.mark.parametrize("shape", RAGGED, ids=["x".join(map(str, s)) for s in RAGGED])
def test_ragged_shapes(cp, rng, shape, trans_a, trans_b, dtype):
    m, n, k = shape
    check(cp, rng, None, m, n, k, dtype, trans_a, trans_b)  # the cp.async path where rows allow it
    check(cp, rng, None, m, n, k + 3, dtype, trans_a, trans_b)  # K not a multiple of 8: guarded loads


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_batched_bias_relu_misaligned(cp, rng, trans_a, trans_b, dtype):
    for act in ("none", "relu"):
        check(cp, rng, 3, 72, 136, 48, dtype, trans_a, trans_b, bias=True, act=act)
    check(cp, rng, 2, 40, 24, 32, dtype, trans_a, trans_b, act="relu", offset=1)  # 2-byte aligned operands


@pytest.mark.cuda
@DTYPES
def test_bfloat16_as_int16_and_k_zero(cp, rng, dtype):
    check(cp, rng, None, 33, 40, 24, dtype, bits_dtype=np.int16)
    bias_h, bias64 = to_16(rng.normal(9), dtype)
    store = cp.uint16 if dtype == "bfloat16" else cp.float16
    out = cp.full((4, 9), 7, store)
    _cuda.matmul_half(cp.zeros((4, 0), store), cp.zeros((0, 9), store), out, bias=cp.asarray(bias_h),
                      activation="relu", bfloat16=dtype == "bfloat16")
    np.testing.assert_array_equal(from_16(cp.asnumpy(out), dtype), np.broadcast_to(np.maximum(bias64, 0), (4, 9)))


def check_large(cp, rng, trans_a, trans_b, dtype, version=0):
    """8192^3, the size the kernels are tuned for, against CuPy's float32 product of the same values."""
    n = 8192
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
    _cuda.matmul_half(a16.T.copy() if trans_a else a16, b16.T.copy() if trans_b else b16, out, trans_a=trans_a,
                      trans_b=trans_b, bfloat16=dtype == "bfloat16", version=version)
    want = a32 @ b32
    got = (out.astype(cp.uint32) << 16).view(cp.float32) if dtype == "bfloat16" else out.astype(cp.float32)
    err = cp.abs(got - want)
    # Rounding the output dominates: on average a quarter of an ulp, below unit / 2 relative.
    ctx = f"{dtype} trans=({trans_a}, {trans_b}) v{version} {rng}"
    rel = float(cp.mean(err) / cp.mean(cp.abs(want)))
    assert rel < unit(dtype), f"mean relative error {rel}; {ctx}"
    worst = float(cp.max(err - unit(dtype) * cp.abs(want)) / cp.sqrt(cp.mean(want * want)))
    assert worst < 1e-3, f"worst excess {worst}; {ctx}"


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
@DTYPES
def test_large_aligned(cp, rng, trans_a, trans_b, dtype):
    check_large(cp, rng, trans_a, trans_b, dtype)
