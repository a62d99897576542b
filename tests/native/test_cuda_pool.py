"""tilegrad._cuda max and average pooling, forward and backward, on CuPy arrays against the
reference kernels (run on CuPy, and on NumPy in float64): ragged images, ceil mode, padding,
dilation, strides that skip cells, windows wholly in the padding, ties, NaN and infinities,
divisor_override, count_include_pad, index arrays that name no cell. Max pooling's values and
indices must equal the reference's exactly (no arithmetic), and both backwards are gathers in
a fixed order, so run to run they are bit-identical. Needs a GPU and CuPy; skips otherwise."""
import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")
if not _cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

from tilegrad.backends import cuda as cuda_backend  # noqa: E402
from tilegrad.backends import reference  # noqa: E402
from tilegrad.backends.native import pool_geometry  # noqa: E402

REF = reference.KERNELS
K = cuda_backend.KERNELS

# (x shape, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 7, 5), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 1, 9, 8), (3, 2), (1, 2), (1, 0), (2, 1), False),
    ((2, 1, 5, 5), (2, 2), (2, 2), (0, 0), (1, 1), True),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
    ((2, 3, 11, 13), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 2, 8, 9), (2, 3), (3, 2), (1, 1), (2, 2), True),       # dilation and ceil mode
    ((3, 4, 10, 7), (4, 4), (1, 1), (2, 2), (1, 1), False),
    ((1, 1, 4, 4), (3, 3), (1, 1), (3, 3), (1, 1), False),      # windows wholly in the padding
    ((1, 2, 5, 6), (5, 6), (1, 1), (0, 0), (1, 1), False),      # one window: the whole image
    ((1, 2, 2, 2), (3, 3), (2, 2), (0, 0), (1, 1), True),       # a window larger than the image
    ((2, 3, 9, 9), (2, 2), (3, 3), (0, 0), (1, 1), False),      # stride past the window: cells no window reads
    ((4, 16, 112, 112), (3, 3), (2, 2), (1, 1), (1, 1), False),  # ResNet's stem max pool
]
MAX_IDS = [f"x{c[0]}k{c[1]}s{c[2]}p{c[3]}d{c[4]}{'-ceil' if c[5] else ''}" for c in MAX_CASES]

# (x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), False, True, None),
    ((1, 2, 7, 5), (3, 3), (2, 2), (1, 1), True, True, None),
    ((1, 2, 7, 5), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 1, 5, 6), (2, 3), (1, 2), (1, 1), False, False, 4),
    ((2, 3, 11, 13), (3, 3), (2, 2), (1, 1), True, True, None),
    ((2, 3, 11, 13), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 2, 8, 9), (4, 3), (3, 2), (2, 1), True, True, -3),
    ((1, 2, 2, 2), (3, 3), (2, 2), (0, 0), True, True, None),    # the ceil-mode overhang does not count
    ((1, 2, 2, 3), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), False, True, None),
    ((2, 3, 9, 9), (2, 2), (3, 3), (0, 0), False, True, None),   # cells no window reads: zero gradient
    ((4, 32, 56, 56), (2, 2), (2, 2), (0, 0), False, True, None),
]
AVG_IDS = [f"x{c[0]}k{c[1]}s{c[2]}p{c[3]}{'-ceil' if c[4] else ''}-pad{int(c[5])}-div{c[6]}" for c in AVG_CASES]


def out_shape(xs, k, s, p, d, ceil):
    return pool_geometry(xs, k, s, p, d, ceil)[4]


def pool_input(rng, shape):
    """Random values with ties (repeated values), two NaNs and a -inf when there is room."""
    x = rng.normal(*shape)
    if x.size > 8:
        flat = x.reshape(-1)
        flat[rng.gen.integers(0, x.size, x.size // 8)] = 0.5
        flat[rng.gen.integers(0, x.size, 2)] = np.nan
        flat[rng.gen.integers(0, x.size, 1)] = -np.inf
    return x


def max_forward(x, k, s, p, d, ceil, stream):
    shape = out_shape(x.shape, k, s, p, d, ceil)
    y, arg = cp.full(shape, cp.nan, dtype=cp.float32), cp.full(shape, -7, dtype=cp.int64)
    _cuda.max_pool2d(cp.asarray(x), k, s, p, d, ceil, y, arg, stream=stream.ptr)
    stream.synchronize()
    return cp.asnumpy(y), cp.asnumpy(arg)


def max_backward(gy, arg, xs, k, s, p, d, ceil, stream):
    gx = cp.full(xs, cp.nan, dtype=cp.float32)
    _cuda.max_pool2d_backward(cp.asarray(gy), cp.asarray(arg), k, s, p, d, ceil, gx, stream=stream.ptr)
    stream.synchronize()
    return cp.asnumpy(gx)


def on_gpu(name, *arrays_then_args, count):
    """REF[name] on CuPy, the first `count` arguments being arrays (kept in their dtype)."""
    return cp.asnumpy(REF[name](*(cp.asarray(a) for a in arrays_then_args[:count]), *arrays_then_args[count:]))


@pytest.mark.parametrize("xs,k,s,p,d,ceil", MAX_CASES, ids=MAX_IDS)
def test_max_pool2d(rng, stream, xs, k, s, p, d, ceil):
    x = pool_input(rng, xs)
    y, arg = max_forward(x, k, s, p, d, ceil, stream)
    want_y, want_arg = REF["max_pool2d"](x, k, s, p, d, ceil)
    ctx = f"max_pool2d {xs} k{k} s{s} p{p} d{d} ceil={ceil}; {rng}"
    np.testing.assert_array_equal(y, want_y, err_msg=ctx)  # NaN where the reference has NaN
    np.testing.assert_array_equal(arg, want_arg, err_msg=ctx)
    gpu_y, gpu_arg = (cp.asnumpy(a) for a in REF["max_pool2d"](cp.asarray(x), k, s, p, d, ceil))
    np.testing.assert_array_equal(y, gpu_y, err_msg=ctx + " (reference on CuPy)")
    np.testing.assert_array_equal(arg, gpu_arg, err_msg=ctx + " (reference on CuPy)")


@pytest.mark.parametrize("xs,k,s,p,d,ceil", MAX_CASES, ids=MAX_IDS)
def test_max_pool2d_backward(rng, stream, xs, k, s, p, d, ceil):
    x = pool_input(rng, xs)
    _, arg = REF["max_pool2d"](x, k, s, p, d, ceil)
    gy = rng.normal(*arg.shape)
    ctx = f"max_pool2d_backward {xs} k{k} s{s} p{p} d{d} ceil={ceil}; {rng}"
    # Any index array works, even with indices of no cell of the window (they are never matched).
    odd = rng.gen.integers(-2, xs[2] * xs[3] + 2, arg.shape).astype(np.int64)
    for a in (arg, odd):
        gx = max_backward(gy, a, xs, k, s, p, d, ceil, stream)
        want = REF["max_pool2d_backward"](gy.astype(np.float64), a, xs, k, s, p, d, ceil)
        scale = REF["max_pool2d_backward"](np.abs(gy).astype(np.float64), a, xs, k, s, p, d, ceil)
        assert np.all(np.abs(gx - want) <= 1e-6 * scale), ctx  # NaN (an unwritten cell) fails
        np.testing.assert_allclose(gx, on_gpu("max_pool2d_backward", gy, a, xs, k, s, p, d, ceil, count=2),
                                   rtol=1e-6, atol=1e-7, err_msg=ctx + " (reference on CuPy)")


@pytest.mark.parametrize("xs,k,s,p,ceil,include_pad,divisor", AVG_CASES, ids=AVG_IDS)
def test_avg_pool2d(rng, stream, xs, k, s, p, ceil, include_pad, divisor):
    x = rng.normal(*xs)
    shape = out_shape(xs, k, s, p, (1, 1), ceil)
    y = cp.full(shape, cp.nan, dtype=cp.float32)
    _cuda.avg_pool2d(cp.asarray(x), k, s, p, ceil, include_pad, divisor, y, stream=stream.ptr)
    stream.synchronize()
    ctx = f"avg_pool2d {xs} k{k} s{s} p{p} ceil={ceil} include_pad={include_pad} divisor={divisor}; {rng}"
    want = REF["avg_pool2d"](x.astype(np.float64), k, s, p, ceil, include_pad, divisor)
    scale = REF["avg_pool2d"](np.abs(x).astype(np.float64), k, s, p, ceil, include_pad, divisor)
    got = cp.asnumpy(y)
    assert np.all(np.abs(got - want) <= 1e-6 * np.abs(scale) + 1e-30), ctx
    np.testing.assert_allclose(got, on_gpu("avg_pool2d", x, k, s, p, ceil, include_pad, divisor, count=1),
                               rtol=1e-6, atol=1e-7, err_msg=ctx + " (reference on CuPy)")

    gy = rng.normal(*shape)
    gx = cp.full(xs, cp.nan, dtype=cp.float32)
    _cuda.avg_pool2d_backward(cp.asarray(gy), k, s, p, ceil, include_pad, divisor, gx, stream=stream.ptr)
    stream.synchronize()
    want = REF["avg_pool2d_backward"](gy.astype(np.float64), xs, k, s, p, ceil, include_pad, divisor)
    scale = REF["avg_pool2d_backward"](np.abs(gy).astype(np.float64), xs, k, s, p, ceil, include_pad, divisor)
    got = cp.asnumpy(gx)
    assert np.all(np.abs(got - want) <= 1e-6 * np.abs(scale) + 1e-30), ctx + " backward"
    np.testing.assert_allclose(got, on_gpu("avg_pool2d_backward", gy, xs, k, s, p, ceil, include_pad, divisor,
                                           count=1), rtol=1e-6, atol=1e-7, err_msg=ctx + " backward (on CuPy)")


def test_avg_windows_wholly_in_the_padding(rng, stream):
    # Without count_include_pad such a window averages no cell: 0 / 0, NaN, as the reference.
    x = rng.normal(1, 1, 4, 4)
    args = ((3, 3), (1, 1), (3, 3), False, False, None)
    y = cp.full((1, 1, 8, 8), 7.0, dtype=cp.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = REF["avg_pool2d"](x, *args)
    _cuda.avg_pool2d(cp.asarray(x), *args, y, stream=stream.ptr)
    stream.synchronize()
    assert np.isnan(want).any()
    np.testing.assert_allclose(cp.asnumpy(y), want, rtol=1e-6, atol=1e-7, err_msg=str(rng))


def test_backwards_are_deterministic(rng, stream):
    xs, k, s, p, d, ceil = MAX_CASES[-1]
    x = rng.normal(*xs)
    _, arg = REF["max_pool2d"](x, k, s, p, d, ceil)
    gy = rng.normal(*arg.shape)
    runs = [max_backward(gy, arg, xs, k, s, p, d, ceil, stream) for _ in range(3)]
    for r in runs[1:]:
        np.testing.assert_array_equal(runs[0], r, err_msg=str(rng))


def test_empty_batch(stream):
    y, arg = max_forward(np.zeros((0, 3, 5, 5), np.float32), (2, 2), (2, 2), (0, 0), (1, 1), False, stream)
    assert y.shape == arg.shape == (0, 3, 2, 2)
    out = cp.empty((0, 3, 2, 2), dtype=cp.float32)
    _cuda.avg_pool2d(cp.empty((0, 3, 5, 5), dtype=cp.float32), (2, 2), (2, 2), (0, 0), False, True, None, out,
                     stream=stream.ptr)


# ---- through the backend: what ops/conv.py calls --------------------------------------------

def test_backend_pool_kernels(rng, stream):
    x = rng.normal(2, 3, 11, 13)
    dx = cp.asarray(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)  # not C-contiguous
    y, arg = K["max_pool2d"](dx, (3, 3), (2, 2), (1, 1), (1, 1), True)
    assert isinstance(y, cp.ndarray) and y.dtype == np.float32 and arg.dtype == np.int64
    want_y, want_arg = REF["max_pool2d"](x, (3, 3), (2, 2), (1, 1), (1, 1), True)
    np.testing.assert_array_equal(cp.asnumpy(y), want_y)
    np.testing.assert_array_equal(cp.asnumpy(arg), want_arg)
    gy = rng.normal(*want_y.shape)
    gx = K["max_pool2d_backward"](cp.asarray(gy), arg, x.shape, (3, 3), (2, 2), (1, 1), (1, 1), True)
    np.testing.assert_allclose(cp.asnumpy(gx), REF["max_pool2d_backward"](gy, want_arg, x.shape, (3, 3), (2, 2),
                                                                           (1, 1), (1, 1), True), rtol=1e-6, atol=1e-7)
    for divisor in (None, 0, 5, 2.5):  # 0 means none, as in the reference; a float goes to the reference
        got = K["avg_pool2d"](cp.asarray(x), (2, 3), (1, 2), (1, 1), False, False, divisor)
        want = REF["avg_pool2d"](x, (2, 3), (1, 2), (1, 1), False, False, divisor)
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-6, atol=1e-7, err_msg=f"divisor={divisor}")
        g = rng.normal(*want.shape)
        got = K["avg_pool2d_backward"](cp.asarray(g), x.shape, (2, 3), (1, 2), (1, 1), False, False, divisor)
        want = REF["avg_pool2d_backward"](g, x.shape, (2, 3), (1, 2), (1, 1), False, False, divisor)
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-6, atol=1e-7, err_msg=f"divisor={divisor}")
    # float64 stays on the reference kernels
    y64, _ = K["max_pool2d"](cp.asarray(x, dtype=np.float64), (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert y64.dtype == np.float64
