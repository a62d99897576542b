"""Adamax, NAdam and RAdam against torch.optim, step for step on two parameter groups (float32
and float64), with the same state under the same names, and state dicts that resume."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim

torch = pytest.importorskip("torch")
SHAPES = [(3, 4), (7,), (1,)]
STEPS = 25  # RAdam switches to its rectified update after a few steps

CASES = [
    ("Adamax", {}), ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, maximize=True)),
    ("NAdam", {}), ("NAdam", dict(lr=0.01, weight_decay=0.05, momentum_decay=0.01)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", {}), ("RAdam", dict(lr=0.02, betas=(0.7, 0.9), weight_decay=0.05)),
    ("RAdam", dict(weight_decay=0.1, decoupled_weight_decay=True, eps=1e-3)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _problem(seed, dtype):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def _groups(params, make):
    """Two groups: the first two parameters at the default lr, the last at a tenth of it."""
    return [{"params": [make(p) for p in params[:2]]}, {"params": [make(params[2])], "lr": 1e-4}]


def _run(opt, grads, to_tensor):
    params = [p for g in opt.param_groups for p in g["params"]]
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = to_tensor(g)
        opt.step()
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_matches_torch(name, kwargs, dtype, seed):
    params, grads = _problem(seed, dtype)
    ours = getattr(optim, name)(_groups(params, lambda p: tg.tensor(p, requires_grad=True)), **kwargs)
    theirs = getattr(torch.optim, name)(_groups(params, lambda p: torch.tensor(p, requires_grad=True)), **kwargs)
    got, want = _run(ours, grads, tg.tensor), _run(theirs, grads, torch.tensor)
    # NAdam: PyTorch keeps mu_product as a float32 scalar even for float64 parameters
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 or name == "NAdam" else dict(rtol=1e-11, atol=1e-13)
    for mine, ref in zip(got, want):
        assert mine.dtype == tg.float32 if dtype == np.float32 else tg.float64
        np.testing.assert_allclose(mine.detach().numpy(), ref.detach().numpy(), **tol)
    sd, torch_sd = ours.state_dict(), theirs.state_dict()
    assert sorted(sd["state"]) == sorted(torch_sd["state"])
    for idx, st in torch_sd["state"].items():
        assert sorted(sd["state"][idx]) == sorted(st)
        for key, value in st.items():
            mine = sd["state"][idx][key]
            mine = mine.numpy() if isinstance(mine, tg.Tensor) else mine
            np.testing.assert_allclose(mine, value.numpy(), err_msg=key, **tol)
    for mine, ref in zip(sd["param_groups"], torch_sd["param_groups"]):  # our options, as torch has them
        assert {k: v for k, v in mine.items()} == {k: ref[k] for k in mine}


@pytest.mark.parametrize("name", ["Adamax", "NAdam", "RAdam"])
def test_state_dict_resumes(name, seed):
    params, grads = _problem(seed, np.float64)
    first = getattr(optim, name)(_groups(params, lambda p: tg.tensor(p, requires_grad=True)), lr=0.01)
    _run(first, grads[:10], tg.tensor)
    saved = first.state_dict()
    values = [p.detach().numpy().copy() for g in first.param_groups for p in g["params"]]
    second = getattr(optim, name)(_groups(values, lambda p: tg.tensor(p, requires_grad=True)), lr=0.5)
    second.load_state_dict(saved)
    assert second.param_groups[0]["lr"] == 0.01
    a, b = _run(first, grads[10:], tg.tensor), _run(second, grads[10:], tg.tensor)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())


@pytest.mark.parametrize("name", ["Adamax", "NAdam", "RAdam"])
def test_bad_hyper_parameters_raise(name):
    p = [tg.randn(2, requires_grad=True)]
    with pytest.raises(ValueError, match="learning rate"):
        getattr(optim, name)(p, lr=-1.0)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        getattr(optim, name)(p, betas=(0.9, 1.0))
