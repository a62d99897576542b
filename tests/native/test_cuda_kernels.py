"""tilegrad._cuda kernels on CuPy arrays against numpy. Needs a GPU and CuPy;
skips cleanly otherwise."""
import math

import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")
if not _cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

RAGGED = [1, 7, 33, 65, 127, 257]


def to_gpu(x):
    return cp.asarray(x)


def check_matmul(a, b, stream, ctx, version=0):
    da, db = to_gpu(a), to_gpu(b)
    out = cp.full(a.shape[:-1] + b.shape[-1:], cp.nan, dtype=cp.float32)
    _cuda.matmul(da, db, out, stream=stream.ptr, version=version)
    stream.synchronize()
    got = cp.asnumpy(out).astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    rel = 1e-5 * max(1.0, math.sqrt(a.shape[-1]))
    if version == 3:
        rel += 2e-3  # TF32 rounds each input to a 10-bit mantissa (2^-11 relative), products keep 2^-10
    tol = rel * (np.abs(a64) @ np.abs(b64)) + 1e-30
    bad = np.argwhere(~(np.abs(got - a64 @ b64) <= tol))
    assert bad.size == 0, f"matmul v{version} {a.shape} @ {b.shape}: {len(bad)} bad, first {tuple(bad[0])}; {ctx}"


@pytest.mark.parametrize("m", RAGGED)
@pytest.mark.parametrize("n", RAGGED)
def test_matmul_ragged(rng, stream, m, n):
    for k in (1, 17, 65, 257):
        check_matmul(rng.normal(m, k), rng.normal(k, n), stream, rng)


@pytest.mark.parametrize("batch,m,n,k", [(3, 33, 65, 17), (64, 7, 9, 5), (2, 130, 129, 257), (1, 64, 64, 64)])
def test_matmul_batched(rng, stream, batch, m, n, k):
    check_matmul(rng.normal(batch, m, k), rng.normal(batch, k, n), stream, rng)


def test_matmul_large(rng, stream):
    check_matmul(rng.normal(1031, 517), rng.normal(517, 1029), stream, rng)


MATMUL_V2_SIZES = [1, 7, 127, 128, 129, 255, 257]


@pytest.mark.parametrize("version", [2, 3], ids=["v2", "v3-tf32"])
@pytest.mark.parametrize("m", MATMUL_V2_SIZES)
@pytest.mark.parametrize("n", MATMUL_V2_SIZES)
def test_matmul_v2_v3_ragged(rng, stream, version, m, n):
    # v2's and v3's 128 x 128 tiles and 8- / 16-deep K slices: sizes around their edges.
    for k in (1, 7, 8, 9, 16, 17, 65):
        check_matmul(rng.normal(m, k), rng.normal(k, n), stream, rng, version=version)


def test_matmul_tf32_is_not_exact_float32(rng, stream):
    # v3 really rounds to TF32 (so it is not silently running a float32 path): 1 + 2^-12 becomes 1.
    a = np.full((16, 8), 1 + 2.0 ** -12, np.float32)
    b = np.eye(8, dtype=np.float32)
    out = cp.full((16, 8), cp.nan, dtype=cp.float32)
    _cuda.matmul(to_gpu(a), to_gpu(b), out, stream=stream.ptr, version=3)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), np.ones((16, 8), np.float32))
    exact = cp.full((16, 8), cp.nan, dtype=cp.float32)
    _cuda.matmul(to_gpu(a), to_gpu(b), exact, stream=stream.ptr, version=1)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(exact), a @ b)


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("batch,m,n,k", [(3, 33, 65, 17), (64, 7, 9, 5), (2, 130, 129, 257), (1, 1031, 1029, 517)])
def test_matmul_versions_batched(rng, stream, version, batch, m, n, k):
    check_matmul(rng.normal(batch, m, k), rng.normal(batch, k, n), stream, rng, version=version)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_matmul_versions_k_zero(stream, version):
    out = cp.full((130, 4), cp.nan, dtype=cp.float32)
    _cuda.matmul(cp.ones((130, 0), cp.float32), cp.ones((0, 4), cp.float32), out, stream=stream.ptr, version=version)
    stream.synchronize()
    assert (cp.asnumpy(out) == 0).all()


def test_matmul_k_zero(stream):
    out = cp.full((3, 4), cp.nan, dtype=cp.float32)
    _cuda.matmul(cp.ones((3, 0), cp.float32), cp.ones((0, 4), cp.float32), out, stream=stream.ptr)
    stream.synchronize()
    assert (cp.asnumpy(out) == 0).all()


def test_matmul_default_stream(rng):
    a, b = rng.normal(65, 33), rng.normal(33, 7)
    out = cp.empty((65, 7), cp.float32)
    _cuda.matmul(to_gpu(a), to_gpu(b), out)  # stream=0: legacy default stream
    cp.cuda.Device().synchronize()
    np.testing.assert_allclose(cp.asnumpy(out), a @ b, rtol=1e-4, atol=1e-4, err_msg=str(rng))


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (257,), (3, 5, 7), (1_000_003,)])
def test_relu(rng, stream, shape):
    x = rng.normal(*shape)
    if x.size:
        x.flat[0] = np.nan
    out = cp.full(shape, 123.0, cp.float32)
    _cuda.relu(to_gpu(x), out, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), np.maximum(x, 0), err_msg=str(rng))


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (257,), (3, 5, 7), (1_000_003,)])
def test_relu_backward(rng, stream, shape):
    x, gy = rng.normal(*shape), rng.normal(*shape)
    out = cp.full(shape, 123.0, cp.float32)
    _cuda.relu_backward(to_gpu(x), to_gpu(gy), out, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), np.where(x > 0, gy, 0), err_msg=str(rng))


def test_relu_in_place(rng, stream):
    x = rng.normal(4097)
    d = to_gpu(x)
    _cuda.relu(d, d, stream=stream.ptr)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(d), np.maximum(x, 0), err_msg=str(rng))


def test_non_contiguous_cupy_rejected():
    x = cp.zeros((4, 8), cp.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _cuda.relu(x, cp.zeros((4, 4), cp.float32))


def test_queries():
    assert _cuda.device_count() >= 1
    assert _cuda.driver_version() > 0
    major, _ = _cuda.compute_capability(0)
    assert major >= 8, "the module carries code for sm_80 and newer"
    assert _cuda.device_name(0)


# ---- shared checks for the nn kernels ------------------------------------------------------
# Oracles are the reference kernels (the specification) run in float64 on NumPy; tolerances are
# elementwise bounds scaled by the magnitudes that the float32 rounding errors grow with.

from tilegrad.backends import reference as _reference  # noqa: E402

REF = _reference.KERNELS
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 50.0, -50.0, 100.0, -100.0], np.float32)


def f64(a):
    return np.asarray(a, dtype=np.float64)


def assert_close(got, want, scale, rtol, ctx):
    """|got - want| <= rtol * scale where want is finite; identical inf / NaN positions elsewhere."""
    got, want = f64(got), f64(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}; {ctx}"
    finite = np.isfinite(want)
    same_special = (got == want) | (np.isnan(got) & np.isnan(want))
    bad_special = np.argwhere(~finite & ~same_special)
    assert bad_special.size == 0, (f"{len(bad_special)} non-finite mismatches, first at {tuple(bad_special[0])}: "
                                   f"got {got[tuple(bad_special[0])]}, want {want[tuple(bad_special[0])]}; {ctx}")
    scale = np.broadcast_to(f64(scale), want.shape)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(got - want), 0.0)
    bad = np.argwhere(finite & ~(err <= rtol * scale + 1e-37))
    if bad.size:
        i = tuple(bad[0])
        raise AssertionError(f"{len(bad)} of {want.size} outside tolerance, first at {i}: got {got[i]!r}, "
                             f"want {want[i]!r}, allowed {rtol * scale[i]!r}; {ctx}")


def run_on(stream, fn, *args, **kw):
    fn(*args, stream=stream.ptr, **kw)
    stream.synchronize()


def nan_array(shape):
    return cp.full(shape, cp.nan, dtype=cp.float32)


# ---- softmax / log_softmax ------------------------------------------------------------------
# Row lengths around every layout switch: thread per row (<= 4), warp per row (<= 1024), block
# per row (256 threads below 8192, 512 above).
SOFTMAX_N = [1, 2, 3, 4, 5, 31, 32, 33, 255, 1023, 1024, 1025, 4097, 8191, 8192, 10007]
SOFTMAX_SHAPES = [((3, n), -1) for n in SOFTMAX_N] + [
    ((0, 5), -1), ((5, 0), -1), ((7,), 0), ((1, 1), 1), ((4097, 3), -1), ((1000, 129), 1),
    ((6, 7), 0), ((129, 33), 0), ((3, 5, 7), 1), ((2, 1025, 3), 1), ((2, 3, 4, 5), -2), ((4, 1, 5), 1),
    ((3, 2000), 0), ((2, 3, 1030), 2),
]


def softmax_scale(want, log, x64, dim):
    if not log:
        return np.abs(want)
    m = np.max(x64, axis=dim, keepdims=True, initial=-np.inf)
    return np.abs(x64 - m) + np.abs(want) + 1.0


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_SHAPES, ids=[f"{s}-{d}" for s, d in SOFTMAX_SHAPES])
def test_softmax_forward(rng, stream, log, shape, dim):
    x = rng.normal(*shape) * np.float32(3)
    name = "log_softmax" if log else "softmax"
    out = nan_array(shape)
    run_on(stream, getattr(_cuda, name), to_gpu(x), dim, out)
    want = REF[name](f64(x), dim)
    assert_close(cp.asnumpy(out), want, softmax_scale(want, log, f64(x), dim), 1e-5, f"{name} {shape} dim {dim}; {rng}")


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_SHAPES, ids=[f"{s}-{d}" for s, d in SOFTMAX_SHAPES])
def test_softmax_backward(rng, stream, log, shape, dim):
    name = "log_softmax" if log else "softmax"
    y = REF[name](rng.normal(*shape), dim).astype(np.float32)  # a real forward output
    gy = rng.normal(*shape)
    out = nan_array(shape)
    run_on(stream, getattr(_cuda, name + "_backward"), to_gpu(y), to_gpu(gy), dim, out)
    y64, g64 = f64(y), f64(gy)
    want = REF[name + "_backward"](y64, g64, dim)
    if log:
        scale = np.abs(g64) + np.exp(y64) * np.sum(np.abs(g64), axis=dim, keepdims=True) + 1e-30
    else:
        scale = np.abs(y64) * (np.abs(g64) + np.sum(np.abs(g64 * y64), axis=dim, keepdims=True)) + 1e-30
    assert_close(cp.asnumpy(out), want, scale, 2e-5, f"{name}_backward {shape} dim {dim}; {rng}")


@pytest.mark.parametrize("n", [3, 33, 2000])
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_special_values(rng, stream, n, dim):
    x = rng.normal(6, n)
    x[1, 1] = -np.inf          # -inf among finite values: 0 / -inf
    x[2, :] = -np.inf          # a row of -inf only: NaN
    x[3, 2] = np.inf           # +inf: NaN row (as the reference)
    x[4, 0] = np.nan           # NaN: NaN row
    x[5, :] = 1e30             # huge equal values: uniform
    if dim == 0:
        x = np.ascontiguousarray(x.T)
    with np.errstate(invalid="ignore"):
        for name in ("softmax", "log_softmax"):
            out = nan_array(x.shape)
            run_on(stream, getattr(_cuda, name), to_gpu(x), dim, out)
            want = REF[name](f64(x), dim)
            assert_close(cp.asnumpy(out), want, np.abs(np.nan_to_num(want)) + 1.0, 1e-5, f"{name} dim {dim}; {rng}")


@pytest.mark.parametrize("shape,dim", [((5, 1000), -1), ((3, 5000), -1), ((300, 2), -1), ((40, 30), 0)])
def test_softmax_in_place(rng, stream, shape, dim):
    x = rng.normal(*shape)
    gy = rng.normal(*shape)
    for name in ("softmax", "log_softmax"):
        d = to_gpu(x)
        run_on(stream, getattr(_cuda, name), d, dim, d)
        want = REF[name](f64(x), dim)
        assert_close(cp.asnumpy(d), want, softmax_scale(want, name == "log_softmax", f64(x), dim), 1e-5, f"{name}; {rng}")
        y = cp.asnumpy(d)
        for target in ("y", "gy"):
            dy, dg = to_gpu(y), to_gpu(gy)
            run_on(stream, getattr(_cuda, name + "_backward"), dy, dg, dim, dy if target == "y" else dg)
            got = cp.asnumpy(dy if target == "y" else dg)
            want_b = REF[name + "_backward"](f64(y), f64(gy), dim)
            assert_close(got, want_b, np.abs(want_b) + 1.0, 2e-5, f"{name}_backward out={target}; {rng}")


@pytest.mark.parametrize("shape", [(300000, 5), (66000, 1030), (270000, 3)], ids=["warps", "blocks", "threads"])
def test_softmax_grid_stride_and_default_stream(rng, shape):
    # More rows than one pass of the grid (65535 blocks) covers, on the legacy default stream.
    # Every row must sum to 1; a sample of rows is compared in full.
    x = rng.normal(*shape)
    out = nan_array(shape)
    _cuda.softmax(to_gpu(x), -1, out)
    cp.cuda.Device().synchronize()
    got = cp.asnumpy(out)
    np.testing.assert_allclose(got.sum(axis=-1, dtype=np.float64), 1.0, rtol=1e-5, err_msg=str(rng))
    rows = np.r_[0:3, 65534:65540, shape[0] - 3:shape[0], 7:shape[0]:997]
    want = REF["softmax"](f64(x[rows]), -1)
    assert_close(got[rows], want, np.abs(want), 1e-5, str(rng))


# ---- activations ----------------------------------------------------------------------------
ACT_SIZES = [1, 3, 4, 5, 7, 1023, 4096, 1_000_003]
FORWARD_ACTS = {  # name -> (native call, reference call on float64)
    "sigmoid": (lambda x, o, s: _cuda.sigmoid(x, o, stream=s), lambda x: REF["sigmoid"](x)),
    "tanh": (lambda x, o, s: _cuda.tanh(x, o, stream=s), lambda x: REF["tanh"](x)),
    "silu": (lambda x, o, s: _cuda.silu(x, o, stream=s), lambda x: REF["silu"](x)),
    "gelu": (lambda x, o, s: _cuda.gelu(x, "none", o, stream=s), lambda x: REF["gelu"](x, "none")),
    "gelu_tanh": (lambda x, o, s: _cuda.gelu(x, "tanh", o, stream=s), lambda x: REF["gelu"](x, "tanh")),
    "leaky_relu": (lambda x, o, s: _cuda.leaky_relu(x, 0.2, o, stream=s), lambda x: REF["leaky_relu"](x, 0.2)),
    "leaky_relu_neg": (lambda x, o, s: _cuda.leaky_relu(x, -1.5, o, stream=s), lambda x: REF["leaky_relu"](x, -1.5)),
}
BACKWARD_ACTS = {  # name -> (native call, reference call, first argument is y = f(x)?)
    "sigmoid": (lambda a, g, o, s: _cuda.sigmoid_backward(a, g, o, stream=s),
                lambda a, g: REF["sigmoid_backward"](a, g), "sigmoid"),
    "tanh": (lambda a, g, o, s: _cuda.tanh_backward(a, g, o, stream=s),
             lambda a, g: REF["tanh_backward"](a, g), "tanh"),
    "silu": (lambda a, g, o, s: _cuda.silu_backward(a, g, o, stream=s),
             lambda a, g: REF["silu_backward"](a, g), None),
    "gelu": (lambda a, g, o, s: _cuda.gelu_backward(a, g, "none", o, stream=s),
             lambda a, g: REF["gelu_backward"](a, g, "none"), None),
    "gelu_tanh": (lambda a, g, o, s: _cuda.gelu_backward(a, g, "tanh", o, stream=s),
                  lambda a, g: REF["gelu_backward"](a, g, "tanh"), None),
    "leaky_relu": (lambda a, g, o, s: _cuda.leaky_relu_backward(a, g, 0.2, o, stream=s),
                   lambda a, g: REF["leaky_relu_backward"](a, g, 0.2), None),
}


def act_forward_scale(want, x):
    """gelu's 1 + erf / 1 + tanh cancel for negative x: absolute errors of about eps * |x|."""
    return np.abs(want) + 0.01 * np.where(np.isfinite(x), np.abs(f64(x)), 0.0) + 1e-6


def act_backward_scale(want, a, gy):
    """The derivatives are differences of O(1 + |x|^3) terms times gy: absolute errors scale so."""
    a_mag = np.where(np.isfinite(a), np.abs(f64(a)), 0.0)
    return np.abs(want) + 0.1 * np.abs(f64(gy)) * (1 + a_mag ** 3)


def act_input(rng, n):
    x = rng.normal(n) * np.float32(4)
    x[:min(n, SPECIAL.size)] = SPECIAL[:min(n, SPECIAL.size)]
    return x


def device_copy(x, offset):
    """x on the GPU, starting `offset` floats into a buffer (offset 1: not 16-byte aligned)."""
    buf = cp.empty(x.size + offset, cp.float32)
    view = buf[offset:]
    view[...] = to_gpu(x.ravel())
    return view


@pytest.mark.parametrize("act", list(FORWARD_ACTS))
@pytest.mark.parametrize("n", ACT_SIZES)
@pytest.mark.parametrize("offset", [0, 1, 3], ids=["aligned", "off1", "off3"])
def test_activation_forward(rng, stream, act, n, offset):
    native, ref = FORWARD_ACTS[act]
    x = act_input(rng, n)
    dx = device_copy(x, offset)
    out = device_copy(np.full(n, np.nan, np.float32), (offset + 2) % 4)
    native(dx, out, stream.ptr)
    stream.synchronize()
    with np.errstate(all="ignore"):
        want = ref(f64(x))
    assert_close(cp.asnumpy(out), want, act_forward_scale(want, x), 1e-5, f"{act} n={n} offset={offset}; {rng}")


@pytest.mark.parametrize("act", list(BACKWARD_ACTS))
@pytest.mark.parametrize("n", ACT_SIZES)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "off1"])
def test_activation_backward(rng, stream, act, n, offset):
    native, ref, fwd = BACKWARD_ACTS[act]
    x = act_input(rng, n)
    with np.errstate(all="ignore"):
        a = REF[fwd](x).astype(np.float32) if fwd else x  # sigmoid / tanh take y = f(x)
    gy = rng.normal(n)
    out = nan_array(n)
    native(device_copy(a, offset), device_copy(gy, 0), out, stream.ptr)
    stream.synchronize()
    with np.errstate(all="ignore"):
        want = ref(f64(a), f64(gy))
    assert_close(cp.asnumpy(out), want, act_backward_scale(want, a, gy), 1e-5, f"{act}_backward n={n}; {rng}")


def test_activation_grid_stride(rng, stream):
    # More elements than one pass of the grid (65535 blocks of 256 threads, 4 floats each) covers,
    # with a scalar tail after the float4 part.
    n = 68_000_003
    x = rng.normal(n)
    out, gout = nan_array(n), nan_array(n)
    dx = to_gpu(x)
    _cuda.leaky_relu(dx, 0.25, out, stream=stream.ptr)
    _cuda.leaky_relu_backward(dx, dx, 0.25, gout, stream=stream.ptr)
    stream.synchronize()
    want = np.where(x > 0, x, x * np.float32(0.25))
    np.testing.assert_array_equal(cp.asnumpy(out), want, err_msg=str(rng))
    np.testing.assert_array_equal(cp.asnumpy(gout), want, err_msg=str(rng))


@pytest.mark.parametrize("act", list(FORWARD_ACTS))
def test_activation_in_place_and_shapes(rng, stream, act):
    native, ref = FORWARD_ACTS[act]
    for shape in [(0,), (3, 0), (), (1,), (3, 5, 7), (64, 65)]:
        x = rng.normal(*shape)
        d = to_gpu(x)
        native(d, d, stream.ptr)
        stream.synchronize()
        want = ref(f64(x))
        assert_close(cp.asnumpy(d), want, act_forward_scale(want, x), 1e-5, f"{act} {shape} in place; {rng}")


@pytest.mark.parametrize("act", list(BACKWARD_ACTS))
def test_activation_backward_in_place(rng, stream, act):
    native, ref, fwd = BACKWARD_ACTS[act]
    x = rng.normal(4099)
    a = REF[fwd](x).astype(np.float32) if fwd else x
    gy = rng.normal(4099)
    want = ref(f64(a), f64(gy))
    for target in (0, 1):
        da, dg = to_gpu(a), to_gpu(gy)
        native(da, dg, (da, dg)[target], stream.ptr)
        stream.synchronize()
        got = cp.asnumpy((da, dg)[target])
        assert_close(got, want, act_backward_scale(want, a, gy), 1e-5, f"{act}_backward in place {target}; {rng}")


# ---- layer norm -----------------------------------------------------------------------------
LN_CASES = [((3, 1), 1), ((5, 7), 1), ((4, 32), 1), ((9, 33), 1), ((2, 1024), 1), ((3, 1025), 1),
            ((2, 4099), 1), ((2, 9000), 1), ((4, 3, 5), 2), ((1, 1, 1), 3), ((2, 2, 3, 4), 2),
            ((4097, 17), 1), ((300, 768), 1), ((300000, 8), 1), ((5, 3), 2)]


def ln_inputs(rng, shape, n_dims, affine):
    x = rng.normal(*shape) * np.float32(2) + np.float32(3)  # an offset: the mean matters
    pshape = shape[len(shape) - n_dims:]
    w = rng.normal(*pshape) if affine[0] else None
    b = rng.normal(*pshape) if affine[1] else None
    return x, w, b


def gpu_or_none(a):
    return None if a is None else to_gpu(a)


@pytest.mark.parametrize("shape,n_dims", LN_CASES, ids=[f"{s}-{d}" for s, d in LN_CASES])
@pytest.mark.parametrize("affine", [(True, True), (False, False), (True, False), (False, True)],
                         ids=["wb", "none", "w", "b"])
def test_layer_norm_forward(rng, stream, shape, n_dims, affine):
    x, w, b = ln_inputs(rng, shape, n_dims, affine)
    stat = shape[:len(shape) - n_dims] + (1,) * n_dims
    y, mean, rstd = nan_array(shape), nan_array(stat), nan_array(stat)
    run_on(stream, _cuda.layer_norm, to_gpu(x), gpu_or_none(w), gpu_or_none(b), n_dims, 1e-5, y, mean, rstd)
    wy, wm, wr = REF["layer_norm"](f64(x), None if w is None else f64(w), None if b is None else f64(b), n_dims, 1e-5)
    ctx = f"layer_norm {shape} n_dims={n_dims} affine={affine}; {rng}"
    assert_close(cp.asnumpy(mean), wm, np.abs(wm) + 1.0, 1e-5, ctx)
    assert_close(cp.asnumpy(rstd), wr, np.abs(wr), 1e-4, ctx)
    scale = (np.abs((f64(x) - wm) * wr) + 1) * (1 if w is None else np.abs(f64(w))) + (0 if b is None else np.abs(f64(b)))
    assert_close(cp.asnumpy(y), wy, scale, 1e-4, ctx)


def ln_workspace(shape, n_dims, use):
    """None, or the scratch layer_norm_backward may use (when it wants any)."""
    n = int(np.prod(shape[len(shape) - n_dims:]))
    rows = int(np.prod(shape)) // n if n else 0
    need = _cuda.layer_norm_backward_workspace(rows, n)
    return nan_array((need,)) if use and need else None


@pytest.mark.parametrize("shape,n_dims", LN_CASES, ids=[f"{s}-{d}" for s, d in LN_CASES])
@pytest.mark.parametrize("with_weight", [True, False], ids=["w", "no-w"])
@pytest.mark.parametrize("use_workspace", [True, False], ids=["ws", "no-ws"])
def test_layer_norm_backward(rng, stream, shape, n_dims, with_weight, use_workspace):
    x, w, _ = ln_inputs(rng, shape, n_dims, (with_weight, False))
    _, mean, rstd = REF["layer_norm"](x, w, None, n_dims, 1e-5)  # float32 statistics, as the forward gives
    gy = rng.normal(*shape)
    pshape = shape[len(shape) - n_dims:]
    gx, gw, gb = nan_array(shape), nan_array(pshape), nan_array(pshape)
    run_on(stream, _cuda.layer_norm_backward, to_gpu(x), gpu_or_none(w), to_gpu(mean), to_gpu(rstd), to_gpu(gy),
           n_dims, gx, gw, gb, workspace=ln_workspace(shape, n_dims, use_workspace))
    x64, g64, m64, r64 = f64(x), f64(gy), f64(mean), f64(rstd)
    w64 = None if w is None else f64(w)
    want_gx, want_gw, want_gb = REF["layer_norm_backward"](x64, w64, m64, r64, g64, n_dims)
    ctx = f"layer_norm_backward {shape} n_dims={n_dims} weight={with_weight}; {rng}"
    axes = tuple(range(len(shape) - n_dims, len(shape)))
    lead = tuple(range(len(shape) - n_dims))
    g = g64 * (1 if w64 is None else w64)
    xhat = (x64 - m64) * r64
    gx_scale = r64 * (np.abs(g) + np.mean(np.abs(g), axis=axes, keepdims=True) +
                      np.abs(xhat) * np.mean(np.abs(g * xhat), axis=axes, keepdims=True))
    assert_close(cp.asnumpy(gx), want_gx, gx_scale, 1e-4, ctx)
    sum_lead = (lambda a: a.sum(axis=lead)) if lead else (lambda a: a)
    assert_close(cp.asnumpy(gw), want_gw, sum_lead(np.abs(g64 * xhat)) + 1e-30, 1e-4, ctx)
    assert_close(cp.asnumpy(gb), want_gb, sum_lead(np.abs(g64)) + 1e-30, 1e-4, ctx)


def test_layer_norm_grid_stride_block_rows(rng, stream):
    # Block-per-row rows beyond one pass of the grid (65535 blocks): statistics of every row, and
    # a sample of rows in full.
    shape = (66000, 1030)
    x, w, b = ln_inputs(rng, shape, 1, (True, True))
    y, mean, rstd = nan_array(shape), nan_array((shape[0], 1)), nan_array((shape[0], 1))
    run_on(stream, _cuda.layer_norm, to_gpu(x), to_gpu(w), to_gpu(b), 1, 1e-5, y, mean, rstd)
    want_mean = x.mean(axis=1, dtype=np.float64, keepdims=True)
    want_rstd = 1 / np.sqrt(x.var(axis=1, dtype=np.float64, keepdims=True) + 1e-5)
    assert_close(cp.asnumpy(mean), want_mean, np.abs(want_mean) + 1, 1e-5, str(rng))
    assert_close(cp.asnumpy(rstd), want_rstd, want_rstd, 1e-4, str(rng))
    rows = np.r_[0:3, 65534:65540, shape[0] - 3:shape[0], 7:shape[0]:997]
    wy, _, _ = REF["layer_norm"](f64(x[rows]), f64(w), f64(b), 1, 1e-5)
    assert_close(cp.asnumpy(y)[rows], wy, np.abs(wy) + np.abs(f64(w)) + np.abs(f64(b)) + 1, 1e-4, str(rng))


@pytest.mark.parametrize("use_workspace", [True, False], ids=["ws", "no-ws"])
def test_layer_norm_backward_is_deterministic(rng, stream, use_workspace):
    x, w, _ = ln_inputs(rng, (20000, 96), 1, (True, False))
    _, mean, rstd = REF["layer_norm"](x, w, None, 1, 1e-5)
    gy = rng.normal(20000, 96)
    args = [to_gpu(a) for a in (x, w, mean, rstd, gy)]
    results = []
    for _ in range(3):
        outs = [nan_array((20000, 96)), nan_array((96,)), nan_array((96,))]
        ws = ln_workspace((20000, 96), 1, use_workspace)
        assert (ws is not None) == use_workspace
        run_on(stream, _cuda.layer_norm_backward, *args[:4], args[4], 1, *outs, workspace=ws)
        results.append([cp.asnumpy(o) for o in outs])
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b, err_msg=str(rng))


def test_layer_norm_empty_rows(stream):
    # No rows: gweight and gbias are sums over nothing, zeros.
    gw, gb = nan_array((4,)), nan_array((4,))
    e = cp.empty((0, 4), cp.float32)
    run_on(stream, _cuda.layer_norm_backward, e, None, cp.empty((0, 1), cp.float32), cp.empty((0, 1), cp.float32),
           e, 1, cp.empty((0, 4), cp.float32), gw, gb)
    assert (cp.asnumpy(gw) == 0).all() and (cp.asnumpy(gb) == 0).all()
    # Rows of no elements: NaN statistics (numpy's mean of nothing).
    mean, rstd = cp.zeros((3, 1), cp.float32), cp.zeros((3, 1), cp.float32)
    e3 = cp.empty((3, 0), cp.float32)
    run_on(stream, _cuda.layer_norm, e3, None, None, 1, 1e-5, cp.empty((3, 0), cp.float32), mean, rstd)
    assert np.isnan(cp.asnumpy(mean)).all() and np.isnan(cp.asnumpy(rstd)).all()


# ---- fused optimizer steps ------------------------------------------------------------------
OPT_SIZES = [1, 5, 0, 1000, 8192, 8193, 20000, 3]


def opt_scale(want):
    """Rounding errors of a few float32 steps, relative to the tensor's typical magnitude (updates
    cancel to near zero in places, so a purely elementwise relative bound is too strict)."""
    return np.abs(want) + (np.abs(want).mean() if want.size else 0.0) + 1e-12


def torch_adam_step(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize):
    """PyTorch's Adam/AdamW step in float64 on NumPy arrays (updated in place)."""
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * g * g
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    denom = np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps
    p -= lr / (1 - beta1 ** step) * (m / denom)


def torch_sgd_step(p, g, buf, *, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if first_step:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def opt_state(rng, sizes, count):
    """`count` lists of float32 arrays with the given sizes (as ragged 1-D / 2-D shapes)."""
    shapes = [(n,) if i % 2 else (1, n) for i, n in enumerate(sizes)]
    return [[rng.normal(*s) for s in shapes] for _ in range(count)]


ADAM_CASES = [
    dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True, maximize=False, amsgrad=False),
    dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1, decoupled=False, maximize=False, amsgrad=False),
    dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=True, maximize=True, amsgrad=True),
    dict(lr=1e-3, beta1=0.3, beta2=0.5, eps=1e-8, weight_decay=0.05, decoupled=True, maximize=False, amsgrad=True),
    dict(lr=1e-2, beta1=0.0, beta2=0.0, eps=1e-3, weight_decay=0.0, decoupled=False, maximize=False, amsgrad=False),
]


@pytest.mark.parametrize("case", ADAM_CASES, ids=[f"case{i}" for i in range(len(ADAM_CASES))])
@pytest.mark.parametrize("sizes", [OPT_SIZES, [7] * 300 + [0, 9000]], ids=["ragged", "300-tensors"])
def test_adamw_step(rng, stream, case, sizes):
    case = dict(case)
    amsgrad = case.pop("amsgrad")
    p, m, v, vmax = opt_state(rng, sizes, 4)
    m = [np.zeros_like(a) for a in m] if sizes is OPT_SIZES else m
    v = [np.abs(a) for a in v]
    vmax = [np.abs(a) * 0.5 for a in vmax]
    host = [[f64(a) for a in lst] for lst in (p, m, v, vmax)]
    dev = [[to_gpu(a) for a in lst] for lst in (p, m, v, vmax)]
    for step in range(1, 4):
        g = [rng.normal(*a.shape) for a in p]
        if step == 2:
            for a in g:
                a.ravel()[::3] = 0  # zero gradients: m / denom must stay finite
        _cuda.adamw_step(dev[0], [to_gpu(a) for a in g], dev[1], dev[2], max_exp_avg_sqs=dev[3] if amsgrad else None,
                         step=step, stream=stream.ptr, **case)
        for i in range(len(p)):
            torch_adam_step(host[0][i], f64(g[i]), host[1][i], host[2][i], host[3][i] if amsgrad else None,
                            step=step, **case)
    stream.synchronize()
    for name, h, d in zip(("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), host, dev):
        if name == "max_exp_avg_sq" and not amsgrad:
            continue
        for i, (a, b) in enumerate(zip(h, d)):
            assert_close(cp.asnumpy(b), a, opt_scale(a), 2e-5, f"adamw {name}[{i}] {case}; {rng}")


SGD_CASES = [
    dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=False, maximize=False),
    dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True, maximize=True),
    dict(lr=0.01, momentum=0.5, dampening=0.3, weight_decay=0.01, nesterov=False, maximize=False),
]


@pytest.mark.parametrize("case", SGD_CASES, ids=[f"case{i}" for i in range(len(SGD_CASES))])
@pytest.mark.parametrize("sizes", [OPT_SIZES, [5] * 260], ids=["ragged", "260-tensors"])
def test_sgd_step(rng, stream, case, sizes):
    p, buf = opt_state(rng, sizes, 2)
    host_p, host_b = [f64(a) for a in p], [np.full(a.shape, np.nan) for a in buf]
    dev_p, dev_b = [to_gpu(a) for a in p], [nan_array(a.shape) for a in buf]  # the first step overwrites them
    with_buf = case["momentum"] != 0
    for step in range(3):
        g = [rng.normal(*a.shape) for a in p]
        _cuda.sgd_step(dev_p, [to_gpu(a) for a in g], dev_b if with_buf else None, first_step=step == 0,
                       stream=stream.ptr, **case)
        for i in range(len(p)):
            torch_sgd_step(host_p[i], f64(g[i]), host_b[i], first_step=step == 0, **case)
    stream.synchronize()
    for i in range(len(p)):
        assert_close(cp.asnumpy(dev_p[i]), host_p[i], opt_scale(host_p[i]), 1e-5, f"sgd param[{i}] {case}; {rng}")
        if with_buf:
            assert_close(cp.asnumpy(dev_b[i]), host_b[i], opt_scale(host_b[i]), 1e-5, f"sgd buf[{i}] {case}; {rng}")


def test_opt_step_leaves_other_memory_alone(rng, stream):
    # Tensors cut from one buffer with gaps: the gaps must keep their values.
    buf = to_gpu(rng.normal(100))
    params = [buf[0:10], buf[20:45], buf[50:51]]
    before = cp.asnumpy(buf)
    grads = [to_gpu(rng.normal(*a.shape)) for a in params]
    _cuda.sgd_step(params, grads, None, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, stream=stream.ptr)
    stream.synchronize()
    after = cp.asnumpy(buf)
    untouched = np.ones(100, bool)
    untouched[0:10] = untouched[20:45] = untouched[50:51] = False
    np.testing.assert_array_equal(after[untouched], before[untouched], err_msg=str(rng))


# ---- through the backend: wrappers, layouts and fallbacks -----------------------------------

def test_backend_routes_to_native_and_matches_reference(rng):
    from tilegrad.backends import cuda as backend
    x = rng.normal(6, 5, 7)
    dx = to_gpu(x)
    nc = to_gpu(np.ascontiguousarray(x.transpose(2, 0, 1))).transpose(1, 2, 0)  # non-contiguous view of x
    for dim in (0, 1, -1):
        for arr in (dx, nc):
            got = cp.asnumpy(backend.KERNELS["softmax"](arr, dim))
            want = REF["softmax"](f64(x), dim)
            assert_close(got, want, np.abs(want), 1e-5, f"backend softmax dim {dim}; {rng}")
    got = backend.KERNELS["gelu"](nc, "tanh")
    assert got.shape == x.shape
    want = REF["gelu"](f64(x), "tanh")
    assert_close(cp.asnumpy(got), want, act_forward_scale(want, x), 1e-5, str(rng))
    y, mean, rstd = backend.KERNELS["layer_norm"](dx, None, None, 2, 1e-5)
    assert mean.shape == (6, 1, 1) and rstd.shape == (6, 1, 1)
    wy, _, _ = REF["layer_norm"](f64(x), None, None, 2, 1e-5)
    assert_close(cp.asnumpy(y), wy, np.abs(wy) + 1, 1e-4, str(rng))
    # Other dtypes fall back to the reference kernels on CuPy.
    d64 = to_gpu(f64(x))
    assert backend.KERNELS["softmax"](d64, 1).dtype == cp.float64
    assert backend.KERNELS["sigmoid"](d64).dtype == cp.float64
    assert backend.KERNELS["sigmoid"](to_gpu(np.float32(0.5))).shape == ()  # 0-d stays 0-d
