"""The Tensor API: factories, dtypes and promotion, conversion, shape ops, indexing, DLPack."""
import numpy as np
import pytest

import tilegrad as tg


def test_factories_shapes_and_dtypes():
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).dtype == tg.float32
    assert tg.ones(4, dtype=tg.int64).tolist() == [1, 1, 1, 1]
    assert tg.full((2,), 7).dtype == tg.int64 and tg.full((2,), 7.5).dtype == tg.float32
    assert tg.full((2,), True).dtype == tg.bool
    assert tg.empty(0, 5).shape == (0, 5)
    assert tg.arange(5).tolist() == [0, 1, 2, 3, 4] and tg.arange(5).dtype == tg.int64
    assert tg.arange(0, 1, 0.25).dtype == tg.float32
    np.testing.assert_allclose(tg.linspace(0, 1, 5).numpy(), [0, 0.25, 0.5, 0.75, 1])
    assert tg.tensor([1.5, 2]).dtype == tg.float32
    assert tg.tensor([1, 2]).dtype == tg.int64
    assert tg.tensor([True]).dtype == tg.bool
    assert tg.tensor(np.zeros(2)).dtype == tg.float64
    assert tg.tensor(3.0).ndim == 0
    x = tg.randn(3, 4)
    assert tg.zeros_like(x).shape == x.shape and tg.ones_like(x).dtype == x.dtype
    assert tg.randn_like(x).shape == (3, 4) and tg.rand_like(x).shape == (3, 4)
    r = tg.randint(0, 10, (1000,))
    assert r.dtype == tg.int64 and 0 <= r.min().item() and r.max().item() < 10
    u = tg.rand(1000)
    assert 0 <= u.min().item() and u.max().item() < 1 and 0.4 < u.mean().item() < 0.6


def test_manual_seed_reproduces():
    tg.manual_seed(123)
    a = tg.randn(5).numpy().copy()
    tg.manual_seed(123)
    b = tg.randn(5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, tg.randn(5).numpy())


def test_from_numpy_shares_memory_and_numpy_round_trip(seed):
    arr = np.random.default_rng(seed).standard_normal((3, 2)).astype(np.float32)
    t = tg.from_numpy(arr)
    arr[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    assert t.numpy() is arr


def test_conversions(seed):
    x = tg.tensor(np.random.default_rng(seed).standard_normal(4))
    assert x.float().dtype == tg.float32 and x.double().dtype == tg.float64
    assert x.half().dtype == tg.float16 and x.long().dtype == tg.int64 and x.int().dtype == tg.int32
    assert x.to(tg.float32).dtype == tg.float32 and x.to("cpu") is x and x.cpu() is x
    assert (x > 0).dtype == tg.bool
    assert x.sum().item() == pytest.approx(float(x.numpy().sum()))
    assert isinstance(x.tolist(), list) and len(x) == 4
    assert x.size() == (4,) and x.size(0) == 4 and x.ndim == 1 and x.numel() == 4
    assert x.device == "cpu" and str(x.device) == "cpu"


def test_dtype_promotion_follows_pytorch():
    i = tg.tensor([1, 2, 3])
    f = tg.tensor([0.5, 1.0, 1.5])
    assert (i + f).dtype == tg.float32  # int64 + float32 -> float32 (NumPy would say float64)
    assert (i + 1.5).dtype == tg.float32 and (i + 2).dtype == tg.int64
    assert (f + 2).dtype == tg.float32 and (f.double() + f).dtype == tg.float64
    assert (i / 2).dtype == tg.float32 and (i / i).tolist() == [1.0, 1.0, 1.0]
    assert (tg.tensor([True, False]) + 1).dtype == tg.int64


def test_arithmetic_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.uniform(0.5, 2, (4,)).astype(np.float32)
    ta, tb = tg.tensor(a), tg.tensor(b)
    for got, want in [(ta + tb, a + b), (ta - tb, a - b), (ta * tb, a * b), (ta / tb, a / b),
                      (2 - ta, 2 - a), (2 / tb, 2 / b), (tb ** 2, b ** 2), (2 ** tb, 2 ** b), (-ta, -a),
                      (abs(ta), np.abs(a)), (ta.clamp(-0.5, 0.5), np.clip(a, -0.5, 0.5)),
                      (tg.maximum(ta, tb), np.maximum(a, b)), (tg.where(ta > 0, ta, tb), np.where(a > 0, a, b)),
                      (ta @ ta.T, a @ a.T), (tb @ tb, b @ b), (ta @ tb, a @ b)]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_reductions_match_numpy(seed):
    a = np.random.default_rng(seed).standard_normal((3, 4, 5))
    t = tg.tensor(a)
    np.testing.assert_allclose(t.sum().item(), a.sum())
    np.testing.assert_allclose(t.sum(dim=(0, 2)).numpy(), a.sum(axis=(0, 2)))
    np.testing.assert_allclose(t.mean(1, keepdim=True).numpy(), a.mean(1, keepdims=True))
    np.testing.assert_allclose(t.var(2).numpy(), a.var(2, ddof=1))
    np.testing.assert_allclose(t.std(2, unbiased=False).numpy(), a.std(2))
    values, indices = t.max(1)
    np.testing.assert_allclose(values.numpy(), a.max(1))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(1))
    np.testing.assert_array_equal(t.argmin(-1).numpy(), a.argmin(-1))
    np.testing.assert_allclose(t.logsumexp(0).numpy(), np.log(np.exp(a).sum(0)))
    np.testing.assert_allclose(t.softmax(-1).numpy(), np.exp(a) / np.exp(a).sum(-1, keepdims=True))
    np.testing.assert_allclose(t.log_softmax(0).numpy(), a - np.log(np.exp(a).sum(0, keepdims=True)))


def test_shape_ops(seed):
    a = np.random.default_rng(seed).standard_normal((2, 3, 4))
    t = tg.tensor(a)
    assert t.reshape(6, 4).shape == (6, 4) and t.view(-1).shape == (24,)
    assert t.transpose(0, 2).shape == (4, 3, 2) and t.permute(1, 0, 2).shape == (3, 2, 4)
    assert t.unsqueeze(1).shape == (2, 1, 3, 4) and t.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert t.unsqueeze(0).squeeze().shape == (2, 3, 4) and t.flatten(1).shape == (2, 12)
    assert tg.ones(3, 1).expand(3, 5).shape == (3, 5) and tg.ones(3, 1).expand(2, -1, 4).shape == (2, 3, 4)
    assert not t.transpose(0, 1).is_contiguous() and t.transpose(0, 1).contiguous().is_contiguous()
    np.testing.assert_allclose(t.T.numpy(), a.T)
    with pytest.raises(RuntimeError, match="view"):
        t.transpose(0, 1).view(-1)
    parts = t.split([1, 2], dim=1)
    assert [p.shape for p in parts] == [(2, 1, 4), (2, 2, 4)]
    assert [c.shape[2] for c in t.chunk(3, 2)] == [2, 2]
    np.testing.assert_allclose(tg.cat([t, t], 1).numpy(), np.concatenate([a, a], 1))
    np.testing.assert_allclose(tg.stack([t, t], -1).numpy(), np.stack([a, a], -1))


def test_indexing_get_and_set(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((5, 4))
    t = tg.tensor(a)
    np.testing.assert_allclose(t[1].numpy(), a[1])
    np.testing.assert_allclose(t[1:4, ::2].numpy(), a[1:4, ::2])
    np.testing.assert_allclose(t[[0, 2, 2]].numpy(), a[[0, 2, 2]])
    np.testing.assert_allclose(t[tg.tensor([4, 0])].numpy(), a[[4, 0]])
    np.testing.assert_allclose(t[t > 0].numpy(), a[a > 0])
    np.testing.assert_allclose(t[..., None, 1].numpy(), a[..., None, 1])
    t[0] = 1.0
    t[:, 1] = tg.tensor(np.arange(5.0))
    t[t < -1] = -1
    a[0] = 1.0
    a[:, 1] = np.arange(5.0)
    a[a < -1] = -1
    np.testing.assert_allclose(t.numpy(), a)
    with pytest.raises(IndexError):
        t[7]


def test_in_place_ops(seed):
    a = np.random.default_rng(seed).standard_normal(4).astype(np.float32)
    t = tg.tensor(a)
    t += 1
    t *= 2
    t.sub_(1).div_(2)
    np.testing.assert_allclose(t.numpy(), ((a + 1) * 2 - 1) / 2, rtol=1e-6)
    t.zero_()
    assert t.sum().item() == 0
    i = tg.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 0.5


def test_dlpack_round_trip_with_numpy(seed):
    arr = np.random.default_rng(seed).standard_normal((2, 3)).astype(np.float32)
    t = tg.from_dlpack(arr)
    assert np.shares_memory(t.numpy(), arr)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, arr)


def test_dlpack_with_pytorch_if_installed(seed):
    torch = pytest.importorskip("torch")
    src = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed))
    t = tg.from_dlpack(src)
    src[0, 0] = 5.0
    assert t[0, 0].item() == 5.0  # no copy
    back = torch.from_dlpack(t)
    assert back.data_ptr() == src.data_ptr()


def test_repr_mentions_grad_and_dtype():
    x = tg.ones(2, requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn" in repr(x * 2)
    assert "dtype=tilegrad.float64" in repr(tg.ones(2, dtype=tg.float64))


def test_issue_example_on_cpu():
    x = tg.randn(3, 4, requires_grad=True)
    (x @ x.T).relu().sum().backward()
    assert x.grad.shape == (3, 4)
    xv = x.detach().numpy()
    mask = ((xv @ xv.T) > 0).astype(np.float32)
    np.testing.assert_allclose(x.grad.numpy(), (mask + mask.T) @ xv, rtol=1e-5, atol=1e-6)
