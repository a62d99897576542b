"""The CUDA backend's matmul, linear and bias_act against the reference kernels on CuPy: the
transposed views the ops pass (a weight's .T, a batched swapaxes) are read in place, Linear is one
kernel, and set_float32_matmul_precision picks the TF32 kernel. Skips without a GPU and CuPy."""
import math

import numpy as np
import pytest

import tilegrad as tg

pytestmark = pytest.mark.cuda


def _backend():
    from tilegrad.backends import cuda, reference
    return cuda, reference


def _close(got, want, a, b, tf32, seed, what, bias=None):
    import cupy as cp
    got, want = cp.asnumpy(got).astype(np.float64), cp.asnumpy(want).astype(np.float64)
    a64, b64 = cp.asnumpy(a).astype(np.float64), cp.asnumpy(b).astype(np.float64)
    rel = 1e-5 * max(1.0, math.sqrt(a64.shape[-1])) + (2e-3 if tf32 else 0.0)
    bias64 = 0.0 if bias is None else np.abs(cp.asnumpy(bias).astype(np.float64))  # the bias add rounds too
    tol = rel * (np.abs(a64) @ np.abs(b64) + bias64) + 1e-6
    bad = np.argwhere(~(np.abs(got - want) <= tol))
    assert bad.size == 0, f"{what}: {len(bad)} bad, first {tuple(bad[0])}; seed={seed}"


@pytest.mark.parametrize("tf32", [False, True], ids=["highest", "tf32"])
def test_backend_matmul_views(seed, tf32):
    import cupy as cp
    cuda, reference = _backend()
    r = np.random.default_rng(seed)
    x = lambda *s: cp.asarray(r.standard_normal(s, dtype=np.float32))  # noqa: E731
    a, b, c = x(130, 70), x(129, 130), x(3, 65, 33)
    cases = [(a.T, b.T), (a.T, x(130, 5)), (x(9, 130), b.T), (c.swapaxes(1, 2), x(3, 65, 17)),
             (x(3, 17, 65), c), (c.swapaxes(1, 2), x(3, 9, 65).swapaxes(1, 2)), (x(2, 5, 70), a.T),
             (a[:, ::2], x(35, 4))]  # the last: odd strides, the reference
    old = tg.get_float32_matmul_precision()
    tg.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        for p, q in cases:
            got = cuda.matmul(p, q)
            _close(got, reference.matmul(p, q), p, q, tf32, seed, f"{p.shape} @ {q.shape}")
    finally:
        tg.set_float32_matmul_precision(old)


@pytest.mark.parametrize("x_shape", [(33, 70), (2, 9, 70), (70,), (0, 70)])
@pytest.mark.parametrize("with_bias,act", [(True, "relu"), (False, "none"), (True, "none"), (False, "relu")])
def test_backend_linear(seed, x_shape, with_bias, act):
    import cupy as cp
    cuda, reference = _backend()
    r = np.random.default_rng(seed)
    x = cp.asarray(r.standard_normal(x_shape, dtype=np.float32))
    w = cp.asarray(r.standard_normal((65, 70), dtype=np.float32))
    b = cp.asarray(r.standard_normal(65, dtype=np.float32)) if with_bias else None
    got = cuda.linear(x, w, b, act)
    assert got.shape == x_shape[:-1] + (65,)
    _close(got.reshape(-1, 65), reference.linear(x, w, b, act).reshape(-1, 65), x.reshape(-1, 70), w.T, False,
           seed, f"linear {x_shape}", b)


@pytest.mark.parametrize("shape,dim", [((4, 6, 5, 7), 1), ((33, 65), -1), ((0, 3), 1)])
@pytest.mark.parametrize("with_bias,act", [(True, "relu"), (True, "none"), (False, "relu")])
def test_backend_bias_act(seed, shape, dim, with_bias, act):
    import cupy as cp
    cuda, reference = _backend()
    r = np.random.default_rng(seed)
    y = cp.asarray(r.standard_normal(shape, dtype=np.float32))
    b = cp.asarray(r.standard_normal(shape[dim], dtype=np.float32)) if with_bias else None
    want = reference.bias_act(y.copy(), b, dim, act)
    got = cuda.bias_act(y, b, dim, act)
    assert got is y
    np.testing.assert_array_equal(cp.asnumpy(got), cp.asnumpy(want))


def test_linear_relu_and_conv_bias_relu_ops_on_gpu(seed):
    # The ops through the backend: Linear + ReLU fused (forward and backward), Conv2d's epilogue.
    from tilegrad.nn import functional as F
    r = np.random.default_rng(seed)
    xv, wv, bv = (r.standard_normal(s).astype(np.float32) for s in ((5, 12), (7, 12), (7,)))
    x = tg.tensor(xv).cuda().requires_grad_()
    w = tg.tensor(wv).cuda().requires_grad_()
    y = F._linear(x, w, tg.tensor(bv).cuda(), "relu")
    y.sum().backward()
    pre = xv.astype(np.float64) @ wv.T + bv
    np.testing.assert_allclose(y.detach().cpu().numpy(), np.maximum(pre, 0), rtol=1e-4, atol=1e-4)
    mask = (pre > 0).astype(np.float64)
    np.testing.assert_allclose(x.grad.cpu().numpy(), mask @ wv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.grad.cpu().numpy(), mask.T @ xv, rtol=1e-4, atol=1e-4)
    img, k, kb = (r.standard_normal(s).astype(np.float32) for s in ((2, 3, 6, 6), (4, 3, 3, 3), (4,)))
    got = F._conv2d(tg.tensor(img).cuda(), tg.tensor(k).cuda(), tg.tensor(kb).cuda(), 1, 0, 1, 1, "relu")
    want = F._conv2d(tg.tensor(img), tg.tensor(k), tg.tensor(kb), 1, 0, 1, 1, "relu")
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
