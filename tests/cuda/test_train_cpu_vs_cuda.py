"""A few training steps of small models on "cuda" give the losses and parameters of the same
steps on "cpu" (float32 tolerance): the CUDA backend, its kernels and the fused optimizer steps
end to end, forward and backward."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad import nn, optim

pytestmark = pytest.mark.cuda

STEPS = 3


class LastStep(nn.Module):
    """LSTM over the sequence, a linear layer on its last output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


# name -> (model factory, input shape); every model maps its input to 3 class scores
MODELS = {
    "mlp": (lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)), (8, 6)),
    "cnn": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(4 * 3 * 3, 3)), (4, 2, 6, 6)),
    "lstm": (LastStep, (4, 5, 5)),
    "transformer": (lambda: nn.Sequential(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                                     batch_first=True),
                                          nn.Flatten(), nn.Linear(5 * 8, 3)), (4, 5, 8)),
}
OPTIMIZERS = {
    # eps well above float32 noise: some gradients are 0 in exact arithmetic (a conv bias before
    # BatchNorm, the attention key bias), and Adam would scale their rounding noise up to lr.
    "adamw": (optim.AdamW, dict(lr=1e-2, weight_decay=0.1, eps=1e-4)),
    "sgd": (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
}


def _train(model, opt_name, x, y, device):
    model.to(device)
    cls, kwargs = OPTIMIZERS[opt_name]
    opt = cls(model.parameters(), **kwargs)
    x, y = tg.tensor(x, device=device), tg.tensor(y, device=device)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.cpu().numpy() for k, v in model.state_dict().items()}


def _twins(name, seed):
    """Two copies of one randomly initialised model, and a batch for it."""
    make, shape = MODELS[name]
    tg.manual_seed(seed)
    cpu_model, gpu_model = make(), make()
    gpu_model.load_state_dict(cpu_model.state_dict())
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 3, shape[0])
    return cpu_model, gpu_model, x, y


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_steps_match_cpu(name, opt_name, seed):
    cpu_model, gpu_model, x, y = _twins(name, seed)
    cpu_losses, cpu_state = _train(cpu_model, opt_name, x, y, "cpu")
    gpu_losses, gpu_state = _train(gpu_model, opt_name, x, y, "cuda")
    assert all(p.device == "cuda:0" for p in gpu_model.parameters())
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4, atol=1e-5, err_msg=f"seed={seed}")
    assert cpu_state.keys() == gpu_state.keys()
    for key in cpu_state:
        np.testing.assert_allclose(gpu_state[key], cpu_state[key], rtol=1e-3, atol=1e-4, err_msg=f"{key} seed={seed}")


@pytest.mark.parametrize("opt_name,kernel", [("adamw", "adamw_step"), ("sgd", "sgd_step")])
def test_cuda_training_uses_the_fused_step(opt_name, kernel, seed, monkeypatch):
    from tilegrad.backends.cuda import _cuda
    if _cuda is None:
        pytest.skip("tilegrad._cuda was not built")
    calls = []
    fused = getattr(_cuda, kernel)
    monkeypatch.setattr(_cuda, kernel, lambda *a, **k: calls.append(1) or fused(*a, **k))
    cpu_model, gpu_model, x, y = _twins("mlp", seed)
    cpu_losses, cpu_state = _train(cpu_model, opt_name, x, y, "cpu")
    gpu_losses, gpu_state = _train(gpu_model, opt_name, x, y, "cuda")
    assert len(calls) == STEPS  # one multi-tensor launch per step for the whole group
    for key in cpu_state:
        np.testing.assert_allclose(gpu_state[key], cpu_state[key], rtol=1e-3, atol=1e-4, err_msg=f"{key} seed={seed}")
