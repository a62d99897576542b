"""tilegrad._cpu kernels against numpy: ragged sizes, empty sizes, batches, and
every instruction-set path this CPU can run (selected in subprocesses through
TILEGRAD_CPU_ISA, since the choice is made once per process)."""
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
from . import isa_paths  # noqa: E402

RAGGED = [1, 7, 33, 65, 127, 257]


def assert_matmul_close(a, b, out, ctx):
    """out ~= a @ b within float32 rounding: 1e-5 * sqrt(K) relative to |a| @ |b|."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = np.matmul(a64, b64)
    scale = np.matmul(np.abs(a64), np.abs(b64))
    k = a.shape[-1]
    tol = 1e-5 * max(1.0, math.sqrt(k)) * scale + 1e-30
    err = np.abs(out.astype(np.float64) - ref)
    bad = np.argwhere(err > tol)
    assert bad.size == 0, (
        f"matmul {a.shape} @ {b.shape}: {len(bad)} elements off, first at {tuple(bad[0])}: "
        f"got {out[tuple(bad[0])]!r}, want {ref[tuple(bad[0])]!r}; isa={_cpu.isa()} {ctx}"
    )


def run_matmul(a, b):
    shape = a.shape[:-1] + b.shape[-1:]
    out = np.full(shape, np.nan, dtype=np.float32)  # every element must be written
    _cpu.matmul(a, b, out)
    return out


def test_isa_and_threads():
    assert _cpu.isa() in ("generic", "avx2", "avx512")
    assert _cpu.num_threads() >= 1


@pytest.mark.parametrize("m", RAGGED)
@pytest.mark.parametrize("n", RAGGED)
def test_matmul_ragged(rng, m, n):
    for k in (1, 7, 65, 257):
        a, b = rng.normal(m, k), rng.normal(k, n)
        assert_matmul_close(a, b, run_matmul(a, b), rng)


@pytest.mark.parametrize(
    "m,n,k",
    [
        (145, 33, 300),   # more than one row block (MC=144) and two K panels (KC=256)
        (3, 2100, 5),     # more than one column panel (NC=2048)
        (300, 301, 513),  # everything ragged, three K panels
        (1, 1, 1000),     # a dot product
        (512, 1, 64),     # matrix-vector
        (1, 4099, 3),     # a wide row
        (1031, 1029, 260),  # several row groups x column strips (task-parallel path), all ragged
        (7, 2051, 300),   # one row block, strips narrowed to feed the threads
    ],
)
def test_matmul_blocking_edges(rng, m, n, k):
    a, b = rng.normal(m, k), rng.normal(k, n)
    assert_matmul_close(a, b, run_matmul(a, b), rng)


@pytest.mark.parametrize("batch,m,n,k", [(3, 33, 65, 17), (64, 7, 9, 5), (2, 130, 129, 257), (1, 5, 6, 7)])
def test_matmul_batched(rng, batch, m, n, k):
    a, b = rng.normal(batch, m, k), rng.normal(batch, k, n)
    assert_matmul_close(a, b, run_matmul(a, b), rng)


def run_matmul_transposed(a, b, trans_a, trans_b):
    """a @ b with the operands handed over as C-contiguous copies of their transposes."""
    a_arg = np.ascontiguousarray(a.swapaxes(-1, -2)) if trans_a else a
    b_arg = np.ascontiguousarray(b.swapaxes(-1, -2)) if trans_b else b
    out = np.full(a.shape[:-1] + b.shape[-1:], np.nan, dtype=np.float32)
    _cpu.matmul(a_arg, b_arg, out, trans_a=trans_a, trans_b=trans_b)
    return out


@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("batch,m,n,k", [
    (None, 1, 1, 1), (None, 7, 33, 65), (None, 65, 7, 257), (None, 145, 33, 300), (None, 3, 2100, 5),
    (None, 1031, 1029, 260),  # task-parallel path
    (3, 33, 65, 17), (64, 7, 9, 5), (2, 130, 129, 257),
])
def test_matmul_transposed_operands(rng, trans_a, trans_b, batch, m, n, k):
    lead = () if batch is None else (batch,)
    a, b = rng.normal(*lead, m, k), rng.normal(*lead, k, n)
    assert_matmul_close(a, b, run_matmul_transposed(a, b, trans_a, trans_b), (rng, trans_a, trans_b))


@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (False, True)])
def test_matmul_transposed_k_zero_and_empty(trans_a, trans_b):
    for (m, k, n) in [(4, 0, 6), (0, 3, 5), (3, 4, 0)]:
        a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
        np.testing.assert_array_equal(run_matmul_transposed(a, b, trans_a, trans_b), a @ b)


@pytest.mark.parametrize("shape_a,shape_b", [
    ((0, 5), (5, 3)), ((4, 5), (5, 0)), ((0, 0), (0, 0)), ((0, 3, 4), (0, 4, 5)), ((2, 0, 4), (2, 4, 3)),
])
def test_matmul_empty(shape_a, shape_b):
    a = np.ones(shape_a, np.float32)
    b = np.ones(shape_b, np.float32)
    out = run_matmul(a, b)
    assert out.shape == np.matmul(a, b).shape


@pytest.mark.parametrize("batch", [None, 3])
def test_matmul_k_zero_writes_zeros(batch):
    lead = () if batch is None else (batch,)
    a = np.ones(lead + (4, 0), np.float32)
    b = np.ones(lead + (0, 6), np.float32)
    out = run_matmul(a, b)
    np.testing.assert_array_equal(out, np.zeros(lead + (4, 6), np.float32))


def test_matmul_repeated_calls_reuse_scratch(rng):
    # Scratch buffers grow and are reused across calls of different sizes.
    for m, n, k in [(300, 300, 300), (5, 5, 5), (64, 2500, 40), (7, 3, 600)]:
        a, b = rng.normal(m, k), rng.normal(k, n)
        assert_matmul_close(a, b, run_matmul(a, b), rng)


def test_matmul_from_many_threads(rng):
    cases = [(rng.normal(97, 131), rng.normal(131, 75)) for _ in range(8)]
    results = [None] * len(cases)

    def work(i):
        a, b = cases[i]
        for _ in range(5):
            results[i] = run_matmul(a, b)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (a, b), out in zip(cases, results):
        assert_matmul_close(a, b, out, rng)


def special_values(rng, n):
    x = rng.normal(n)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-38, -1e-38], np.float32)
    x[: min(n, specials.size)] = specials[: min(n, specials.size)]
    return x


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (33,), (65,), (127,), (257,), (3, 5, 7), (2, 0, 3), (100_003,), ()])
def test_relu(rng, shape):
    x = special_values(rng, int(np.prod(shape))).reshape(shape)
    out = np.full(shape, 123.0, np.float32)
    _cpu.relu(x, out)
    np.testing.assert_array_equal(out, np.maximum(x, np.float32(0)), err_msg=str(rng))


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (33,), (65,), (127,), (257,), (3, 5, 7), (100_003,), ()])
def test_relu_backward(rng, shape):
    x = special_values(rng, int(np.prod(shape))).reshape(shape)
    gy = rng.normal(*shape)
    out = np.full(shape, 123.0, np.float32)
    _cpu.relu_backward(x, gy, out)
    np.testing.assert_array_equal(out, np.where(x > 0, gy, np.float32(0)), err_msg=str(rng))


def test_relu_in_place(rng):
    x = rng.normal(1000)
    want = np.maximum(x, 0)
    _cpu.relu(x, x)
    np.testing.assert_array_equal(x, want, err_msg=str(rng))
    gy = rng.normal(1000)
    x = rng.normal(1000)
    want = np.where(x > 0, gy, 0)
    _cpu.relu_backward(x, gy, gy)
    np.testing.assert_array_equal(gy, want, err_msg=str(rng))


# --- every ISA path, in subprocesses -------------------------------------------------

_CHILD = r"""
import json, math, sys
import numpy as np
import tilegrad._cpu as cpu

seed = int(sys.argv[1])
gen = np.random.default_rng(seed)
failures = []

def normal(*shape):
    return gen.standard_normal(shape, dtype=np.float32)

for shape_a, shape_b in [((1, 1), (1, 1)), ((7, 33), (33, 65)), ((127, 257), (257, 65)),
                         ((257, 300), (300, 129)), ((6, 16), (16, 32)), ((12, 513), (513, 32)),
                         ((3, 2100), (2100, 5)), ((5, 3, 2100), (5, 2100, 7)), ((4, 33, 17), (4, 17, 65))]:
    a, b = normal(*shape_a), normal(*shape_b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    tol = 1e-5 * max(1.0, math.sqrt(a.shape[-1])) * (np.abs(a64) @ np.abs(b64))
    for ta, tb in [(False, False), (True, False), (False, True), (True, True)]:
        out = np.full(a.shape[:-1] + b.shape[-1:], np.nan, np.float32)
        a_arg = np.ascontiguousarray(a.swapaxes(-1, -2)) if ta else a
        b_arg = np.ascontiguousarray(b.swapaxes(-1, -2)) if tb else b
        cpu.matmul(a_arg, b_arg, out, trans_a=ta, trans_b=tb)
        if not (np.abs(out - a64 @ b64) <= tol).all():
            failures.append(f"matmul {shape_a} @ {shape_b} trans_a={ta} trans_b={tb}")
for n in (0, 1, 7, 31, 33, 65, 257, 100_003):
    x, gy = normal(n), normal(n)
    if n:
        x[0] = np.nan
    out = np.empty_like(x)
    cpu.relu(x, out)
    if not np.array_equal(out, np.maximum(x, 0), equal_nan=True):
        failures.append(f"relu n={n}")
    cpu.relu_backward(x, gy, out)
    if not np.array_equal(out, np.where(x > 0, gy, 0)):
        failures.append(f"relu_backward n={n}")
print(json.dumps({"isa": cpu.isa(), "threads": cpu.num_threads(), "failures": failures}))
"""

@pytest.mark.parametrize("isa,threads", isa_paths.CASES, ids=isa_paths.IDS)
def test_each_isa_path(rng, isa, threads):
    isa_paths.check_path(_CHILD, rng, isa, threads)


def test_isa_cap_above_hardware_is_a_cap():
    # Asking for more than the CPU has never selects an unsupported path.
    best = isa_paths.run_child(_CHILD, 0, {"OMP_NUM_THREADS": "1"})["isa"]
    assert isa_paths.run_child(_CHILD, 0, {"TILEGRAD_CPU_ISA": "avx512"})["isa"] == best


def test_unknown_isa_value_warns():
    env = dict(os.environ, TILEGRAD_CPU_ISA="sse9")
    proc = subprocess.run([sys.executable, "-W", "always", "-c", "import tilegrad._cpu as c; print(c.isa())"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TILEGRAD_CPU_ISA" in proc.stderr and "sse9" in proc.stderr
