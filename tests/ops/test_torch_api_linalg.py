"""norm / linalg.vector_norm / einsum / bmm / baddbmm / addmm / isclose / allclose / multinomial
against PyTorch CPU (values, shapes, gradients, errors); multinomial by its statistics."""
import math

import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")


def _leaves(rng, *shapes, strided=False):
    arrays = [rng.standard_normal(s) for s in shapes]
    if strided:
        arrays = [np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a for a in arrays]
    return ([tg.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in arrays])


def _check(y, ty, ours, theirs, rng, rtol=1e-10):
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=rtol, atol=1e-12)
    g = rng.standard_normal(tuple(ty.shape))
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for a, b in zip(ours, theirs):
        expected = np.zeros(a.shape) if b.grad is None else b.grad.numpy()  # PyTorch: None for all zeros
        np.testing.assert_allclose(a.grad.numpy(), expected, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("p,dim,keepdim", [("fro", None, False), (2, 1, False), (1, -1, True), (math.inf, 0, False),
                                           (-math.inf, 1, True), (3, (0, 2), False), (0.5, 2, False), ("fro", (1, 2), True),
                                           (0, 1, False)])
def test_norm_matches_pytorch(p, dim, keepdim, seed):
    rng = np.random.default_rng(seed)
    (x,), (tx,) = _leaves(rng, (3, 4, 5), strided=True)
    _check(x.norm(p=p, dim=dim, keepdim=keepdim), tx.norm(p=p, dim=dim, keepdim=keepdim), [x], [tx], rng)


@pytest.mark.parametrize("ord", [2, 1, math.inf, 3])
def test_norm_gradient_at_zero_matches_pytorch(ord, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3, 4))
    a[1] = 0.0  # a zero row: PyTorch's gradient is zero there
    a[0, 2] = 0.0
    x, tx = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    _check(tg.linalg.vector_norm(x, ord, dim=1), torch.linalg.vector_norm(tx, ord, dim=1), [x], [tx], rng)


def test_vector_norm_dtype_and_errors():
    x = tg.randn(3, 4)
    assert tg.linalg.vector_norm(x, dtype=tg.float64).dtype == tg.float64
    assert tg.norm(x).shape == ()
    with pytest.raises(RuntimeError, match="floating"):
        tg.tensor([1, 2]).norm()
    with pytest.raises(NotImplementedError, match="nuc"):
        x.norm(p="nuc")
    with pytest.raises(IndexError, match="dim"):
        x.norm(dim=2)
    with pytest.raises(RuntimeError, match="empty"):
        tg.zeros(0, 3).norm(p=math.inf, dim=0)


EINSUM_CASES = [("ij,jk->ik", (3, 4), (4, 5)), ("bij,bjk->bik", (2, 3, 4), (2, 4, 1)), ("ii->i", (4, 4)), ("ii", (3, 3)),
                ("ij->", (2, 5)), ("i,j->ij", (3,), (4,)), ("...ij,...jk", (2, 1, 3, 4), (5, 4, 2)), ("ij,j->i", (3, 4), (1,)),
                ("bhqd,bhkd->bhqk", (1, 2, 3, 5), (1, 2, 4, 5)), ("ij,ij,ij->i", (2, 3), (2, 3), (2, 3)), ("ji", (2, 3)),
                ("iij->j", (2, 2, 3)), ("b i d, b j d -> b i j", (2, 3, 4), (2, 5, 4)), ("i...->...", (3, 2, 4))]


@pytest.mark.parametrize("case", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_matches_pytorch(case, seed):
    equation, *shapes = case
    rng = np.random.default_rng(seed)
    ours, theirs = _leaves(rng, *shapes)
    _check(tg.einsum(equation, *ours), torch.einsum(equation, *theirs), ours, theirs, rng)


def test_einsum_list_form_and_errors():
    a, b = tg.randn(2, 3), tg.randn(3, 4)
    assert tg.einsum("ij,jk", [a, b]).shape == (2, 4)
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ij,jk->ik", a)
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ij,jk->ik", a, tg.randn(4, 4))
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ijk,jk->ik", a, b)
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ij,jk->iz", a, b)


def test_bmm_baddbmm_addmm_match_pytorch(seed):
    rng = np.random.default_rng(seed)
    ours, theirs = _leaves(rng, (2, 3, 4), (2, 4, 5), strided=True)
    _check(tg.bmm(*ours), torch.bmm(*theirs), ours, theirs, rng)
    ours, theirs = _leaves(rng, (3, 1), (2, 3, 4), (2, 4, 5))
    _check(tg.baddbmm(*ours, beta=0.5, alpha=-2.0), torch.baddbmm(*theirs, beta=0.5, alpha=-2.0), ours, theirs, rng)
    ours, theirs = _leaves(rng, (5,), (3, 4), (4, 5))
    _check(tg.addmm(*ours, beta=2.0, alpha=0.5), torch.addmm(*theirs, beta=2.0, alpha=0.5), ours, theirs, rng)
    ours, theirs = _leaves(rng, (3, 5), (3, 4), (4, 5))
    _check(tg.addmm(*ours), torch.addmm(*theirs), ours, theirs, rng)
    bad = tg.full((3, 5), float("nan"))  # beta = 0 ignores the input, NaN included
    out = tg.addmm(bad, tg.ones(3, 4), tg.ones(4, 5), beta=0)
    assert np.isfinite(out.numpy()).all()


def test_matrix_product_errors():
    with pytest.raises(RuntimeError, match="bmm"):
        tg.bmm(tg.randn(3, 4), tg.randn(4, 5))
    with pytest.raises(RuntimeError, match="bmm"):
        tg.bmm(tg.randn(2, 3, 4), tg.randn(3, 4, 5))
    with pytest.raises(RuntimeError, match="bmm"):
        tg.bmm(tg.randn(2, 3, 4), tg.randn(2, 5, 5))
    with pytest.raises(RuntimeError, match="dtype"):
        tg.bmm(tg.randn(2, 3, 4), tg.randn(2, 4, 5, dtype=tg.float64))
    with pytest.raises(RuntimeError, match="addmm"):
        tg.addmm(tg.randn(4, 5), tg.randn(3, 4), tg.randn(4, 5))
    with pytest.raises(RuntimeError, match="baddbmm"):
        tg.baddbmm(tg.randn(2, 3, 5), tg.randn(3, 4), tg.randn(4, 5))


def test_isclose_allclose_match_pytorch(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 6))
    b = a + rng.choice([0.0, 1e-9, 1e-3], size=a.shape)
    a[0, 0] = b[0, 0] = np.nan
    for equal_nan in (False, True):
        ours = tg.isclose(tg.tensor(a), tg.tensor(b), rtol=1e-5, atol=1e-8, equal_nan=equal_nan)
        theirs = torch.isclose(torch.tensor(a), torch.tensor(b), rtol=1e-5, atol=1e-8, equal_nan=equal_nan)
        assert ours.dtype == tg.bool
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert tg.allclose(tg.tensor(a[1:]), tg.tensor(a[1:] + 1e-12)) and not tg.allclose(tg.tensor(a[1:]), tg.tensor(a[1:] + 1))
    with pytest.raises(RuntimeError, match="dtype"):
        tg.isclose(tg.randn(3), tg.randn(3, dtype=tg.float64))


def test_multinomial_statistics_and_rules(seed):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0, 1, size=(3, 6))
    probs[:, 2] = 0.0  # never drawn
    gen = tg.Generator().manual_seed(seed)
    draws = tg.multinomial(tg.tensor(probs), 20000, replacement=True, generator=gen)
    assert draws.shape == (3, 20000) and draws.dtype == tg.int64
    for row, p in zip(draws.numpy(), probs):
        freq = np.bincount(row, minlength=6) / row.size
        np.testing.assert_allclose(freq, p / p.sum(), atol=0.02)
        assert freq[2] == 0
    again = tg.multinomial(tg.tensor(probs), 20000, replacement=True, generator=tg.Generator().manual_seed(seed))
    np.testing.assert_array_equal(draws.numpy(), again.numpy())
    picks = tg.multinomial(tg.tensor(probs), 5, generator=gen).numpy()
    assert picks.shape == (3, 5) and all(len(set(r)) == 5 and 2 not in r for r in picks.tolist())
    # Without replacement the first draw follows the probabilities too.
    first = tg.multinomial(tg.tensor(np.tile(probs[0], (20000, 1))), 1, generator=gen).numpy()[:, 0]
    np.testing.assert_allclose(np.bincount(first, minlength=6) / first.size, probs[0] / probs[0].sum(), atol=0.02)
    assert tg.multinomial(tg.tensor([0.2, 0.8]), 3, True).shape == (3,)


def test_multinomial_errors():
    with pytest.raises(RuntimeError, match="multinomial"):
        tg.multinomial(tg.tensor([0.5, 0.5]), 3)
    with pytest.raises(RuntimeError, match="multinomial"):
        tg.multinomial(tg.tensor([0.5, 0.0, 0.0]), 2)
    with pytest.raises(RuntimeError, match="multinomial"):
        tg.multinomial(tg.tensor([0.5, -0.1]), 1)
    with pytest.raises(RuntimeError, match="multinomial"):
        tg.multinomial(tg.ones(2, 2, 2), 1)
    with pytest.raises(RuntimeError, match="multinomial"):
        tg.multinomial(tg.zeros(3), 1, True)
