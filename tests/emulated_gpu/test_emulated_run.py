"""The emulated GPU run (run.py) end to end on a few GPU test files: builds tilegrad._cuda for the
emulation (cached; minutes the first time) and runs their cuda-marked tests on the CPU."""
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow


def test_gpu_tests_pass_on_the_emulated_gpu():
    proc = subprocess.run([sys.executable, str(HERE / "run.py"), "tests/cuda/test_cuda.py", "tests/cuda/test_cuda_model_io.py",
                           "tests/test_serialization.py", "-q"], capture_output=True, text=True, cwd=HERE.parents[1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]
