"""The float16 / bfloat16 tensor-core matmul (kernels/cuda/matmul_f16.cu) executed on the CPU
through the CUDA stand-in of tests/native/cuda_emu (a std::thread per CUDA thread; the mma and
ldmatrix emulations of mma16.cuh follow the PTX fragment layouts), against float64 products of
the 16-bit inputs. This runs the kernel's real tiling, swizzles, pipeline indexing, ragged-edge
zero fill and epilogue; only a GPU run checks the hardware itself (test_cuda_matmul16.py).

Both kernel paths are covered: the cp.async one (K and every stored row length multiples of 8,
16-byte aligned operands) and the guarded-load one (anything else). Slow: g++ builds the kernel
(about a minute) and each block of 256 threads runs as 256 OS threads, so shapes stay small.
"""
import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from .cuda_emu import emulate, harness

pytestmark = pytest.mark.slow

F16, BF16 = 1, 2  # TG_DTYPE_F16, TG_DTYPE_BF16
NONE, RELU = 0, 1  # TG_EPILOGUE_*


class TgMatmul16(ctypes.Structure):  # tg_cuda.h
    _fields_ = [("batch", ctypes.c_int64), ("m", ctypes.c_int64), ("n", ctypes.c_int64), ("k", ctypes.c_int64),
                ("dtype", ctypes.c_int), ("trans_a", ctypes.c_int), ("trans_b", ctypes.c_int),
                ("activation", ctypes.c_int), ("a", ctypes.c_void_p), ("b", ctypes.c_void_p),
                ("bias", ctypes.c_void_p), ("out", ctypes.c_void_p)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build(["matmul_f16.cu"], tmp_path_factory.mktemp("cuda_emu_mm16"),
                             sanitize=os.environ.get("TILEGRAD_EMU_ASAN") == "1")
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    lib = ctypes.CDLL(str(path))
    lib.tg_cuda_matmul_f16.restype = ctypes.c_int
    lib.tg_cuda_matmul_f16.argtypes = [ctypes.POINTER(TgMatmul16), ctypes.c_void_p]
    return lib


def to_bits(x, bf16):
    """float32 values rounded to the 16-bit type: (raw uint16 bits, the rounded values as float64)."""
    if bf16:
        bits = harness.to_bfloat16_bits(x)
        return bits, harness.from_bfloat16_bits(bits).astype(np.float64)
    h = np.asarray(x, np.float32).astype(np.float16)
    return h.view(np.uint16), h.astype(np.float64)


def from_bits(bits, bf16):
    return harness.from_bfloat16_bits(bits) if bf16 else bits.view(np.float16).astype(np.float32)


def offset_copy(bits, offset):
    """A copy of bits whose data starts `offset` bytes past a 16-byte boundary."""
    buf = np.zeros(bits.size + 16, np.uint16)
    base = (-buf.ctypes.data % 16) // 2
    start = base + offset // 2
    view = buf[start:start + bits.size].reshape(bits.shape)
    view[...] = bits
    return view


def matmul16(lib, a, b, bias, *, bf16, trans_a=False, trans_b=False, act=NONE, misalign=0):
    """Runs the kernel on 16-bit bit arrays (a, b batched 3-D or 2-D in their stored layouts);
    returns out as float32. out starts as NaN so an element never written shows."""
    batched = a.ndim == 3
    a3, b3 = (a, b) if batched else (a[None], b[None])
    batch = a3.shape[0]
    m, k = (a3.shape[2], a3.shape[1]) if trans_a else (a3.shape[1], a3.shape[2])
    n = b3.shape[1] if trans_b else b3.shape[2]
    a3, b3 = offset_copy(np.ascontiguousarray(a3), misalign), np.ascontiguousarray(b3)
    out = np.full((batch, m, n), 0x7E00 if not bf16 else 0x7FC0, np.uint16)  # NaN
    args = TgMatmul16(batch=batch, m=m, n=n, k=k, dtype=BF16 if bf16 else F16, trans_a=int(trans_a),
                      trans_b=int(trans_b), activation=act, a=a3.ctypes.data, b=b3.ctypes.data,
                      bias=None if bias is None else bias.ctypes.data, out=out.ctypes.data)
    assert lib.tg_cuda_matmul_f16(ctypes.byref(args), None) == 0
    got = from_bits(out, bf16)
    return got if batched else got[0]


def reference(a, b, bias, act, trans_a, trans_b):
    """float64 product of the rounded inputs (stored layouts), and the bound |a| @ |b| + |bias|."""
    ta = np.swapaxes(a, -1, -2) if trans_a else a
    tb = np.swapaxes(b, -1, -2) if trans_b else b
    want = ta @ tb
    scale = np.abs(ta) @ np.abs(tb)
    if bias is not None:
        want = want + bias
        scale = scale + np.abs(bias)
    if act == RELU:
        want = np.maximum(want, 0)
    return want, scale


def check(lib, rng, batch, m, n, k, *, bf16, trans_a=False, trans_b=False, with_bias=False, act=NONE, misalign=0):
    lead = () if batch is None else (batch,)
    a_shape = lead + ((k, m) if trans_a else (m, k))
    b_shape = lead + ((n, k) if trans_b else (k, n))
    a_bits, a = to_bits(rng.normal(*a_shape), bf16)
    b_bits, b = to_bits(rng.normal(*b_shape), bf16)
    bias_bits, bias = to_bits(rng.normal(n), bf16) if with_bias else (None, None)
    got = matmul16(lib, a_bits, b_bits, bias_bits, bf16=bf16, trans_a=trans_a, trans_b=trans_b, act=act,
                   misalign=misalign)
    want, scale = reference(a, b, bias, act, trans_a, trans_b)
    # float32 accumulation of exact products, then one rounding to the output type.
    unit = 2.0 ** -8 if bf16 else 2.0 ** -11
    tol = unit * np.abs(want) + (k + 1) * 2.0 ** -23 * scale + 1e-6
    err = np.abs(got - want)
    ctx = (f"batch={batch} m={m} n={n} k={k} bf16={bf16} trans=({trans_a}, {trans_b}) bias={with_bias} act={act} "
           f"misalign={misalign} {rng}")
    assert got.shape == want.shape, ctx
    assert np.all(err <= tol), f"max err {np.max(err - tol)} over tol; {ctx}"
    return got


TRANS = [(False, False), (False, True), (True, False), (True, True)]
DTYPES = pytest.mark.parametrize("bf16", [False, True], ids=["f16", "bf16"])


def stored_multiple_of_8(m, n, trans_a, trans_b):
    """(m, n) rounded up to multiples of 8 where they are the row length of a stored operand
    (a transposed is (K, M), b is (K, N)), so that the cp.async path takes the shape."""
    up = lambda v: -(-v // 8) * 8
    return (up(m) if trans_a else m), (n if trans_b else up(n))


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_aligned_path(lib, rng, trans_a, trans_b, bf16):
    # Ragged M and N (1, 17, 130: partial tiles, size 1) and K from one 32-deep slice to more
    # slices (5) than pipeline stages (4), so the stage ring wraps.
    for m, n, k in [(130, 17, 8), (17, 130, 40), (1, 1, 16), (128, 128, 136)]:
        m, n = stored_multiple_of_8(m, n, trans_a, trans_b)
        check(lib, rng, None, m, n, k, bf16=bf16, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_fallback_path(lib, rng, trans_a, trans_b, bf16):
    # K or a stored row length not a multiple of 8, or a misaligned operand: the guarded loads.
    for m, n, k, misalign in [(130, 17, 3, 0), (17, 130, 45, 0), (1, 1, 1, 0), (9, 20, 40, 2)]:
        check(lib, rng, None, m, n, k, bf16=bf16, trans_a=trans_a, trans_b=trans_b, misalign=misalign)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
@DTYPES
@pytest.mark.parametrize("k", [24, 13])
def test_batched_bias_relu(lib, rng, trans_a, trans_b, bf16, k):
    check(lib, rng, 3, 24, 40, k, bf16=bf16, trans_a=trans_a, trans_b=trans_b, with_bias=True, act=RELU)
    check(lib, rng, 2, 24, 40, k, bf16=bf16, trans_a=trans_a, trans_b=trans_b, with_bias=True, act=NONE)
    check(lib, rng, 2, 24, 40, k, bf16=bf16, trans_a=trans_a, trans_b=trans_b, act=RELU)


@DTYPES
def test_many_tiles(lib, rng, bf16):
    # 9 tile rows (more than one group of 8) by 2 tile columns on the cp.async path, 9 by 3 on
    # the fallback path (128-wide tiles): every block's tile mapping is checked.
    check(lib, rng, None, 1030, 264, 8, bf16=bf16)
    check(lib, rng, None, 1030, 264, 7, bf16=bf16, trans_b=True)


@DTYPES
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("act", [NONE, RELU])
def test_k_zero(lib, rng, bf16, with_bias, act):
    bias_bits, bias = to_bits(rng.normal(19), bf16)
    got = matmul16(lib, np.zeros((5, 0), np.uint16), np.zeros((0, 19), np.uint16), bias_bits if with_bias else None,
                   bf16=bf16, act=act)
    want = np.broadcast_to(bias if with_bias else np.zeros(19), (5, 19))
    np.testing.assert_array_equal(got, np.maximum(want, 0) if act == RELU else want, err_msg=str(rng))


def test_rounds_to_nearest_even(lib, rng):
    # Products that are exact in float32, so the output shows the final rounding alone.
    for bf16 in (False, True):
        a_bits, a = to_bits(rng.normal(16, 8), bf16)
        b_bits, b = to_bits(np.eye(8, dtype=np.float32) * 1.5, bf16)
        got = matmul16(lib, a_bits, b_bits, None, bf16=bf16)
        want_bits, _ = to_bits((a @ b).astype(np.float32), bf16)
        np.testing.assert_array_equal(got, from_bits(want_bits, bf16), err_msg=f"bf16={bf16} {rng}")


def test_rejects_bad_arguments(lib):
    a = np.zeros((2, 8), np.uint16)
    out = np.zeros((2, 8), np.uint16)
    for field, value in [("dtype", 0), ("dtype", 3), ("activation", 2), ("m", -1)]:
        args = TgMatmul16(batch=1, m=2, n=8, k=8, dtype=F16, a=a.ctypes.data, b=a.ctypes.data, out=out.ctypes.data)
        setattr(args, field, value)
        assert lib.tg_cuda_matmul_f16(ctypes.byref(args), None) != 0, field


def test_no_data_races(tmp_path):
    # The mma.sync kernel through tg_cuda_matmul_half version 1.
    emulate.assert_no_races(["matmul_f16.cu", "matmul_wgmma.cu", "matmul_half.cu"], tmp_path,
                            "race_driver_matmul16.cpp", args=[1], timeout=1200)


# ---- the CUDA backend's float16 matmul / linear, with NumPy as CuPy and the emulated kernel ----

class FakeCudaHalf:
    """tilegrad._cuda.matmul_half on NumPy float16 arrays through the emulated kernel."""

    def __init__(self, lib):
        self.lib = lib
        self.calls = []

    def matmul_half(self, a, b, out, stream=0, *, trans_a=False, trans_b=False, bias=None, activation="none",
                    bfloat16=False):
        for x in (a, b, out, bias):
            assert x is None or (x.flags.c_contiguous and x.dtype == np.float16)
        self.calls.append(("matmul_half", trans_a, trans_b, bias is not None, activation))
        bits = None if bias is None else bias.view(np.uint16)
        got = matmul16(self.lib, a.view(np.uint16), b.view(np.uint16), bits, bf16=False, trans_a=trans_a,
                       trans_b=trans_b, act=RELU if activation == "relu" else NONE)
        out[...] = got.reshape(out.shape)


@pytest.fixture
def backend(lib, monkeypatch):
    from tilegrad.backends import cuda
    fake = FakeCudaHalf(lib)
    monkeypatch.setattr(cuda, "_cuda", fake)
    monkeypatch.setattr(cuda, "_cupy", lambda: np)
    monkeypatch.setattr(cuda, "_stream", lambda: 0)
    return cuda, fake


def close_to(got, a, b, bias, relu, rng, what):
    want, scale = reference(a.astype(np.float64), b.astype(np.float64), None if bias is None else bias.astype(np.float64),
                            RELU if relu else NONE, False, False)
    tol = 2.0 ** -11 * np.abs(want) + (a.shape[-1] + 1) * 2.0 ** -23 * scale + 1e-6
    assert got.dtype == np.float16 and got.shape == want.shape, what
    assert (np.abs(got.astype(np.float64) - want) <= tol).all(), f"{what} {rng}"


def test_backend_float16_matmul_and_linear_run_the_tensor_core_kernel(backend, rng):
    cuda, fake = backend
    a, b = rng.normal(19, 24).astype(np.float16), rng.normal(24, 9).astype(np.float16)
    close_to(cuda.matmul(a, b), a, b, None, False, rng, "matmul")
    close_to(cuda.matmul(a.T.copy().T, b), a, b, None, False, rng, "matmul of a transposed view")
    assert fake.calls == [("matmul_half", False, False, False, "none"), ("matmul_half", True, False, False, "none")]
    fake.calls.clear()
    w, bias = rng.normal(9, 24).astype(np.float16), rng.normal(9).astype(np.float16)
    x = rng.normal(2, 5, 24).astype(np.float16)
    got = cuda.linear(x, w, bias, "relu")
    assert fake.calls == [("matmul_half", False, True, True, "relu")]
    close_to(got.reshape(10, 9), x.reshape(10, 24), w.T, bias, True, rng, "linear")
    fake.calls.clear()
    cuda.matmul(a, b.astype(np.float32))  # mixed dtypes: the reference
    cuda.linear(x, w, bias.astype(np.float32), "none")
    assert fake.calls == []
