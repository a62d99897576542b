"""index_select / scatter / scatter_add / repeat / sign / new_* against PyTorch CPU: values,
dtypes, shapes, gradients, in-place forms and argument errors."""
import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")


def _both(array, strided=False):
    if strided:
        array = np.repeat(array, 2, axis=-1)[..., ::2]
    return tg.tensor(array, requires_grad=True), torch.tensor(np.ascontiguousarray(array), requires_grad=True)


def _backward_both(y, ty, rng):
    g = rng.standard_normal(tuple(ty.shape))
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()


def _close(ours, theirs):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,dim,n", [((5, 3), 0, 7), ((4, 6), -1, 3), ((2, 3, 4), 1, 5), ((4,), 0, 0), ((3, 5), 1, 1)])
@pytest.mark.parametrize("strided", [False, True])
def test_index_select_matches_pytorch(shape, dim, n, strided, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(shape), strided)
    idx = rng.integers(0, shape[dim], size=n)  # repeats: their gradients add up
    y, ty = x.index_select(dim, tg.tensor(idx)), tx.index_select(dim, torch.tensor(idx))
    assert y.shape == tuple(ty.shape)
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)
    np.testing.assert_array_equal(tg.index_select(x, dim, tg.tensor(idx)).detach().numpy(), ty.detach().numpy())


def _index(rng, x_shape, dim, shape, unique):
    dim %= len(x_shape)
    if unique:
        full = np.argsort(rng.random(shape[:dim] + (x_shape[dim],) + shape[dim + 1:]), axis=dim)
        return full[tuple(slice(0, n) for n in shape)]
    return rng.integers(0, x_shape[dim], size=shape)


def _region(t, ishape):
    """The block of src that scatter reads. PyTorch's own backward fails when src is larger
    than index, so the torch side gets this slice (whose gradient is zero-padded to src)."""
    return t[tuple(slice(0, n) for n in ishape)]


# (x shape, dim, index shape, src shape)
SCATTER_CASES = [((5, 3), 0, (4, 3), (4, 3)), ((4, 6), -1, (3, 2), (4, 5)), ((2, 3, 4), 1, (2, 2, 3), (2, 3, 4)),
                 ((6,), 0, (4,), (5,)), ((3, 4), 0, (0, 4), (1, 4))]


@pytest.mark.parametrize("case", SCATTER_CASES)
def test_scatter_add_matches_pytorch(case, seed):
    shape, dim, ishape, sshape = case
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(shape))
    s, ts = _both(rng.standard_normal(sshape))
    idx = _index(rng, shape, dim, ishape, unique=False)
    y, ty = x.scatter_add(dim, tg.tensor(idx), s), tx.scatter_add(dim, torch.tensor(idx), _region(ts, ishape))
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)
    _close(s.grad, ts.grad)


@pytest.mark.parametrize("case", SCATTER_CASES)
def test_scatter_matches_pytorch(case, seed):
    shape, dim, ishape, sshape = case
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(shape))
    s, ts = _both(rng.standard_normal(sshape))
    idx = _index(rng, shape, dim, ishape, unique=True)
    y, ty = x.scatter(dim, tg.tensor(idx), s), tx.scatter(dim, torch.tensor(idx), _region(ts, ishape))
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)
    _close(s.grad, ts.grad)
    v, tv = x.scatter(dim, tg.tensor(idx), 2.5), tx.scatter(dim, torch.tensor(idx), 2.5)
    _close(v, tv)


def test_inplace_scatter_forms(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 5))
    idx = rng.integers(0, 4, size=(3, 5))
    src = rng.standard_normal((3, 5))
    x, tx = tg.tensor(a), torch.tensor(a)
    out = x.scatter_add_(0, tg.tensor(idx), tg.tensor(src))
    tx.scatter_add_(0, torch.tensor(idx), torch.tensor(src))
    assert out is x
    _close(x, tx)
    x.scatter_(1, tg.tensor(idx[:, :2]), -1.0)
    tx.scatter_(1, torch.tensor(idx[:, :2]), -1.0)
    _close(x, tx)
    # In autograd: a non-leaf updated in place carries the gradient through.
    leaf, tleaf = _both(a)
    y, ty = leaf * 2, tleaf * 2
    s, ts = _both(src)
    y.scatter_add_(0, tg.tensor(idx), s)
    ty.scatter_add_(0, torch.tensor(idx), ts)
    _backward_both(y, ty, rng)
    _close(leaf.grad, tleaf.grad)
    _close(s.grad, ts.grad)


@pytest.mark.parametrize("shape,sizes", [((3,), (2,)), ((2, 3), (2, 1)), ((2, 3), (3, 1, 2)), ((1, 4), (1, 3)),
                                          ((2, 0), (2, 2)), ((), (3, 2)), ((3, 5), (0, 2))])
def test_repeat_matches_pytorch(shape, sizes, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(shape), strided=len(shape) > 0)
    y, ty = x.repeat(*sizes), tx.repeat(*sizes)
    assert y.shape == tuple(ty.shape)
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)
    assert x.repeat(sizes).shape == y.shape  # the tuple form


def test_sign_matches_pytorch(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3, 5))
    a[0, :2] = 0.0
    x, tx = _both(a)
    y, ty = x.sign(), tx.sign()
    _close(y, ty)
    _backward_both(y, ty, rng)
    _close(x.grad, tx.grad)
    ints = rng.integers(-3, 3, size=7)
    np.testing.assert_array_equal(tg.sign(tg.tensor(ints)).numpy(), torch.sign(torch.tensor(ints)).numpy())
    assert tg.sign(tg.tensor(ints)).dtype == tg.int64


def test_new_factories_follow_self():
    x = tg.randn(2, 3, dtype=tg.float64)
    assert x.new_zeros(4, 5).dtype == tg.float64 and x.new_zeros((4, 5)).shape == (4, 5)
    assert x.new_ones(3).numpy().tolist() == [1.0, 1.0, 1.0]
    assert x.new_full((2, 2), 7).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert x.new_empty(2, dtype=tg.int32).dtype == tg.int32
    t = x.new_tensor([1, 2])
    assert t.dtype == tg.float64 and t.tolist() == [1.0, 2.0]
    assert x.new_zeros(2, requires_grad=True).requires_grad


def test_index_family_errors():
    x = tg.randn(3, 4)
    with pytest.raises(IndexError, match="index_select"):
        x.index_select(0, tg.tensor([3]))
    with pytest.raises(IndexError, match="index_select"):
        x.index_select(0, tg.tensor([[1]]))
    with pytest.raises(TypeError, match="index_select"):
        x.index_select(0, tg.tensor([1.0]))
    with pytest.raises(RuntimeError, match="scatter_add"):
        x.scatter_add(0, tg.tensor([[3]]), x)
    with pytest.raises(RuntimeError, match="scatter_add"):
        x.scatter_add(0, tg.tensor([1]), x)
    with pytest.raises(RuntimeError, match="dtype"):
        x.scatter(0, tg.tensor([[1]]), x.double())
    with pytest.raises(RuntimeError, match="src"):
        x.scatter_add(0, tg.tensor([[1, 2]]), tg.randn(1, 1))
    with pytest.raises(RuntimeError, match="repeat"):
        x.repeat(2)
    with pytest.raises(RuntimeError, match="repeat"):
        x.repeat(2, -1)
