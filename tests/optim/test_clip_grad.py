"""clip_grad_norm_ / clip_grad_value_ against their formulas, and against torch where installed."""
import math

import numpy as np
import pytest

import tilegrad as tg
from tilegrad.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm

SHAPES = [(4, 3), (5,), (), (0, 2)]


def _params(rng, scale=1.0, dtype=np.float32):
    ps = []
    for s in SHAPES:
        p = tg.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
        p.grad = tg.tensor((scale * rng.standard_normal(s)).astype(dtype))
        ps.append(p)
    return ps


def _flat(ps):
    return np.concatenate([p.grad.numpy().ravel().astype(np.float64) for p in ps])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_formula(norm_type, max_norm, seed):
    ps = _params(np.random.default_rng(seed))
    flat = _flat(ps)
    if norm_type == math.inf:
        want = np.abs(flat).max()
    elif norm_type == 0:
        want = float(np.count_nonzero(flat))
    else:
        want = (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    total = clip_grad_norm_(ps, max_norm, norm_type)
    assert total.shape == () and total.dtype == tg.float32
    np.testing.assert_allclose(total.item(), want, rtol=1e-5)
    coef = min(max_norm / (want + 1e-6), 1.0)
    np.testing.assert_allclose(_flat(ps), flat * coef, rtol=1e-5, atol=1e-7)
    after = want if norm_type == 0 else want * coef  # scaling keeps the count of nonzeros
    np.testing.assert_allclose(get_total_norm([p.grad for p in ps], norm_type).item(), after, rtol=1e-4)


def test_clip_grad_norm_edge_cases():
    p = tg.randn(3, requires_grad=True)
    assert clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients at all
    p.grad = tg.tensor([3.0, 4.0, 0.0])
    assert clip_grad_norm_(p, 1.0).item() == 5.0  # a single tensor is accepted too
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
    p.grad = tg.tensor([float("inf"), 1.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.numpy(), [np.inf, 1.0, 0.0])  # untouched when it raises
    half = tg.tensor(np.full(4, 300.0, np.float16), requires_grad=True)
    half.grad = tg.tensor(np.full(4, 300.0, np.float16))  # the sum of squares overflows float16
    assert clip_grad_norm_([half], 1.0).item() == pytest.approx(600.0)


def test_clip_grad_value(seed):
    ps = _params(np.random.default_rng(seed), scale=3.0)
    flat = _flat(ps)
    clip_grad_value_(ps, 0.7)
    np.testing.assert_allclose(_flat(ps), np.clip(flat, -0.7, 0.7), rtol=1e-6)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_matches_torch(norm_type, seed):
    torch = pytest.importorskip("torch")
    ps = _params(np.random.default_rng(seed), scale=2.0)[:-1]  # torch refuses the inf-norm of an empty tensor
    tps = [torch.tensor(p.detach().numpy(), requires_grad=True) for p in ps]
    for tp, p in zip(tps, ps):
        tp.grad = torch.tensor(p.grad.numpy())
    total = clip_grad_norm_(ps, 1.5, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, 1.5, norm_type)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6, atol=1e-7)
