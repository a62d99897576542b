"""sort / argsort / topk / cumsum / prod / unique against PyTorch CPU: values, indices, dtypes,
shapes and gradients on random data with ties, negative dims, keepdim and strided inputs."""
import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")


def _both(array, strided=False):
    """The same float64 data as a tilegrad and a torch leaf (``strided``: a non-contiguous view)."""
    if strided:
        array = np.repeat(array, 2, axis=-1)[..., ::2]
    ours = tg.tensor(array, requires_grad=True)
    theirs = torch.tensor(np.ascontiguousarray(array), requires_grad=True)
    return ours, theirs


def _backward_both(y, ty, rng):
    g = rng.standard_normal(tuple(ty.shape))
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()


def _close(ours, theirs, **kw):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12, **kw)


def _ties(rng, shape):
    return rng.integers(-2, 3, size=shape).astype(np.float64)


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((4, 6), -1), ((4, 6), 0), ((2, 3, 5), 1), ((3, 1), 1), ((2, 0, 3), -1)])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("strided", [False, True])
def test_stable_sort_matches_pytorch_with_ties(shape, dim, descending, strided, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(_ties(rng, shape), strided)
    v, i = x.sort(dim=dim, descending=descending, stable=True)
    tv, ti = tx.sort(dim=dim, descending=descending, stable=True)
    _close(v, tv)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert i.dtype == tg.int64 and v.dtype == tg.float64
    np.testing.assert_array_equal(tg.argsort(x, dim, descending=descending, stable=True).numpy(), ti.numpy())
    _backward_both(v, tv, rng)
    _close(x.grad, tx.grad)


def test_sort_nan_and_integer_and_zero_dim(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(9)
    a[[2, 5]] = np.nan
    for desc in (False, True):
        v, i = tg.tensor(a).sort(descending=desc, stable=True)
        tv, ti = torch.tensor(a).sort(descending=desc, stable=True)
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
    ints = rng.integers(0, 4, size=(3, 8)).astype(np.int32)
    v, i = tg.sort(tg.tensor(ints), dim=1, descending=True, stable=True)
    tv, ti = torch.sort(torch.tensor(ints), dim=1, descending=True, stable=True)
    assert v.dtype == tg.int32
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    v, i = tg.tensor(3.5).sort()
    assert v.shape == () and i.shape == () and i.item() == 0


@pytest.mark.parametrize("shape,k,dim,largest", [((9,), 3, 0, True), ((4, 7), 2, -1, False), ((5, 4), 5, 0, True),
                                                 ((2, 3, 6), 0, 2, True), ((3, 4), 4, 1, False)])
def test_topk_matches_pytorch(shape, k, dim, largest, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(shape))
    v, i = x.topk(k, dim=dim, largest=largest)
    tv, ti = tx.topk(k, dim=dim, largest=largest)
    _close(v, tv)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())  # distinct values: the indices are unique
    _backward_both(v, tv, rng)
    _close(x.grad, tx.grad)
    fv, fi = tg.topk(x, k, dim, largest, sorted=False)
    np.testing.assert_array_equal(np.sort(fv.detach().numpy(), axis=dim), np.sort(tv.detach().numpy(), axis=dim))


def test_topk_with_ties_picks_values_pytorch_picks(seed):
    rng = np.random.default_rng(seed)
    x = tg.tensor(_ties(rng, (5, 8)))
    v, i = x.topk(3, dim=1)
    tv, _ = torch.tensor(x.numpy()).topk(3, dim=1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(np.take_along_axis(x.numpy(), i.numpy(), 1), v.numpy())
    assert all(len(set(row)) == 3 for row in i.numpy().tolist())


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1), ((0, 2), 0)])
def test_cumsum_matches_pytorch(shape, dim, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(shape), strided=True)
    y, ty = x.cumsum(dim), tx.cumsum(dim)
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)
    ints = rng.integers(-5, 5, size=shape).astype(np.int32)
    out, tout = tg.cumsum(tg.tensor(ints), dim), torch.cumsum(torch.tensor(ints), dim)
    assert out.dtype == tg.int64 and str(tout.dtype) == "torch.int64"
    np.testing.assert_array_equal(out.numpy(), tout.numpy())


@pytest.mark.parametrize("zeros", [0, 1, 2])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (-1, True), (0, False)])
def test_prod_matches_pytorch_including_zeros(zeros, dim, keepdim, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.5, size=(4, 5)) * rng.choice([-1, 1], size=(4, 5))
    for row in a:
        row[rng.choice(5, size=zeros, replace=False)] = 0.0
    x, tx = _both(a)
    y = x.prod() if dim is None else x.prod(dim, keepdim=keepdim)
    ty = tx.prod() if dim is None else tx.prod(dim, keepdim=keepdim)
    assert y.shape == tuple(ty.shape)
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)


def test_prod_integer_dtype_and_full_reduction_with_one_zero(seed):
    rng = np.random.default_rng(seed)
    ints = rng.integers(1, 4, size=(3, 4)).astype(np.int16)
    assert tg.prod(tg.tensor(ints)).dtype == tg.int64
    np.testing.assert_array_equal(tg.prod(tg.tensor(ints), 1).numpy(), torch.prod(torch.tensor(ints), 1).numpy())
    a = rng.uniform(0.5, 1.5, size=6)
    a[rng.integers(6)] = 0.0
    x, tx = _both(a)
    x.prod().backward()
    tx.prod().backward()
    _close(x.grad, tx.grad)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_unique_matches_pytorch(dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, size=(4, 6)).astype(dtype)
    out = tg.unique(tg.tensor(a), return_inverse=True, return_counts=True)
    expected = torch.unique(torch.tensor(a), return_inverse=True, return_counts=True)
    for o, e in zip(out, expected):
        assert o.shape == tuple(e.shape)
        assert str(o.dtype).split(".")[-1] == str(e.dtype).split(".")[-1]
        np.testing.assert_array_equal(o.numpy(), e.numpy())
    rows = tg.tensor(a[[0, 1, 0, 2]]).unique(dim=0, return_counts=True)
    trows = torch.tensor(a[[0, 1, 0, 2]]).unique(dim=0, return_counts=True)
    for o, e in zip(rows, trows):
        np.testing.assert_array_equal(o.numpy(), e.numpy())
    assert not tg.tensor(a.astype(np.float32), requires_grad=True).unique().requires_grad


def test_sort_family_errors():
    x = tg.randn(3, 4)
    with pytest.raises(IndexError, match="dim"):
        x.sort(dim=2)
    with pytest.raises(RuntimeError, match="topk"):
        x.topk(5)
    with pytest.raises(RuntimeError, match="topk"):
        x.topk(-1)
    with pytest.raises(IndexError, match="dim"):
        x.cumsum(-3)
    with pytest.raises(TypeError, match="prod"):
        x.prod((0, 1))
