"""GPU behaviour beyond the op-table parity (which runs on "cuda" backends in tests/ops).
Every test here is marked ``cuda`` and skips cleanly without a GPU and CuPy."""
import numpy as np
import pytest

import tilegrad as tg

pytestmark = pytest.mark.cuda


def test_issue_example_on_gpu():
    x = tg.randn(3, 4).cuda().requires_grad_()
    (x @ x.T).relu().sum().backward()
    assert x.grad.shape == (3, 4) and x.grad.device == "cuda:0"
    xv = x.detach().cpu().numpy()
    mask = ((xv @ xv.T) > 0).astype(np.float32)
    np.testing.assert_allclose(x.grad.cpu().numpy(), (mask + mask.T) @ xv, rtol=1e-4, atol=1e-5)


def test_factories_on_gpu():
    for t in (tg.zeros(2, 3, device="cuda"), tg.randn(2, 3, device="cuda"), tg.arange(6, device="cuda"),
              tg.tensor([1.0, 2.0], device="cuda"), tg.full((2,), 3.0, device="cuda")):
        assert t.device == "cuda:0" and t.is_cuda


def test_device_transfer_is_differentiable(seed):
    a = np.random.default_rng(seed).standard_normal(5)
    x = tg.tensor(a, requires_grad=True)
    y = (x.cuda() * 3).cpu()
    assert y.device == "cpu"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(5, 3.0))


def test_mixing_devices_names_both():
    with pytest.raises(RuntimeError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        tg.ones(3) + tg.ones(3, device="cuda")


def test_dlpack_with_cupy_shares_memory(seed):
    import cupy as cp
    src = cp.asarray(np.random.default_rng(seed).standard_normal(4).astype(np.float32))
    t = tg.from_dlpack(src)
    src[0] = 7.0
    assert t[0].item() == 7.0
    back = cp.from_dlpack(t)
    assert back.data.ptr == src.data.ptr


def test_native_cuda_kernels_are_used():
    from tilegrad.backends import native_kernel_names
    assert {"relu", "matmul"} <= set(native_kernel_names("cuda"))
