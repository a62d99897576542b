"""flip/roll/movedim/unflatten/tile/select/unbind/narrow/diagonal/diag/trace/outer/nonzero/
masked_select/take and eye/meshgrid/cartesian_prod/diff/histc/where(cond)/zeros(size=) against
PyTorch CPU: values, shapes, dtypes and gradients, negative dims and strided inputs."""
import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")


def _both(array, strided=False):
    if strided:
        array = np.repeat(array, 2, axis=-1)[..., ::2]
    return tg.tensor(array, requires_grad=True), torch.tensor(np.array(array), requires_grad=True)


def _same(fn, tfn, shape, rng, strided=False):
    """fn(x) and tfn(tx) agree in values and in the gradient of a random projection."""
    x, tx = _both(rng.standard_normal(shape), strided)
    y, ty = fn(x), tfn(tx)
    if isinstance(y, tuple):
        y, ty = tg.stack(list(y)) if y else None, torch.stack(list(ty)) if ty else None
    assert y.shape == tuple(ty.shape), (y.shape, tuple(ty.shape))
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    g = rng.standard_normal(tuple(ty.shape))
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


CASES = [
    ("flip", (3, 4, 5), lambda x: x.flip(0, -1), lambda x: x.flip(0, -1)),
    ("flip list", (3, 4), lambda x: tg.flip(x, [1]), lambda x: torch.flip(x, [1])),
    ("fliplr", (3, 4), lambda x: x.fliplr(), lambda x: x.fliplr()),
    ("flipud", (3, 4), lambda x: tg.flipud(x), lambda x: torch.flipud(x)),
    ("roll flat", (3, 4), lambda x: x.roll(5), lambda x: x.roll(5)),
    ("roll dims", (3, 4, 2), lambda x: x.roll((1, -2), (0, -2)), lambda x: x.roll((1, -2), (0, -2))),
    ("roll big", (3, 4), lambda x: tg.roll(x, 9, 1), lambda x: torch.roll(x, 9, 1)),
    ("movedim", (2, 3, 4, 5), lambda x: x.movedim(0, -1), lambda x: x.movedim(0, -1)),
    ("moveaxis many", (2, 3, 4, 5), lambda x: tg.moveaxis(x, (0, 1), (2, 0)), lambda x: torch.moveaxis(x, (0, 1), (2, 0))),
    ("swapaxes", (2, 3, 4), lambda x: x.swapaxes(0, -1), lambda x: x.swapaxes(0, -1)),
    ("t", (3, 5), lambda x: x.t(), lambda x: x.t()),
    ("unflatten", (2, 12), lambda x: x.unflatten(1, (3, -1)), lambda x: x.unflatten(1, (3, -1))),
    ("tile short", (2, 3), lambda x: x.tile((2,)), lambda x: x.tile((2,))),
    ("tile long", (2, 3), lambda x: tg.tile(x, (2, 1, 2)), lambda x: torch.tile(x, (2, 1, 2))),
    ("select", (3, 4, 5), lambda x: x.select(-1, -2), lambda x: x.select(-1, -2)),
    ("unbind", (3, 4), lambda x: x.unbind(1), lambda x: x.unbind(1)),
    ("narrow", (5, 6), lambda x: x.narrow(1, -4, 3), lambda x: x.narrow(1, -4, 3)),
    ("diagonal", (4, 5), lambda x: x.diagonal(), lambda x: x.diagonal()),
    ("diagonal offset", (4, 5), lambda x: x.diagonal(2), lambda x: x.diagonal(2)),
    ("diagonal below", (4, 5), lambda x: x.diagonal(-1), lambda x: x.diagonal(-1)),
    ("diagonal dims", (3, 4, 5), lambda x: x.diagonal(1, -1, 0), lambda x: x.diagonal(1, -1, 0)),
    ("diagonal empty", (3, 4), lambda x: x.diagonal(7), lambda x: x.diagonal(7)),
    ("diag vector", (4,), lambda x: x.diag(), lambda x: x.diag()),
    ("diag vector offset", (3,), lambda x: tg.diag(x, -2), lambda x: torch.diag(x, -2)),
    ("diag matrix", (4, 3), lambda x: x.diag(1), lambda x: x.diag(1)),
    ("trace", (4, 6), lambda x: x.trace(), lambda x: x.trace()),
    ("take", (3, 4), lambda x: x.take(tg.tensor([[0, 11], [-1, 5]])), lambda x: x.take(torch.tensor([[0, 11], [-1, 5]]))),
    ("ravel", (3, 4), lambda x: x.ravel(), lambda x: x.ravel()),
]


@pytest.mark.parametrize("name,shape,fn,tfn", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("strided", [False, True])
def test_layout_matches_pytorch(name, shape, fn, tfn, strided, seed):
    _same(fn, tfn, shape, np.random.default_rng(seed), strided)


def test_outer_and_masked_select(seed):
    rng = np.random.default_rng(seed)
    a, ta = _both(rng.standard_normal(4))
    b, tb = _both(rng.standard_normal(3))
    y, ty = a.outer(b) + tg.ger(a, b), ta.outer(tb) + torch.ger(ta, tb)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    mask = rng.random((4,)) > 0.4
    _same(lambda x: x.masked_select(tg.tensor(mask)), lambda x: x.masked_select(torch.tensor(mask)), (3, 4), rng)
    with pytest.raises(RuntimeError, match="outer"):
        a.outer(tg.ones(2, 2))


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (0, 3)])
def test_nonzero_argwhere_where_count(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, size=shape) * (rng.random(shape) > 0.3)
    x, tx = tg.tensor(a), torch.tensor(a)
    np.testing.assert_array_equal(x.nonzero().numpy(), tx.nonzero().numpy())
    assert x.nonzero().dtype == tg.int64 and x.nonzero().shape == tuple(tx.nonzero().shape)
    np.testing.assert_array_equal(tg.argwhere(x).numpy(), torch.argwhere(tx).numpy())
    for ours, theirs in zip(x.nonzero(as_tuple=True), tx.nonzero(as_tuple=True)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for ours, theirs in zip(tg.where(x > 0), torch.where(tx > 0)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(x.count_nonzero().numpy(), tx.count_nonzero().numpy())
    np.testing.assert_array_equal(tg.count_nonzero(x, -1).numpy(), torch.count_nonzero(tx, -1).numpy())


def test_factories_eye_size_meshgrid(seed):
    for args in ((3,), (2, 5), (4, 1), (0,)):
        np.testing.assert_array_equal(tg.eye(*args).numpy(), torch.eye(*args).numpy())
    assert tg.eye(3, dtype=tg.int64).dtype == tg.int64
    for factory in ("zeros", "ones", "empty", "rand", "randn"):
        assert getattr(tg, factory)(size=(2, 3)).shape == (2, 3)
        assert getattr(tg, factory)(size=[4]).shape == (4,)
    rng = np.random.default_rng(seed)
    a, b, c = rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal(2)
    for indexing in ("ij", "xy"):
        ours = tg.meshgrid(tg.tensor(a), tg.tensor(b), tg.tensor(c), indexing=indexing)
        theirs = torch.meshgrid(torch.tensor(a), torch.tensor(b), torch.tensor(c), indexing=indexing)
        for o, t in zip(ours, theirs):
            np.testing.assert_array_equal(o.numpy(), t.numpy())
    np.testing.assert_array_equal(tg.cartesian_prod(tg.tensor(a), tg.tensor(c)).numpy(),
                                  torch.cartesian_prod(torch.tensor(a), torch.tensor(c)).numpy())
    with pytest.raises(ValueError, match="indexing"):
        tg.meshgrid(tg.tensor(a), indexing="yx")


@pytest.mark.parametrize("n,dim,extra", [(1, -1, False), (2, 0, False), (1, 1, True), (3, -1, True)])
def test_diff(n, dim, extra, seed):
    rng = np.random.default_rng(seed)
    kw = {}
    if extra:
        kw = {"prepend": rng.standard_normal((4, 2)), "append": rng.standard_normal((4, 1))}
    ours = {k: tg.tensor(v) for k, v in kw.items()}
    theirs = {k: torch.tensor(v) for k, v in kw.items()}
    if extra and dim == -1:
        ours, theirs = {"prepend": ours["prepend"]}, {"prepend": theirs["prepend"]}
    _same(lambda x: tg.diff(x, n, dim, **ours), lambda x: torch.diff(x, n, dim, **theirs), (4, 5), rng)
    p = rng.random(6) > 0.5
    np.testing.assert_array_equal(tg.diff(tg.tensor(p)).numpy(), torch.diff(torch.tensor(p)).numpy())


def test_histc(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(200)
    for kw in ({"bins": 7}, {"bins": 10, "min": -1, "max": 1}, {}):
        np.testing.assert_array_equal(tg.histc(tg.tensor(a), **kw).numpy(), torch.histc(torch.tensor(a), **kw).numpy())


def test_argument_errors():
    x = tg.ones(3, 4)
    with pytest.raises(RuntimeError, match="narrow"):
        x.narrow(1, 2, 3)
    with pytest.raises(RuntimeError, match="diagonal"):
        x.diagonal(0, 1, 1)
    with pytest.raises(RuntimeError, match="fliplr"):
        tg.ones(3).fliplr()
    with pytest.raises(RuntimeError, match="roll"):
        x.roll((1, 2), 0)
    with pytest.raises(RuntimeError, match="unflatten"):
        x.unflatten(1, (3, 2))
    with pytest.raises(IndexError, match="take"):
        x.take(tg.tensor([12]))
    with pytest.raises(IndexError):
        x.flip(2)
    with pytest.raises(RuntimeError, match="movedim"):
        x.movedim((0, 1), 0)
