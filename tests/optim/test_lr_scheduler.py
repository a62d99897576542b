"""Learning-rate schedules against their closed forms, and against torch.optim.lr_scheduler where
torch is installed."""
import math

import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim
from tilegrad.optim import lr_scheduler as S

BASE = 0.5


def _opt(kind="sgd", lrs=(BASE,)):
    groups = [{"params": [tg.randn(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "adam":
        return optim.Adam(groups, lr=lrs[0])
    return optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _lrs(sched, n):
    """The learning rate at epochs 0..n-1 (construction sets epoch 0)."""
    out = [sched.get_last_lr()[0]]
    for _ in range(n - 1):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


CLOSED_FORMS = [
    (lambda o: S.StepLR(o, step_size=3, gamma=0.5), lambda e: BASE * 0.5 ** (e // 3)),
    (lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.1),
     lambda e: BASE * 0.1 ** sum(m <= e for m in [2, 5, 5, 9])),
    (lambda o: S.ExponentialLR(o, gamma=0.9), lambda e: BASE * 0.9 ** e),
    (lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
     lambda e: 0.01 + (BASE - 0.01) * (1 + math.cos(math.pi * e / 10)) / 2),
    (lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=6),
     lambda e: BASE * (0.25 + 0.75 * min(e, 6) / 6)),
    (lambda o: S.LinearLR(o), lambda e: BASE * (1 / 3 + (2 / 3) * min(e, 5) / 5)),
]


@pytest.mark.parametrize("make,closed", CLOSED_FORMS, ids=[f"case{i}" for i in range(len(CLOSED_FORMS))])
def test_closed_forms(make, closed):
    opt = _opt()
    got = _lrs(make(opt), 25)
    np.testing.assert_allclose(got, [closed(e) for e in range(25)], rtol=1e-9, atol=1e-12)
    assert opt.param_groups[0]["lr"] == got[-1]


def _one_cycle_closed(step, total, max_lr, pct=0.3, div=25.0, final_div=1e4):
    """OneCycleLR (two phases, cosine) as its documented closed form."""
    initial, minimum = max_lr / div, max_lr / div / final_div
    warm_end = pct * total - 1
    if step <= warm_end:
        frac, start, end = step / warm_end, initial, max_lr
    else:
        frac, start, end = (step - warm_end) / (total - 1 - warm_end), max_lr, minimum
    return end + (start - end) / 2 * (1 + math.cos(math.pi * frac))


def test_one_cycle_defaults_closed_form_and_momentum():
    opt = _opt()
    sched = S.OneCycleLR(opt, max_lr=2.0, total_steps=50)
    got = _lrs(sched, 50)
    np.testing.assert_allclose(got, [_one_cycle_closed(s, 50, 2.0) for s in range(50)], rtol=1e-9)
    assert math.isclose(got[0], 2.0 / 25) and math.isclose(max(got), 2.0) and math.isclose(got[-1], 2.0 / 25 / 1e4)
    assert math.isclose(opt.param_groups[0]["momentum"], 0.95)  # back to max_momentum at the end
    sched.step()  # PyTorch allows one step past the end (epoch == total_steps)
    with pytest.raises(ValueError, match="Tried to step 51 times"):
        sched.step()


def test_one_cycle_cycles_adam_beta1():
    opt = _opt("adam")
    sched = S.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=10, three_phase=True, anneal_strategy="linear")
    betas = [opt.param_groups[0]["betas"]]
    for _ in range(19):
        sched.step()
        betas.append(opt.param_groups[0]["betas"])
    assert all(b[1] == 0.999 for b in betas)
    assert math.isclose(min(b[0] for b in betas), 0.85) and math.isclose(betas[0][0], 0.95)
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(optim.Adagrad([tg.randn(2, requires_grad=True)]), max_lr=0.1, total_steps=10)


def test_per_group_base_lrs():
    opt = _opt(lrs=(1.0, 0.1))
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert sched.get_last_lr() == [0.5, 0.05]
    assert sched.base_lrs == [1.0, 0.1]


def test_state_dict_resumes():
    opt = _opt()
    sched = S.CosineAnnealingLR(opt, T_max=8)
    _lrs(sched, 4)
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    rest = _lrs(sched, 5)[1:]
    opt2 = _opt()
    opt2.param_groups[0]["initial_lr"] = BASE
    opt2.param_groups[0]["lr"] = state["_last_lr"][0]
    sched2 = S.CosineAnnealingLR(opt2, T_max=8, last_epoch=2)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = state["_last_lr"][0]
    assert _lrs(sched2, 5)[1:] == rest


def test_resume_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(), step_size=2, last_epoch=4)


TORCH_CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.9, total_iters=8)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.3], total_steps=30)),
    ("OneCycleLR", dict(max_lr=0.2, total_steps=30, three_phase=True, anneal_strategy="linear", pct_start=0.4)),
]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES, ids=[c[0] + str(i) for i, c in enumerate(TORCH_CASES)])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_matches_torch(name, kwargs, kind):
    torch = pytest.importorskip("torch")
    opt = _opt(kind, lrs=(BASE, 0.05))
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in (BASE, 0.05)]
    topt = torch.optim.Adam(groups, lr=BASE) if kind == "adam" else torch.optim.SGD(groups, lr=BASE, momentum=0.9)
    sched = getattr(S, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for _ in range(29):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15)
        for mine, theirs in zip(opt.param_groups, topt.param_groups):
            for key in ("momentum", "betas"):
                if key in theirs:
                    assert mine[key] == pytest.approx(theirs[key], rel=1e-12)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
