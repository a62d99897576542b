"""Elementwise math (trigonometric, rounding, erf and kin, atan2/hypot/fmod/remainder/lerp,
nan_to_num, the is*/logical/bitwise predicates) against PyTorch CPU: values, dtypes and
gradients on random data in each function's domain, strided inputs, NaN and inf."""
import numpy as np
import pytest

import tilegrad as tg

torch = pytest.importorskip("torch")


def _domain(name, rng, shape):
    if name in ("asin", "acos", "atanh", "erfinv"):
        return rng.uniform(-0.95, 0.95, shape)
    if name == "acosh":
        return rng.uniform(1.05, 5.0, shape)
    if name in ("log2", "log10", "rsqrt"):
        return rng.uniform(0.1, 5.0, shape)
    if name == "tan":
        return rng.uniform(-1.4, 1.4, shape)
    if name == "reciprocal":
        return rng.uniform(0.2, 2.0, shape) * rng.choice([-1, 1], shape)
    return rng.standard_normal(shape) * 2


UNARY = ("sin cos tan asin acos atan sinh cosh asinh acosh atanh floor ceil trunc frac round rsqrt reciprocal "
         "erf erfc erfinv expm1 log2 log10 exp2 square").split()


def _both(array, strided=False):
    if strided:
        array = np.repeat(array, 2, axis=-1)[..., ::2]
    return tg.tensor(array, requires_grad=True), torch.tensor(np.array(array), requires_grad=True)


def _check_grads(pairs, y, ty, rng):
    g = rng.standard_normal(tuple(ty.shape))
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape,strided", [((3, 7), False), ((2, 3, 5), True), ((), False), ((0, 4), False)])
def test_unary_matches_pytorch(name, shape, strided, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(_domain(name, rng, shape), strided)
    y, ty = getattr(x, name)(), getattr(tx, name)()
    assert y.dtype == tg.float64 and y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(getattr(tg, name)(x).detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    _check_grads([(x, tx)], y, ty, rng)


@pytest.mark.parametrize("name", ["sin", "exp2", "erf", "rsqrt", "floor", "round", "square", "reciprocal"])
def test_unary_dtypes_follow_pytorch(name, seed):
    rng = np.random.default_rng(seed)
    ints = rng.integers(1, 5, size=(4,))
    y, ty = getattr(tg.tensor(ints), name)(), getattr(torch.tensor(ints), name)()
    assert str(y.dtype).split(".")[-1] == str(ty.dtype).split(".")[-1]
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)
    f32 = rng.uniform(0.5, 2, size=(5,)).astype(np.float32)
    assert getattr(tg.tensor(f32), name)().dtype == tg.float32


def test_erf_family_edge_values():
    a = np.array([-1.0, 1.0, 0.0, 1.5, -2.0, np.nan, 0.999999, -0.3])
    np.testing.assert_allclose(tg.tensor(a).erfinv().numpy(), torch.tensor(a).erfinv().numpy(), rtol=1e-12)
    b = np.array([-np.inf, np.inf, np.nan, 0.0, 6.0, -6.0, 30.0])
    for name in ("erf", "erfc", "expm1", "exp2"):
        np.testing.assert_allclose(getattr(tg.tensor(b), name)().numpy(), getattr(torch.tensor(b), name)().numpy(),
                                   rtol=1e-12)


@pytest.mark.parametrize("decimals", [0, 1, 2, -1])
def test_round_decimals_and_half_to_even(decimals, seed):
    rng = np.random.default_rng(seed)
    a = np.concatenate([rng.standard_normal(20) * 50, [0.5, 1.5, 2.5, -0.5, -2.5]])
    x, tx = _both(a)
    y, ty = x.round(decimals=decimals), tx.round(decimals=decimals)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    _check_grads([(x, tx)], y, ty, rng)  # zero gradient, as PyTorch
    assert float(np.abs(x.grad.numpy()).max()) == 0.0


@pytest.mark.parametrize("name", ["atan2", "hypot", "fmod", "remainder"])
@pytest.mark.parametrize("sa,sb", [((3, 5), (3, 5)), ((2, 3, 4), (4,)), ((4, 1), (1, 6))])
def test_binary_matches_pytorch(name, sa, sb, seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal(sa) * 3)
    z, tz = _both(rng.uniform(0.3, 2.0, sb) * rng.choice([-1, 1], sb))
    y, ty = getattr(x, name)(z), getattr(tx, name)(tz)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    _check_grads([(x, tx), (z, tz)], y, ty, rng)
    # a number as the second argument (PyTorch's atan2 and hypot want a tensor there)
    scalar = 1.5 if name in ("fmod", "remainder") else torch.tensor(1.5, dtype=torch.float64)
    ys, tys = getattr(tg, name)(x, 1.5), getattr(torch, name)(tx, scalar)
    np.testing.assert_allclose(ys.detach().numpy(), tys.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_modulo_operator_and_integers(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-20, 20, size=(6,)), rng.integers(1, 6, size=(6,)) * rng.choice([-1, 1], 6)
    for name in ("fmod", "remainder"):
        y, ty = getattr(tg.tensor(a), name)(tg.tensor(b)), getattr(torch.tensor(a), name)(torch.tensor(b))
        assert y.dtype == tg.int64
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal((tg.tensor(a) % 4).numpy(), (torch.tensor(a) % 4).numpy())
    np.testing.assert_array_equal((7 % tg.tensor(b)).numpy(), (7 % torch.tensor(b)).numpy())
    f = rng.standard_normal(5)
    np.testing.assert_allclose((tg.tensor(f) % 0.7).numpy(), (torch.tensor(f) % 0.7).numpy(), rtol=1e-12)
    with pytest.raises(ZeroDivisionError, match="remainder"):
        tg.tensor(a) % 0


@pytest.mark.parametrize("tensor_weight", [False, True])
def test_lerp_matches_pytorch(tensor_weight, seed):
    rng = np.random.default_rng(seed)
    s, ts = _both(rng.standard_normal((3, 4)))
    e, te = _both(rng.standard_normal((4,)))
    if tensor_weight:
        w, tw = _both(rng.uniform(0, 1, (3, 1)))
        pairs = [(s, ts), (e, te), (w, tw)]
    else:
        w = tw = 0.3
        pairs = [(s, ts), (e, te)]
    y, ty = s.lerp(e, w), ts.lerp(te, tw)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tg.lerp(s, e, w).detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    _check_grads(pairs, y, ty, rng)
    with pytest.raises(RuntimeError, match="lerp"):
        s.lerp(e.float(), 0.5)


def test_clamp_min_max(seed):
    rng = np.random.default_rng(seed)
    x, tx = _both(rng.standard_normal((4, 5)))
    for ours, theirs in ((x.clamp_min(0.2), tx.clamp_min(0.2)), (tg.clamp_max(x, -0.1), torch.clamp_max(tx, -0.1))):
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
    y, ty = x.clamp_min(0.2) + x.clamp_max(-0.1), tx.clamp_min(0.2) + tx.clamp_max(-0.1)
    _check_grads([(x, tx)], y, ty, rng)


def _specials(rng):
    a = rng.standard_normal(12)
    a[[1, 4, 7, 9, 10]] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    return a


@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit", "logical_not"])
def test_predicates_with_nan_and_inf(name, seed):
    a = _specials(np.random.default_rng(seed))
    for dtype in (np.float64, np.float32):
        y, ty = getattr(tg.tensor(a.astype(dtype)), name)(), getattr(torch.tensor(a.astype(dtype)), name)()
        assert y.dtype == tg.bool
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
    ints = np.arange(-3, 3)
    np.testing.assert_array_equal(getattr(tg, name)(tg.tensor(ints)).numpy(), getattr(torch, name)(torch.tensor(ints)).numpy())


def test_nan_to_num_values_and_gradient(seed):
    rng = np.random.default_rng(seed)
    a = _specials(rng)
    for kwargs in ({}, {"nan": 2.0, "posinf": 9.0}, {"neginf": -5.0}):
        x, tx = _both(a)
        y, ty = x.nan_to_num(**kwargs), tx.nan_to_num(**kwargs)
        np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
        _check_grads([(x, tx)], y, ty, rng)
    f32 = tg.tensor(a.astype(np.float32)).nan_to_num()
    np.testing.assert_array_equal(f32.numpy(), torch.tensor(a.astype(np.float32)).nan_to_num().numpy())


def test_logical_and_bitwise(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random((3, 4)) > 0.5, rng.standard_normal((4,))
    q[1] = 0.0
    for name in ("logical_and", "logical_or", "logical_xor"):
        y, ty = getattr(tg.tensor(p), name)(tg.tensor(q)), getattr(torch.tensor(p), name)(torch.tensor(q))
        assert y.dtype == tg.bool
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
    i, j = rng.integers(-9, 9, (5,)), rng.integers(-9, 9, (5,))
    for op in ("__and__", "__or__", "__xor__"):
        np.testing.assert_array_equal(getattr(tg.tensor(i), op)(tg.tensor(j)).numpy(),
                                      getattr(torch.tensor(i), op)(torch.tensor(j)).numpy())
        np.testing.assert_array_equal(getattr(tg.tensor(p), op)(tg.tensor(~p)).numpy(),
                                      getattr(torch.tensor(p), op)(torch.tensor(~p)).numpy())
    np.testing.assert_array_equal((~tg.tensor(p)).numpy(), (~torch.tensor(p)).numpy())
    np.testing.assert_array_equal(tg.bitwise_not(tg.tensor(i)).numpy(), torch.bitwise_not(torch.tensor(i)).numpy())
    with pytest.raises(TypeError, match="bitwise_not|invert"):
        tg.tensor(q).bitwise_not()


def test_heaviside(seed):
    a = np.random.default_rng(seed).standard_normal(8)
    a[2] = 0.0
    values = np.full(8, 0.25)
    np.testing.assert_array_equal(tg.tensor(a).heaviside(tg.tensor(values)).numpy(),
                                  torch.tensor(a).heaviside(torch.tensor(values)).numpy())
