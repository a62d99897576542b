"""The README's example runs as written and does what its comments say."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    if not README.exists():
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    final_loss, grad_shape = capsys.readouterr().out.split("\n")[:2]
    assert float(final_loss) < 0.05
    assert grad_shape == "(3, 4)"
