"""The fused multi-tensor optimizer steps on the GPU (``_cuda.adamw_step`` / ``sgd_step``, one launch
per group) against the optimizers' own array code run on CuPy with the reference kernels."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim

pytestmark = pytest.mark.cuda

SHAPES = [(3, 5), (7,), (), (70_001,), (33, 129)]
CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    (optim.Adam, dict(lr=0.02, betas=(0.3, 0.9), eps=1e-6, maximize=True)),
    (optim.AdamW, dict(lr=0.03, weight_decay=0.5, amsgrad=True, maximize=True)),
]


def _run(cls, kwargs, params, grads, choice, skip_first=False):
    ps = [tg.tensor(p, device="cuda", requires_grad=True) for p in params]
    opt = cls(ps, **kwargs)
    with tg.kernels(choice):
        for step, step_grads in enumerate(grads):
            for i, (p, g) in enumerate(zip(ps, step_grads)):
                # skip_first: the first parameter misses step 0, so its step count lags the others'
                p.grad = None if (skip_first and i == 0 and step == 0) else tg.tensor(g, device="cuda")
            opt.step()
    return [p.detach().cpu().numpy() for p in ps]


@pytest.mark.parametrize("skip_first", [False, True])
@pytest.mark.parametrize("cls,kwargs", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)])
def test_fused_step_matches_array_code(cls, kwargs, skip_first, seed):
    pytest.importorskip("cupy")
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(4)]
    fused = _run(cls, kwargs, params, grads, "native", skip_first)
    ref = _run(cls, kwargs, params, grads, "reference", skip_first)
    for a, b, p0 in zip(fused, ref, params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.array_equal(a, p0)


def test_fused_step_is_one_call_per_group(monkeypatch, seed):
    pytest.importorskip("cupy")
    from tilegrad.backends import cuda as backend
    calls = []
    real = backend._cuda.adamw_step
    monkeypatch.setattr(backend._cuda, "adamw_step", lambda *a, **k: (calls.append(len(a[0])), real(*a, **k))[1],
                        raising=False)
    rng = np.random.default_rng(seed)
    ps = [tg.tensor(rng.standard_normal(s).astype(np.float32), device="cuda", requires_grad=True) for s in SHAPES]
    opt = optim.AdamW(ps, lr=1e-3)
    for p in ps:
        p.grad = tg.tensor(rng.standard_normal(p.shape).astype(np.float32), device="cuda")
    opt.step()
    assert calls == [len(SHAPES)]
