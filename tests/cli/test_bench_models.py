"""Model cases of the bench: one training step per model, checked against the reference kernels
(and a PyTorch twin) before it is timed."""
import pytest

from tilegrad.backends import cpu, reference
from tilegrad.bench import models


def run_case(name, peers=("numpy",)):
    return models._case(name, "cpu", peers, repeats=2, min_time=1e-4)()


@pytest.mark.parametrize("name", ["mlp", "gan"])
def test_example_step_is_checked_then_timed(name):
    (rec,) = run_case(name)
    assert rec["kind"] == "model" and rec["status"] == "ok", rec
    assert rec["time_s"] > 0 and rec["samples_per_s"] == pytest.approx(int(rec["size"].split()[1]) / rec["time_s"])


def test_twin_matches_pytorch_first_loss():
    pytest.importorskip("torch")
    ours, theirs = run_case("mlp784", peers=("torch",))
    assert ours["status"] == theirs["status"] == "ok", (ours, theirs)
    assert ours["ratios"]["torch"] == pytest.approx(ours["time_s"] / theirs["time_s"])


def test_wrong_native_kernel_fails_the_model_case(monkeypatch):
    # (the mlp's Linear + ReLU pairs run as the fused linear kernel)
    monkeypatch.setitem(cpu.KERNELS, "linear", lambda x, w, b, act: reference.linear(x, w, b, act) * 1.5)
    (rec,) = run_case("mlp")
    assert rec["status"] == "FAILED" and "reference" in rec["error"] and rec["time_s"] is None


def test_every_example_and_twin_is_planned():
    labels = [label for label, _ in models.plan(["cpu"], ("numpy",), 1, 1e-4)]
    assert len(labels) == len(models.names()) == 9
