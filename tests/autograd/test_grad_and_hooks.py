"""autograd.grad, tensor hooks and the grad-mode managers, against PyTorch on random data."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad.autograd import Function

torch = pytest.importorskip("torch")


def pair(rng, *shape):
    a = rng.standard_normal(shape)
    return tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def close(ours, theirs):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


def model(lib, x, w, b):
    h = (x @ w + b).tanh()
    return (h * h).sum() + (h * 3).mean(), h


def test_grad_matches_torch_and_leaves_dot_grad_alone(seed):
    rng = np.random.default_rng(seed)
    (x, xt), (w, wt), (b, bt) = pair(rng, 5, 4), pair(rng, 4, 3), pair(rng, 3)
    loss, _ = model(tg, x, w, b)
    loss_t, _ = model(torch, xt, wt, bt)
    ours = tg.autograd.grad(loss, [w, x, b])
    theirs = torch.autograd.grad(loss_t, [wt, xt, bt])
    for o, t in zip(ours, theirs):
        close(o, t)
    assert x.grad is None and w.grad is None and b.grad is None


def test_grad_of_a_non_leaf_with_grad_outputs(seed):
    rng = np.random.default_rng(seed)
    (x, xt), (w, wt), (b, bt) = pair(rng, 5, 4), pair(rng, 4, 3), pair(rng, 3)
    _, h = model(tg, x, w, b)
    _, ht = model(torch, xt, wt, bt)
    out, out_t = h.exp() * 2, ht.exp() * 2
    v = rng.standard_normal(out.shape)
    ours = tg.autograd.grad([out], [h, w], grad_outputs=[tg.tensor(v)])
    theirs = torch.autograd.grad([out_t], [ht, wt], grad_outputs=[torch.tensor(v)])
    for o, t in zip(ours, theirs):
        close(o, t)


def test_grad_runs_only_the_part_of_the_graph_leading_to_the_inputs(seed):
    rng = np.random.default_rng(seed)
    ran = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1

        @staticmethod
        def backward(ctx, g):
            ran.append(True)
            return g

    (x, _), (w, _) = pair(rng, 3), pair(rng, 3)
    loss = (x * 2).sum() + Spy.apply(w).sum()
    (gx,) = tg.autograd.grad(loss, [x])
    np.testing.assert_array_equal(gx.numpy(), 2.0)
    assert not ran
    loss.backward()
    assert ran and w.grad is not None


def test_grad_unused_inputs(seed):
    rng = np.random.default_rng(seed)
    (x, _), (y, _) = pair(rng, 3), pair(rng, 2)
    with pytest.raises(RuntimeError, match="allow_unused"):
        tg.autograd.grad((x * x).sum(), [x, y])
    gx, gy = tg.autograd.grad((x * x).sum(), [x, y], allow_unused=True)
    assert gy is None
    np.testing.assert_allclose(gx.numpy(), 2 * x.detach().numpy())
    _, gy = tg.autograd.grad((x * x).sum(), [x, y], materialize_grads=True)
    np.testing.assert_array_equal(gy.numpy(), np.zeros(2))


def test_grad_frees_the_graph_unless_retained_and_refuses_create_graph(seed):
    rng = np.random.default_rng(seed)
    (x, _), = [pair(rng, 4)]
    loss = (x.exp() * x).sum()
    first = tg.autograd.grad(loss, x, retain_graph=True)[0]
    second = tg.autograd.grad(loss, x)[0]
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    with pytest.raises(RuntimeError, match="second time"):
        tg.autograd.grad(loss, x)
    with pytest.raises(NotImplementedError, match="create_graph"):
        tg.autograd.grad((x * x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.autograd.grad((x * x).sum(), tg.tensor([1.0]))


def test_grad_with_respect_to_an_output_leaf_itself(seed):
    rng = np.random.default_rng(seed)
    x, xt = pair(rng, 3)
    v = rng.standard_normal(3)
    (g,) = tg.autograd.grad(x, x, grad_outputs=tg.tensor(v))
    (gt,) = torch.autograd.grad(xt, xt, grad_outputs=torch.tensor(v))
    close(g, gt)


def test_hooks_on_leaves_and_non_leaves_match_torch(seed):
    rng = np.random.default_rng(seed)
    (x, xt), (w, wt), (b, bt) = pair(rng, 5, 4), pair(rng, 4, 3), pair(rng, 3)
    seen, seen_t = [], []
    for lib, xx, ww, bb, log in ((tg, x, w, b, seen), (torch, xt, wt, bt, seen_t)):
        # A leaf used twice: its hook sees the total once; a clamp is not linear, so per-path
        # calls would differ. A non-leaf hook changes every gradient upstream of it.
        ww.register_hook(lambda g, log=log: log.append(g.detach().numpy().copy()) or g.clamp(-0.5, 0.5))
        h = xx @ ww + bb
        h.register_hook(lambda g: g * 3)
        h.retain_grad()
        loss = ((h * h).sum() + (xx @ ww).tanh().sum())
        loss.backward()
    assert len(seen) == len(seen_t) == 1
    np.testing.assert_allclose(seen[0], seen_t[0], rtol=1e-12, atol=1e-12)
    for o, t in ((x, xt), (w, wt), (b, bt)):
        close(o.grad, t.grad)


def test_hook_removal_and_misuse(seed):
    rng = np.random.default_rng(seed)
    x, _ = pair(rng, 3)
    handle = x.register_hook(lambda g: g * 0 + 7)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 7.0)
    handle.remove()
    handle.remove()  # a second remove is harmless, as in PyTorch
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy())
    x.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="shape"):
        (x * x).sum().backward()
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tg.tensor([1.0]).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        tg.tensor([1.0], requires_grad=True).register_hook(3)


def test_grad_modes():
    @tg.no_grad
    def bare():
        return tg.is_grad_enabled()

    @tg.inference_mode()
    def inference():
        return tg.is_grad_enabled(), tg.is_inference_mode_enabled()

    assert bare() is False and inference() == (False, True)
    assert tg.is_grad_enabled() and not tg.is_inference_mode_enabled()
    with tg.inference_mode(False):
        assert tg.is_grad_enabled()
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    tg.set_grad_enabled(False)
    try:
        assert not tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)

    @tg.set_grad_enabled(False)
    def off():
        return tg.is_grad_enabled()

    assert tg.is_grad_enabled() and off() is False and tg.is_grad_enabled()
