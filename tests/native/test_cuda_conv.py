"""tilegrad._cuda conv2d and its backward kernels (implicit GEMM) on CuPy arrays, against the
reference kernels run in float64 on CuPy (the oracle) and against tilegrad._cpu: ragged images,
odd channel counts, size-1 dims, groups (depthwise too), dilation, stride 2, 1x1 and 3-channel
first layers, channel counts and depths around the 64 x 64 x 16 tiles, ResNet layers, the split
weight-gradient sum, empty batches; the same for the TF32 tensor-core kernels (version=2, within the
TF32 bound) and the backend's choice between them. Needs a GPU and CuPy; skips cleanly otherwise."""
import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")
if not _cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

from tilegrad.backends import cuda as cuda_backend  # noqa: E402
from tilegrad.backends import reference  # noqa: E402
from tilegrad.backends.native import conv_geometry  # noqa: E402

try:
    from tilegrad import _cpu
except ImportError:
    _cpu = None

REF = reference.KERNELS

# (x shape, w shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),         # 3-channel first layer
    ((1, 4, 9, 8), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),         # groups, dilation
    ((2, 2, 5, 5), (3, 2, 1, 1), (1, 1), (0, 0), (1, 1), 1),         # 1x1
    ((1, 3, 8, 7), (3, 1, 3, 3), (2, 2), (1, 1), (1, 1), 3),         # depthwise, stride 2
    ((2, 8, 17, 19), (8, 4, 5, 3), (3, 2), (2, 1), (2, 3), 2),
    ((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1),         # size 1
    ((1, 2, 4, 4), (2, 2, 3, 3), (1, 1), (3, 3), (1, 1), 1),         # padding wider than the kernel
    ((2, 5, 6, 6), (7, 5, 6, 6), (1, 1), (0, 0), (1, 1), 1),         # kernel covers the image
    ((1, 3, 10, 10), (5, 3, 1, 1), (2, 3), (1, 0), (1, 1), 1),       # strided 1x1 with padding
    ((3, 17, 9, 11), (65, 17, 1, 1), (1, 1), (0, 0), (1, 1), 1),     # 65 output channels, depth 17
    ((2, 16, 8, 8), (64, 16, 1, 1), (1, 1), (0, 0), (1, 1), 1),      # one full tile of rows, depth 16
    ((3, 70, 9, 11), (66, 70, 3, 3), (1, 1), (1, 1), (1, 1), 1),     # two row tiles, deep sums
    ((2, 6, 13, 12), (130, 3, 2, 3), (2, 2), (1, 0), (1, 1), 2),     # 65 output channels per group
    ((4, 3, 24, 24), (8, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),       # weight gradient split into chunks
    ((3, 2, 23, 21), (4, 1, 2, 2), (1, 1), (0, 0), (1, 1), 2),       # chunks, a ragged last one
    ((2, 32, 15, 15), (32, 1, 3, 3), (1, 1), (2, 2), (2, 2), 32),    # depthwise, dilated
    ((4, 3, 32, 32), (16, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1),      # ResNet stem: 7x7, stride 2
    ((4, 64, 28, 28), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1),   # ResNet downsampling 3x3
    ((8, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),    # ResNet 3x3
    ((2, 256, 7, 7), (512, 256, 1, 1), (2, 2), (0, 0), (1, 1), 1),   # ResNet projection 1x1, stride 2
]
IDS = [f"x{c[0]}w{c[1]}s{c[2]}p{c[3]}d{c[4]}g{c[5]}" for c in CASES]


def nan_array(shape):
    return cp.full(shape, cp.nan, dtype=cp.float32)


def on_gpu64(name, *arrays_then_args, count):
    """REF[name] in float64 on CuPy: the first `count` arguments are arrays."""
    arrays = [cp.asarray(np.asarray(a, np.float64)) for a in arrays_then_args[:count]]
    return cp.asnumpy(REF[name](*arrays, *arrays_then_args[count:]))


def assert_close(got, want, scale, terms, ctx):
    """Within the float32 rounding of sums of `terms` products, relative to the sum of their sizes."""
    assert_within(got, want, 1e-6 * max(1.0, np.sqrt(terms)) * scale, ctx)


def assert_within(got, want, tol, ctx):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}; {ctx}"
    tol = tol + 1e-30
    bad = np.argwhere(~(np.abs(got - want) <= tol))  # NaN (an unwritten element) fails too
    if bad.size:
        i = tuple(bad[0])
        raise AssertionError(f"{len(bad)} of {want.size} off, first at {i}: got {got[i]!r}, want {want[i]!r}, "
                             f"allowed {tol[i]!r}; {ctx}")


def out_shape(xs, ws, s, p, d, g):
    return conv_geometry(xs, ws, s, p, d, g)[3]


def conv_inputs(rng, xs, ws, s, p, d, g):
    return rng.normal(*xs), rng.normal(*ws), rng.normal(*out_shape(xs, ws, s, p, d, g))


def forward(x, w, s, p, d, g, stream, version=0):
    out = nan_array(out_shape(x.shape, w.shape, s, p, d, g))
    _cuda.conv2d(cp.asarray(x), cp.asarray(w), s, p, d, g, out, stream=stream.ptr, version=version)
    stream.synchronize()
    return cp.asnumpy(out)


def backward_input(gy, w, x_shape, s, p, d, g, stream, version=0):
    gx = nan_array(x_shape)
    _cuda.conv2d_backward_input(cp.asarray(gy), cp.asarray(w), s, p, d, g, gx, stream=stream.ptr, version=version)
    stream.synchronize()
    return cp.asnumpy(gx)


def backward_weight(gy, x, w_shape, s, p, d, g, stream, use_workspace, version=0):
    gw = nan_array(w_shape)
    need = _cuda.conv2d_backward_weight_workspace(x.shape, w_shape, s, p, d, g, version=version)
    ws = nan_array((need,)) if use_workspace and need else None  # stale NaNs must not leak
    _cuda.conv2d_backward_weight(cp.asarray(gy), cp.asarray(x), s, p, d, g, gw, stream=stream.ptr, workspace=ws,
                                 version=version)
    stream.synchronize()
    return cp.asnumpy(gw)


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_forward(rng, stream, xs, ws, s, p, d, g):
    x, w, _ = conv_inputs(rng, xs, ws, s, p, d, g)
    got = forward(x, w, s, p, d, g, stream)
    want = on_gpu64("conv2d", x, w, s, p, d, g, count=2)
    scale = on_gpu64("conv2d", np.abs(x), np.abs(w), s, p, d, g, count=2)
    terms = ws[1] * ws[2] * ws[3]
    assert_close(got, want, scale, terms, f"conv2d {xs} {ws}; {rng}")
    if _cpu is not None:
        cpu = np.full(want.shape, np.nan, np.float32)
        _cpu.conv2d(x, w, s, p, d, g, cpu)
        assert_close(got, cpu.astype(np.float64), 2 * scale, terms, f"conv2d vs the CPU module {xs} {ws}; {rng}")


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_backward_input(rng, stream, xs, ws, s, p, d, g):
    _, w, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    got = backward_input(gy, w, xs, s, p, d, g, stream)
    want = on_gpu64("conv2d_backward_input", gy, w, xs, s, p, d, g, count=2)
    scale = on_gpu64("conv2d_backward_input", np.abs(gy), np.abs(w), xs, s, p, d, g, count=2)
    terms = ws[0] // g * ws[2] * ws[3]
    assert_close(got, want, scale, terms, f"conv2d_backward_input {xs} {ws}; {rng}")
    if _cpu is not None:
        cpu = np.full(xs, np.nan, np.float32)
        _cpu.conv2d_backward_input(gy, w, s, p, d, g, cpu)
        assert_close(got, cpu.astype(np.float64), 2 * scale, terms, f"vs the CPU module {xs} {ws}; {rng}")


@pytest.mark.parametrize("use_workspace", [True, False], ids=["ws", "no-ws"])
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_backward_weight(rng, stream, xs, ws, s, p, d, g, use_workspace):
    x, _, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    got = backward_weight(gy, x, ws, s, p, d, g, stream, use_workspace)
    want = on_gpu64("conv2d_backward_weight", gy, x, ws, s, p, d, g, count=2)
    scale = on_gpu64("conv2d_backward_weight", np.abs(gy), np.abs(x), ws, s, p, d, g, count=2)
    terms = gy.shape[0] * gy.shape[2] * gy.shape[3]
    assert_close(got, want, scale, terms, f"conv2d_backward_weight {xs} {ws} workspace={use_workspace}; {rng}")
    if _cpu is not None:
        cpu = np.full(ws, np.nan, np.float32)
        _cpu.conv2d_backward_weight(gy, x, s, p, d, g, cpu)
        assert_close(got, cpu.astype(np.float64), 2 * scale, terms, f"vs the CPU module {xs} {ws}; {rng}")


def test_split_weight_gradient_is_used_and_deterministic(rng, stream):
    xs, ws, s, p, d, g = CASES[-2]  # ResNet 3x3: one 64 x 576 weight, 8 * 56 * 56 pixels to sum
    assert _cuda.conv2d_backward_weight_workspace(xs, ws, s, p, d, g) > 0
    x, _, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    for use_workspace in (True, False):
        runs = [backward_weight(gy, x, ws, s, p, d, g, stream, use_workspace) for _ in range(3)]
        for r in runs[1:]:
            np.testing.assert_array_equal(runs[0], r, err_msg=f"workspace={use_workspace}; {rng}")


def test_empty_batches_and_sums(rng, stream):
    s, p, d = (1, 1), (1, 1), (1, 1)
    # No images: nothing to write forward / backward input; the weight gradient is zeros.
    x, w, gy = rng.normal(0, 3, 5, 5), rng.normal(4, 3, 3, 3), rng.normal(0, 4, 5, 5)
    assert forward(x, w, s, p, d, 1, stream).shape == (0, 4, 5, 5)
    assert backward_input(gy, w, x.shape, s, p, d, 1, stream).shape == (0, 3, 5, 5)
    for use_workspace in (True, False):
        np.testing.assert_array_equal(backward_weight(gy, x, w.shape, s, p, d, 1, stream, use_workspace),
                                      np.zeros(w.shape, np.float32))
    # No input channels: the output is a sum over nothing.
    np.testing.assert_array_equal(forward(rng.normal(2, 0, 5, 5), rng.normal(4, 0, 3, 3), s, p, d, 1, stream),
                                  np.zeros((2, 4, 5, 5), np.float32))
    # No output channels: the input gradient is zeros.
    np.testing.assert_array_equal(backward_input(rng.normal(2, 0, 5, 5), rng.normal(0, 3, 3, 3), (2, 3, 5, 5),
                                                 s, p, d, 1, stream), np.zeros((2, 3, 5, 5), np.float32))


def test_default_stream(rng):
    xs, ws, s, p, d, g = CASES[0]
    x, w, _ = conv_inputs(rng, xs, ws, s, p, d, g)
    out = nan_array(out_shape(xs, ws, s, p, d, g))
    _cuda.conv2d(cp.asarray(x), cp.asarray(w), s, p, d, g, out)  # stream=0: the legacy default stream
    cp.cuda.Device().synchronize()
    want = REF["conv2d"](x.astype(np.float64), w.astype(np.float64), s, p, d, g)
    assert_close(cp.asnumpy(out), want, REF["conv2d"](np.abs(x), np.abs(w), s, p, d, g).astype(np.float64), 27, rng)


# ---- v2: the TF32 tensor-core kernels (version=2) ---------------------------------------------

def tf32(a):
    """float32 values rounded to TF32 as cvt.rna does: nearest, ties away from zero."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def assert_close_tf32(got, name, arrays, args, terms, ctx):
    """Within the TF32 bound (2e-3 of the sum of |products|) of the float64 result, and within
    float32 accumulation error of the float64 result of the TF32-rounded inputs."""
    want = on_gpu64(name, *arrays, *args, count=len(arrays))
    scale = on_gpu64(name, *[np.abs(a) for a in arrays], *args, count=len(arrays))
    rounded = on_gpu64(name, *[tf32(a) for a in arrays], *args, count=len(arrays))
    assert_within(got, want, 2e-3 * scale, f"{name} (TF32 bound) {ctx}")
    assert_close(got, rounded, scale, terms, f"{name} (TF32-rounded inputs) {ctx}")


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_tf32_forward(rng, stream, xs, ws, s, p, d, g):
    x, w, _ = conv_inputs(rng, xs, ws, s, p, d, g)
    got = forward(x, w, s, p, d, g, stream, version=2)
    assert_close_tf32(got, "conv2d", (x, w), (s, p, d, g), ws[1] * ws[2] * ws[3], f"{xs} {ws}; {rng}")


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_tf32_backward_input(rng, stream, xs, ws, s, p, d, g):
    _, w, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    got = backward_input(gy, w, xs, s, p, d, g, stream, version=2)
    assert_close_tf32(got, "conv2d_backward_input", (gy, w), (xs, s, p, d, g), ws[0] // g * ws[2] * ws[3],
                      f"{xs} {ws}; {rng}")


@pytest.mark.parametrize("use_workspace", [True, False], ids=["ws", "no-ws"])
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_tf32_backward_weight(rng, stream, xs, ws, s, p, d, g, use_workspace):
    x, _, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    got = backward_weight(gy, x, ws, s, p, d, g, stream, use_workspace, version=2)
    assert_close_tf32(got, "conv2d_backward_weight", (gy, x), (ws, s, p, d, g), gy.size // gy.shape[1],
                      f"{xs} {ws} workspace={use_workspace}; {rng}")


def test_tf32_split_weight_gradient_is_deterministic(rng, stream):
    xs, ws, s, p, d, g = CASES[-2]  # ResNet 3x3
    assert _cuda.conv2d_backward_weight_workspace(xs, ws, s, p, d, g, version=2) > 0
    x, _, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    for use_workspace in (True, False):
        runs = [backward_weight(gy, x, ws, s, p, d, g, stream, use_workspace, version=2) for _ in range(3)]
        for r in runs[1:]:
            np.testing.assert_array_equal(runs[0], r, err_msg=f"workspace={use_workspace}; {rng}")


def test_tf32_empty_sums(rng, stream):
    s, p, d = (1, 1), (1, 1), (1, 1)
    np.testing.assert_array_equal(forward(rng.normal(2, 0, 5, 5), rng.normal(4, 0, 3, 3), s, p, d, 1, stream, 2),
                                  np.zeros((2, 4, 5, 5), np.float32))
    np.testing.assert_array_equal(backward_input(rng.normal(2, 0, 5, 5), rng.normal(0, 3, 3, 3), (2, 3, 5, 5),
                                                 s, p, d, 1, stream, 2), np.zeros((2, 3, 5, 5), np.float32))
    x, w, gy = rng.normal(0, 3, 5, 5), rng.normal(4, 3, 3, 3), rng.normal(0, 4, 5, 5)
    np.testing.assert_array_equal(backward_weight(gy, x, w.shape, s, p, d, 1, stream, True, 2),
                                  np.zeros(w.shape, np.float32))


def test_backend_picks_tf32_when_allowed(rng, stream):
    """The backend runs v2 under set_float32_matmul_precision("high") and v1 otherwise: its results
    are those of the named kernels bit for bit (both are deterministic)."""
    import tilegrad
    xs, ws, s, p, d, g = CASES[11]  # deep sums: TF32 and float32 results differ
    x, w, gy = conv_inputs(rng, xs, ws, s, p, d, g)
    old = tilegrad.get_float32_matmul_precision()
    try:
        for precision, version in (("high", 2), ("highest", 1)):
            tilegrad.set_float32_matmul_precision(precision)
            got = (K["conv2d"](cp.asarray(x), cp.asarray(w), s, p, d, g),
                   K["conv2d_backward_input"](cp.asarray(gy), cp.asarray(w), xs, s, p, d, g),
                   K["conv2d_backward_weight"](cp.asarray(gy), cp.asarray(x), ws, s, p, d, g))
            want = (forward(x, w, s, p, d, g, stream, version),
                    backward_input(gy, w, xs, s, p, d, g, stream, version),
                    backward_weight(gy, x, ws, s, p, d, g, stream, True, version))
            stream.synchronize()
            for name, a, b in zip(("forward", "input grad", "weight grad"), got, want):
                np.testing.assert_array_equal(cp.asnumpy(a), b, err_msg=f"{name} precision={precision}; {rng}")
    finally:
        tilegrad.set_float32_matmul_precision(old)


# ---- through the backend: what ops/conv.py calls --------------------------------------------

K = cuda_backend.KERNELS


def test_backend_conv_kernels(rng, stream):
    x, w, gy = conv_inputs(rng, (2, 4, 9, 8), (6, 2, 3, 2), 2, (0, 1), (1, 2), 2)
    dx = cp.asarray(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)  # not C-contiguous
    s, p, d, g = (2, 2), (0, 1), (1, 2), 2
    got = K["conv2d"](dx, cp.asarray(w), 2, (0, 1), (1, 2), 2)  # an int stride as well as pairs
    assert isinstance(got, cp.ndarray) and got.dtype == np.float32
    want = REF["conv2d"](x.astype(np.float64), w.astype(np.float64), s, p, d, g)
    scale = REF["conv2d"](np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), s, p, d, g)
    assert_close(cp.asnumpy(got), want, scale, 12, rng)
    gx = K["conv2d_backward_input"](cp.asarray(gy), cp.asarray(w), x.shape, s, p, d, g)
    want = REF["conv2d_backward_input"](gy.astype(np.float64), w.astype(np.float64), x.shape, s, p, d, g)
    scale = REF["conv2d_backward_input"](np.abs(gy).astype(np.float64), np.abs(w).astype(np.float64), x.shape,
                                         s, p, d, g)
    assert_close(cp.asnumpy(gx), want, scale, 18, rng)
    gw = K["conv2d_backward_weight"](cp.asarray(gy), cp.asarray(x), w.shape, s, p, d, g)
    want = REF["conv2d_backward_weight"](gy.astype(np.float64), x.astype(np.float64), w.shape, s, p, d, g)
    scale = REF["conv2d_backward_weight"](np.abs(gy).astype(np.float64), np.abs(x).astype(np.float64), w.shape,
                                          s, p, d, g)
    assert_close(cp.asnumpy(gw), want, scale, gy.size // gy.shape[1], rng)
    # float64 stays on the reference kernels
    assert K["conv2d"](cp.asarray(x, dtype=np.float64), cp.asarray(w, dtype=np.float64), s, p, d, g).dtype == np.float64


def test_backend_transposed_convolution(rng, stream):
    # ConvTranspose2d's forward is conv2d_backward_input into a larger image (output_padding 1).
    # Weight (C_in 4, C_out / groups 3, 3, 2), stride 2, padding (1, 0): a 3 x 3 image becomes
    # (3 - 1) * 2 - 2 * padding + (k - 1) + 1 + 1 = 6 x 7.
    x, w = rng.normal(1, 4, 3, 3), rng.normal(4, 3, 3, 2)
    big = (1, 6, 6, 7)
    s, p, d, g = (2, 2), (1, 0), (1, 1), 2
    got = K["conv2d_backward_input"](cp.asarray(x), cp.asarray(w), big, s, p, d, g)
    want = REF["conv2d_backward_input"](x.astype(np.float64), w.astype(np.float64), big, s, p, d, g)
    scale = REF["conv2d_backward_input"](np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), big, s, p, d, g)
    assert_close(cp.asnumpy(got), want, scale, 12, rng)


# ---- the fused epilogue: act(conv + bias) as the output is stored ------------------------------

def fused_reference(x, w, b, s, p, d, g, activation, round_inputs=False):
    """(float64 result, scale) of act(conv(x, w) + b); with round_inputs, of the TF32-rounded x and w
    (the bias is added in float32 by the kernels, never rounded to TF32)."""
    xi, wi = (tf32(x), tf32(w)) if round_inputs else (x, w)
    want = on_gpu64("conv2d_bias_act", xi, wi, b, s, p, d, g, activation, count=3)
    scale = on_gpu64("conv2d_bias_act", np.abs(x), np.abs(w), np.abs(b), s, p, d, g, "none", count=3)
    return want, scale


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("activation", ["relu", "none"])
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_conv2d_fused_bias_activation(rng, stream, xs, ws, s, p, d, g, activation, version):
    x, w, _ = conv_inputs(rng, xs, ws, s, p, d, g)
    b = rng.normal(ws[0])
    out = nan_array(out_shape(xs, ws, s, p, d, g))
    _cuda.conv2d(cp.asarray(x), cp.asarray(w), s, p, d, g, out, stream=stream.ptr, version=version,
                 bias=cp.asarray(b), activation=activation)
    stream.synchronize()
    got = cp.asnumpy(out)
    terms = ws[1] * ws[2] * ws[3] + 1
    ctx = f"conv2d + bias + {activation} v{version} {xs} {ws}; {rng}"
    want, scale = fused_reference(x, w, b, s, p, d, g, activation)
    if version == 1:
        assert_close(got, want, scale, terms, ctx)
    else:
        assert_within(got, want, 2e-3 * scale, f"{ctx} (TF32 bound)")
        assert_close(got, fused_reference(x, w, b, s, p, d, g, activation, True)[0], scale, terms,
                     f"{ctx} (TF32-rounded inputs)")


@pytest.mark.parametrize("version", [1, 2])
def test_conv2d_fused_empty_sum_writes_act_bias(rng, stream, version):
    x, w, b = rng.normal(2, 0, 5, 5), rng.normal(4, 0, 3, 3), rng.normal(4)
    for activation in ("none", "relu"):
        out = nan_array((2, 4, 5, 5))
        _cuda.conv2d(cp.asarray(x), cp.asarray(w), 1, 1, 1, 1, out, stream=stream.ptr, version=version,
                     bias=cp.asarray(b), activation=activation)
        stream.synchronize()
        want = REF["bias_act"](np.zeros((2, 4, 5, 5)), b.astype(np.float64), 1, activation)
        np.testing.assert_array_equal(cp.asnumpy(out), want.astype(np.float32), err_msg=activation)


@pytest.mark.parametrize("precision", ["highest", "high"])
def test_backend_fused_conv(rng, stream, precision):
    import tilegrad
    xs, ws, s, p, d, g = CASES[12]  # 65 output channels per group
    x, w, _ = conv_inputs(rng, xs, ws, s, p, d, g)
    b = rng.normal(ws[0])
    old = tilegrad.get_float32_matmul_precision()
    try:
        tilegrad.set_float32_matmul_precision(precision)
        got = K["conv2d_bias_act"](cp.asarray(x), cp.asarray(w), cp.asarray(b), s, p, d, g, "relu")
    finally:
        tilegrad.set_float32_matmul_precision(old)
    want, scale = fused_reference(x, w, b, s, p, d, g, "relu")
    assert isinstance(got, cp.ndarray) and got.dtype == np.float32
    assert_within(cp.asnumpy(got), want, (2e-3 if precision == "high" else 1e-5) * scale, f"{precision}; {rng}")
