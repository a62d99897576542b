"""The float16 / bfloat16 attention backward (kernels/cuda/attention_mma_bwd.cu, tensor cores)
executed on the CPU through the CUDA emulation (tests/native/cuda_emu; its mma.sync and ldmatrix
follow the PTX ISA's fragment layouts), against float64 references of the 16-bit inputs. The
CUDA backend's float16 wrappers over it: test_cuda_emulated.py (test_attention_wrappers_half).
Slow: g++ builds the kernels and every CUDA thread is an OS thread, so the shapes stay small."""
import math

import numpy as np
import pytest

from .cuda_emu import harness
from . import test_cuda_attention as attention_tests
from .test_cuda_attention import assert_close, attention_grads_ref, attention_ref, random_mask
from .test_cuda_emulated import lib  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow


def check_half_backward(lib, rng, dtype, shape, causal, mask=None, nan_dead_gout=False):
    B, L, S, D = shape
    (q, q32), (k, k32), (v, v32), (gout, g32) = attention_tests.half_inputs(
        rng, dtype, (B, L, D), (B, S, D), (B, S, D), (B, L, D))
    scale = 1 / math.sqrt(D)
    want_out, want_lse, p = attention_ref(q32, k32, v32, mask, causal, scale)
    if nan_dead_gout:  # rows with no key allowed: their gout must not reach any gradient
        dead = np.broadcast_to(p.sum(-1) == 0, (B, L))
        assert dead.any()
        gout = gout.copy()
        gout[dead] = 0x7FC0 if dtype == "bfloat16" else np.nan
    got = harness.sdpa_16(lib, q, k, v, mask, causal, scale, gout, dtype == "bfloat16")
    ctx = f"{dtype} {shape} causal={causal}"
    rtol, atol = attention_tests.HALF_TOL[dtype]
    assert_close(got[0], want_out, f"out {ctx}", rng, rtol=rtol, atol=atol)
    assert_close(got[1], want_lse, f"lse {ctx}", rng, terms=S)
    for name, g, w in zip(("gq", "gk", "gv"), got[2:], attention_grads_ref(q32, k32, v32, p, g32, scale)):
        rtol, atol = attention_tests.half_grad_tol(dtype, w)
        assert_close(g, w, f"{name} {ctx}", rng, rtol=rtol, atol=atol)


# Ragged lengths around the 32- and 64-row tiles, both head dims, both types; few cases (each
# emulated mma is 64 warp barriers).
CASES = [("float16", (1, 1, 1, 64), False), ("bfloat16", (1, 1, 1, 128), True), ("float16", (1, 33, 70, 64), True),
         ("bfloat16", (1, 70, 33, 64), False), ("float16", (1, 1, 129, 128), False),
         ("float16", (1, 70, 33, 128), True), ("bfloat16", (1, 33, 70, 128), False)]


@pytest.mark.parametrize("dtype,shape,causal", CASES, ids=[f"{d}-{'x'.join(map(str, s))}-{'causal' if c else 'full'}"
                                                           for d, s, c in CASES])
def test_half_backward(lib, rng, dtype, shape, causal):
    check_half_backward(lib, rng, dtype, shape, causal)


MASKS = [("bool", (2, 36, 40), "float16", 64), ("float", (2, 36, 40), "bfloat16", 128),
         ("bool", (1, 36, 1), "bfloat16", 64), ("float", (2, 1, 40), "float16", 128)]


@pytest.mark.parametrize("kind,mshape,dtype,D", MASKS, ids=[f"{k}-{'x'.join(map(str, s))}-{d}-{e}"
                                                           for k, s, d, e in MASKS])
def test_half_backward_masks_and_dead_rows(lib, rng, kind, mshape, dtype, D):
    mask = random_mask(rng, kind, mshape, dead_rows=3)
    if kind == "float" and mshape[1] > 1:
        mask[..., :3, :] = -np.inf
    check_half_backward(lib, rng, dtype, (2, 36, 40, D), kind == "float", mask=mask, nan_dead_gout=mshape[1] > 1)


def test_half_backward_no_queries(lib, rng):
    for dtype in ("float16", "bfloat16"):
        (q, _), (k, _), (v, _), (g, _) = attention_tests.half_inputs(rng, dtype, (2, 0, 64), (2, 5, 64), (2, 5, 64),
                                                                      (2, 0, 64))
        _, _, _, gk, gv = harness.sdpa_16(lib, q, k, v, None, True, 0.5, g, dtype == "bfloat16")
        assert gk.shape == gv.shape == (2, 5, 64)
        assert (gk == 0).all() and (gv == 0).all()  # written (they start as NaN), zeros


def test_half_backward_unaligned_rows(lib, rng):
    # 4-byte but not 16-byte aligned q, k, v, gout take the kernels' 4-byte copy path: same bits.
    def off_by_4_bytes(a):
        buf = np.empty(a.size + 8, a.dtype)
        start = (-buf.ctypes.data % 16) // 2 + 2  # 16-byte aligned, then 4 bytes on
        view = buf[start:start + a.size].reshape(a.shape)
        view[...] = a
        assert view.ctypes.data % 16 == 4
        return view

    for dtype, D in (("float16", 64), ("bfloat16", 128)):
        arrays = [a for a, _ in attention_tests.half_inputs(rng, dtype, (1, 20, D), (1, 40, D), (1, 40, D), (1, 20, D))]
        aligned = harness.sdpa_16(lib, *arrays[:3], None, True, 0.1, arrays[3], dtype == "bfloat16")
        shifted = [off_by_4_bytes(a) for a in arrays]
        again = harness.sdpa_16(lib, *shifted[:3], None, True, 0.1, shifted[3], dtype == "bfloat16")
        for a, b in zip(aligned, again):
            assert np.array_equal(a, b, equal_nan=True)
