"""The one-pass native Adam/AdamW/SGD steps (tilegrad._cpu.adam_step / sgd_step), which the
optimizers use for float32 NumPy parameters, against the optimizers' own array code run with the
reference kernels: bit for bit, since both do the same float32 operations in the same order."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad import optim

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")

SHAPES = [(3, 5), (7,), (), (70_001,)]  # the last one crosses the kernels' OpenMP threshold
CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    (optim.Adam, dict(lr=0.02, betas=(0.3, 0.9), eps=1e-6, maximize=True)),  # lerp's other formula
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.03, weight_decay=0.5, amsgrad=True, maximize=True)),
    (optim.AdamW, dict(lr=0.03, weight_decay=0.0)),
]


def _run(cls, kwargs, params, grads, choice):
    ps = [tg.tensor(p.copy(), requires_grad=True) for p in params]
    opt = cls(ps, **kwargs)
    with tg.kernels(choice):
        for step_grads in grads:
            for p, g in zip(ps, step_grads):
                p.grad = tg.tensor(g)
            opt.step()
    state = [{k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in opt.state[p].items()} for p in ps]
    return [p.detach().numpy() for p in ps], state


@pytest.mark.parametrize("cls,kwargs", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)])
def test_native_step_matches_array_code_bit_for_bit(cls, kwargs, seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * 10 ** rng.uniform(-3, 2)).astype(np.float32) for s in SHAPES]
             for _ in range(5)]
    native, native_state = _run(cls, kwargs, params, grads, "native")
    ref, ref_state = _run(cls, kwargs, params, grads, "reference")
    for a, b, p0 in zip(native, ref, params):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, p0)  # the step did move the parameters
    for sa, sb in zip(native_state, ref_state):
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])


def test_native_step_propagates_nan_like_the_array_code():
    p = np.array([1.0, 2.0, 3.0], np.float32)
    g = np.array([np.nan, 1.0, np.inf], np.float32)
    out = {}
    for choice in ("native", "reference"):
        with np.errstate(invalid="ignore"):  # inf - inf in the array code
            got, _ = _run(optim.Adam, dict(lr=0.1, amsgrad=True), [p], [[g]], choice)
        out[choice] = got[0]
    np.testing.assert_array_equal(out["native"], out["reference"])  # NaN positions equal too


def f32(*shape):
    return np.ones(shape, np.float32)


ADAM_KW = dict(lerp_weight=0.1, decay=1.0, weight_decay=0.0, beta2=0.999, bias2_sqrt=0.1, eps=1e-8,
               step_size=0.01, decoupled=False, maximize=False)
SGD_KW = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
              first_step=True)


def test_adam_step_binding_rejects_misuse():
    with pytest.raises(ValueError, match="adam_step.*exp_avg.*shape"):
        _cpu.adam_step(f32(3), f32(3), f32(4), f32(3), None, **ADAM_KW)
    with pytest.raises(TypeError, match="adam_step.*float32"):
        _cpu.adam_step(f32(3), np.ones(3), f32(3), f32(3), None, **ADAM_KW)
    p = f32(3)
    with pytest.raises(ValueError, match="adam_step.*share memory"):
        _cpu.adam_step(p, f32(3), p, f32(3), None, **ADAM_KW)
    g = f32(3)
    with pytest.raises(ValueError, match="adam_step.*share memory"):
        _cpu.adam_step(f32(3), g, f32(3), g, None, **ADAM_KW)
    ro = f32(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="adam_step.*writeable"):
        _cpu.adam_step(ro, f32(3), f32(3), f32(3), None, **ADAM_KW)
    with pytest.raises(TypeError, match="adam_step.*decoupled.*bool"):
        _cpu.adam_step(f32(3), f32(3), f32(3), f32(3), None, **{**ADAM_KW, "decoupled": 1})
    with pytest.raises(TypeError, match="adam_step.*eps.*real number"):
        _cpu.adam_step(f32(3), f32(3), f32(3), f32(3), None, **{**ADAM_KW, "eps": "1e-8"})
    with pytest.raises(ValueError, match="adam_step.*C-contiguous"):
        _cpu.adam_step(f32(3, 4).T, f32(4, 3), f32(4, 3), f32(4, 3), None, **ADAM_KW)


def test_sgd_step_binding_rejects_misuse():
    with pytest.raises(ValueError, match="sgd_step.*momentum_buffer.*shape"):
        _cpu.sgd_step(f32(3), f32(3), f32(2), **SGD_KW)
    p = f32(3)
    with pytest.raises(ValueError, match="sgd_step.*share memory"):
        _cpu.sgd_step(p, f32(3), p, **SGD_KW)
    with pytest.raises(TypeError, match="sgd_step.*nesterov.*bool"):
        _cpu.sgd_step(f32(3), f32(3), None, **{**SGD_KW, "nesterov": None})
    with pytest.raises(TypeError, match="sgd_step.*param"):
        _cpu.sgd_step([1.0, 2.0], f32(2), None, **SGD_KW)
