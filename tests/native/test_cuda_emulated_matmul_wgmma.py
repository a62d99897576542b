"""The Hopper wgmma float16 / bfloat16 matmul (kernels/cuda/matmul_wgmma.cu) and the kernel choice
(matmul_half.cu) executed on the CPU through the CUDA stand-in of tests/native/cuda_emu, against
float64 products of the 16-bit inputs. The emulated wgmma (wgmma.cuh) reads the swizzled tiles
through the PTX ISA layouts, so this runs the kernel's tile writers, descriptors, stage ring
indexing, ragged-edge zero fill and epilogue. It runs each wgmma synchronously at issue: a
missing wait_group or proxy fence would not show here (matmul_wgmma.cu argues the ordering; the
GPU tests in test_cuda_matmul16.py check the hardware). Slow: g++ builds the kernels and every
block of 256 threads runs as 256 OS threads, so shapes stay small."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from .cuda_emu import emulate
from .test_cuda_emulated_matmul16 import (BF16, F16, NONE, RELU, TRANS, TgMatmul16, from_bits, reference,
                                          stored_multiple_of_8, to_bits)

pytestmark = pytest.mark.slow
DTYPES = pytest.mark.parametrize("bf16", [False, True], ids=["f16", "bf16"])
INVALID = 1  # cudaErrorInvalidValue


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build(["matmul_f16.cu", "matmul_wgmma.cu", "matmul_half.cu"],
                             tmp_path_factory.mktemp("cuda_emu_wgmma_mm"), sanitize=False)
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    lib = ctypes.CDLL(str(path))
    for name in ("tg_cuda_matmul_f16_wgmma", "tg_cuda_matmul_f16_wgmma_takes", "tg_cuda_matmul_half"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def run(lib, a, b, bias, *, bf16, trans_a=False, trans_b=False, act=NONE, version=2):
    """(error code, out as float32) of tg_cuda_matmul_half on 16-bit bit arrays (2-D, or 3-D
    batched) in their stored layouts; out starts as NaN so an element never written shows."""
    batched = a.ndim == 3
    a3, b3 = (a, b) if batched else (a[None], b[None])
    a3, b3 = np.ascontiguousarray(a3), np.ascontiguousarray(b3)
    batch = a3.shape[0]
    m, k = (a3.shape[2], a3.shape[1]) if trans_a else (a3.shape[1], a3.shape[2])
    n = b3.shape[1] if trans_b else b3.shape[2]
    out = np.full((batch, m, n), 0x7FC0 if bf16 else 0x7E00, np.uint16)
    args = TgMatmul16(batch=batch, m=m, n=n, k=k, dtype=BF16 if bf16 else F16, trans_a=int(trans_a),
                      trans_b=int(trans_b), activation=act, a=a3.ctypes.data, b=b3.ctypes.data,
                      bias=None if bias is None else bias.ctypes.data, out=out.ctypes.data)
    err = lib.tg_cuda_matmul_half(ctypes.byref(args), version, None)
    got = from_bits(out, bf16)
    return err, (got if batched else got[0])


def check(lib, rng, batch, m, n, k, *, bf16, trans_a=False, trans_b=False, with_bias=False, act=NONE, version=2):
    lead = () if batch is None else (batch,)
    a_bits, a = to_bits(rng.normal(*(lead + ((k, m) if trans_a else (m, k)))), bf16)
    b_bits, b = to_bits(rng.normal(*(lead + ((n, k) if trans_b else (k, n)))), bf16)
    bias_bits, bias = to_bits(rng.normal(n), bf16) if with_bias else (None, None)
    err, got = run(lib, a_bits, b_bits, bias_bits, bf16=bf16, trans_a=trans_a, trans_b=trans_b, act=act,
                   version=version)
    ctx = (f"batch={batch} m={m} n={n} k={k} bf16={bf16} trans=({trans_a}, {trans_b}) bias={with_bias} act={act} "
           f"version={version} {rng}")
    assert err == 0, ctx
    want, scale = reference(a, b, bias, act, trans_a, trans_b)
    unit = 2.0 ** -8 if bf16 else 2.0 ** -11
    tol = unit * np.abs(want) + (k + 1) * 2.0 ** -23 * scale + 1e-6
    assert got.shape == want.shape, ctx
    assert np.all(np.abs(got - want) <= tol), f"max err {np.max(np.abs(got - want) - tol)} over tol; {ctx}"


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_every_layout(lib, rng, trans_a, trans_b, bf16):
    # Ragged M and N inside one tile, K from one partial 64-deep slice to more slices (6) than
    # pipeline stages (4), so the stage ring wraps.
    for m, n, k in [(70, 33, 8), (9, 130, 328)]:
        m, n = stored_multiple_of_8(m, n, trans_a, trans_b)
        check(lib, rng, None, m, n, k, bf16=bf16, trans_a=trans_a, trans_b=trans_b)


@DTYPES
def test_several_tiles(lib, rng, bf16):
    # 2 x 2 blocks of 128 x 256, both ragged: the tile mapping and the row/column guards.
    check(lib, rng, None, 136, 264, 72, bf16=bf16)
    check(lib, rng, None, 136, 264, 72, bf16=bf16, trans_a=True, trans_b=True)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True)])
@DTYPES
def test_batched_bias_relu(lib, rng, trans_a, trans_b, bf16):
    check(lib, rng, 3, 24, 40, 80, bf16=bf16, trans_a=trans_a, trans_b=trans_b, with_bias=True, act=RELU)
    check(lib, rng, 2, 24, 40, 16, bf16=bf16, trans_a=trans_a, trans_b=trans_b, with_bias=True, act=NONE)


@DTYPES
def test_k_zero_writes_the_bias(lib, rng, bf16):
    bias_bits, bias = to_bits(rng.normal(24), bf16)
    err, got = run(lib, np.zeros((8, 0), np.uint16), np.zeros((0, 24), np.uint16), bias_bits, bf16=bf16, act=RELU)
    assert err == 0
    np.testing.assert_array_equal(got, np.broadcast_to(np.maximum(bias, 0), (8, 24)), err_msg=str(rng))


def test_automatic_choice_and_the_old_kernel(lib, rng):
    # version 0 is the mma.sync kernel until a GPU run has checked the wgmma one (matmul_half.cu);
    # version 1 is always the mma.sync kernel.
    for version in (0, 1):
        check(lib, rng, None, 40, 24, 64, bf16=False, version=version)
        check(lib, rng, None, 40, 24, 13, bf16=True, trans_b=True, version=version)


def test_refuses_what_it_does_not_take(lib, rng):
    # version 2 on K or a stored row length not a multiple of 8, and an unknown version.
    for m, n, k, ta, tb in [(16, 16, 12, False, False), (12, 16, 16, True, False), (16, 12, 16, False, False),
                            (16, 16, 12, False, True)]:
        a = np.zeros((k, m) if ta else (m, k), np.uint16)
        b = np.zeros((n, k) if tb else (k, n), np.uint16)
        assert run(lib, a, b, None, bf16=False, trans_a=ta, trans_b=tb)[0] == INVALID, (m, n, k, ta, tb)
    a = np.zeros((8, 8), np.uint16)
    assert run(lib, a, a, None, bf16=False, version=3)[0] == INVALID
    assert run(lib, a, a, None, bf16=False, version=-1)[0] == INVALID


def test_no_data_races(tmp_path):
    emulate.assert_no_races(["matmul_f16.cu", "matmul_wgmma.cu", "matmul_half.cu"], tmp_path,
                            "race_driver_matmul16.cpp", args=[2], timeout=1200)
