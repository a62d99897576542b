"""nn.Sequential runs Linear + ReLU and Conv2d + ReLU as one op with the ReLU in its epilogue;
the values and gradients are those of the unfused modules, and nothing observable changes
(hooks and subclasses turn the fusion off)."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad import nn


def _models(seed):
    tg.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 5), nn.ReLU(), nn.Linear(5, 3))
    cnn = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, stride=2), nn.ReLU(),
                        nn.Flatten())
    return mlp, cnn


def _unfused(model, x):
    for m in model:
        x = m(x)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", [0, 1])
def test_fused_forward_and_backward_match_module_by_module(which, dtype, seed):
    model = _models(seed)[which].to(tg.float32 if dtype == np.float32 else tg.float64)
    rng = np.random.default_rng(seed)
    shape = (6, 12) if which == 0 else (3, 2, 9, 8)
    x = rng.standard_normal(shape).astype(dtype)
    outs, grads = [], []
    for run in (lambda t: model(t), lambda t: _unfused(model, t)):
        model.zero_grad()
        xt = tg.tensor(x, requires_grad=True)
        y = run(xt)
        w = rng.standard_normal(y.shape).astype(dtype)
        (y * tg.tensor(w)).sum().backward()
        outs.append(y.detach().numpy())
        grads.append([xt.grad.numpy()] + [p.grad.numpy() for p in model.parameters()])
        rng = np.random.default_rng(seed)  # the same weights w for the second run
        rng.standard_normal(shape)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0], outs[1], **tol)
    for a, b in zip(grads[0], grads[1]):
        np.testing.assert_allclose(a, b, **tol)


def test_the_pair_becomes_one_node():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    y = model(tg.randn(5, 4))
    assert type(y.grad_fn).__name__ == "Linear"
    assert (y.detach().numpy() >= 0).all()
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert type(conv(tg.randn(1, 1, 5, 5)).grad_fn).__name__ == "Conv2d"


def test_hooks_and_subclasses_keep_the_modules_separate():
    seen = []
    relu = nn.ReLU()
    relu.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    model = nn.Sequential(nn.Linear(4, 3), relu)
    y = model(tg.randn(2, 4))
    assert seen == [(2, 3)] and type(y.grad_fn).__name__ != "Linear"

    class Doubling(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    tg.manual_seed(0)
    d = Doubling(4, 3)
    x = tg.randn(2, 4)
    np.testing.assert_allclose(nn.Sequential(d, nn.ReLU())(x).detach().numpy(),
                               np.maximum(d(x).detach().numpy(), 0))
