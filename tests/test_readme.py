"""The README's examples run as written and do what their comments say."""
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def blocks():
    if not README.exists():
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    found = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(found) >= 2, "the README should have its tensor and training examples"
    return found


def test_readme_tensor_example(capsys):
    exec(compile(blocks()[0], "README.md", "exec"), {})
    final_loss, grad_shape = capsys.readouterr().out.split("\n")[:2]
    assert float(final_loss) < 0.05
    assert grad_shape == "(3, 4)"


def test_readme_training_example(capsys, tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)  # it saves a checkpoint in the working directory
    try:
        exec(compile(blocks()[1], "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    accuracy = float(capsys.readouterr().out.split()[-1])
    assert accuracy >= 0.95
    assert (tmp_path / "digits.safetensors").exists()
