"""F.pad / F.interpolate / nn.Upsample / F.normalize / F.cosine_similarity against PyTorch CPU:
values, shapes, gradients (float64), every mode, and argument errors."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
import tilegrad.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _check(fn, tfn, shapes, rng, strided=False, rtol=1e-10):
    arrays = [rng.standard_normal(s) for s in shapes]
    if strided:
        arrays = [np.repeat(a, 2, axis=-1)[..., ::2] for a in arrays]
    ours = [tg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in arrays]
    y, ty = fn(*ours), tfn(*theirs)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=rtol, atol=1e-12)
    g = rng.standard_normal(tuple(ty.shape))
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-12)


PAD_CASES = [  # (mode, input shape, pad)
    ("constant", (3, 5), (1, 2)), ("constant", (2, 3, 4), (0, 1, 2, 0, 1, 1)), ("constant", (2, 3, 5), (-1, 2, 1, -2)),
    ("constant", (4,), (3, 0)), ("reflect", (2, 5), (2, 4)), ("reflect", (1, 2, 4, 5), (3, 1, 0, 2)),
    ("reflect", (1, 2, 3, 4, 5), (1, 1, 2, 2, 1, 0)), ("replicate", (2, 3, 4), (3, 5)), ("replicate", (2, 4, 3), (1, 0, 4, 2)),
    ("replicate", (1, 1, 2, 3, 2), (2, 1, 1, 3, 2, 2)), ("circular", (2, 3, 5), (5, 2)), ("circular", (1, 2, 3, 4), (1, 4, 3, 2)),
    ("reflect", (2, 3, 5), (-1, 2)), ("circular", (1, 3, 1), (1, 1))]


@pytest.mark.parametrize("mode,shape,pad", PAD_CASES, ids=[f"{m}-{s}-{p}" for m, s, p in PAD_CASES])
def test_pad_matches_pytorch(mode, shape, pad, seed):
    rng = np.random.default_rng(seed)
    _check(lambda x: F.pad(x, pad, mode=mode), lambda x: TF.pad(x, pad, mode=mode), [shape], rng, strided=True)


def test_pad_value_integer_and_empty(seed):
    rng = np.random.default_rng(seed)
    _check(lambda x: F.pad(x, (1, 1, 2, 0), value=-3.5), lambda x: TF.pad(x, (1, 1, 2, 0), value=-3.5), [(2, 3)], rng)
    ints = rng.integers(-5, 5, size=(2, 3)).astype(np.int32)
    out = F.pad(tg.tensor(ints), (1, 2), value=7)
    assert out.dtype == tg.int32
    np.testing.assert_array_equal(out.numpy(), TF.pad(torch.tensor(ints), (1, 2), value=7).numpy())
    empty = F.pad(tg.zeros(0, 3), (1, 1, 2, 2), value=1.0)
    assert empty.shape == (4, 5) and (empty.numpy() == 1).all()


def test_pad_errors():
    x = tg.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="divisible"):
        F.pad(x, (1,))
    with pytest.raises(RuntimeError, match="padding length"):
        F.pad(x, (1,) * 8)
    with pytest.raises(RuntimeError, match="less than"):
        F.pad(x, (4, 4), mode="reflect")
    with pytest.raises(RuntimeError, match="wraps"):
        F.pad(x, (5, 5), mode="circular")
    with pytest.raises(NotImplementedError, match="reflect"):
        F.pad(x.reshape(24), (1, 1), mode="reflect")
    with pytest.raises(NotImplementedError, match="mode"):
        F.pad(x, (1, 1), mode="bogus")
    with pytest.raises(RuntimeError, match="negative"):
        F.pad(x, (-3, -2))


INTERP_CASES = [  # (input shape, kwargs)
    ((2, 3, 4, 5), dict(size=(7, 3), mode="nearest")), ((1, 2, 5, 4), dict(scale_factor=2, mode="nearest")),
    ((1, 2, 5, 7), dict(scale_factor=0.5, mode="nearest")), ((1, 2, 3, 4), dict(scale_factor=(1.5, 2.3), mode="nearest")),
    ((2, 3, 4, 5), dict(size=(7, 3), mode="bilinear", align_corners=False)),
    ((2, 3, 4, 5), dict(size=(7, 3), mode="bilinear", align_corners=True)),
    ((1, 2, 5, 4), dict(scale_factor=2, mode="bilinear")), ((1, 2, 6, 7), dict(scale_factor=0.5, mode="bilinear")),
    ((1, 1, 3, 4), dict(scale_factor=(1.7, 2.5), mode="bilinear", align_corners=True)),
    ((1, 2, 4, 4), dict(size=1, mode="bilinear", align_corners=True)), ((2, 3, 5), dict(size=8, mode="linear")),
    ((1, 2, 3, 4, 2), dict(size=(5, 2, 3), mode="trilinear")), ((2, 3, 5), dict(scale_factor=3, mode="nearest")),
    ((1, 2, 5, 7), dict(size=(9, 4), mode="nearest-exact")),
    ((1, 2, 5, 4), dict(scale_factor=1.6, mode="bilinear", recompute_scale_factor=True))]


@pytest.mark.parametrize("shape,kwargs", INTERP_CASES, ids=[f"{s}-{k}" for s, k in INTERP_CASES])
def test_interpolate_matches_pytorch(shape, kwargs, seed):
    rng = np.random.default_rng(seed)
    _check(lambda x: F.interpolate(x, **kwargs), lambda x: TF.interpolate(x, **kwargs), [shape], rng, strided=True)


def test_upsample_module_matches_pytorch(seed):
    rng = np.random.default_rng(seed)
    ours, theirs = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), torch.nn.Upsample(
        scale_factor=2, mode="bilinear", align_corners=True)
    _check(ours, theirs, [(2, 3, 4, 5)], rng)
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(nn.Upsample(size=(5, 4))(tg.tensor(x)).numpy(),
                               torch.nn.Upsample(size=(5, 4))(torch.tensor(x)).numpy(), rtol=1e-6)


def test_interpolate_errors():
    x = tg.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match="size or scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="bilinear"):
        F.interpolate(tg.randn(1, 2, 3), scale_factor=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="size"):
        F.interpolate(x, size=(3, 4, 5))


@pytest.mark.parametrize("p,dim", [(2, 1), (1, -1), (3, 0)])
def test_normalize_matches_pytorch(p, dim, seed):
    rng = np.random.default_rng(seed)
    _check(lambda x: F.normalize(x, p=p, dim=dim), lambda x: TF.normalize(x, p=p, dim=dim), [(3, 4, 5)], rng, strided=True)
    zero = np.zeros((2, 3))  # a zero vector: divided by eps, with a finite gradient
    x, tx = tg.tensor(zero, requires_grad=True), torch.tensor(zero, requires_grad=True)
    F.normalize(x, p=p).sum().backward()
    TF.normalize(tx, p=p).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("shapes,dim", [([(4, 5), (4, 5)], 1), ([(3, 4, 5), (4, 5)], -1), ([(2, 3, 4), (2, 1, 4)], 1),
                                        ([(6,), (6,)], 0)])
def test_cosine_similarity_matches_pytorch(shapes, dim, seed):
    rng = np.random.default_rng(seed)
    _check(lambda a, b: F.cosine_similarity(a, b, dim=dim), lambda a, b: TF.cosine_similarity(a, b, dim=dim), shapes, rng)


def test_cosine_similarity_of_a_zero_vector(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    a[1] = 0.0
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, tout = F.cosine_similarity(x, y), TF.cosine_similarity(tx, ty)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-8, atol=1e-12)
    with pytest.raises(RuntimeError, match="broadcast"):
        F.cosine_similarity(tg.randn(3, 4), tg.randn(3, 5))
