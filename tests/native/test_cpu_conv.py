"""tilegrad._cpu.conv2d and its backward kernels (im2col / col2im + the native GEMM) against the
float64 reference kernels:
ragged images, strides, padding past the kernel, dilation, groups, 1x1 (no im2col), empty
batches and channels, workspace reuse across calls of different sizes, and each ISA path."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
from tilegrad.backends import reference  # noqa: E402

REF = reference.KERNELS["conv2d"]
REF_GX = reference.KERNELS["conv2d_backward_input"]
REF_GW = reference.KERNELS["conv2d_backward_weight"]

# (x shape, w shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 4, 9, 8), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),
    ((2, 2, 5, 5), (3, 2, 1, 1), (1, 1), (0, 0), (1, 1), 1),      # 1x1: no im2col
    ((1, 3, 8, 7), (3, 1, 3, 3), (2, 2), (1, 1), (1, 1), 3),      # depthwise
    ((3, 16, 33, 35), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 8, 17, 19), (8, 4, 5, 3), (3, 2), (2, 1), (2, 3), 2),
    ((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((1, 2, 4, 4), (2, 2, 3, 3), (1, 1), (3, 3), (1, 1), 1),      # padding wider than the kernel
    ((2, 5, 6, 6), (7, 5, 6, 6), (1, 1), (0, 0), (1, 1), 1),      # kernel covers the image
    ((1, 3, 10, 10), (5, 3, 1, 1), (2, 3), (1, 0), (1, 1), 1),    # strided 1x1 with padding: im2col
    ((0, 3, 5, 5), (2, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),      # empty batch
    ((1, 0, 5, 5), (3, 0, 3, 3), (1, 1), (1, 1), (1, 1), 1),      # no input channels: zeros
    ((2, 64, 28, 28), (96, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # big enough for threads
]


def run(x, w, s, p, d, g):
    want = REF(x.astype(np.float64), w.astype(np.float64), s, p, d, g)
    out = np.full(want.shape, np.nan, np.float32)
    _cpu.conv2d(x, w, s, p, d, g, out)
    return out, want


def check(x, w, s, p, d, g, what):
    out, want = run(x, w, s, p, d, g)
    if out.size == 0:
        return
    # float32 rounding of each product sum: relative to the sum of |x| |w|
    scale = REF(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), s, p, d, g)
    k = w.shape[1] * w.shape[2] * w.shape[3]
    bad = np.abs(out - want) > 1e-6 * max(1, np.sqrt(k)) * scale + 1e-30
    assert not bad.any(), f"{what}: {bad.sum()} elements off, max err {np.abs(out - want).max():.3g}"


def _close(got, want, scale, terms, what):
    bad = np.abs(got - want) > 1e-6 * max(1, np.sqrt(terms)) * scale + 1e-30
    assert not bad.any(), f"{what}: {bad.sum()} elements off, max err {np.abs(got - want).max():.3g}"


def check_backward(x, w, gy, s, p, d, g, what):
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    gx = np.full(x.shape, np.nan, np.float32)
    _cpu.conv2d_backward_input(gy, w, s, p, d, g, gx)
    want = REF_GX(gy64, w64, x.shape, s, p, d, g)
    if gx.size:
        scale = REF_GX(np.abs(gy64), np.abs(w64), x.shape, s, p, d, g)
        _close(gx, want, scale, w.shape[0] // g * w.shape[2] * w.shape[3], what + " gx")
    gw = np.full(w.shape, np.nan, np.float32)
    _cpu.conv2d_backward_weight(gy, x, s, p, d, g, gw)
    want = REF_GW(gy64, x64, w.shape, s, p, d, g)
    if gw.size:
        scale = REF_GW(np.abs(gy64), np.abs(x64), w.shape, s, p, d, g)
        _close(gw, want, scale, gy.shape[0] * gy.shape[2] * gy.shape[3], what + " gw")


IDS = [f"x{c[0]}w{c[1]}s{c[2]}p{c[3]}d{c[4]}g{c[5]}" for c in CASES]


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d(rng, xs, ws, s, p, d, g):
    check(rng.normal(*xs), rng.normal(*ws), s, p, d, g, f"conv2d {rng}")


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_backward(rng, xs, ws, s, p, d, g):
    x, w = rng.normal(*xs), rng.normal(*ws)
    out_shape = REF(x.astype(np.float64), w.astype(np.float64), s, p, d, g).shape
    check_backward(x, w, rng.normal(*out_shape), s, p, d, g, f"conv2d backward {rng}")


def test_conv2d_workspace_reuse(rng):
    # The per-thread workspace grows and is reused; smaller calls after bigger ones stay right.
    for xs, ws, s, p, d, g in [CASES[4], CASES[0], CASES[12], CASES[5], CASES[1]]:
        check(rng.normal(*xs), rng.normal(*ws), s, p, d, g, f"conv2d reuse {xs} {rng}")


_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import test_cpu_conv as t
import tilegrad._cpu as cpu
gen = np.random.default_rng(int(sys.argv[1]))
failures = []
for xs, ws, s, p, d, g in t.CASES:
    x = gen.standard_normal(xs, dtype=np.float32)
    w = gen.standard_normal(ws, dtype=np.float32)
    gy = gen.standard_normal(t.REF(x.astype(np.float64), w.astype(np.float64), s, p, d, g).shape, dtype=np.float32)
    try:
        t.check(x, w, s, p, d, g, f"{xs} {ws}")
        t.check_backward(x, w, gy, s, p, d, g, f"{xs} {ws}")
    except AssertionError as e:
        failures.append(str(e)[:300])
print(json.dumps({"isa": cpu.isa(), "failures": failures}))
"""


@pytest.mark.parametrize("isa,threads", [("generic", "1"), ("generic", "3"), ("avx2", "1"), ("avx2", "3"), ("avx512", "2")])
def test_each_isa_path(rng, isa, threads):
    best = _cpu.isa()
    rank = {"generic": 0, "avx2": 1, "avx512": 2}
    if "TILEGRAD_CPU_ISA" not in os.environ and rank[isa] > rank[best]:
        pytest.skip(f"this CPU cannot run the {isa} path (best: {best})")
    env = dict(os.environ, TILEGRAD_CPU_ISA=isa, OMP_NUM_THREADS=threads)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(rng.seed), os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if rank[isa] > rank[result["isa"]]:
        pytest.skip(f"this CPU cannot run the {isa} path")
    assert result["failures"] == [], f"isa={isa} threads={threads} {rng}"
