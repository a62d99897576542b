"""The autograd engine on graphs of known shape, with random data."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad.autograd import Function, gradcheck


def leaf(rng, *shape, dtype=np.float64):
    return tg.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


def test_a_plus_a_accumulates_both_paths(seed):
    rng = np.random.default_rng(seed)
    a = leaf(rng, 3, 4)
    (a + a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * np.ones((3, 4)))


def test_diamond(seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, 5)
    h = x.exp()
    y = (h * 3 + h * h).sum()
    y.backward()
    e = np.exp(x.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), e * 3 + 2 * e * e, rtol=1e-12)


def test_shared_subgraph_used_by_two_losses(seed):
    rng = np.random.default_rng(seed)
    w = leaf(rng, 4, 3)
    x = tg.tensor(rng.standard_normal((2, 4)))
    h = (x @ w).tanh()
    loss = (h * h).sum() + h.sum()
    loss.backward()
    hv = np.tanh(x.numpy() @ w.detach().numpy())
    expected = x.numpy().T @ ((2 * hv + 1) * (1 - hv ** 2))
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-10)


def test_deep_chain_does_not_recurse(seed):
    x = tg.tensor(np.random.default_rng(seed).standard_normal(3), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 1.0001 ** 10_000), rtol=1e-9)


def test_gradient_accumulates_across_backward_calls(seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, 4)
    (x * x).sum().backward()
    first = x.grad.numpy().copy()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_no_grad_records_nothing(seed):
    x = leaf(np.random.default_rng(seed), 3)
    with tg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad
    with tg.no_grad():
        with tg.enable_grad():
            assert (x * 2).requires_grad


def test_detach_cuts_the_graph_and_shares_storage(seed):
    x = leaf(np.random.default_rng(seed), 3)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), x.detach().numpy())
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x.detach().numpy())


def test_second_backward_without_retain_graph_fails(seed):
    x = leaf(np.random.default_rng(seed), 3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward(seed):
    x = leaf(np.random.default_rng(seed), 3)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.detach().numpy())


def test_non_scalar_backward_needs_gradient(seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, 3)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    g = rng.standard_normal(3)
    y.backward(tg.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), 2 * g)


def test_broadcast_gradients_are_reduced(seed):
    rng = np.random.default_rng(seed)
    a, b = leaf(rng, 3, 1), leaf(rng, 4)
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), b.detach().numpy().sum()))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, a.detach().numpy().sum()))


def test_retain_grad_on_an_intermediate(seed):
    x = leaf(np.random.default_rng(seed), 3)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.detach().numpy())


def test_leaf_in_place_is_an_error_but_non_leaf_in_place_is_tracked(seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, 3)
    with pytest.raises(RuntimeError, match="leaf"):
        x += 1
    h = x * 2
    h += x          # h = 3x, tracked
    h[0] = 0.0      # the first element no longer depends on x
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 3.0, 3.0])


def test_in_place_without_grad_writes_into_storage(seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, 3)
    before = x.detach().numpy().copy()
    storage = x.detach().numpy()
    with tg.no_grad():
        x -= 0.5 * tg.ones(3, dtype=tg.float64)
    np.testing.assert_allclose(storage, before - 0.5)


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * 3 * x * x


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * 2 * x * x


def test_custom_function(seed):
    x = leaf(np.random.default_rng(seed), 4)
    y = Cube.apply(x)
    assert y.grad_fn is not None and not x.grad_fn
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.detach().numpy() ** 2)
    assert gradcheck(Cube.apply, [leaf(np.random.default_rng(seed), 5)])


def test_gradcheck_catches_a_wrong_backward(seed):
    with pytest.raises(AssertionError, match="gradcheck failed"):
        gradcheck(WrongCube.apply, [leaf(np.random.default_rng(seed), 5)])
    assert gradcheck(WrongCube.apply, [leaf(np.random.default_rng(seed), 5)], raise_exception=False) is False


def test_needs_input_grad(seed):
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["needs"] = ctx.needs_input_grad
            return a * b

        @staticmethod
        def backward(ctx, gy):
            return gy, None

    rng = np.random.default_rng(seed)
    Probe.apply(leaf(rng, 2), tg.tensor(rng.standard_normal(2)))
    assert seen["needs"] == (True, False)


def test_graph_is_freed_after_backward(seed):
    x = leaf(np.random.default_rng(seed), 1000)
    y = (x * x).sum()
    node = y.grad_fn
    y.backward()
    assert node._saved == ()  # Sum keeps no arrays
    mul = [e[0] for e in node._edges if e is not None][0]
    assert mul._saved is None  # Mul's saved input arrays are released


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2, 3], requires_grad=True)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_detect_anomaly_names_the_forward_op(seed):
    x = tg.tensor(np.abs(np.random.default_rng(seed).standard_normal(4)) + 0.1, requires_grad=True)
    (x - 1).log()  # NaN for x < 1 goes unnoticed outside the block
    with pytest.raises(RuntimeError, match="Log .forward. produced nan"):
        with tg.autograd.detect_anomaly():
            (x * 0 - 1).log()
    assert not tg.autograd._state.anomaly


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_detect_anomaly_names_the_backward_op(seed):
    x = tg.tensor(np.zeros(3), requires_grad=True)
    y = x.sqrt().sum()  # forward is finite (0), backward divides by 0
    with pytest.raises(RuntimeError, match="SqrtBackward produced inf"):
        with tg.autograd.detect_anomaly():
            y.backward()


# ---- leaf gradients own their memory ---------------------------------------------------------
# The engine hands a built-in op's fresh gradient array to a leaf without copying it; these pin
# down that no .grad ever shares memory with another .grad, the caller's gradient or saved data.
def _grads_independent(*tensors):
    arrays = [t.grad.numpy() for t in tensors]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)


def test_leaves_sharing_one_upstream_gradient_get_separate_arrays(seed):
    rng = np.random.default_rng(seed)
    a, b, c = leaf(rng, 4, 3), leaf(rng, 4, 3), leaf(rng, 4, 3)
    ((a + b) * 2 + c).sum().backward()  # add's backward passes one array to several inputs
    _grads_independent(a, b, c)
    before = b.grad.numpy().copy()
    a.grad.add_(tg.tensor(rng.standard_normal((4, 3))))
    np.testing.assert_array_equal(b.grad.numpy(), before)


def test_user_gradient_is_not_aliased(seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, 5)
    g = rng.standard_normal(5)
    x.backward(tg.tensor(g))
    assert not np.shares_memory(x.grad.numpy(), g)
    y = leaf(rng, 5)
    g2 = tg.tensor(rng.standard_normal(5))
    (y * 1.0).backward(g2)  # a built-in op between the root and the leaf
    y.grad.mul_(3.0)
    assert not np.shares_memory(y.grad.numpy(), g2.numpy())
    np.testing.assert_allclose(y.grad.numpy(), 3 * g2.numpy())


def test_user_function_returning_saved_array_is_copied(seed):
    rng = np.random.default_rng(seed)

    class PassSaved(Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(w)
            return x * w

        @staticmethod
        def backward(ctx, gy):
            (w,) = ctx.saved_tensors
            return gy * w, w  # a deliberately odd gradient: the saved tensor itself

    x, w = leaf(rng, 6), leaf(rng, 6)
    keep = w.detach().numpy().copy()
    PassSaved.apply(x, w).sum().backward()
    w.grad.zero_()
    np.testing.assert_array_equal(w.detach().numpy(), keep)


def test_matmul_leaf_gradients_correct_and_independent(seed):
    rng = np.random.default_rng(seed)
    x, w = leaf(rng, 5, 4), leaf(rng, 4, 3)
    (x @ w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), x.detach().numpy().T @ np.ones((5, 3)))
    np.testing.assert_allclose(x.grad.numpy(), np.ones((5, 3)) @ w.detach().numpy().T)
    _grads_independent(x, w)
