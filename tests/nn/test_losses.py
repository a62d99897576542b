"""Loss modules and the tensor-op losses against their formulas, for every reduction."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
from tilegrad.autograd import gradcheck
from tilegrad.nn import losses_functional as L


REDUCTIONS = ["none", "mean", "sum"]



def reduce(x, reduction):
    return {"none": x, "mean": x.mean(), "sum": x.sum()}[reduction]


def np_of(t):
    return t.detach().numpy()


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def data(seed, shape=(4, 5)):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal(shape), rng.standard_normal(shape)


def check(module, inputs, expected, reduction):
    out = module(*[tg.tensor(a) for a in inputs])
    np.testing.assert_allclose(np_of(out), reduce(expected, reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(seed, reduction):
    _, x, y = data(seed)
    d = x - y
    check(nn.MSELoss(reduction=reduction), (x, y), d ** 2, reduction)
    check(nn.L1Loss(reduction=reduction), (x, y), np.abs(d), reduction)
    for beta in (0.5, 1.0):
        smooth = np.where(np.abs(d) < beta, 0.5 * d ** 2 / beta, np.abs(d) - 0.5 * beta)
        check(nn.SmoothL1Loss(reduction=reduction, beta=beta), (x, y), smooth, reduction)
    check(nn.SmoothL1Loss(reduction=reduction, beta=0.0), (x, y), np.abs(d), reduction)
    huber = np.where(np.abs(d) < 0.7, 0.5 * d ** 2, 0.7 * (np.abs(d) - 0.35))
    check(nn.HuberLoss(reduction=reduction, delta=0.7), (x, y), huber, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(seed, reduction):
    rng, logits, _ = data(seed)
    p = 1 / (1 + np.exp(-logits))
    y = rng.random(logits.shape)
    w = rng.random(logits.shape[-1])
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    check(nn.BCELoss(reduction=reduction), (p, y), bce, reduction)
    check(nn.BCELoss(weight=tg.tensor(w), reduction=reduction), (p, y), bce * w, reduction)
    check(nn.BCEWithLogitsLoss(reduction=reduction), (logits, y), bce, reduction)
    pos = rng.uniform(0.5, 3, logits.shape[-1])
    with_pos = pos * y * softplus(-logits) + (1 - y) * softplus(logits)
    check(nn.BCEWithLogitsLoss(weight=tg.tensor(w), pos_weight=tg.tensor(pos), reduction=reduction), (logits, y),
          with_pos * w, reduction)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # NumPy's log(0) warns; the loss is finite
def test_bce_edge_cases():
    # log is clamped at -100: probabilities of exactly 0 and 1 give finite losses, as in PyTorch
    out = L.binary_cross_entropy(tg.tensor([0.0, 1.0]), tg.tensor([1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(np_of(out), [100.0, 100.0])
    big = L.binary_cross_entropy_with_logits(tg.tensor([1000.0, -1000.0]), tg.tensor([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(np_of(big), [1000.0, 1000.0])  # no overflow
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        L.binary_cross_entropy(tg.tensor([1.5]), tg.tensor([1.0]))
    with pytest.raises(ValueError, match="same size"):
        L.binary_cross_entropy(tg.tensor([0.5, 0.5]), tg.tensor([1.0]))
    with pytest.raises(ValueError, match="must be the same as input size"):
        L.binary_cross_entropy_with_logits(tg.tensor([0.5, 0.5]), tg.tensor([1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
def test_kl_div(seed, reduction):
    rng, a, b = data(seed)
    log_q = a - np.log(np.exp(a).sum(-1, keepdims=True))
    p = np.exp(b) / np.exp(b).sum(-1, keepdims=True)
    p[0, 0] = 0.0  # 0 log 0 = 0
    pointwise = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0) - p * log_q
    expected = pointwise.sum() / a.shape[0] if reduction == "batchmean" else reduce(pointwise, reduction)
    out = nn.KLDivLoss(reduction=reduction)(tg.tensor(log_q), tg.tensor(p))
    np.testing.assert_allclose(np_of(out), expected, rtol=1e-9, atol=1e-12)
    log_p = np.log(np.exp(b) / np.exp(b).sum(-1, keepdims=True))
    pointwise = np.exp(log_p) * (log_p - log_q)
    expected = pointwise.sum() / a.shape[0] if reduction == "batchmean" else reduce(pointwise, reduction)
    out = nn.KLDivLoss(reduction=reduction, log_target=True)(tg.tensor(log_q), tg.tensor(log_p))
    np.testing.assert_allclose(np_of(out), expected, rtol=1e-9, atol=1e-12)


def test_invalid_reduction():
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        L.mse_loss(tg.randn(2), tg.randn(2), reduction="avg")


def test_mismatched_shapes_warn_and_broadcast():
    with pytest.warns(UserWarning, match="different to the input size"):
        out = L.mse_loss(tg.zeros(3, 1), tg.ones(3))
    assert out.item() == 1.0


@pytest.mark.parametrize("fn, kw", [(L.mse_loss, {}), (L.l1_loss, {}), (L.smooth_l1_loss, {"beta": 0.5}),
                                    (L.huber_loss, {"delta": 0.5}), (L.binary_cross_entropy_with_logits, {}),
                                    (L.kl_div, {"reduction": "batchmean"})])
def test_loss_gradcheck(fn, kw):
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = tg.tensor(rng.random((3, 4)), requires_grad=True)
    assert gradcheck(lambda x, y: fn(x, y, **kw), (x, y))


def test_bce_gradcheck():
    rng = np.random.default_rng(1)
    p = tg.tensor(rng.uniform(0.1, 0.9, (3, 2)), requires_grad=True)
    y = tg.tensor(rng.random((3, 2)))
    assert gradcheck(lambda p: L.binary_cross_entropy(p, y), (p,))


# ---- cross entropy and NLL (kernel-backed, from nn.functional) ------------------------------
def ce_ref(logits, target, weight=None, ignore_index=-100, reduction="mean", smoothing=0.0):
    """PyTorch's documented formula for class-index targets."""
    n, c = logits.shape
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    w = np.ones(c) if weight is None else weight
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    nll = -logp[np.arange(n), safe] * w[safe] * keep
    smooth = -(logp * w).sum(-1) * keep / c
    loss = (1 - smoothing) * nll + smoothing * smooth
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (w[safe] * keep).sum()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_indices(seed, reduction):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((6, 4))
    target = rng.integers(0, 4, 6)
    target[2] = -1
    weight = rng.uniform(0.5, 2, 4)
    for kw in ({}, {"weight": weight}, {"ignore_index": -1}, {"label_smoothing": 0.2, "ignore_index": -1}):
        module_kw = {k: (tg.tensor(v) if k == "weight" else v) for k, v in kw.items()}
        t = target if "ignore_index" in kw else np.abs(target)
        out = nn.CrossEntropyLoss(reduction=reduction, **module_kw)(tg.tensor(logits), tg.tensor(t))
        ref = ce_ref(logits, t, kw.get("weight"), kw.get("ignore_index", -100), reduction, kw.get("label_smoothing", 0.0))
        np.testing.assert_allclose(np_of(out), ref, rtol=1e-9, atol=1e-12, err_msg=str(kw))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities(seed, reduction):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((5, 3))
    probs = rng.random((5, 3))
    probs /= probs.sum(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = probs * 0.9 + 0.1 / 3  # label_smoothing=0.1 mixes in the uniform distribution
    loss = -(target * logp).sum(-1)
    out = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=0.1)(tg.tensor(logits), tg.tensor(probs))
    np.testing.assert_allclose(np_of(out), reduce(loss, reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(seed, reduction):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((6, 4))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = rng.integers(0, 4, 6)
    weight = rng.uniform(0.5, 2, 4)
    out = nn.NLLLoss(weight=tg.tensor(weight), reduction=reduction)(tg.tensor(logp), tg.tensor(target))
    np.testing.assert_allclose(np_of(out), ce_ref(logits, target, weight, reduction=reduction), rtol=1e-9, atol=1e-12)


def test_loss_modules_keep_weights_as_buffers():
    m = nn.CrossEntropyLoss(weight=tg.ones(3))
    assert list(m.state_dict()) == ["weight"]
    assert m.double().weight.dtype == tg.float64
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction=sum)"
    assert list(nn.BCEWithLogitsLoss(pos_weight=tg.ones(2)).state_dict()) == ["pos_weight"]
