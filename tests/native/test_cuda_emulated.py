"""The CUDA attention and cross-entropy kernels executed on the CPU through a stand-in for the
CUDA runtime (tests/native/cuda_emu: one std::thread per CUDA thread, barriers for
__syncthreads and warp shuffles), against the float64 references of test_cuda_attention and
test_cuda_loss. This runs the kernels' real indexing, shared-memory layout, shuffles and
barriers where no GPU exists; the GPU tests remain the word on the real hardware.

Slow (g++ compiles the kernels, about a minute). Under AddressSanitizer, which also checks
every global and dynamic-shared-memory access for bounds:

    TILEGRAD_EMU_ASAN=1 LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python -m pytest -m slow tests/native/test_cuda_emulated.py
"""
import math
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

from .cuda_emu import emulate, harness
from . import test_cuda_attention as attention_tests
from . import test_cuda_loss as loss_tests
from .test_cuda_attention import assert_close, attention_grads_ref, attention_ref, random_mask
from .test_cuda_loss import assert_close as assert_close_ce
from .test_cuda_loss import cross_entropy_ref, make_case

pytestmark = pytest.mark.slow

SOURCES = ["attention.cu", "attention_simple.cu", "attention_tiled.cu", "attention_mma.cu", "attention_mma_bwd.cu",
           "attention_mma_fwd.cu", "cross_entropy.cu"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build(SOURCES, tmp_path_factory.mktemp("cuda_emu"),
                             sanitize=os.environ.get("TILEGRAD_EMU_ASAN") == "1")
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    return harness.load(path)


def check_attention(lib, rng, shape, causal=False, mask=None, version=2, scale=None, nan_dead_gout=False):
    B, L, S, E, Ev = shape
    q, k, v, gout = rng.normal(B, L, E), rng.normal(B, S, E), rng.normal(B, S, Ev), rng.normal(B, L, Ev)
    scale = 1 / math.sqrt(max(E, 1)) if scale is None else scale
    want_out, want_lse, p = attention_ref(q, k, v, mask, causal, scale)
    if nan_dead_gout:
        gout[np.broadcast_to(p.sum(-1) == 0, (B, L))] = np.nan
    got = harness.sdpa(lib, q, k, v, mask, causal, scale, gout, version)
    ctx = f"v{version} {shape} causal={causal}"
    assert_close(got[0], want_out, f"out {ctx}", rng, terms=S)
    assert_close(got[1], want_lse, f"lse {ctx}", rng, terms=S)
    for name, g, w in zip(("gq", "gk", "gv"), got[2:], attention_grads_ref(q, k, v, p, gout, scale)):
        assert_close(g, w, f"{name} {ctx}", rng, terms=max(L, S) * max(E, Ev))


# v1 runs a warp-wide reduction per score: slow when emulated, so its shapes stay small.
SHAPES = [((1, 1, 1, 1, 1), (1, 2)), ((2, 9, 13, 5, 3), (1, 2)), ((1, 33, 20, 64, 64), (1, 2)),
          ((2, 63, 65, 64, 64), (2,)), ((1, 65, 63, 128, 128), (2,)), ((1, 70, 129, 65, 63), (2,)),
          ((1, 129, 70, 127, 128), (2,)), ((2, 20, 150, 32, 96), (2,))]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape,versions", SHAPES, ids=["x".join(map(str, s)) for s, _ in SHAPES])
def test_attention(lib, rng, shape, versions, causal):
    for version in versions:
        check_attention(lib, rng, shape, causal=causal, version=version)


MASKS = [("bool", (2, 70, 90)), ("float", (2, 70, 90)), ("bool", (1, 70, 90)), ("float", (2, 1, 90)),
         ("bool", (2, 70, 1)), ("float", (1, 1, 90))]


@pytest.mark.parametrize("kind,mshape", MASKS, ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in MASKS])
def test_attention_masks_and_dead_rows(lib, rng, kind, mshape):
    mask = random_mask(rng, kind, mshape, dead_rows=3)
    if kind == "float" and mshape[1] > 1:
        mask[..., :3, :] = -np.inf
    check_attention(lib, rng, (2, 70, 90, 65, 40), causal=kind == "float", mask=mask, nan_dead_gout=True)
    small = mask[..., :9, :13]
    check_attention(lib, rng, (2, 9, 13, 5, 3), causal=kind == "bool", mask=small, version=1, nan_dead_gout=True)


@pytest.mark.parametrize("version", [1, 2])
def test_attention_empty_dims(lib, rng, version):
    out, lse, gq, _, _ = harness.sdpa(lib, rng.normal(2, 5, 8), rng.normal(2, 0, 8), rng.normal(2, 0, 3), None,
                                      False, 0.5, rng.normal(2, 5, 3), version)
    assert (out == 0).all() and (lse == -np.inf).all() and (gq == 0).all()
    _, _, _, gk, gv = harness.sdpa(lib, rng.normal(2, 0, 8), rng.normal(2, 5, 8), rng.normal(2, 5, 3), None,
                                   True, 0.5, rng.normal(2, 0, 3), version)
    assert (gk == 0).all() and (gv == 0).all()


HALF_SHAPES = [(1, 1, 1, 64), (2, 63, 65, 64), (1, 65, 130, 128), (1, 130, 70, 128)]


def check_half_forward(lib, rng, shape, causal, dtype, version, mask=None):
    B, L, S, D = shape
    (q, q32), (k, k32), (v, v32) = attention_tests.half_inputs(rng, dtype, (B, L, D), (B, S, D), (B, S, D))
    out, lse = harness.sdpa_forward_16(lib, q, k, v, mask, causal, 1 / math.sqrt(D), dtype == "bfloat16", version)
    want_out, want_lse, _ = attention_ref(q32, k32, v32, mask, causal, 1 / math.sqrt(D))
    rtol, atol = attention_tests.HALF_TOL[dtype]
    ctx = f"v{version} {dtype} {shape} causal={causal}"
    assert_close(out, want_out, f"out {ctx}", rng, rtol=rtol, atol=atol)
    assert_close(lse, want_lse, f"lse {ctx}", rng, terms=S)
    return out, lse


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", HALF_SHAPES, ids=["x".join(map(str, s)) for s in HALF_SHAPES])
def test_half_forward(lib, rng, shape, causal, dtype, version):
    # The tensor-core kernels, their mma.sync fragments and ldmatrix emulated from the PTX ISA's layouts.
    B, L, S, _ = shape
    mask = random_mask(rng, "bool", (B, L, S), dead_rows=2) if L > 2 else None
    check_half_forward(lib, rng, shape, causal, dtype, version, mask)


# v4 (the pipelined forward): lengths around its 64-row tiles, S < 64, L == 1, causal with L < S
# and L > S (diagonal tiles that are and are not the last), several key tiles (the two stages
# alternate), no mask (its unmasked fast path on interior tiles).
V4_SHAPES = [(1, 1, 130, 128), (2, 70, 33, 64), (1, 33, 150, 64), (1, 150, 40, 128), (1, 64, 192, 64),
             (1, 129, 129, 128)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", V4_SHAPES, ids=["x".join(map(str, s)) for s in V4_SHAPES])
def test_half_forward_v4_ragged(lib, rng, shape, causal, dtype):
    check_half_forward(lib, rng, shape, causal, dtype, 4)


HALF_MASKS = [("bool", (2, 70, 90), "float16", 64), ("float", (2, 70, 90), "bfloat16", 128),
              ("bool", (1, 70, 90), "bfloat16", 64), ("float", (2, 1, 90), "float16", 128),
              ("bool", (2, 70, 1), "float16", 128), ("float", (1, 1, 90), "bfloat16", 64)]


@pytest.mark.parametrize("kind,mshape,dtype,D", HALF_MASKS,
                         ids=[f"{k}-{'x'.join(map(str, s))}-{d}-{e}" for k, s, d, e in HALF_MASKS])
def test_half_forward_v4_masks_and_dead_rows(lib, rng, kind, mshape, dtype, D):
    # Broadcast bool / float masks, rows with no key allowed (out 0, lse -inf); v4 and v3 agree
    # bit for bit (the same sums in the same order; only the loads differ).
    mask = random_mask(rng, kind, mshape, dead_rows=3)
    if kind == "float" and mshape[1] > 1:
        mask[..., :3, :] = -np.inf
    causal = kind == "float"
    out, lse = check_half_forward(lib, rng, (2, 70, 90, D), causal, dtype, 4, mask)
    if mshape[1] > 1:
        assert (lse == -np.inf).any()
    (q, _), (k, _), (v, _) = attention_tests.half_inputs(rng, dtype, (2, 70, D), (2, 90, D), (2, 90, D))
    v3, v4 = (harness.sdpa_forward_16(lib, q, k, v, mask, causal, 0.1, dtype == "bfloat16", ver) for ver in (3, 4))
    for a, b in zip(v3, v4):
        assert np.array_equal(a, b)


def off_by_4_bytes(a):
    """A copy of `a` whose data is 4-byte but not 16-byte aligned."""
    buf = np.empty(a.size + 8, a.dtype)
    start = (-buf.ctypes.data % 16) // a.itemsize + 4 // a.itemsize
    view = buf[start:start + a.size].reshape(a.shape)
    view[...] = a
    assert view.ctypes.data % 16 == 4
    return view


def test_half_forward_v4_unaligned_rows(lib, rng):
    # 4-byte but not 16-byte aligned q, k, v take v4's 4-byte copy path: the same bits.
    for dtype, D in (("float16", 64), ("bfloat16", 128)):
        arrays = [a for a, _ in attention_tests.half_inputs(rng, dtype, (1, 70, D), (1, 100, D), (1, 100, D))]
        aligned = harness.sdpa_forward_16(lib, *arrays, None, True, 0.1, dtype == "bfloat16", 4)
        shifted = harness.sdpa_forward_16(lib, *map(off_by_4_bytes, arrays), None, True, 0.1, dtype == "bfloat16", 4)
        for a, b in zip(aligned, shifted):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("classes", [1, 33, 1025, 9001])
@pytest.mark.parametrize("weighted,ignore_index,smoothing", [(False, -100, 0.0), (True, 3, 0.1), (True, 0, 1.0)])
def test_cross_entropy(lib, rng, classes, weighted, ignore_index, smoothing):
    logits, target, weight, grow = make_case(rng, 7, classes, weighted, ignore_index)
    target[4] = classes + 7  # out of range (and not ignore_index): flagged, NaN, never read
    loss, lse, error, g = harness.cross_entropy(lib, logits, target, weight, ignore_index, smoothing, grow)
    assert error == 1 and np.isnan(loss[4]) and np.isnan(g[4]).all()
    ok = np.arange(7) != 4
    want = cross_entropy_ref(logits[ok], target[ok], weight, ignore_index, smoothing, grow[ok])
    assert_close_ce(loss[ok], want[0], "loss", rng, classes)
    assert_close_ce(lse[ok], want[1], "lse", rng, classes)
    assert_close_ce(g[ok], want[2], "glogits", rng, classes)


# ---- the CUDA backend's wrappers, with NumPy as CuPy and the emulated kernels as tilegrad._cuda ----

NUMPY_AS_CUPY = types.SimpleNamespace(asarray=np.asarray, asnumpy=np.asarray)


@pytest.fixture
def backend(lib, monkeypatch):
    from tilegrad.backends import cuda
    monkeypatch.setattr(cuda, "_cuda", harness.FakeCudaModule(lib))
    monkeypatch.setattr(cuda, "_cupy", lambda: np)
    monkeypatch.setattr(cuda, "_stream", lambda: 0)
    return cuda


@pytest.mark.parametrize("mask_spec", attention_tests.WRAPPER_MASKS, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_wrappers(backend, rng, mask_spec, causal):
    attention_tests.wrapper_masks_case(NUMPY_AS_CUPY, backend, rng, mask_spec, causal)


def test_attention_wrappers_fall_back_and_views(backend, rng):
    attention_tests.wrapper_fallback_case(NUMPY_AS_CUPY, backend, rng)


def test_attention_wrappers_half(backend, rng):
    attention_tests.wrapper_half_case(NUMPY_AS_CUPY, backend, rng)


def test_cross_entropy_wrappers(backend, rng):
    loss_tests.wrapper_case(NUMPY_AS_CUPY, backend, rng)


def test_no_data_races(tmp_path):
    emulate.assert_no_races(SOURCES, tmp_path, "race_driver.cpp", timeout=1200)
