"""The activation modules and functions beyond the core ones, against PyTorch: forward values
and input gradients on random float64 data, PReLU's weight gradient and state dict."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
import tilegrad.nn.functional as F

torch = pytest.importorskip("torch")

MODULES = [
    ("Softplus", {}), ("Softplus", {"beta": 2.0, "threshold": 3.0}), ("Softplus", {"beta": 0.5}),
    ("ELU", {}), ("ELU", {"alpha": 0.3}), ("SELU", {}), ("Mish", {}),
    ("Hardtanh", {}), ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("ReLU6", {}),
    ("Hardswish", {}), ("Hardsigmoid", {}), ("LogSigmoid", {}), ("Softsign", {}), ("Tanhshrink", {}),
    ("PReLU", {}), ("PReLU", {"num_parameters": 3, "init": 0.1}),
]


def pair(x, requires_grad=True):
    return (tg.tensor(x, requires_grad=requires_grad),
            torch.tensor(x, requires_grad=requires_grad))


@pytest.mark.parametrize("name,kwargs", MODULES, ids=[f"{n}-{k}" for n, k in MODULES])
@pytest.mark.parametrize("shape", [(4, 3, 5), (2, 3)])
def test_module_matches_torch(name, kwargs, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4  # reaches past every kink (+-3, 6, the softplus threshold)
    ours, theirs = getattr(nn, name)(**kwargs).double(), getattr(torch.nn, name)(**kwargs).double()
    if name == "PReLU":
        w = rng.uniform(-0.5, 0.5, size=kwargs.get("num_parameters", 1))
        ours.load_state_dict({"weight": torch.tensor(w)})
        theirs.weight.data = torch.tensor(w)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    a, b = pair(x)
    ya, yb = ours(a), theirs(b)
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(shape)
    ya.backward(tg.tensor(g))
    yb.backward(torch.tensor(g))
    # PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32, even in float64.
    rtol = 1e-7 if name == "Hardsigmoid" else 1e-10
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-12)
    if name == "PReLU":
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["softplus", "elu", "selu", "mish", "hardtanh", "relu6", "hardswish",
                                  "hardsigmoid", "logsigmoid", "softsign", "tanhshrink"])
def test_functional_float32_matches_torch(name, seed):
    x = (np.random.default_rng(seed).standard_normal((3, 37)) * 5).astype(np.float32)
    ours = getattr(F, name)(tg.tensor(x))
    assert ours.dtype == tg.float32
    np.testing.assert_allclose(ours.numpy(), getattr(torch.nn.functional, name)(torch.tensor(x)).numpy(),
                               rtol=2e-6, atol=2e-6)


def test_logsigmoid_and_softplus_stay_finite_far_out():
    x = tg.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    y = F.logsigmoid(x) + F.softplus(x, beta=0.01, threshold=1e9)
    y.sum().backward()
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("name,args", [("elu", (0.7,)), ("selu", ()), ("hardtanh", (-0.2, 0.4)), ("relu6", ()),
                                       ("hardswish", ()), ("hardsigmoid", ()), ("mish", ())])
def test_inplace_writes_into_the_input(name, args, seed):
    x = np.random.default_rng(seed).standard_normal(9) * 4
    t = tg.tensor(x)
    out = getattr(F, name)(t, *args, inplace=True)
    assert out is t
    np.testing.assert_allclose(t.numpy(), getattr(torch.nn.functional, name)(torch.tensor(x), *args).numpy(),
                               rtol=1e-12, atol=1e-12)


def test_prelu_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3\).*\(N, 3, \.\.\.\)"):
        nn.PReLU(3)(tg.randn(2, 4, 5))
    with pytest.raises(ValueError, match="hardtanh"):
        F.hardtanh(tg.randn(3), 1.0, -1.0)
