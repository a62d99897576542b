"""The module system: registration, traversal, state dicts, modes, conversions, repr."""
import copy
import pickle

import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn


class Affine(nn.Module):
    """A layer built from tensor ops only, so these tests need no functional op."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(tg.randn(n_out, n_in))
        self.bias = nn.Parameter(tg.zeros(n_out))
        self.register_buffer("calls", tg.zeros(()))
        self.register_buffer("scratch", tg.zeros(2), persistent=False)

    def forward(self, x):
        return x @ self.weight.T + self.bias


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Affine(3, 4)
        self.blocks = nn.ModuleList([Affine(4, 4), Affine(4, 2)])
        self.act = nn.Tanh()

    def forward(self, x):
        x = self.act(self.a(x))
        for b in self.blocks:
            x = b(x)
        return x


def test_parameter_is_a_leaf_tensor_requiring_grad():
    t = tg.randn(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, tg.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf
    assert np.shares_memory(p._data, t._data)
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    out = p * 2  # ops on a Parameter give plain tensors, as in PyTorch
    assert type(out) is tg.Tensor
    out.sum().backward()
    assert type(p.grad) is tg.Tensor
    with pytest.raises(TypeError):
        nn.Parameter(np.zeros(3))


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["a.weight", "a.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]
    assert len(list(net.parameters())) == 6
    assert [n for n, _ in net.named_buffers()] == ["a.calls", "a.scratch", "blocks.0.calls", "blocks.0.scratch",
                                                   "blocks.1.calls", "blocks.1.scratch"]
    assert [n for n, _ in net.named_children()] == ["a", "blocks", "act"]
    assert [n for n, _ in net.named_modules()] == ["", "a", "blocks", "blocks.0", "blocks.1", "act"]
    assert list(net.children())[0] is net.a
    assert len(list(net.modules())) == 6
    assert [n for n, _ in net.a.named_parameters(prefix="x")] == ["x.weight", "x.bias"]
    assert len(list(net.parameters(recurse=False))) == 0
    assert net.get_submodule("blocks.1") is net.blocks[1]
    assert net.get_parameter("blocks.0.bias") is net.blocks[0].bias


def test_setattr_routes_values():
    m = nn.Module()
    m.w = nn.Parameter(tg.ones(2))
    m.sub = nn.Identity()
    m.plain = tg.ones(2)  # a plain tensor is a plain attribute, not a buffer
    assert list(m._parameters) == ["w"] and list(m._modules) == ["sub"] and "plain" not in m._buffers
    m.w = None
    assert m.w is None and list(m.parameters()) == []
    with pytest.raises(TypeError):
        m.w = tg.ones(2)  # a parameter slot takes a Parameter or None
    m.register_buffer("b", tg.zeros(1))
    m.b = tg.ones(3)
    assert m._buffers["b"].shape == (3,)
    with pytest.raises(TypeError):
        m.b = 3
    with pytest.raises(KeyError):
        m.register_buffer("plain", tg.zeros(1))  # the name is taken by an attribute
    with pytest.raises(KeyError):
        m.register_parameter("a.b", None)
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        m.nope  # noqa: B018


def test_assign_before_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.ones(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_shared_parameters_appear_once():
    a = Affine(2, 2)
    m = nn.Sequential(a, a)
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert list(m.state_dict()) == ["0.weight", "0.bias", "0.calls", "1.weight", "1.bias", "1.calls"]  # as PyTorch


def test_state_dict_round_trip():
    tg.manual_seed(1)
    src, dst = Net(), Net()
    src.a.calls.fill_(7)
    sd = src.state_dict()
    assert list(sd) == ["a.weight", "a.bias", "a.calls", "blocks.0.weight", "blocks.0.bias", "blocks.0.calls",
                        "blocks.1.weight", "blocks.1.bias", "blocks.1.calls"]  # non-persistent buffers left out
    assert not any(v.requires_grad for v in sd.values())
    assert all(v.requires_grad for k, v in src.state_dict(keep_vars=True).items() if "calls" not in k)
    weight = dst.a.weight
    result = dst.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert dst.a.weight is weight  # loaded in place: optimizers holding the parameter still see it
    x = tg.randn(5, 3)
    np.testing.assert_array_equal(dst(x).detach().numpy(), src(x).detach().numpy())
    assert dst.a.calls.item() == 7
    sd["a.weight"].fill_(0)  # state_dict shares storage with the module, as in PyTorch
    assert float(src.a.weight.abs().sum().item()) == 0


def test_load_state_dict_strict_and_non_strict():
    m = Net()
    sd = m.state_dict()
    del sd["a.bias"]
    sd["extra.weight"] = tg.zeros(1)
    with pytest.raises(RuntimeError) as err:
        m.load_state_dict(sd)
    msg = str(err.value)
    assert 'Missing key(s) in state_dict: "a.bias"' in msg and 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["a.bias"] and result.unexpected_keys == ["extra.weight"]


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    m = Net()
    before = m.a.bias.detach().numpy().copy()
    sd = m.state_dict()
    sd = {k: (tg.zeros(5, 3) if k == "a.weight" else tg.ones(*v.shape)) for k, v in sd.items()}
    with pytest.raises(RuntimeError, match=r"size mismatch for a\.weight: .*shape \(5, 3\).*shape in current model is \(4, 3\)"):
        m.load_state_dict(sd, strict=False)
    np.testing.assert_array_equal(m.a.bias.detach().numpy(), before)  # a failed load changes nothing


def test_load_state_dict_accepts_numpy_arrays():
    m = Affine(2, 2)
    m.load_state_dict({"weight": np.eye(2), "bias": np.ones(2), "calls": np.array(3.0)})
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.eye(2, dtype=np.float32))
    assert m.weight.dtype == tg.float32  # values are cast to the module's dtype


def test_train_eval_flags_propagate():
    net = Net()
    assert net.training and net.blocks[1].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError):
        net.train("yes")


def test_zero_grad_and_requires_grad():
    net = Net()
    net(tg.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and float(p.grad.abs().sum().item()) == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_keeps_parameter_objects():
    net = Net()
    w = net.a.weight
    net(tg.randn(2, 3)).sum().backward()
    assert net.double() is net
    assert net.a.weight is w and w.dtype == tg.float64 and w.grad.dtype == tg.float64
    assert net.a.calls.dtype == tg.float64
    assert net(tg.randn(2, 3, dtype=tg.float64)).dtype == tg.float64
    net.to(tg.float32)
    assert w.dtype == tg.float32
    net.to("cpu", dtype=tg.float64)
    assert w.dtype == tg.float64 and w.device == "cpu"
    net.float().cpu()
    assert w.dtype == tg.float32
    with pytest.raises(TypeError, match="floating point"):
        net.to(tg.int64)


def test_to_dtype_leaves_integer_buffers():
    m = nn.BatchNorm1d(3).double()
    assert m.running_mean.dtype == tg.float64 and m.num_batches_tracked.dtype == tg.int64


def test_apply_visits_children_first():
    order = []
    Net().apply(lambda m: order.append(type(m).__name__))
    assert order == ["Affine", "Affine", "Affine", "ModuleList", "Tanh", "Net"]


def test_repr_like_pytorch():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Dropout(0.2), nn.Tanh()))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=3, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Dropout(p=0.2, inplace=False)\n"
        "    (1): Tanh()\n"
        "  )\n"
        ")")
    assert repr(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)) == \
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"
    assert repr(nn.LSTM(4, 5, num_layers=2, batch_first=True)) == "LSTM(4, 5, num_layers=2, batch_first=True)"


def test_sequential_and_containers():
    a, b, c = Affine(3, 3), nn.Tanh(), Affine(3, 2)
    seq = nn.Sequential(a, b, c)
    x = tg.randn(4, 3)
    np.testing.assert_allclose(seq(x).detach().numpy(), c(b(a(x))).detach().numpy())
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    named = nn.Sequential({"first": a, "second": b})
    assert [n for n, _ in named.named_children()] == ["first", "second"] and named.first is a
    ml = nn.ModuleList([a])
    ml.append(b).extend([c])
    assert len(ml) == 3 and ml[2] is c and ml[-1] is c
    del ml[0]
    assert [n for n, _ in ml.named_children()] == ["0", "1"] and ml[0] is b
    ml.insert(0, a)
    assert list(ml) == [a, b, c]
    with pytest.raises(IndexError):
        ml[5]  # noqa: B018
    md = nn.ModuleDict({"x": a, "y": c})
    assert "x" in md and md["y"] is c and list(md.keys()) == ["x", "y"] and len(md) == 2
    md["z"] = b
    assert [n for n, _ in md.named_parameters()] == ["x.weight", "x.bias", "y.weight", "y.bias"]


def test_forward_hooks():
    m = Affine(2, 2)
    seen = []
    h = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    pre = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    out = m(tg.randn(3, 2))
    assert seen == [(3, 2)]
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(m.bias.detach().numpy(), (3, 2)))
    h.remove()
    pre.remove()
    m(tg.randn(3, 2))
    assert seen == [(3, 2)]


def test_missing_forward():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_deepcopy_and_pickle():
    net = Net()
    clone = copy.deepcopy(net)
    assert clone.a.weight is not net.a.weight and isinstance(clone.a.weight, nn.Parameter)
    np.testing.assert_array_equal(clone.a.weight.detach().numpy(), net.a.weight.detach().numpy())
    clone.a.weight.data.fill_(0)
    assert float(net.a.weight.abs().sum().item()) != 0
    loaded = pickle.loads(pickle.dumps(net))
    x = tg.randn(2, 3)
    np.testing.assert_array_equal(loaded(x).detach().numpy(), net(x).detach().numpy())
    assert loaded.a.weight.requires_grad and isinstance(loaded.a.weight, nn.Parameter)


@pytest.mark.cuda
def test_module_moves_to_cuda_and_back():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2))
    x = tg.randn(5, 4)
    expected = model(x).detach().numpy()
    w = model[0].weight
    assert model.cuda() is model
    assert model[0].weight is w and w.device == "cuda:0" and model[2].running_mean.device == "cuda:0"
    out = model(x.cuda())
    out.sum().backward()
    assert w.grad.device == "cuda:0"
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected, rtol=1e-4, atol=1e-5)
    on_gpu = nn.Linear(4, 8, device="cuda")
    assert on_gpu.weight.device == "cuda:0"
    on_gpu.load_state_dict(model[0].cpu().state_dict())  # values cross devices on load
    assert on_gpu.weight.device == "cuda:0"
    np.testing.assert_array_equal(on_gpu.weight.detach().cpu().numpy(), w.detach().numpy())
