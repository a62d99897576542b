"""tilegrad._cpu.sdpa_forward / sdpa_backward (the fused flash-style attention kernels) against
the float64 reference kernels: ragged L, S, E, Ev (1, and sizes that are not multiples of the
48-query and 128-key tiles or of any vector width), causal with L != S, bool and float masks of
every broadcast form, scales, fully masked rows, empty sizes, the backend wrapper's fallbacks,
misuse of the bindings, and every instruction-set path this CPU can run (in subprocesses)."""

import numpy as np
import pytest

from tilegrad.backends import reference_attention as ref

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
from . import isa_paths  # noqa: E402

# (B, L, S, E, Ev, causal, mask kind, mask lead dims (Bm, Lm) as "1" / "B" / "L", scale)
CASES = [
    (1, 1, 1, 1, 1, False, None, None, 0.5),
    (2, 47, 63, 13, 9, False, None, None, None),
    (2, 49, 65, 64, 64, True, None, None, None),
    (3, 97, 30, 7, 17, True, None, None, None),         # L > S, causal: rows past S see every key
    (2, 20, 130, 16, 8, True, None, None, 1.3),         # L < S, causal
    (2, 33, 70, 5, 3, False, "bool", ("1", "1"), None),  # one key-padding row for everything
    (3, 50, 81, 12, 20, False, "bool", ("1", "L"), None),
    (2, 17, 66, 8, 8, True, "bool", ("B", "1"), None),   # causal and a mask together
    (2, 40, 90, 24, 6, False, "float", ("B", "L"), 0.37),
    (2, 40, 90, 70, 1, False, "float", ("1", "L"), None),
    (3, 29, 44, 9, 11, False, "dead", ("B", "L"), None),  # some rows see no key at all
    (2, 60, 129, 17, 33, True, "dead", ("1", "L"), None),
]
# Enough work for several threads, with fewer batches than threads: the batch splits into
# chunks of query tiles (forward) and key tiles (backward, gq summed from the chunks' parts).
BIG_CASES = [(1, 300, 290, 32, 40, False, None, None, None), (1, 301, 333, 40, 24, True, "bool", ("1", "L"), None)]


def _make(gen, case):
    b, length, source, e, ev, causal, kind, lead, scale = case
    q, k, v = (gen.standard_normal(s, dtype=np.float32) for s in ((b, length, e), (b, source, e), (b, source, ev)))
    mask = None
    if kind is not None:
        shape = tuple({"1": 1, "B": b, "L": length}[n] for n in lead) + (source,)
        if kind == "float":
            mask = gen.standard_normal(shape, dtype=np.float32)
            mask[gen.random(shape) < 0.2] = -np.inf
            mask[..., 0] = 0  # every row keeps a key
        else:
            mask = gen.random(shape) < 0.7
            mask[..., 0] = True
            if kind == "dead":
                mask[..., ::4, :] = False
    scale = 1 / np.sqrt(max(e, 1)) if scale is None else scale
    return q, k, v, mask, causal, float(scale)


def _native(q, k, v, mask, causal, scale, gout):
    b, length, ev = q.shape[0], q.shape[1], v.shape[2]
    out = np.full((b, length, ev), np.nan, np.float32)
    lse = np.full((b, length), np.nan, np.float32)
    _cpu.sdpa_forward(q, k, v, mask, causal, scale, out, lse)
    gq, gk, gv = (np.full(a.shape, np.nan, np.float32) for a in (q, k, v))
    _cpu.sdpa_backward(q, k, v, mask, causal, scale, out, lse, gout, gq, gk, gv)
    return out, lse, gq, gk, gv


def check_case(gen, case):
    """Raises AssertionError naming what differs from the float64 reference."""
    q, k, v, mask, causal, scale = _make(gen, case)
    gout = gen.standard_normal(q.shape[:2] + v.shape[2:], dtype=np.float32)
    out, lse, gq, gk, gv = _native(q, k, v, mask, causal, scale, gout)
    q64, k64, v64, g64 = (a.astype(np.float64) for a in (q, k, v, gout))
    m64 = None if mask is None or mask.dtype == bool else mask.astype(np.float64)
    m64 = mask if m64 is None else m64
    want_out, want_lse = ref.sdpa_forward(q64, k64, v64, m64, causal, scale)
    want = ref.sdpa_backward(q64, k64, v64, m64, causal, scale, want_out, want_lse, g64)
    atol = 2e-5 * max(1.0, np.sqrt(k.shape[1] / 64))  # sums over S keys round like sqrt(S) terms
    np.testing.assert_allclose(out, want_out, rtol=2e-4, atol=atol, err_msg=f"out {case}")
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(want_lse), err_msg=f"fully masked rows {case}")
    live = np.isfinite(want_lse)
    np.testing.assert_allclose(lse[live], want_lse[live], rtol=2e-5, atol=1e-5, err_msg=f"lse {case}")
    for name, got, w in zip(("gq", "gk", "gv"), (gq, gk, gv), want):
        np.testing.assert_allclose(got, w, rtol=2e-4, atol=atol * 4, err_msg=f"{name} {case}")
    dead = ~live
    assert not out[dead].any() and not gq[dead].any(), f"fully masked rows are not 0 {case}"


@pytest.mark.parametrize("case", CASES + BIG_CASES, ids=[str(c[:6]) + str(c[6:8]) for c in CASES + BIG_CASES])
def test_native_matches_reference(rng, case):
    check_case(rng.gen, case)


def test_forward_is_deterministic(rng):
    q, k, v, mask, causal, scale = _make(rng.gen, BIG_CASES[1])
    gout = rng.normal(*q.shape[:2], v.shape[2])
    first = _native(q, k, v, mask, causal, scale, gout)
    again = _native(q, k, v, mask, causal, scale, gout)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(2, 5, 0, 3, 4), (2, 0, 6, 3, 4), (2, 5, 6, 0, 4), (2, 5, 6, 3, 0), (0, 5, 6, 3, 4)],
                         ids=["S=0", "L=0", "E=0", "Ev=0", "B=0"])
def test_empty_sizes(rng, shape):
    b, length, source, e, ev = shape
    q, k, v = rng.normal(b, length, e), rng.normal(b, source, e), rng.normal(b, source, ev)
    gout = rng.normal(b, length, ev)
    out, lse, gq, gk, gv = _native(q, k, v, None, False, 0.5, gout)
    want_out, want_lse = ref.sdpa_forward(q, k, v, None, False, 0.5)  # float32 reference: exact here
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-6)
    for got, want in zip((gq, gk, gv), ref.sdpa_backward(q, k, v, None, False, 0.5, want_out, want_lse, gout)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_backend_wrapper_uses_native_and_falls_back(rng, monkeypatch):
    from tilegrad.backends import cpu
    calls = []
    monkeypatch.setattr(cpu, "_cpu", type("Spy", (), {
        "sdpa_forward": staticmethod(lambda *a: (calls.append("fwd"), _cpu.sdpa_forward(*a))[1]),
        "sdpa_backward": staticmethod(lambda *a: (calls.append("bwd"), _cpu.sdpa_backward(*a))[1])}))
    q, k, v = rng.normal(2, 5, 3), rng.normal(2, 7, 3), rng.normal(2, 7, 4)
    keep = rng.gen.random((1, 5, 7)) < 0.8
    out, lse = cpu.sdpa_forward(q, k, v, keep, True, 0.5)
    cpu.sdpa_backward(q, k, v, keep, True, 0.5, out, lse, rng.normal(2, 5, 4))
    assert calls == ["fwd", "bwd"]
    calls.clear()
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    out64, lse64 = cpu.sdpa_forward(q64, k64, v64, keep, True, 0.5)  # float64: the reference
    assert out64.dtype == np.float64 and calls == []
    np.testing.assert_allclose(out, out64, rtol=1e-5, atol=1e-6)
    cpu.sdpa_forward(q, k, v, keep[0], True, 0.5)  # a 2-d mask is not a form the kernel takes
    cpu.sdpa_forward(q, k, v, keep.astype(np.float64), True, 0.5)
    assert calls == []


# --- binding misuse (test_bindings.py checks dtypes, contiguity, alignment, readonly outputs) -----

def _good():
    return {"q": np.ones((2, 3, 4), np.float32), "k": np.ones((2, 5, 4), np.float32),
            "v": np.ones((2, 5, 6), np.float32), "mask": np.ones((2, 1, 5), bool), "is_causal": False,
            "scale": 0.5, "out": np.ones((2, 3, 6), np.float32), "lse": np.ones((2, 3), np.float32)}


def _good_backward():
    args = _good()
    out, lse = args.pop("out"), args.pop("lse")
    args.update(out=out, lse=lse, gout=np.ones((2, 3, 6), np.float32), gq=np.ones((2, 3, 4), np.float32),
                gk=np.ones((2, 5, 4), np.float32), gv=np.ones((2, 5, 6), np.float32))
    return args


GOOD = {"sdpa_forward": _good, "sdpa_backward": _good_backward}


def _call(fn, args):
    getattr(_cpu, fn)(*args.values())


@pytest.mark.parametrize("fn", GOOD)
@pytest.mark.parametrize("name,shape", [("q", (2, 3)), ("q", (2, 3, 5)), ("k", (3, 5, 4)), ("v", (2, 4, 6)),
                                        ("q", (1, 2, 3, 4)), ("mask", (5,)), ("mask", (2, 5)), ("mask", (3, 1, 5)),
                                        ("mask", (2, 2, 5)), ("mask", (2, 1, 4)), ("lse", (2, 3, 1))])
def test_bad_shapes(fn, name, shape):
    args = GOOD[fn]()
    args[name] = np.ones(shape, args[name].dtype)
    with pytest.raises(ValueError, match=f"tilegrad._cpu.{fn}"):
        _call(fn, args)


@pytest.mark.parametrize("fn", GOOD)
def test_bad_scalars_and_mask_types(fn):
    for name, bad in (("is_causal", 1), ("is_causal", None), ("is_causal", np.bool_(True)), ("scale", "0.5"),
                      ("scale", None), ("scale", True), ("mask", np.ones((2, 1, 5), np.int8)),
                      ("mask", [[[True] * 5]] * 2)):
        args = GOOD[fn]()
        args[name] = bad
        with pytest.raises(TypeError, match=f"tilegrad._cpu.{fn}.*'{name}'"):
            _call(fn, args)
    args = GOOD[fn]()
    args["mask"] = np.ones((2, 5, 3), bool).transpose(0, 2, 1)  # a non-contiguous bool mask
    with pytest.raises(ValueError, match="'mask' must be C-contiguous"):
        _call(fn, args)
    for mask in (None, np.zeros((1, 3, 5), np.float32)):  # both mask kinds and none are fine
        args = GOOD[fn]()
        args["mask"] = mask
        _call(fn, args)


def test_outputs_must_not_alias():
    args = _good()
    args["out"] = args["v"].reshape(-1)[:36].reshape(2, 3, 6)  # a view into an input
    with pytest.raises(ValueError, match="share memory"):
        _call("sdpa_forward", args)
    args = _good()
    raw = np.ones(40, bool)
    args["mask"] = raw[:10].reshape(2, 1, 5)
    args["lse"] = raw.view(np.float32)[2:8].reshape(2, 3)  # bytes 8-31: overlaps the mask's bytes 8 and 9
    with pytest.raises(ValueError, match="share memory with 'mask'"):
        _call("sdpa_forward", args)
    args = _good_backward()
    buf = np.ones(2 * 5 * 6 + 2 * 5 * 4, np.float32)
    args["gv"], args["gk"] = buf[:60].reshape(2, 5, 6), buf[50:90].reshape(2, 5, 4)  # outputs overlap
    with pytest.raises(ValueError, match="share memory"):
        _call("sdpa_backward", args)
    args = _good_backward()
    args["gv"] = args["v"]
    with pytest.raises(ValueError, match="share memory"):
        _call("sdpa_backward", args)


# --- every ISA path, in subprocesses ---------------------------------------------------------

_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from tests.native import test_cpu_attention as t
import tilegrad._cpu as cpu

gen = np.random.default_rng(int(sys.argv[1]))
failures = []
for case in t.CASES + t.BIG_CASES:
    try:
        t.check_case(gen, case)
    except AssertionError as e:
        failures.append(str(e)[:400])
print(json.dumps({"isa": cpu.isa(), "threads": cpu.num_threads(), "failures": failures}))
"""

@pytest.mark.parametrize("isa,threads", isa_paths.CASES, ids=isa_paths.IDS)
def test_each_isa_path(rng, isa, threads):
    isa_paths.check_path(_CHILD, rng, isa, threads)
