"""var_mean/std_mean, median, nansum/nanmean, aminmax, cummax/cummin, mean(dtype=) and the
Tensor forms of bmm/addmm/multinomial against PyTorch CPU: values, indices, dtypes and
gradients with ties, NaN, negative dims and keepdim."""
import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")


def _both(array, strided=False):
    if strided:
        array = np.repeat(array, 2, axis=-1)[..., ::2]
    return tg.tensor(array, requires_grad=True), torch.tensor(np.array(array), requires_grad=True)


def _grads_match(pairs, outs, touts, rng):
    gs = [rng.standard_normal(tuple(t.shape)) for t in touts]
    loss = sum((o * tg.tensor(g)).sum() for o, g in zip(outs, gs))
    tloss = sum((t * torch.tensor(g)).sum() for t, g in zip(touts, gs))
    loss.backward()
    tloss.backward()
    for x, tx in pairs:
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("which", ["var_mean", "std_mean"])
@pytest.mark.parametrize("dim,keepdim,correction", [(None, False, 1), (1, True, 0), ((0, -1), False, 1), (-1, False, 2)])
def test_var_std_mean(which, dim, keepdim, correction, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal((3, 4, 5)))
    ours = getattr(tg, which)(x, dim, keepdim=keepdim, correction=correction)
    theirs = getattr(torch, which)(tx, dim, keepdim=keepdim, correction=correction)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-12)
    _grads_match([(x, tx)], ours, theirs, rng)


@pytest.mark.parametrize("shape,dim,keepdim", [((7,), 0, False), ((4, 6), -1, True), ((5, 3), 0, False),
                                               ((2, 3, 4), 1, False), ((3, 1), 1, True)])
@pytest.mark.parametrize("strided", [False, True])
def test_median_along_dim(shape, dim, keepdim, strided, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.permutation(np.prod(shape)).reshape(shape) * 0.5 + rng.uniform(0, 0.1), strided)
    v, i = x.median(dim, keepdim=keepdim)
    tv, ti = tx.median(dim, keepdim=keepdim)
    np.testing.assert_array_equal(v.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert i.dtype == tg.int64
    _grads_match([(x, tx)], [v], [tv], rng)


def test_median_with_ties_and_over_all(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-2, 3, size=(5, 8)).astype(np.float64)
    v, i = tg.tensor(a).median(1)
    tv, _ = torch.tensor(a).median(1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(np.take_along_axis(a, i.numpy()[:, None], 1)[:, 0], v.numpy())  # index is of a median
    for shape in ((6,), (4, 5), (3, 3)):
        x, tx = _both(rng.integers(-2, 3, size=shape).astype(np.float64))
        m, tm = x.median(), tx.median()
        np.testing.assert_array_equal(m.detach().numpy(), tm.detach().numpy())
        m.backward()
        tm.backward()  # the gradient is split evenly between the tied elements, as in PyTorch
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    ints = rng.integers(0, 9, size=10)
    np.testing.assert_array_equal(tg.tensor(ints).median().numpy(), torch.tensor(ints).median().numpy())
    with pytest.raises(RuntimeError, match="median"):
        tg.ones(0).median()


@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, True), (-1, False), (0, False)])
def test_nansum_nanmean(dim, keepdim, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 5))
    a[rng.random((4, 5)) > 0.6] = np.nan
    x, tx = _both(a)
    kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    ours, theirs = [x.nansum(**kw), tg.nanmean(x, **kw)], [tx.nansum(**kw), torch.nanmean(tx, **kw)]
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-12, equal_nan=True)
    _grads_match([(x, tx)], [ours[0]], [theirs[0]], rng)
    ints = rng.integers(0, 5, (3, 4))
    assert tg.tensor(ints).nansum().dtype == tg.int64
    assert tg.nanmean(tg.tensor(ints), dtype=tg.float64).item() == pytest.approx(ints.mean())


def test_aminmax_and_mean_dtype(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3, 6))
    for kw in ({}, {"dim": 1}, {"dim": -2, "keepdim": True}):
        ours, theirs = tg.tensor(a).aminmax(**kw), torch.tensor(a).aminmax(**kw)
        np.testing.assert_array_equal(ours.min.numpy(), theirs.min.numpy())
        np.testing.assert_array_equal(ours.max.numpy(), theirs.max.numpy())
    ints = rng.integers(0, 100, (4, 5))
    for dtype, tdtype in ((tg.float64, torch.float64), (tg.float32, torch.float32)):
        ours, theirs = tg.tensor(ints).mean(1, dtype=dtype), torch.tensor(ints).mean(1, dtype=tdtype)
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    y = tg.tensor(a.astype(np.float32)).mean(dtype=tg.float64)
    assert y.dtype == tg.float64


@pytest.mark.parametrize("which", ["cummax", "cummin"])
@pytest.mark.parametrize("shape,dim", [((9,), 0), ((4, 7), -1), ((5, 3), 0), ((2, 3, 4), 1)])
def test_cummax_cummin_with_ties(which, shape, dim, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.integers(-3, 4, size=shape).astype(np.float64))
    v, i = getattr(x, which)(dim)
    tv, ti = getattr(torch, which)(tx, dim)
    np.testing.assert_array_equal(v.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    _grads_match([(x, tx)], [v], [tv], rng)
    a = rng.standard_normal(8)
    a[3] = np.nan
    ours, theirs = getattr(tg.tensor(a), which)(0), getattr(torch.tensor(a), which)(0)
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())


def test_tensor_forms_of_products_and_multinomial(seed):
    rng = np.random.default_rng(seed)
    a, b, c = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5)), rng.standard_normal((3, 5))
    np.testing.assert_allclose(tg.tensor(a).bmm(tg.tensor(b)).numpy(), torch.tensor(a).bmm(torch.tensor(b)).numpy(),
                               rtol=1e-12)
    m1, m2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    ours = tg.tensor(c).addmm(tg.tensor(m1), tg.tensor(m2), beta=0.5, alpha=2)
    theirs = torch.tensor(c).addmm(torch.tensor(m1), torch.tensor(m2), beta=0.5, alpha=2)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    p = tg.tensor(rng.uniform(0.1, 1, (3, 6)))
    draws = p.multinomial(4)
    assert draws.shape == (3, 4) and draws.dtype == tg.int64
    assert all(len(set(row)) == 4 for row in draws.tolist())
