"""The Hopper wgmma building blocks (kernels/cuda/wgmma.cuh) through the CPU emulation: one
warpgroup copies A (64 x 64) and B (64 x 256) into the 128-byte swizzled tiles the wgmma GEMM
uses, K-major or MN-major each, and multiplies them by four m64n256k16 steps through matrix
descriptors; the product must match NumPy's. The emulated wgmma reads shared memory through the
PTX ISA's canonical layouts and swizzle on its own, so a wrong tile writer, descriptor field,
k-step address or fragment layout shows as a wrong product (the GPU tests remain the word on
the hardware). A few seconds: part of the default run."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from .cuda_emu import emulate, harness

SOURCE = str(emulate.HERE / "wgmma_primitives.cu")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build([SOURCE], tmp_path_factory.mktemp("cuda_emu_wgmma"), sanitize=False)
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    lib = ctypes.CDLL(str(path))
    lib.emu_wgmma_desc.restype = ctypes.c_uint64
    lib.emu_wgmma_desc.argtypes = [ctypes.c_uint32] * 3
    return lib


def _p(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def to_bits(x, bf16):
    if bf16:
        bits = harness.to_bfloat16_bits(x)
        return bits, harness.from_bfloat16_bits(bits).astype(np.float64)
    h = np.asarray(x, np.float32).astype(np.float16)
    return h.view(np.uint16), h.astype(np.float64)


@pytest.mark.parametrize("bf16", [False, True], ids=["f16", "bf16"])
@pytest.mark.parametrize("mn_a", [False, True], ids=["a_kmajor", "a_mnmajor"])
@pytest.mark.parametrize("mn_b", [False, True], ids=["b_kmajor", "b_mnmajor"])
def test_wgmma_m64n256k16(lib, rng, bf16, mn_a, mn_b):
    a_bits, a = to_bits(rng.normal(64, 64), bf16)   # A (M, K)
    b_bits, b = to_bits(rng.normal(64, 256), bf16)  # B (K, N)
    a_store = np.ascontiguousarray(a_bits.T if mn_a else a_bits)      # MN-major: [k][m]
    b_store = np.ascontiguousarray(b_bits if mn_b else b_bits.T)      # K-major: [n][k]
    d = np.full((64, 256), np.nan, np.float32)
    lib.emu_wgmma(_p(a_store), _p(b_store), int(mn_a), int(mn_b), int(bf16), _p(d))
    want = a @ b
    err = np.abs(d - want) / (np.abs(a) @ np.abs(b))
    assert err.max() < 1e-5, f"max relative error {err.max():.3g}, mn_a={mn_a} mn_b={mn_b} bf16={bf16} {rng}"


def test_descriptor_bit_layout(lib, rng):
    # PTX ISA matrix descriptor: address >> 4 in bits 0-13, LBO >> 4 in 16-29, SBO >> 4 in 32-45,
    # base offset 0 in 49-51, swizzle mode 1 (128-byte) in 62-63.
    for _ in range(20):
        addr, lbo, sbo = (int(v) * 16 for v in rng.gen.integers(0, 1 << 14, 3))
        desc = lib.emu_wgmma_desc(addr, lbo, sbo)
        assert desc & 0x3FFF == addr >> 4
        assert (desc >> 16) & 0x3FFF == lbo >> 4
        assert (desc >> 32) & 0x3FFF == sbo >> 4
        assert desc >> 46 == 1 << 16  # bits 46-61 zero, 62-63 = 1
        assert desc & (3 << 14) == 0 and (desc >> 30) & 3 == 0
