"""The float16 / bfloat16 attention backward (kernels/cuda/attention_mma_bwd.cu, tensor cores)
executed on the CPU through the CUDA emulation (tests/native/cuda_emu; its mma.sync and ldmatrix
follow the PTX ISA's fragment layouts), against float64 references of the 16-bit inputs; and the
CUDA backend's float16 wrappers on NumPy-as-CuPy. Slow: g++ builds the kernels and every CUDA
thread is an OS thread, so the shapes stay small."""
import math

import numpy as np
import pytest

from .cuda_emu import harness
from . import test_cuda_attention as attention_tests
from .test_cuda_attention import assert_close, attention_grads_ref, attention_ref, random_mask
from .test_cuda_emulated import NUMPY_AS_CUPY, backend, lib  # noqa: F401  (fixtures)

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
        gout[dead] = 0x7E00 if dtype == "bfloat16" else np.nan
    got = harness.sdpa_16(lib, q, k, v, mask, causal, scale, gout, dtype == "bfloat16")
    ctx = f"{dtype} {shape} causal={causal}"
    rtol, atol = attention_tests.HALF_TOL[dtype]
    assert_close(got[0], want_out, f"out {ctx}", rng, rtol=rtol, atol=atol)
    assert_close(got[1], want_lse, f"lse {ctx}", rng, terms=S)
    for name, g, w in zip(("gq", "gk", "gv"), got[2:], attention_grads_ref(q32, k32, v32, p, g32, scale)):
        rtol, atol = attention_tests.half_grad_tol(dtype, w)
        assert_close(g, w, f"{name} {ctx}", rng, rtol=rtol, atol=atol)


# Ragged lengths around the 32- and 64-row tiles, both head dims.
SHAPES = [(1, 1, 1, 64), (1, 33, 70, 64), (2, 70, 33, 64), (1, 1, 129, 128), (1, 129, 70, 128), (1, 70, 33, 128)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_half_backward(lib, rng, shape, causal, dtype):
    check_half_backward(lib, rng, dtype, shape, causal)


MASKS = [("bool", (2, 70, 40)), ("float", (2, 70, 40)), ("bool", (1, 70, 1)), ("float", (2, 1, 40))]


@pytest.mark.parametrize("dtype,D", [("float16", 64), ("bfloat16", 128)])
@pytest.mark.parametrize("kind,mshape", MASKS, ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in MASKS])
def test_half_backward_masks_and_dead_rows(lib, rng, kind, mshape, dtype, D):
    mask = random_mask(rng, kind, mshape, dead_rows=3)
    if kind == "float":
        mask[..., :3, :] = -np.inf
    check_half_backward(lib, rng, dtype, (2, 70, 40, D), kind == "float", mask=mask, nan_dead_gout=mshape[1] > 1)


def test_half_backward_no_queries(lib, rng):
    for dtype in ("float16", "bfloat16"):
        (q, _), (k, _), (v, _), (g, _) = attention_tests.half_inputs(rng, dtype, (2, 0, 64), (2, 5, 64), (2, 5, 64),
                                                                      (2, 0, 64))
        _, _, _, gk, gv = harness.sdpa_16(lib, q, k, v, None, True, 0.5, g, dtype == "bfloat16")
        assert gk.shape == gv.shape == (2, 5, 64)
        assert (gk == 0).all() and (gv == 0).all()  # written (they start as NaN), zeros


def test_wrappers_half_backward(backend, rng):  # noqa: F811
    attention_tests.wrapper_half_case(NUMPY_AS_CUPY, backend, rng)
