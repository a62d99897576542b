"""float16 softmax / log_softmax, activations and layer norm of tilegrad._cuda on CuPy arrays, against
float64 references of the same float16 inputs (the kernels compute in float32 and round once).
Needs a GPU and CuPy; skips cleanly otherwise."""
import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")
if not _cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

from tilegrad.backends import cuda as backend  # noqa: E402
from tilegrad.backends import reference  # noqa: E402

REF = reference.KERNELS
RTOL = 1e-3  # float16 rounding of the result (2^-11) and of float32 arithmetic


def check(got, want, scale, ctx):
    got, want = cp.asnumpy(got).astype(np.float64), np.asarray(want, np.float64)
    finite = np.isfinite(want)
    assert (np.isfinite(got) == finite).all(), ctx
    err = np.where(finite, np.abs(got - want), 0)
    assert (err <= RTOL * scale + 1e-30).all(), f"worst {err.max():.3g}; {ctx}"


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", [((3, 5), -1), ((7, 1000), -1), ((3, 4097), 1), ((4, 9, 6), 1), ((2, 3), 0)])
def test_softmax_float16(rng, shape, dim, log):
    x = (rng.normal(*shape) * np.float32(3)).astype(np.float16)
    y = cp.empty(shape, cp.float16)
    (_cuda.log_softmax if log else _cuda.softmax)(cp.asarray(x), dim, y)
    want = REF["log_softmax" if log else "softmax"](x.astype(np.float64), dim)
    check(y, want, np.abs(want) + 1e-3, f"{shape} dim={dim} {rng}")
    gy = rng.normal(*shape).astype(np.float16)
    gx = cp.empty(shape, cp.float16)
    (_cuda.log_softmax_backward if log else _cuda.softmax_backward)(y, cp.asarray(gy), dim, gx)
    y64, gy64 = cp.asnumpy(y).astype(np.float64), gy.astype(np.float64)
    want_g = REF["log_softmax_backward" if log else "softmax_backward"](y64, gy64, dim)
    scale = np.abs(gy64) + (np.exp(y64) if log else np.abs(y64)) * np.abs(gy64).sum(dim, keepdims=True) + 1e-3
    check(gx, want_g, scale, f"backward {shape} dim={dim} {rng}")


ACTS = [("sigmoid", (), "y"), ("tanh", (), "y"), ("silu", (), "x"), ("gelu", ("none",), "x"), ("gelu", ("tanh",), "x"),
        ("leaky_relu", (0.2,), "x")]


@pytest.mark.parametrize("n", [1, 7, 8, 1031, 1 << 20])
@pytest.mark.parametrize("name,extra,first", ACTS, ids=[f"{a[0]}{a[1]}" for a in ACTS])
def test_activation_float16(rng, name, extra, first, n):
    x = (rng.normal(n) * np.float32(4)).astype(np.float16)
    y = cp.empty(n, cp.float16)
    getattr(_cuda, name)(cp.asarray(x), *extra, y)
    x64 = x.astype(np.float64)
    want = REF[name](x64, *extra)
    check(y, want, np.abs(want) + 0.01 * np.abs(x64) + 1e-6, f"{name}{extra} n={n} {rng}")
    gy = rng.normal(n).astype(np.float16)
    a = y if first == "y" else cp.asarray(x)
    gx = cp.empty(n, cp.float16)
    getattr(_cuda, name + "_backward")(a, cp.asarray(gy), *extra, gx)
    want_g = REF[name + "_backward"](cp.asnumpy(a).astype(np.float64), gy.astype(np.float64), *extra)
    check(gx, want_g, np.abs(want_g) + 0.1 * np.abs(gy.astype(np.float64)) * (1 + np.abs(x64) ** 3),
          f"{name}{extra}_backward n={n} {rng}")


@pytest.mark.parametrize("shape,n_dims", [((5, 7), 1), ((3, 1025), 1), ((2, 3, 40), 2), ((4097, 17), 1)])
def test_layer_norm_float16(rng, shape, n_dims):
    x = (rng.normal(*shape) * np.float32(2) + np.float32(3)).astype(np.float16)
    pshape = shape[len(shape) - n_dims:]
    w, b = rng.normal(*pshape).astype(np.float16), rng.normal(*pshape).astype(np.float16)
    y, mean, rstd = backend.KERNELS["layer_norm"](cp.asarray(x), cp.asarray(w), cp.asarray(b), n_dims, 1e-5)
    assert y.dtype == cp.float16 and mean.dtype == cp.float32
    f64 = (lambda a: a.astype(np.float64))
    wy, wm, wr = REF["layer_norm"](f64(x), f64(w), f64(b), n_dims, 1e-5)
    check(y, wy, np.abs(wy) + 1 + np.abs(f64(b)), f"layer_norm {shape} {rng}")
    gy = rng.normal(*shape).astype(np.float16)
    gx, gw, gb = backend.KERNELS["layer_norm_backward"](cp.asarray(x), cp.asarray(w), mean, rstd, cp.asarray(gy),
                                                        n_dims)
    assert gx.dtype == gw.dtype == gb.dtype == cp.float16
    want = REF["layer_norm_backward"](f64(x), f64(w), wm, wr, f64(gy), n_dims)
    lead = tuple(range(len(shape) - n_dims))
    g_mag = np.abs(f64(gy)) * np.abs(f64(w))
    check(gx, want[0], 4 * g_mag * wr + np.abs(want[0]) + 1e-3, f"gx {shape} {rng}")
    check(gw, want[1], np.abs(f64(gy)).sum(lead) * 4 + np.abs(want[1]), f"gw {shape} {rng}")
    check(gb, want[2], np.abs(f64(gy)).sum(lead) + np.abs(want[2]), f"gb {shape} {rng}")


def test_backend_runs_float16_natively(rng):
    calls = []
    kernel = backend._softmax(lambda *a, **k: (calls.append(a[0].dtype), _cuda.softmax(*a, **k))[1], REF["softmax"])
    x = cp.asarray(rng.normal(4, 33).astype(np.float16))
    out = kernel(x, -1)
    assert out.dtype == cp.float16 and calls == [cp.float16]
    kernel(x.astype(cp.float64), -1)  # float64: the reference, not the kernel
    assert calls == [cp.float16]
