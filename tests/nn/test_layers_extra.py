"""Conv1d, the 1-d pooling layers, GroupNorm, InstanceNorm1d/2d, Dropout1d/2d, ParameterList,
ParameterDict and Bilinear against PyTorch: weights copied across through state dicts, forward
values and the gradients of inputs and parameters on random float64 data."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
import tilegrad.nn.functional as F

torch = pytest.importorskip("torch")
TOL = dict(rtol=1e-10, atol=1e-12)


def _twins(name, *args, **kwargs):
    """The same layer in tilegrad and in PyTorch, float64, with PyTorch's random weights in both."""
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(nn, name)(*args, **kwargs).double()
    result = ours.load_state_dict(theirs.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    return ours, theirs


def _compare(ours, theirs, *inputs, rng):
    """Forward, then backward of a random cotangent: outputs, input and parameter gradients agree."""
    a = [tg.tensor(x, requires_grad=True) for x in inputs]
    b = [torch.tensor(x, requires_grad=True) for x in inputs]
    ya, yb = ours(*a), theirs(*b)
    if isinstance(yb, tuple):
        ya, yb = ya[0], yb[0]
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), **TOL)
    g = rng.standard_normal(tuple(yb.shape))
    ya.backward(tg.tensor(g))
    yb.backward(torch.tensor(g))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), **TOL)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), err_msg=name, **TOL)


CONV1D = [
    dict(in_channels=3, out_channels=5, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=4, stride=2, padding=1, groups=2),
    dict(in_channels=2, out_channels=3, kernel_size=3, dilation=3, padding=2, bias=False),
    dict(in_channels=3, out_channels=4, kernel_size=3, padding="same", dilation=2),
    dict(in_channels=3, out_channels=4, kernel_size=4, padding="same"),  # uneven: one more zero on the right
    dict(in_channels=3, out_channels=4, kernel_size=2, padding="valid", stride=3),
    dict(in_channels=6, out_channels=6, kernel_size=5, padding=2, groups=6),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kwargs", CONV1D, ids=[str(i) for i in range(len(CONV1D))])
@pytest.mark.parametrize("batched", [True, False])
def test_conv1d_matches_torch(kwargs, batched, seed):
    rng = np.random.default_rng(seed)
    ours, theirs = _twins("Conv1d", **kwargs)
    shape = (2, kwargs["in_channels"], 13) if batched else (kwargs["in_channels"], 11)
    _compare(ours, theirs, rng.standard_normal(shape), rng=rng)


POOLS = [("MaxPool1d", dict(kernel_size=3)), ("MaxPool1d", dict(kernel_size=3, stride=2, padding=1, dilation=2)),
         ("MaxPool1d", dict(kernel_size=2, ceil_mode=True)),
         ("AvgPool1d", dict(kernel_size=3, stride=2, padding=1)),
         ("AvgPool1d", dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
         ("AdaptiveAvgPool1d", dict(output_size=4)), ("AdaptiveAvgPool1d", dict(output_size=5))]


@pytest.mark.parametrize("name,kwargs", POOLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(POOLS)])
@pytest.mark.parametrize("batched", [True, False])
def test_pool1d_matches_torch(name, kwargs, batched, seed):
    rng = np.random.default_rng(seed)
    shape = (2, 3, 13) if batched else (3, 12)
    _compare(getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs), rng.standard_normal(shape), rng=rng)


def test_max_pool1d_indices_match_torch(seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, 14))
    _, ours = F.max_pool1d(tg.tensor(x), 3, 2, 1, return_indices=True)
    _, theirs = torch.nn.functional.max_pool1d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("groups,channels,shape", [(2, 4, (3, 4, 5)), (3, 6, (2, 6, 4, 5)), (1, 3, (2, 3)),
                                                   (4, 4, (2, 4, 3, 2, 2))])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(groups, channels, shape, affine, seed):
    rng = np.random.default_rng(seed)
    ours, theirs = _twins("GroupNorm", groups, channels, eps=1e-3, affine=affine)
    if affine:  # PyTorch starts at ones and zeros: move away from them so the affine is tested
        w, b = rng.standard_normal(channels), rng.standard_normal(channels)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
            theirs.bias.copy_(torch.tensor(b))
        ours.load_state_dict(theirs.state_dict())
    _compare(ours, theirs, rng.standard_normal(shape) * 3 + 1, rng=rng)


@pytest.mark.parametrize("name,shape", [("InstanceNorm1d", (3, 4, 7)), ("InstanceNorm1d", (4, 7)),
                                        ("InstanceNorm2d", (2, 4, 5, 3)), ("InstanceNorm2d", (4, 5, 3))])
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True), (False, True)])
def test_instance_norm_matches_torch(name, shape, affine, track, seed):
    rng = np.random.default_rng(seed)
    ours, theirs = _twins(name, 4, affine=affine, track_running_stats=track, momentum=0.3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for _ in range(2):  # two training steps move the running statistics
        _compare(ours, theirs, rng.standard_normal(shape) * 2 + 0.5, rng=rng)
        for m in (ours, theirs):
            m.zero_grad()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), err_msg=key, **TOL)
    ours.eval()
    theirs.eval()
    _compare(ours, theirs, rng.standard_normal(shape), rng=rng)


@pytest.mark.parametrize("name,shape,channel_dims", [("Dropout1d", (4, 6, 9), 2), ("Dropout1d", (6, 9), 1),
                                                     ("Dropout2d", (4, 6, 3, 5), 2)])
def test_channel_dropout_zeroes_whole_channels(name, shape, channel_dims, seed):
    tg.manual_seed(seed)
    layer = getattr(nn, name)(p=0.4)
    x = tg.tensor(np.random.default_rng(seed).uniform(1, 2, size=shape), requires_grad=True)
    y = layer(x)
    ratio = (y / x).detach().numpy().reshape(shape[:channel_dims] + (-1,))
    kept = ratio[..., 0] != 0
    # each channel is zero everywhere or scaled by 1 / (1 - p) everywhere
    np.testing.assert_allclose(ratio, np.where(kept, 1 / 0.6, 0.0)[..., None] * np.ones_like(ratio), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy().reshape(ratio.shape), ratio, rtol=1e-6)
    layer.eval()
    assert layer(x) is x


def test_channel_dropout_keeps_about_one_minus_p(seed):
    tg.manual_seed(seed)
    y = F.dropout2d(tg.ones(200, 50, 2, 2), p=0.3)
    assert abs(float((y[:, :, 0, 0] != 0).float().mean().item()) - 0.7) < 0.03
    with pytest.warns(UserWarning, match="3D input"):
        z = F.dropout2d(tg.ones(4, 5, 6), p=0.5)
    ratio = z.numpy()
    assert ((ratio == 0).all(-1) | (ratio == 2).all(-1)).all()  # (N, C, L) channels, as PyTorch


class _Holder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scales = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))])
        self.table = torch.nn.ParameterDict({"alpha": torch.nn.Parameter(torch.randn(4)),
                                             "beta": torch.nn.Parameter(torch.randn(1))})


class _OurHolder(nn.Module):
    def __init__(self):
        super().__init__()
        self.scales = nn.ParameterList([tg.zeros(3), nn.Parameter(tg.zeros(2, 2))])
        self.table = nn.ParameterDict({"alpha": tg.zeros(4), "beta": nn.Parameter(tg.zeros(1))})


def test_parameter_containers_register_and_load_torch_state_dicts():
    theirs, ours = _Holder(), _OurHolder()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["scales.0", "scales.1", "table.alpha",
                                                                     "table.beta"]
    ours.load_state_dict(theirs.state_dict())
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert isinstance(p, nn.Parameter) and p.requires_grad
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy().astype(np.float32), err_msg=name)
    assert len(ours.scales) == 2 and ours.scales[-1].shape == (2, 2) and "alpha" in ours.table
    ours.scales.append(tg.ones(5))
    ours.table["gamma"] = tg.ones(2)
    assert len(list(ours.parameters())) == 6 and "scales.2" in ours.state_dict() and "table.gamma" in ours.state_dict()
    opt = tg.optim.SGD(ours.parameters(), lr=0.1)
    loss = sum((p * p).sum() for p in ours.parameters())
    loss.backward()
    opt.step()
    with pytest.raises(TypeError, match="Tensors"):
        ours.scales.append(3.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(5,), (2, 3), ()])
def test_bilinear_matches_torch(bias, lead, seed):
    rng = np.random.default_rng(seed)
    ours, theirs = _twins("Bilinear", 3, 4, 6, bias=bias)
    _compare(ours, theirs, rng.standard_normal(lead + (3,)), rng.standard_normal(lead + (4,)), rng=rng)


@pytest.mark.parametrize("layer,shape,message", [
    (lambda: nn.Conv1d(3, 4, 3), (2, 5, 9), r"Conv1d\(in_channels=3\).*\(N, 3, L\)"),
    (lambda: nn.Conv1d(3, 4, 3), (2, 3, 4, 4), r"Conv1d\(in_channels=3\)"),
    (lambda: nn.MaxPool1d(2), (2, 3, 4, 4), r"MaxPool1d.*\(N, C, L\)"),
    (lambda: nn.AdaptiveAvgPool1d(2), (5,), r"AdaptiveAvgPool1d.*\(N, C, L\)"),
    (lambda: nn.GroupNorm(2, 4), (2, 6, 3), r"GroupNorm\(2, 4\).*\(N, 4, \.\.\.\)"),
    (lambda: nn.InstanceNorm2d(3), (2, 4, 5, 5), r"InstanceNorm2d\(3\).*\(N, 3, H, W\)"),
    (lambda: nn.Dropout1d(), (2, 3, 4, 5), r"dropout1d.*2-d or 3-d"),
])
def test_wrong_shapes_name_the_layer(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(tg.randn(*shape))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="divisible"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv1d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Bilinear"):
        nn.Bilinear(3, 4, 5)(tg.randn(2, 3), tg.randn(3, 4))
