"""In-place forms (x.sin_(), x.clamp_min_(0), ...) and the random fills (uniform_, normal_,
bernoulli_, exponential_, random_) against PyTorch: values, the error on a leaf that requires
grad, gradients through a non-leaf modified in place, and dtype casting rules."""
import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")

# (method, arguments, domain): every in-place form generated from its out-of-place method
CASES = [("abs_", (), "any"), ("neg_", (), "any"), ("exp_", (), "any"), ("log_", (), "pos"), ("sqrt_", (), "pos"),
         ("sigmoid_", (), "any"), ("tanh_", (), "any"), ("sin_", (), "any"), ("cos_", (), "any"),
         ("atan_", (), "any"), ("asin_", (), "unit"), ("sinh_", (), "any"), ("floor_", (), "any"),
         ("ceil_", (), "any"), ("round_", (), "any"), ("trunc_", (), "any"), ("frac_", (), "any"),
         ("rsqrt_", (), "pos"), ("reciprocal_", (), "pos"), ("erf_", (), "any"), ("erfinv_", (), "unit"),
         ("expm1_", (), "any"), ("log2_", (), "pos"), ("square_", (), "any"), ("sign_", (), "any"),
         ("clamp_min_", (0.1,), "any"), ("clamp_max_", (-0.2,), "any"), ("clamp_", (-0.5, 0.5), "any"),
         ("pow_", (2.0,), "any"), ("sub_", (0.25,), "any"), ("div_", (1.5,), "any"), ("fmod_", (0.7,), "any"),
         ("remainder_", (0.7,), "any"), ("nan_to_num_", (), "any"), ("relu_", (), "any")]


def _data(domain, rng, shape=(3, 5)):
    if domain == "pos":
        return rng.uniform(0.2, 3.0, shape)
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("name,args,domain", CASES, ids=[c[0] for c in CASES])
def test_inplace_on_non_leaf_matches_pytorch(name, args, domain, seed):
    rng = np.random.default_rng(seed)
    a = _data(domain, rng)
    x, tx = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = x * 1.5, tx * 1.5  # non-leaves: in-place is allowed and the gradient flows through
    out = getattr(y, name)(*args)
    getattr(ty, name)(*args)
    assert out is y
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    g = rng.standard_normal(a.shape)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,args,domain", CASES[:12], ids=[c[0] for c in CASES[:12]])
def test_inplace_on_leaf_requiring_grad_fails_as_pytorch(name, args, domain, seed):
    a = _data(domain, np.random.default_rng(seed))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(torch.tensor(a, requires_grad=True), name)(*args)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(tg.tensor(a, requires_grad=True), name)(*args)
    with tg.no_grad():  # outside autograd it is allowed, as in PyTorch
        x = tg.tensor(a, requires_grad=True)
        getattr(x, name)(*args)
    np.testing.assert_allclose(x.detach().numpy(), getattr(torch.tensor(a), name)(*args).numpy(), rtol=1e-12)


def test_inplace_on_plain_and_strided_tensors(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 6))
    base, tbase = tg.tensor(a.copy()), torch.tensor(a.copy())
    view, tview = base[:, ::2], tbase[:, ::2]  # a non-contiguous view: writes reach the base
    view.sin_()
    tview.sin_()
    np.testing.assert_allclose(base.numpy(), tbase.numpy(), rtol=1e-12)
    m = rng.random((4, 6)) > 0.5
    base.masked_fill_(tg.tensor(m), 2.0)
    tbase.masked_fill_(torch.tensor(m), 2.0)
    np.testing.assert_array_equal(base.numpy(), tbase.numpy())
    i = tg.tensor(rng.integers(-5, 5, (5,)))
    i.abs_()
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.sin_()
    with pytest.raises(RuntimeError, match="can't be cast"):
        torch.tensor([1, 2]).sin_()


def test_logical_inplace(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random(8) > 0.5, rng.random(8) > 0.5
    x, tx = tg.tensor(p), torch.tensor(p)
    x.logical_xor_(tg.tensor(q))
    tx.logical_xor_(torch.tensor(q))
    x.logical_not_()
    tx.logical_not_()
    np.testing.assert_array_equal(x.numpy(), tx.numpy())


@pytest.mark.parametrize("fill,args,check", [
    ("uniform_", (-2.0, 3.0), lambda v: (v >= -2).all() and (v < 3).all() and v.std() > 0.5),
    ("normal_", (4.0, 0.5), lambda v: abs(v.mean() - 4) < 0.1 and abs(v.std() - 0.5) < 0.05),
    ("bernoulli_", (0.3,), lambda v: set(np.unique(v)) <= {0.0, 1.0} and abs(v.mean() - 0.3) < 0.05),
    ("exponential_", (2.0,), lambda v: (v >= 0).all() and abs(v.mean() - 0.5) < 0.05),
    ("random_", (3, 9), lambda v: set(np.unique(v)) == set(range(3, 9))),
    ("random_", (5,), lambda v: set(np.unique(v)) == set(range(5)))])
def test_random_fills(fill, args, check, seed):
    tg.manual_seed(seed)
    x = tg.empty(2000, dtype=tg.float64)
    assert getattr(x, fill)(*args) is x
    assert check(x.numpy())
    tg.manual_seed(seed)
    again = getattr(tg.empty(2000, dtype=tg.float64), fill)(*args)
    np.testing.assert_array_equal(again.numpy(), x.numpy())
    other = getattr(tg.empty(2000, dtype=tg.float64), fill)(*args, generator=tg.Generator().manual_seed(seed + 1))
    assert not np.array_equal(other.numpy(), x.numpy())
    assert getattr(tg.empty(3, dtype=tg.float32), fill)(*args).dtype == tg.float32
    with pytest.raises(RuntimeError, match="leaf Variable"):
        getattr(tg.empty(3, requires_grad=True), fill)(*args)


def test_random_fill_argument_errors():
    x = tg.empty(4)
    with pytest.raises(RuntimeError, match="std"):
        x.normal_(0, -1)
    with pytest.raises(RuntimeError, match="lambd"):
        x.exponential_(0)
    with pytest.raises(RuntimeError, match="from"):
        x.random_(5, 2)
    with pytest.raises(RuntimeError, match="bernoulli_"):
        x.bernoulli_(1.5)
    ints = tg.empty(50, dtype=tg.int64).random_()
    assert ints.dtype == tg.int64 and int(ints.numpy().min()) >= 0
