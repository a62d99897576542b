"""Model cases: one training step (forward, loss, backward, optimizer step) of a whole model.

Two kinds: every bundled example (``tilegrad train NAME``) on its own data and batch, and two
fixed models with PyTorch twins built from the same initial weights and data, so their steps/s
compare directly: an MLP 784-512-512-10 at batch 128 and a small CNN on 28x28 inputs at batch 64.

Checked before timed: the first step's loss with the native kernels must match the reference
kernels' (and PyTorch's, for the twins) within float32 tolerance, else the case is FAILED.
"""
import math

import numpy as np

import tilegrad
from tilegrad import examples, nn, optim
from tilegrad.nn import functional as F

from .peers import optional_torch
from .timing import measure

RTOL = 1e-4
TWINS = ("mlp784", "cnn28")


def _example_step(name, device, choice):
    """(step, samples per step) for example ``name``, built and first run under ``choice``."""
    with tilegrad.kernels(choice):
        experiment = examples.get(name)(device, 0)
        tilegrad.manual_seed(1)
        batch = next(iter(experiment.train_batches()))
        experiment.model.train()
    first = True

    def step():
        nonlocal first
        with tilegrad.kernels(choice):
            if first:  # the checked step: identical randomness (dropout) for every kernel choice
                tilegrad.manual_seed(2)
                first = False
            loss, samples, _ = experiment.train_step(batch)
        return loss
    samples = len(batch[0]) if name != "gan" else experiment.batch
    return step, samples


def _twin_arrays(name):
    """Initial weights (PyTorch's default init, drawn once with NumPy) and one batch of data."""
    rng = np.random.default_rng(0)

    def linear(i, o):
        bound = 1 / math.sqrt(i)
        return [rng.uniform(-bound, bound, (o, i)).astype(np.float32), rng.uniform(-bound, bound, o).astype(np.float32)]

    def conv(i, o, k):
        bound = 1 / math.sqrt(i * k * k)
        return [rng.uniform(-bound, bound, (o, i, k, k)).astype(np.float32), rng.uniform(-bound, bound, o).astype(np.float32)]
    if name == "mlp784":
        weights = linear(784, 512) + linear(512, 512) + linear(512, 10)
        x = rng.standard_normal((128, 784)).astype(np.float32)
    else:
        weights = conv(1, 16, 3) + conv(16, 32, 3) + linear(32 * 5 * 5, 10)
        x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    return weights, x, y


def _twin_layers(nn_module, name):
    if name == "mlp784":
        return [nn_module.Linear(784, 512), nn_module.ReLU(), nn_module.Linear(512, 512), nn_module.ReLU(),
                nn_module.Linear(512, 10)]
    return [nn_module.Conv2d(1, 16, 3), nn_module.ReLU(), nn_module.MaxPool2d(2), nn_module.Conv2d(16, 32, 3),
            nn_module.ReLU(), nn_module.MaxPool2d(2), nn_module.Flatten(), nn_module.Linear(32 * 5 * 5, 10)]


def _twin_step(name, device, choice):
    weights, x, y = _twin_arrays(name)
    model = nn.Sequential(*_twin_layers(nn, name)).to(device)
    with tilegrad.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(tilegrad.tensor(w, device=device))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = tilegrad.tensor(x, device=device), tilegrad.tensor(y, device=device)

    def step():
        with tilegrad.kernels(choice):
            loss = F.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
    return step, len(x)


def _torch_twin_step(torch, name, device):
    weights, x, y = _twin_arrays(name)
    model = torch.nn.Sequential(*_twin_layers(torch.nn, name)).to(device)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(torch.from_numpy(w))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step, len(x)


def names():
    return examples.NAMES + TWINS


def _record(name, device, impl, kernels, samples):
    return {"kind": "model", "op": name, "size": f"batch {samples}", "dtype": "float32", "device": device,
            "impl": impl, "kernels": kernels, "mode": None, "ratios": {}}


def _case(name, device, peers, repeats, min_time):
    def run():
        build = _twin_step if name in TWINS else _example_step
        sync = tilegrad.cuda.synchronize if device == "cuda" else None
        records = []
        try:
            reference_step, samples = build(name, device, "reference")
            expected = reference_step()
            step, samples = build(name, device, "native")
            loss = step()
            error = None if abs(loss - expected) <= RTOL * max(1.0, abs(expected)) else \
                f"first-step loss {loss!r} with the native kernels, {expected!r} with the reference"
        except Exception as exc:  # a crash is a failed case, like a wrong loss
            step, samples, error = None, 0, f"{type(exc).__name__}: {exc}"
        rec = _record(name, device, "tilegrad", "native", samples)
        records.append(rec)
        if error:
            rec.update(status="FAILED", error=error, time_s=None, samples_per_s=None)
            return records
        timing = measure(step, repeats=repeats, sync=sync, min_time=min_time)
        rec.update(status="ok", error=None, time_s=timing.median, best_s=timing.best, number=timing.number,
                   samples_per_s=samples / timing.median, first_loss=loss)
        torch = optional_torch() if "torch" in peers and name in TWINS else None
        if torch is not None:
            peer = _record(name, device, "torch", None, samples)
            torch_step, _ = _torch_twin_step(torch, name, device)
            theirs = torch_step()
            if abs(theirs - loss) > RTOL * max(1.0, abs(loss)):
                peer.update(status="FAILED", error=f"first-step loss {theirs!r} vs tilegrad's {loss!r}: the twins "
                                                   "differ", time_s=None, samples_per_s=None)
            else:
                torch_sync = torch.cuda.synchronize if device == "cuda" else None
                t = measure(torch_step, repeats=repeats, sync=torch_sync, min_time=min_time)
                peer.update(status="ok", error=None, time_s=t.median, best_s=t.best, number=t.number,
                            samples_per_s=samples / t.median)
                rec["ratios"]["torch"] = rec["time_s"] / t.median
            records.append(peer)
        return records
    return run


def plan(devices, peers, repeats, min_time):
    """Steps (label, thunk) timing every model case on every device."""
    return [(f"model {name} {device}", _case(name, device, peers, repeats, min_time))
            for name in names() for device in devices]
