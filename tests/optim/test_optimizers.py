"""Optimizers against PyTorch's documented algorithms written out in NumPy (float64), and against
torch.optim itself where torch is installed (float32 and float64, step for step)."""
import math

import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim

SHAPES = [(3, 5), (7,), ()]
STEPS = 6


# ---- the documented algorithms, in NumPy -----------------------------------------------------
def ref_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    buf = None
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def ref_adam(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
             decoupled=False):
    b1, b2 = betas
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1 ** t)
        v_hat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_rmsprop(p, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    v, a, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = v
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = v - a * a
        avg = np.sqrt(avg) + eps
        if momentum > 0:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
    return p


def ref_adagrad(p, grads, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                maximize=False):
    s = np.full_like(p, initial_accumulator_value)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    return p


CASES = [
    (optim.SGD, ref_sgd, dict(lr=0.1)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    (optim.Adam, ref_adam, dict(lr=0.01)),
    (optim.Adam, ref_adam, dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    (optim.Adam, ref_adam, dict(lr=0.02, betas=(0.3, 0.9), eps=1e-6, maximize=True)),
    (optim.AdamW, ref_adam, dict(lr=0.01)),
    (optim.AdamW, ref_adam, dict(lr=0.03, weight_decay=0.5, amsgrad=True, maximize=True)),
    (optim.RMSprop, ref_rmsprop, dict(lr=0.01)),
    (optim.RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    (optim.RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
    (optim.Adagrad, ref_adagrad, dict(lr=0.1)),
    (optim.Adagrad, ref_adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5)),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(CASES)]


def _problem(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def _run_tilegrad(cls, kwargs, params, grads):
    ps = [tg.tensor(p, requires_grad=True) for p in params]
    opt = cls(ps, **kwargs)
    for step_grads in grads:
        for p, g in zip(ps, step_grads):
            p.grad = tg.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps], opt


@pytest.mark.parametrize("cls,ref,kwargs", CASES, ids=IDS)
def test_matches_documented_algorithm(cls, ref, kwargs, seed):
    params, grads = _problem(seed)
    got, _ = _run_tilegrad(cls, kwargs, params, grads)
    extra = {"decoupled": True} if cls is optim.AdamW else {}
    if cls is optim.AdamW:
        kwargs = {"weight_decay": 1e-2, **kwargs}
    for i, p in enumerate(params):
        want = ref(p, [g[i] for g in grads], **kwargs, **extra)
        np.testing.assert_allclose(got[i], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,ref,kwargs", CASES, ids=IDS)
def test_matches_torch(cls, ref, kwargs, dtype, seed):
    torch = pytest.importorskip("torch")
    params, grads = _problem(seed, dtype)
    got, opt = _run_tilegrad(cls, kwargs, params, grads)
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    topt = getattr(torch.optim, cls.__name__)(tps, **kwargs)
    for step_grads in grads:
        for p, g in zip(tps, step_grads):
            p.grad = torch.tensor(g)
        topt.step()
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for mine, theirs in zip(got, tps):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, theirs.detach().numpy(), **tol)
    # the same state, under the same names
    ours, torch_sd = opt.state_dict(), topt.state_dict()
    assert sorted(ours["state"]) == sorted(torch_sd["state"])
    for idx, st in torch_sd["state"].items():
        assert sorted(ours["state"][idx]) == sorted(st)
        for name, value in st.items():
            if name == "step":
                assert ours["state"][idx][name] == int(value)
            elif value is not None:
                np.testing.assert_allclose(ours["state"][idx][name].numpy(), value.numpy(), **tol)
    assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in torch_sd["param_groups"]]


def test_param_groups_and_add_param_group():
    a, b, c = (tg.randn(4, requires_grad=True) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0, "momentum": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[1]["lr"] == 1.0 and opt.param_groups[1]["momentum"] == 0.5
    opt.add_param_group({"params": [c], "lr": 0.01})
    before = [p.detach().numpy().copy() for p in (a, b, c)]
    for p in (a, b, c):
        p.grad = tg.ones(4)
    opt.step()
    for p, old, lr in zip((a, b, c), before, (0.1, 1.0, 0.01)):
        np.testing.assert_allclose(p.detach().numpy(), old - lr, rtol=1e-6)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1], [2]]
    assert list(sd["state"]) == [1]  # only b's group has momentum, so only b has state


def test_zero_grad():
    p = tg.randn(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = tg.ones(3)
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad.numpy().tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing happens, no error


def test_step_with_closure_trains():
    tg.manual_seed(0)
    w = tg.randn(5, requires_grad=True)
    target = tg.randn(5)
    opt = optim.Adam([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(150):
        last = opt.step(closure).item()
    assert last < first * 1e-3


def test_updates_are_in_place_and_views_see_them():
    p = tg.randn(2, 3, requires_grad=True)
    view = p.detach()[0]
    storage = p._data
    opt = optim.SGD([p], lr=1.0)
    p.grad = tg.ones(2, 3)
    opt.step()
    assert p._data is storage
    np.testing.assert_allclose(view.numpy(), p.detach().numpy()[0])


@pytest.mark.parametrize("cls,ref,kwargs", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(cls, ref, kwargs, seed):
    params, grads = _problem(seed)
    ps = [tg.tensor(p, requires_grad=True) for p in params]
    opt = cls(ps, **kwargs)
    clones = [tg.tensor(p, requires_grad=True) for p in params]
    for step, step_grads in enumerate(grads):
        if step == 3:  # hand over to a fresh optimizer on fresh copies of the parameters
            for c, p in zip(clones, ps):
                c.data = p.detach().clone()
            opt2 = cls(clones, **kwargs)
            opt2.load_state_dict(opt.state_dict())
        for p, g in zip(ps, step_grads):
            p.grad = tg.tensor(g)
        opt.step()
        if step >= 3:
            for c, g in zip(clones, step_grads):
                c.grad = tg.tensor(g)
            opt2.step()
    for p, c in zip(ps, clones):
        np.testing.assert_array_equal(p.detach().numpy(), c.detach().numpy())
    # loaded state is a copy, not an alias
    some = next(iter(opt2.state.values()))
    for name, value in some.items():
        if isinstance(value, tg.Tensor):
            assert value._data is not next(iter(opt.state.values()))[name]._data


def test_load_state_dict_checks_sizes():
    a, b = tg.randn(3, requires_grad=True), tg.randn(3, requires_grad=True)
    opt = optim.Adam([a, b])
    with pytest.raises(ValueError, match="parameter group 0 has 1 parameters"):
        opt.load_state_dict(optim.Adam([a]).state_dict())
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt.load_state_dict(optim.Adam([{"params": [a]}, {"params": [b]}]).state_dict())


@pytest.mark.parametrize("make,message", [
    (lambda p: optim.SGD([p], lr=-1), "Invalid learning rate"),
    (lambda p: optim.SGD([p], lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam([p], betas=(1.0, 0.9)), "beta parameter at index 0"),
    (lambda p: optim.RMSprop([p], alpha=-0.1), "alpha"),
    (lambda p: optim.Adagrad([p], lr_decay=-1), "lr_decay"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD([p, p], lr=0.1), "more than once"),
    (lambda p: optim.SGD([p * 2], lr=0.1), "non-leaf"),
])
def test_errors(make, message):
    p = tg.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match=message):
        make(p)
    with pytest.raises(TypeError):
        optim.SGD(p, lr=0.1)  # a bare tensor, not an iterable of them


def test_adagrad_state_exists_before_first_step():
    p = tg.randn(4, requires_grad=True)
    opt = optim.Adagrad([p], initial_accumulator_value=0.25)
    st = opt.state_dict()["state"][0]
    assert st["step"] == 0 and st["sum"].numpy().tolist() == [0.25] * 4
    assert math.isclose(opt.param_groups[0]["eps"], 1e-10)


def test_works_with_nn_parameter():
    nn = pytest.importorskip("tilegrad.nn")
    if not hasattr(nn, "Parameter"):
        pytest.skip("tilegrad.nn.Parameter is not there yet")
    p = nn.Parameter(tg.tensor([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    p.grad = tg.tensor([1.0, 1.0])
    opt.step()
    assert isinstance(p, nn.Parameter)
    np.testing.assert_allclose(p.detach().numpy(), [0.5, -2.5])
