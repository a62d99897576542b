"""The bundled examples: the digits and GAN examples reach their targets with their defaults (they
take seconds); the character models' loss falls in a short run here, and their full runs, which
take a minute or two each, are marked slow (``pytest -m slow``)."""
import numpy as np
import pytest

import tilegrad
from tilegrad.cli.main import main
from tilegrad.examples import NAMES, get, runner


def quiet(*_):
    pass


@pytest.mark.parametrize("name", ["mlp", "cnn", "autoencoder", "gan"])
def test_example_reaches_its_target(name, tmp_path):
    result = runner.run(name, checkpoint=str(tmp_path / "ck.safetensors"), say=quiet, stream=open("/dev/null", "w"))
    assert result["target_met"], result


@pytest.mark.parametrize("name", ["lstm", "gru", "transformer"])
def test_character_model_loss_falls(name, monkeypatch, tmp_path):
    cls = get(name)
    monkeypatch.setattr(cls, "steps_per_epoch", 12)
    experiment = cls("cpu", 0)
    with tilegrad.no_grad():
        before = experiment.evaluate()["val_loss"]
    assert before == pytest.approx(np.log(len(experiment.vocab)), rel=0.15)  # an untrained model is near uniform
    result = runner.run(name, epochs=2, checkpoint=str(tmp_path / "ck.safetensors"), say=quiet,
                        stream=open("/dev/null", "w"))
    assert result["val_loss"] < before - 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "gru", "transformer"])
def test_character_model_reaches_its_target(name, tmp_path):
    result = runner.run(name, checkpoint=str(tmp_path / "ck.safetensors"), say=quiet, stream=open("/dev/null", "w"))
    assert result["target_met"], result


def test_resume_continues_exactly(tmp_path):
    path = str(tmp_path / "mlp.safetensors")
    runner.run("mlp", epochs=2, checkpoint=path, say=quiet, stream=open("/dev/null", "w"))
    resumed = runner.run("mlp", epochs=4, resume=True, checkpoint=path, say=quiet, stream=open("/dev/null", "w"))
    straight = runner.run("mlp", epochs=4, checkpoint=str(tmp_path / "other.safetensors"), say=quiet,
                          stream=open("/dev/null", "w"))
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert resumed["test_loss"] == pytest.approx(straight["test_loss"], rel=1e-6)


def test_train_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(get("gan"), "steps_per_epoch", 20)
    path = tmp_path / "gan.safetensors"
    assert main(["train", "gan", "--epochs", "1", "--checkpoint", str(path)]) == 0
    out = capsys.readouterr()
    assert path.exists() and "gan 1/1" in out.err and "modes_covered" in out.out
    assert tilegrad.load(str(path))["epoch"] == 1
    assert main(["train", "gan", "--resume", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["train", "nope"]) == 2


def test_every_example_is_registered():
    for name in NAMES:
        cls = get(name)
        assert cls.target is not None and cls.default_epochs > 0
