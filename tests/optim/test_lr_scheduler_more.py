"""LambdaLR, MultiplicativeLR, ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts,
SequentialLR, ChainedScheduler and ReduceLROnPlateau against torch.optim.lr_scheduler: the
learning rates of two parameter groups over many steps, and state dicts that resume."""
import math

import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim
from tilegrad.optim import lr_scheduler as S

torch = pytest.importorskip("torch")
TS = torch.optim.lr_scheduler
LRS = (0.5, 0.03)


def _pair():
    """An SGD on two groups in tilegrad and in torch."""
    ours = optim.SGD([{"params": [tg.randn(2, requires_grad=True)], "lr": lr} for lr in LRS], lr=LRS[0], momentum=0.9)
    theirs = torch.optim.SGD([{"params": [torch.randn(2, requires_grad=True)], "lr": lr} for lr in LRS],
                             lr=LRS[0], momentum=0.9)
    return ours, theirs


def _steps(sched, n, metrics=None):
    out = [list(sched.get_last_lr())]
    for i in range(n):
        sched.optimizer.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        out.append(list(sched.get_last_lr()))
    return out


def _lambda(e):
    return 0.95 ** e + 0.1 * (e % 3)


SCHEDULERS = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, _lambda),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [_lambda, lambda e: 1 / (1 + e)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9 if e % 4 else 1.05),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.4, total_iters=7),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=13, power=2.5),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, eta_min=0.001),
    "CosineAnnealingWarmRestarts-Tmult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                    m.ExponentialLR(o, gamma=0.9),
                                                    m.CosineAnnealingLR(o, T_max=7)], milestones=[5, 12]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=4),
                                                         m.ExponentialLR(o, gamma=0.93)]),
    "ChainedScheduler-nested": lambda m, o: m.ChainedScheduler([
        m.SequentialLR(o, [m.ConstantLR(o, factor=0.2, total_iters=3), m.StepLR(o, 4, 0.5)], milestones=[6]),
        m.MultiplicativeLR(o, lambda e: 0.99)]),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_sequence_matches_torch(name):
    ours, theirs = _pair()
    make = SCHEDULERS[name]
    a, b = _steps(make(S, ours), 40), _steps(make(TS, theirs), 40)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)
    assert [g["lr"] for g in ours.param_groups] == pytest.approx([g["lr"] for g in theirs.param_groups], rel=1e-13)


def test_warm_restarts_with_fractional_epochs_matches_torch():
    ours, theirs = _pair()
    a, b = S.CosineAnnealingWarmRestarts(ours, T_0=5, T_mult=2), TS.CosineAnnealingWarmRestarts(theirs, T_0=5, T_mult=2)
    for epoch in np.arange(0, 40, 0.37):
        a.step(float(epoch))
        b.step(float(epoch))
        assert a.get_last_lr() == pytest.approx(b.get_last_lr(), rel=1e-12)


METRICS = {
    "min-rel": dict(mode="min", patience=2),
    "max-abs": dict(mode="max", threshold=0.05, threshold_mode="abs", patience=1, factor=0.5),
    "cooldown-min_lr": dict(patience=0, cooldown=2, factor=0.3, min_lr=[0.01, 0.005]),
    "eps": dict(patience=1, factor=0.5, min_lr=0.02, eps=1e-3),
}


@pytest.mark.parametrize("kind", list(METRICS))
def test_reduce_on_plateau_matches_torch(kind, seed):
    rng = np.random.default_rng(seed)
    # a noisy, mostly flat curve with plateaus, so reductions, cooldowns and recoveries all happen
    metrics = list(np.cumsum(rng.choice([0.0, 0.0, -0.1, 0.02], size=60)) + rng.uniform(0, 0.01, size=60))
    ours, theirs = _pair()
    a = _steps(S.ReduceLROnPlateau(ours, **METRICS[kind]), 60, metrics)
    b = _steps(TS.ReduceLROnPlateau(theirs, **METRICS[kind]), 60, metrics)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
    assert a[-1] != a[0], "the metric sequence never triggered a reduction"


def test_reduce_on_plateau_state_dict_resumes_and_matches_torch_keys():
    ours, theirs = _pair()
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8]
    a, b = S.ReduceLROnPlateau(ours, patience=1, cooldown=1), TS.ReduceLROnPlateau(theirs, patience=1, cooldown=1)
    for m in metrics[:5]:
        a.step(m)
        b.step(m)
    state = a.state_dict()
    assert set(state) == set(b.state_dict())
    resumed = S.ReduceLROnPlateau(ours, mode="max")
    resumed.load_state_dict(state)
    assert resumed.mode == "min" and resumed.is_better(0.1, 0.2)
    for m in metrics[5:]:
        resumed.step(m)
        b.step(m)
    assert resumed.get_last_lr() == pytest.approx(b.get_last_lr(), rel=1e-14)
    assert resumed.num_bad_epochs == b.num_bad_epochs and resumed.cooldown_counter == b.cooldown_counter


@pytest.mark.parametrize("name", ["LambdaLR", "PolynomialLR", "CosineAnnealingWarmRestarts-Tmult", "SequentialLR",
                                  "ChainedScheduler"])
def test_state_dict_resumes(name):
    """Run 9 steps, save; a fresh scheduler loading that state continues exactly as the first."""
    ours, _ = _pair()
    first = SCHEDULERS[name](S, ours)
    _steps(first, 9)
    state = first.state_dict()
    assert "optimizer" not in state
    expected = _steps(first, 10)
    ours2, _ = _pair()
    second = SCHEDULERS[name](S, ours2)
    second.load_state_dict(state)
    for group, lr in zip(ours2.param_groups, expected[0]):
        group["lr"] = lr
    np.testing.assert_allclose(_steps(second, 10), expected, rtol=1e-14)


def test_lambda_state_dict_saves_callable_objects_only():
    class Decay:
        def __init__(self):
            self.rate = 0.5

        def __call__(self, e):
            return self.rate ** e

    ours, theirs = _pair()
    decay = Decay()
    a, b = S.LambdaLR(ours, [decay, lambda e: 1.0]), TS.LambdaLR(theirs, [Decay(), lambda e: 1.0])
    assert a.state_dict()["lr_lambdas"] == b.state_dict()["lr_lambdas"] == [{"rate": 0.5}, None]
    decay.rate = 0.1
    a.load_state_dict(b.state_dict())
    assert decay.rate == 0.5


def test_bad_arguments_raise():
    ours, _ = _pair()
    with pytest.raises(ValueError, match="T_0"):
        S.CosineAnnealingWarmRestarts(ours, T_0=0)
    with pytest.raises(ValueError, match="Factor"):
        S.ReduceLROnPlateau(ours, factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(ours, mode="up")
    with pytest.raises(ValueError, match="lr_lambdas"):
        S.LambdaLR(ours, [lambda e: 1.0])
    with pytest.raises(ValueError, match="milestone"):
        S.SequentialLR(ours, [S.ConstantLR(ours), S.ConstantLR(ours)], milestones=[])
    other, _ = _pair()
    with pytest.raises(ValueError, match="same optimizer"):
        S.ChainedScheduler([S.ConstantLR(ours), S.ConstantLR(other)])
    assert math.isfinite(S.ConstantLR(ours).get_last_lr()[0])
