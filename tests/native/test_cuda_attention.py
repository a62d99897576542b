"""tilegrad._cuda scaled dot-product attention: the kernels (v1 simple, v2 tiled; v3 and v4 float16
/ bfloat16 on tensor cores) and the CUDA backend's wrappers against a materialised float64 NumPy
reference on a GPU (tests marked cuda), and that reference against PyTorch on the CPU. The
bindings' argument checks: test_cuda_attention_bindings.py; the kernels run on the CPU:
test_cuda_emulated.py."""
import math

import numpy as np
import pytest

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

GPU = _cuda is not None and _cuda.is_available()


# ---- the float64 reference (materialised softmax) ------------------------------------------

def attention_ref(q, k, v, mask, causal, scale):
    """out, lse and the probabilities p (0 on rows with no key allowed), in float64."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    s = q @ k.swapaxes(-1, -2) * scale
    allowed = np.ones(s.shape, bool)
    if causal:
        allowed &= np.tril(np.ones(s.shape[-2:], bool))
    if mask is not None:
        if mask.dtype == np.bool_:
            allowed &= mask
        else:
            s = s + mask
    s = np.where(allowed, s, -np.inf)
    dead = np.isneginf(s).all(-1, keepdims=True)  # masked out, or an additive -inf everywhere
    top = np.where(dead, 0.0, s.max(-1, keepdims=True, initial=-np.inf))
    e = np.exp(s - top)
    total = e.sum(-1, keepdims=True)
    p = e / np.where(dead, 1.0, total)
    with np.errstate(divide="ignore"):
        lse = np.where(dead, -np.inf, np.log(np.where(dead, 1.0, total)) + top)[..., 0]
    return np.where(dead, 0.0, p @ v), lse, p  # no key allowed: 0, as PyTorch and the op's reference


def attention_grads_ref(q, k, v, p, gout, scale):
    """gq, gk, gv for probabilities p; rows with no key allowed (p == 0) add nothing."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    dead = p.sum(-1, keepdims=True) == 0
    g = np.where(dead, 0.0, gout.astype(np.float64))
    dp = g @ v.swapaxes(-1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdims=True))
    return ds @ k * scale, ds.swapaxes(-1, -2) @ np.where(dead, 0.0, q) * scale, p.swapaxes(-1, -2) @ g


def assert_close(got, want, what, rng, terms=1, rtol=1e-4, atol=None):
    """float32 against float64: rtol 1e-4 and an atol that grows like sqrt(terms) of the sums
    (or the given rtol and atol, for 16-bit types)."""
    got = np.asarray(got, np.float64)
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    atol = 2e-6 * math.sqrt(terms) * scale if atol is None else atol
    same_nan = np.isnan(got) == np.isnan(want)
    with np.errstate(invalid="ignore"):
        close = (got == want) | (np.abs(got - want) <= atol + rtol * np.abs(want))
    ok = same_nan & (np.isnan(want) | close)
    bad = np.argwhere(~ok)
    assert bad.size == 0, (f"{what}: {len(bad)} of {got.size} bad, first {tuple(bad[0])}: got {got[tuple(bad[0])]} "
                           f"want {want[tuple(bad[0])]}; {rng}")


def random_mask(rng, kind, shape, dead_rows=0):
    if kind is None:
        return None
    if kind == "bool":
        m = rng.gen.random(shape) < 0.7
        m[..., : min(dead_rows, shape[-2]), :] = False  # rows with no key allowed
        return m
    m = rng.normal(*shape)
    m[rng.gen.random(shape) < 0.2] = -np.inf
    return m


# ---- the reference itself, against PyTorch (CPU) -------------------------------------------

@pytest.mark.parametrize("causal,mask_kind", [(False, None), (True, None), (False, "bool"), (False, "float")])
def test_reference_matches_torch(rng, causal, mask_kind):
    torch = pytest.importorskip("torch")
    q, k, v = (rng.normal(2, n, e).astype(np.float64) for n, e in ((7, 5), (9, 5), (9, 3)))
    mask = random_mask(rng, mask_kind, (2, 7, 9))
    if mask_kind == "float":
        mask[..., 0] = 0.0  # keep every row alive: PyTorch's rows with no key allowed differ by version
    if mask_kind == "bool":
        mask[..., 0] = True
    out, lse, p = attention_ref(q, k, v, mask, causal, 0.4)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tmask = None if mask is None else torch.tensor(mask)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=causal, scale=0.4)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=str(rng))
    gout = rng.normal(2, 7, 3).astype(np.float64)
    tout.backward(torch.tensor(gout))
    for got, t in zip(attention_grads_ref(q, k, v, p, gout, 0.4), (tq, tk, tv)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=str(rng))
    scores = torch.tensor(q) @ torch.tensor(k).transpose(-1, -2) * 0.4
    if causal:
        scores = scores.masked_fill(~torch.ones(7, 9, dtype=torch.bool).tril(), -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~tmask, -math.inf) if mask_kind == "bool" else scores + tmask
    np.testing.assert_allclose(lse, torch.logsumexp(scores, -1).numpy(), rtol=1e-12, err_msg=str(rng))


def test_fallback_reference_matches(rng):
    # The CUDA backend's fallback, the op's reference kernels (here on NumPy), agrees with the
    # reference above.
    from tilegrad.backends import reference_attention as reference_fused
    q, k, v = rng.normal(3, 6, 4), rng.normal(3, 8, 4), rng.normal(3, 8, 5)
    mask = random_mask(rng, "bool", (3, 6, 8), dead_rows=2)
    out, lse = reference_fused.sdpa_forward(q, k, v, mask, True, 0.7)
    want_out, want_lse, p = attention_ref(q, k, v, mask, True, 0.7)
    assert_close(out, want_out, "out", rng)
    assert_close(lse, want_lse, "lse", rng)
    gout = rng.normal(3, 6, 5)  # (finite: the kernels alone also drop a NaN gout of a dead row)
    got = reference_fused.sdpa_backward(q, k, v, mask, True, 0.7, out, lse, gout)
    for name, g, w in zip(("gq", "gk", "gv"), got, attention_grads_ref(q, k, v, p, gout, 0.7)):
        assert_close(g, w, name, rng, terms=8)


# ---- GPU: the kernels -----------------------------------------------------------------------

@pytest.fixture
def cp():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    if not GPU:
        pytest.skip("no usable CUDA device")
    return cupy


def run_kernels(cp, stream, q, k, v, mask, causal, scale, gout, version):
    """The raw bindings: (out, lse, gq, gk, gv) as NumPy arrays."""
    B, L, _ = q.shape
    dq, dk, dv = cp.asarray(q), cp.asarray(k), cp.asarray(v)
    dmask = None if mask is None else cp.asarray(mask if mask.dtype == np.bool_ else mask.astype(np.float32))
    out = cp.full((B, L, v.shape[2]), 7.0, cp.float32)  # stale values must be overwritten
    lse = cp.full((B, L), 7.0, cp.float32)
    _cuda.sdpa_forward(dq, dk, dv, dmask, causal, scale, out, lse, stream=stream.ptr, version=version)
    gq, gk, gv = cp.full(q.shape, 7.0, cp.float32), cp.full(k.shape, 7.0, cp.float32), cp.full(v.shape, 7.0, cp.float32)
    delta = cp.full((B, L), 7.0, cp.float32)
    _cuda.sdpa_backward(dq, dk, dv, dmask, causal, scale, out, lse, cp.asarray(gout), delta, gq, gk, gv,
                        stream=stream.ptr, version=version)
    stream.synchronize()
    return [cp.asnumpy(a) for a in (out, lse, gq, gk, gv)]


def check_attention(cp, stream, rng, shape, causal=False, mask=None, version=2, scale=None, nan_dead_gout=False):
    B, L, S, E, Ev = shape
    q, k, v = rng.normal(B, L, E), rng.normal(B, S, E), rng.normal(B, S, Ev)
    scale = 1 / math.sqrt(max(E, 1)) if scale is None else scale
    want_out, want_lse, p = attention_ref(q, k, v, mask, causal, scale)
    gout = rng.normal(B, L, Ev)
    if nan_dead_gout:
        gout[np.broadcast_to(p.sum(-1) == 0, (B, L))] = np.nan
    got = run_kernels(cp, stream, q, k, v, mask, causal, scale, gout, version)
    ctx = f"v{version} {shape} causal={causal} {rng}"
    assert_close(got[0], want_out, f"out {ctx}", rng, terms=S)
    assert_close(got[1], want_lse, f"lse {ctx}", rng, terms=S)
    want = attention_grads_ref(q, k, v, p, gout, scale)
    for name, g, w, terms in zip(("gq", "gk", "gv"), got[2:], want, (S * E, L * Ev, L)):
        assert_close(g, w, f"{name} {ctx}", rng, terms=terms + Ev)


RAGGED = [  # (B, L, S, E, Ev): lengths around the 32 / 64-row tiles, head dims around 64 / 128
    (1, 1, 1, 1, 1), (2, 63, 65, 64, 64), (1, 65, 63, 128, 128), (3, 127, 129, 65, 63), (2, 129, 127, 127, 128),
    (1, 1, 129, 32, 96), (2, 129, 1, 8, 16), (1, 64, 64, 63, 1), (1, 33, 200, 128, 64), (2, 200, 33, 64, 128),
]


@pytest.mark.cuda
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", RAGGED, ids=["x".join(map(str, s)) for s in RAGGED])
def test_attention_ragged(cp, stream, rng, shape, causal, version):
    check_attention(cp, stream, rng, shape, causal=causal, version=version)


MASKS = [(None, (2, 70, 90)), ("bool", (2, 70, 90)), ("float", (2, 70, 90)), ("bool", (1, 70, 90)),
         ("float", (2, 1, 90)), ("bool", (2, 70, 1)), ("float", (1, 1, 90))]


@pytest.mark.cuda
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("kind,mshape", MASKS, ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in MASKS])
def test_attention_masks(cp, stream, rng, kind, mshape, causal, version):
    mask = random_mask(rng, kind, mshape)
    if kind == "float":
        mask[..., :1] = 0.0  # key 0 open on every row: no dead rows here
    if kind == "bool":
        mask[..., :1] = True
    check_attention(cp, stream, rng, (2, 70, 90, 65, 40), causal=causal, mask=mask, version=version)


@pytest.mark.cuda
@pytest.mark.parametrize("version", [1, 2])
def test_rows_with_no_key(cp, stream, rng, version):
    # zero outputs and lse -inf on those rows; the backward stays finite elsewhere even when
    # their gout is NaN, and their gq is 0.
    for kind in ("bool", "float"):
        mask = random_mask(rng, kind, (2, 67, 70), dead_rows=3)
        if kind == "float":
            mask[:, :3, :] = -np.inf
        check_attention(cp, stream, rng, (2, 67, 70, 64, 64), mask=mask, version=version, nan_dead_gout=True)


@pytest.mark.cuda
@pytest.mark.parametrize("version", [1, 2])
def test_no_keys_at_all(cp, stream, rng, version):
    q, k, v = rng.normal(2, 5, 8), rng.normal(2, 0, 8), rng.normal(2, 0, 3)
    out, lse, gq, gk, gv = run_kernels(cp, stream, q, k, v, None, False, 0.5, rng.normal(2, 5, 3), version)
    assert (out == 0).all() and (lse == -np.inf).all() and (gq == 0).all() and gk.size == gv.size == 0


@pytest.mark.cuda
@pytest.mark.parametrize("version", [1, 2])
def test_no_queries_gives_zero_key_gradients(cp, stream, rng, version):
    q, k, v = rng.normal(2, 0, 8), rng.normal(2, 5, 8), rng.normal(2, 5, 3)
    _, _, _, gk, gv = run_kernels(cp, stream, q, k, v, None, True, 0.5, rng.normal(2, 0, 3), version)
    assert (gk == 0).all() and (gv == 0).all()


@pytest.mark.cuda
def test_sharp_softmax_and_long_rows(cp, stream, rng):
    # scale 1 on E = 128: scores of std ~11, so the running max moves often (online rescaling).
    check_attention(cp, stream, rng, (1, 300, 1031, 128, 128), scale=1.0)
    check_attention(cp, stream, rng, (2, 1031, 517, 64, 64), causal=True)


@pytest.mark.cuda
def test_versions_deterministic(cp, stream, rng):
    q, k, v, g = rng.normal(2, 150, 64), rng.normal(2, 130, 64), rng.normal(2, 130, 64), rng.normal(2, 150, 64)
    for version in (1, 2):
        first = run_kernels(cp, stream, q, k, v, None, True, 0.125, g, version)
        again = run_kernels(cp, stream, q, k, v, None, True, 0.125, g, version)
        for a, b in zip(first, again):
            assert np.array_equal(a, b), f"v{version} is not bit-reproducible"


# ---- 16-bit inputs: the tensor-core forward --------------------------------------------------

HALF_TOL = {"float16": (1e-2, 2e-3), "bfloat16": (2e-2, 1.6e-2)}  # rtol, atol: P and out are rounded


def half_grad_tol(dtype, want):
    """rtol, atol of the 16-bit backward's gq, gk, gv for unit-scale inputs: P and dS are rounded
    to the input type before their products and delta comes from the rounded out, errors of a
    few ulps of the terms |P| |gout|, |dS| |k| ~ 1 rather than of each (possibly cancelled)
    gradient; the outputs are rounded once more."""
    eps = 2.0 ** -11 if dtype == "float16" else 2.0 ** -8
    finite = np.abs(want[np.isfinite(want)])
    return 2 * eps, 4 * eps * max(float(finite.max()) if finite.size else 0.0, 1.0)


def to_bfloat16_bits(x):
    """float32 values rounded to nearest even bfloat16, as uint16 bits."""
    w = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def half_inputs(rng, dtype, *shapes):
    """Random arrays in the 16-bit type (float16, or bfloat16 as uint16 bits) and their exact
    float32 values."""
    pairs = []
    for shape in shapes:
        x = rng.normal(*shape)
        bits = to_bfloat16_bits(x) if dtype == "bfloat16" else x.astype(np.float16)
        pairs.append((bits, from_bfloat16_bits(bits) if dtype == "bfloat16" else bits.astype(np.float32)))
    return pairs


def half_output(out, dtype):
    return from_bfloat16_bits(out) if dtype == "bfloat16" else np.asarray(out, np.float32)


# Around the tiles of v3 (64 queries x 64 keys) and v4 (128 or 64 queries x 64 keys): L == 1,
# S < 64, causal with L < S and L > S, several key tiles, both head dims.
HALF_CASES = [(1, 1, 1, 64), (2, 63, 65, 64), (1, 65, 130, 128), (2, 130, 70, 128), (1, 200, 257, 64),
              (1, 1, 300, 128), (2, 70, 33, 64), (1, 33, 150, 64), (1, 150, 40, 128), (2, 257, 300, 128),
              (1, 129, 129, 64)]


def run_half_forward(cp, stream, q, k, v, mask, causal, scale, dtype, version=0, to_device=None):
    """The 16-bit forward: (out as float32, lse) NumPy arrays; out starts as NaN, lse as 7.0."""
    dq, dk, dv = (cp.asarray(a) if to_device is None else to_device(a) for a in (q, k, v))
    nan = cp.uint16(0x7FC0) if dtype == "bfloat16" else cp.float16(np.nan)
    out = cp.full(q.shape[:2] + v.shape[2:], nan)
    lse = cp.full(q.shape[:2], 7.0, cp.float32)
    _cuda.sdpa_forward(dq, dk, dv, None if mask is None else cp.asarray(mask), causal, scale, out, lse,
                       stream=stream.ptr, version=version, dtype="bfloat16" if dtype == "bfloat16" else None)
    stream.synchronize()
    return half_output(cp.asnumpy(out), dtype), cp.asnumpy(lse)


def check_half_forward(cp, stream, rng, shape, causal, dtype, version, mask=None):
    B, L, S, D = shape
    (q, q32), (k, k32), (v, v32) = half_inputs(rng, dtype, (B, L, D), (B, S, D), (B, S, D))
    out, lse = run_half_forward(cp, stream, q, k, v, mask, causal, 1 / math.sqrt(D), dtype, version)
    want_out, want_lse, _ = attention_ref(q32, k32, v32, mask, causal, 1 / math.sqrt(D))
    rtol, atol = HALF_TOL[dtype]
    ctx = f"v{version} {dtype} {shape} causal={causal} {rng}"
    assert_close(out, want_out, f"out {ctx}", rng, rtol=rtol, atol=atol)
    assert_close(lse, want_lse, f"lse {ctx}", rng, terms=S)
    return lse


@pytest.mark.cuda
@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", HALF_CASES, ids=["x".join(map(str, s)) for s in HALF_CASES])
def test_half_forward(cp, stream, rng, shape, causal, dtype, version):
    B, L, S, _ = shape
    mask = random_mask(rng, "bool", (B, L, S), dead_rows=2) if L > 2 else None
    check_half_forward(cp, stream, rng, shape, causal, dtype, version, mask)


@pytest.mark.cuda
@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind,mshape", MASKS[1:], ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in MASKS[1:]])
def test_half_forward_masks_and_dead_rows(cp, stream, rng, kind, mshape, dtype, version):
    mask = random_mask(rng, kind, mshape, dead_rows=3)
    if kind == "float" and mshape[1] > 1:
        mask[..., :3, :] = -np.inf
    for D in (64, 128):
        lse = check_half_forward(cp, stream, rng, (2, 70, 90, D), kind == "float", dtype, version, mask)
        if mshape[1] > 1:
            assert (lse == -np.inf).any()  # rows with no key allowed: lse -inf (and out 0, checked above)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_forward_versions_agree(cp, stream, rng, dtype):
    # v3 and v4 add the same terms in the same order; only exp2's last bits may differ.
    (q, _), (k, _), (v, _) = half_inputs(rng, dtype, (2, 300, 128), (2, 333, 128), (2, 333, 128))
    for causal in (False, True):
        v3, v4 = (run_half_forward(cp, stream, q, k, v, None, causal, 0.1, dtype, version) for version in (3, 4))
        assert_close(v4[0], v3[0].astype(np.float64), f"{dtype} out v4 vs v3", rng, rtol=1e-2, atol=1e-2)
        assert_close(v4[1], v3[1].astype(np.float64), f"{dtype} lse v4 vs v3", rng, terms=333)


@pytest.mark.cuda
def test_half_forward_unaligned_rows(cp, stream, rng):
    # 4-byte but not 16-byte aligned q, k, v: v4's 4-byte copy path, the same bits.
    def off_by_4_bytes(a):
        buf = cp.empty(a.size + 2, a.dtype)  # CuPy allocations are 256-byte aligned
        view = buf[2:].reshape(a.shape)
        view[...] = cp.asarray(a)
        return view

    for dtype, D in (("float16", 64), ("bfloat16", 128)):
        (q, _), (k, _), (v, _) = half_inputs(rng, dtype, (2, 150, D), (2, 170, D), (2, 170, D))
        aligned = run_half_forward(cp, stream, q, k, v, None, True, 0.125, dtype, 4)
        shifted = run_half_forward(cp, stream, q, k, v, None, True, 0.125, dtype, 4, to_device=off_by_4_bytes)
        for a, b in zip(aligned, shifted):
            assert np.array_equal(a, b)


def run_half_kernels(cp, stream, q, k, v, mask, causal, scale, gout, dtype, to_device=None):
    """The default 16-bit forward (v4) and the backward on 16-bit arrays: (out, lse, gq, gk, gv) as float32 NumPy
    arrays. 16-bit outputs start as NaN, lse and delta as 7.0, so anything not written shows."""
    dq, dk, dv, dg = (cp.asarray(a) if to_device is None else to_device(a) for a in (q, k, v, gout))
    dmask = None if mask is None else cp.asarray(mask if mask.dtype == np.bool_ else mask.astype(np.float32))
    name = "bfloat16" if dtype == "bfloat16" else None
    nan = cp.uint16(0x7FC0) if dtype == "bfloat16" else cp.float16(np.nan)
    B, L, _ = q.shape
    out, lse, delta = cp.full(v.shape[:1] + (L, v.shape[2]), nan), cp.full((B, L), 7.0, cp.float32), \
        cp.full((B, L), 7.0, cp.float32)
    _cuda.sdpa_forward(dq, dk, dv, dmask, causal, scale, out, lse, stream=stream.ptr, dtype=name)
    gq, gk, gv = (cp.full(a.shape, nan) for a in (dq, dk, dv))
    _cuda.sdpa_backward(dq, dk, dv, dmask, causal, scale, out, lse, dg, delta, gq, gk, gv, stream=stream.ptr,
                        dtype=name)
    stream.synchronize()
    out, gq, gk, gv = (half_output(cp.asnumpy(a), dtype) for a in (out, gq, gk, gv))
    return out, cp.asnumpy(lse), gq, gk, gv


def check_half_backward(cp, stream, rng, dtype, shape, causal, mask=None, nan_dead_gout=False):
    """The 16-bit backward against the float64 reference of the 16-bit inputs and against the
    float32 kernels (v2) on float32 copies of them."""
    B, L, S, D = shape
    (q, q32), (k, k32), (v, v32), (g, g32) = half_inputs(rng, dtype, (B, L, D), (B, S, D), (B, S, D), (B, L, D))
    scale = 1 / math.sqrt(D)
    _, _, p = attention_ref(q32, k32, v32, mask, causal, scale)
    if nan_dead_gout:
        dead = np.broadcast_to(p.sum(-1) == 0, (B, L))
        assert dead.any()
        g = g.copy()
        g[dead] = 0x7FC0 if dtype == "bfloat16" else np.nan
        g32 = np.where(dead[..., None], np.nan, g32)
    got = run_half_kernels(cp, stream, q, k, v, mask, causal, scale, g, dtype)
    f32 = run_kernels(cp, stream, q32, k32, v32, mask, causal, scale, g32, 2)
    ctx = f"{dtype} {shape} causal={causal} {rng}"
    for name, a, w, w32 in zip(("gq", "gk", "gv"), got[2:], attention_grads_ref(q32, k32, v32, p, g32, scale),
                               f32[2:]):
        rtol, atol = half_grad_tol(dtype, w)
        assert_close(a, w, f"{name} {ctx}", rng, rtol=rtol, atol=atol)
        assert_close(a, w32.astype(np.float64), f"{name} vs float32 kernels {ctx}", rng, rtol=rtol, atol=atol)


HALF_BWD_CASES = [(1, 1, 1, 64), (2, 33, 70, 64), (1, 129, 70, 128), (2, 70, 129, 128), (1, 200, 257, 64),
                  (2, 257, 300, 128)]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", HALF_BWD_CASES, ids=["x".join(map(str, s)) for s in HALF_BWD_CASES])
def test_half_backward(cp, stream, rng, shape, causal, dtype):
    check_half_backward(cp, stream, rng, dtype, shape, causal)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind,mshape", MASKS[1:], ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in MASKS[1:]])
def test_half_backward_masks_and_dead_rows(cp, stream, rng, kind, mshape, dtype):
    mask = random_mask(rng, kind, mshape, dead_rows=3)
    if kind == "float" and mshape[1] > 1:
        mask[..., :3, :] = -np.inf
    for D in (64, 128):
        check_half_backward(cp, stream, rng, dtype, (2, 70, 90, D), kind == "float", mask=mask,
                            nan_dead_gout=mshape[1] > 1)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_backward_deterministic(cp, stream, rng, dtype):
    (q, _), (k, _), (v, _), (g, _) = half_inputs(rng, dtype, (3, 300, 128), (3, 333, 128), (3, 333, 128),
                                                 (3, 300, 128))
    first = run_half_kernels(cp, stream, q, k, v, None, False, 0.1, g, dtype)
    again = run_half_kernels(cp, stream, q, k, v, None, False, 0.1, g, dtype)
    for a, b in zip(first, again):
        assert np.array_equal(a, b), f"{dtype} v3 backward is not bit-reproducible"


@pytest.mark.cuda
def test_half_backward_unaligned_rows(cp, stream, rng):
    # 4-byte but not 16-byte aligned q, k, v, gout: the kernels' 4-byte copy path, same results.
    def off_by_4_bytes(a):
        buf = cp.empty(a.size + 2, a.dtype)  # CuPy allocations are 256-byte aligned
        view = buf[2:].reshape(a.shape)
        view[...] = cp.asarray(a)
        return view

    (q, _), (k, _), (v, _), (g, _) = half_inputs(rng, "float16", (2, 70, 64), (2, 90, 64), (2, 90, 64), (2, 70, 64))
    aligned = run_half_kernels(cp, stream, q, k, v, None, True, 0.125, g, "float16")
    shifted = run_half_kernels(cp, stream, q, k, v, None, True, 0.125, g, "float16", to_device=off_by_4_bytes)
    for a, b in zip(aligned, shifted):
        assert np.array_equal(a, b)


def wrapper_half_case(cp, backend, rng):
    """float16 through the wrappers: the tensor-core forward and backward (E == Ev == 64), the
    float32 kernels on copies otherwise (E 40), results in float16."""
    for e, ev in ((64, 64), (40, 24)):
        (q, q32), (k, k32), (v, v32) = half_inputs(rng, "float16", (2, 3, 37, e), (2, 3, 45, e), (2, 3, 45, ev))
        mask = random_mask(rng, "float", (3, 37, 45))
        mask[..., :1] = 0.0
        dq, dk, dv = cp.asarray(q), cp.asarray(k), cp.asarray(v)
        out, lse = backend.sdpa_forward(dq, dk, dv, cp.asarray(mask), True, 0.2)
        assert out.dtype == np.float16 and lse.dtype == np.float32
        want_out, want_lse, p = attention_ref(q32, k32, v32, mask, True, 0.2)
        assert_close(cp.asnumpy(out), want_out, "out", rng, rtol=1e-2, atol=2e-3)
        assert_close(cp.asnumpy(lse), want_lse, "lse", rng, terms=45)
        gout = rng.normal(*out.shape).astype(np.float16)
        grads = backend.sdpa_backward(dq, dk, dv, cp.asarray(mask), True, 0.2, out, lse, cp.asarray(gout))
        # the reference backward from the rounded forward output the kernels saw
        want = attention_grads_ref(q32, k32, v32, p, gout.astype(np.float32), 0.2)
        for name, g, w in zip(("gq", "gk", "gv"), grads, want):
            assert g.dtype == np.float16 and g.shape == w.shape, name
            rtol, atol = half_grad_tol("float16", w)
            assert_close(cp.asnumpy(g), w, f"{name} E {e}", rng, rtol=rtol, atol=atol)


@pytest.mark.cuda
def test_wrappers_half(cp, rng):
    from tilegrad.backends import cuda as backend
    wrapper_half_case(cp, backend, rng)


# ---- GPU: the CUDA backend's wrappers ----------------------------------------------------

WRAPPER_MASKS = [None, ("bool", (11, 13)), ("float", (3, 11, 13)), ("bool", (2, 1, 11, 13)),
                 ("float", (2, 3, 1, 13)), ("bool", (1, 3, 11, 1)), ("float", (13,))]


def wrapper_masks_case(cp, backend, rng, mask_spec, causal):
    """(2, 3, L, E) inputs with a mask broadcast in each way the wrappers flatten natively."""
    q, k, v = rng.normal(2, 3, 11, 16), rng.normal(2, 3, 13, 16), rng.normal(2, 3, 13, 9)
    mask = None if mask_spec is None else random_mask(rng, *mask_spec)
    if mask is not None:
        mask[..., :1] = True if mask.dtype == np.bool_ else 0.0
    check_wrappers(cp, backend, rng, q, k, v, mask, causal, 0.3)


def wrapper_fallback_case(cp, backend, rng):
    """Head dims above 128, float64, an integer (additive) mask: the reference runs, with the same
    results; a float16 mask is cast to float32 for the kernels; non-contiguous inputs."""
    q, k, v = rng.normal(2, 9, 129), rng.normal(2, 7, 129), rng.normal(2, 7, 5)
    check_wrappers(cp, backend, rng, q, k, v, None, False, 0.1)
    q, k, v = (rng.normal(2, 9, 6).astype(np.float64) for _ in range(3))
    check_wrappers(cp, backend, rng, q, k, v, None, True, 0.5)
    q, k, v = rng.normal(9, 6), rng.normal(7, 6), rng.normal(7, 3)
    check_wrappers(cp, backend, rng, q, k, v, rng.gen.integers(-1, 2, (9, 7)).astype(np.int8), False, 0.5)
    check_wrappers(cp, backend, rng, q, k, v, rng.normal(9, 7).astype(np.float16), False, 0.5)
    q, k, v = rng.normal(2, 20, 8), rng.normal(2, 6, 8), rng.normal(2, 6, 5)
    check_wrappers(cp, backend, rng, q, k, v, rng.normal(20, 6), True, 0.5, views=True)


@pytest.mark.cuda
@pytest.mark.parametrize("mask_spec", WRAPPER_MASKS, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_wrappers_broadcast_masks(cp, rng, mask_spec, causal):
    from tilegrad.backends import cuda as backend
    wrapper_masks_case(cp, backend, rng, mask_spec, causal)


@pytest.mark.cuda
def test_wrappers_fall_back_and_views(cp, rng):
    from tilegrad.backends import cuda as backend
    wrapper_fallback_case(cp, backend, rng)


def strided_copy(cp, a):
    """a on the GPU as a non-contiguous view (its last two dims stored transposed)."""
    return cp.asarray(np.ascontiguousarray(np.swapaxes(a, -1, -2))).swapaxes(-1, -2)


def check_wrappers(cp, backend, rng, q, k, v, mask, causal, scale, views=False):
    to_gpu = (lambda a: strided_copy(cp, a)) if views else cp.asarray
    dq, dk, dv = to_gpu(q), to_gpu(k), to_gpu(v)
    dmask = None if mask is None else cp.asarray(mask)
    out, lse = backend.sdpa_forward(dq, dk, dv, dmask, causal, scale)
    want_out, want_lse, p = attention_ref(q, k, v, mask, causal, scale)
    assert out.shape == want_out.shape and lse.shape == want_lse.shape
    assert_close(cp.asnumpy(out), want_out, "out", rng, terms=k.shape[-2])
    assert_close(cp.asnumpy(lse), want_lse, "lse", rng, terms=k.shape[-2])
    gout = rng.normal(*out.shape).astype(q.dtype)
    got = backend.sdpa_backward(dq, dk, dv, dmask, causal, scale, out, lse, to_gpu(gout))
    for name, g, w, a in zip(("gq", "gk", "gv"), got, attention_grads_ref(q, k, v, p, gout, scale), (q, k, v)):
        assert g.shape == a.shape and g.dtype == a.dtype, name
        assert_close(cp.asnumpy(g), w, name, rng, terms=q.shape[-2] * k.shape[-1])
