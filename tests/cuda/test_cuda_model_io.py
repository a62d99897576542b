"""Moving tensors and models between "cpu" and "cuda", and saving / loading a CUDA model's
state_dict: values, dtypes and devices survive every round trip."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad import nn

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int64, np.int32, np.bool_])
def test_tensor_to_cuda_and_back_keeps_values_and_dtype(dtype, seed):
    a = (np.random.default_rng(seed).standard_normal((3, 5)) * 4).astype(dtype)
    t = tg.tensor(a)
    g = t.to("cuda")
    assert g.device == "cuda:0" and g.is_cuda and g.dtype == t.dtype
    back = g.cpu()
    assert back.device == "cpu" and back.dtype == t.dtype
    np.testing.assert_array_equal(back.numpy(), a)
    # a non-contiguous view crosses too
    np.testing.assert_array_equal(t.T.cuda().cpu().numpy(), a.T)


def _model():
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 4))


def test_model_to_cuda_and_back_keeps_parameters_and_buffers(seed):
    tg.manual_seed(seed)
    model = _model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.to("cuda")
    assert all(v.device == "cuda:0" for v in model.state_dict().values())
    model.cpu()
    after = model.state_dict()
    assert all(v.device == "cpu" for v in after.values())
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v, err_msg=k)


def test_cuda_model_state_dict_saves_and_loads(tmp_path, seed):
    tg.manual_seed(seed)
    model = _model().cuda()
    x = tg.tensor(np.random.default_rng(seed).standard_normal((2, 2, 4, 4)).astype(np.float32), device="cuda")
    model(x)  # training mode: updates the BatchNorm running statistics
    model.eval()
    expected = model(x).detach().cpu().numpy()
    tg.save(model.state_dict(), tmp_path / "model.tg")

    state = tg.load(tmp_path / "model.tg")
    assert all(v.device == "cuda:0" for v in state.values())
    fresh = _model().cuda()
    fresh.load_state_dict(state)
    fresh.eval()
    np.testing.assert_array_equal(fresh(x).detach().cpu().numpy(), expected)

    on_cpu = _model()
    on_cpu.load_state_dict(tg.load(tmp_path / "model.tg", map_location="cpu"))
    on_cpu.eval()
    assert all(p.device == "cpu" for p in on_cpu.parameters())
    np.testing.assert_allclose(on_cpu(x.cpu()).detach().numpy(), expected, rtol=1e-4, atol=1e-5, err_msg=f"seed={seed}")
