"""The tensor-core building blocks (kernels/cuda/mma16.cuh, mma_tf32.cuh, async_copy.cuh) run
through the CPU emulation: one warp loads operands as the GEMM kernels do (cp.async, ldmatrix,
fragment reads) and multiplies them; the products must match NumPy's. This checks that the
emulated ldmatrix / mma / cvt follow the PTX ISA layouts that the kernels are written against
(the GPU tests remain the word on the hardware). A few seconds: part of the default run."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from .cuda_emu import emulate, harness

SOURCE = str(emulate.HERE / "primitives.cu")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build([SOURCE], tmp_path_factory.mktemp("cuda_emu_prims"), sanitize=False)
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    return ctypes.CDLL(str(path))


def _p(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def assert_product(d, a, b, rng):
    """d == a @ b up to float32 accumulation (relative to |a| @ |b|)."""
    err = np.abs(d - a @ b) / (np.abs(a) @ np.abs(b))
    assert err.max() < 1e-5, f"max relative error {err.max():.3g}, {rng}"


def tf32_ref(x):
    """float32 -> TF32 (10-bit mantissa), nearest with ties away from zero, as cvt.rna."""
    w = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    finite = (w & 0x7F800000) != 0x7F800000
    rounded = ((w + 0x1000) & 0xFFFFE000).astype(np.uint32)
    return np.where(finite, rounded, w.astype(np.uint32) & 0xFFFFE000 | np.where(w & 0x7FFFFF, 0x400000, 0)
                    .astype(np.uint32)).view(np.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("b_nk", [False, True], ids=["b_kn", "b_nk"])
def test_mma16_with_ldmatrix(lib, rng, dtype, b_nk):
    a32, b32 = rng.normal(16, 16), rng.normal(16, 8)
    if dtype == "float16":
        a16, b16 = a32.astype(np.float16), b32.astype(np.float16)
        a_bits, b_bits = a16.view(np.uint16), b16.view(np.uint16)
        a64, b64 = a16.astype(np.float64), b16.astype(np.float64)
    else:
        a_bits, b_bits = harness.to_bfloat16_bits(a32), harness.to_bfloat16_bits(b32)
        a64 = harness.from_bfloat16_bits(a_bits).astype(np.float64)
        b64 = harness.from_bfloat16_bits(b_bits).astype(np.float64)
    b_store = np.ascontiguousarray(b_bits.T if b_nk else b_bits)
    d = np.full((16, 8), np.nan, np.float32)
    lib.emu_mma16(_p(np.ascontiguousarray(a_bits)), _p(b_store), int(b_nk), int(dtype == "bfloat16"), _p(d))
    assert_product(d, a64, b64, rng)


def test_tf32_mma(lib, rng):
    a, b = rng.normal(16, 8), rng.normal(8, 8)
    d = np.full((16, 8), np.nan, np.float32)
    lib.emu_tf32(_p(a), _p(b), _p(d))
    assert_product(d, tf32_ref(a).astype(np.float64), tf32_ref(b).astype(np.float64), rng)
    # and the rounding matters: the exact float32 product differs by more than float32 noise
    assert np.abs(d - a.astype(np.float64) @ b).max() > 1e-6


def test_to_tf32_rounding(lib, rng):
    x = rng.normal(4096) * np.float32(1e3)
    ties = (rng.normal(64).view(np.uint32) & np.uint32(0xFFFFE000) | np.uint32(0x1000)).view(np.float32)
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 3.4028235e38, 1e-45], np.float32)
    x = np.concatenate([x, ties, special])
    got = np.empty(x.size, np.uint32)
    lib.emu_to_tf32(_p(x), _p(got), ctypes.c_int64(x.size))
    want = tf32_ref(x)
    assert (got.view(np.float32)[~np.isnan(x)] == want[~np.isnan(x)]).all(), str(rng)
    assert np.isnan(got.view(np.float32)[np.isnan(x)]).all()
    assert (got & 0x1FFF == 0).all()


def test_cp_async_zero_fill(lib, rng):
    src = rng.normal(32 * 4)
    valid = (rng.normal(32) > 0).astype(np.int32)
    dst = np.full(32 * 4, np.nan, np.float32)
    lib.emu_cp_async(_p(src), _p(valid), _p(dst))
    want = np.where(np.repeat(valid, 4) != 0, src, 0)
    np.testing.assert_array_equal(dst, want)
