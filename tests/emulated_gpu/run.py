"""Runs tilegrad's GPU tests (`@pytest.mark.cuda`) on the CPU: the ``cuda`` device, the CUDA
backend and the real tilegrad._cuda bindings, with

- ``cupy`` the NumPy-backed stand-in in fake_cupy/ (arrays that are not np.ndarray, so tilegrad
  treats them as GPU arrays), and
- ``tilegrad._cuda`` built from csrc/cuda + kernels/cuda/*.cu by g++ against the CUDA emulation
  of tests/native/cuda_emu (build_module.py; cached, the first build takes several minutes).

    PYTHONPATH=pkg python tests/emulated_gpu/run.py              # the default GPU test files
    PYTHONPATH=pkg python tests/emulated_gpu/run.py tests/cuda -x  # chosen files / pytest options
    PYTHONPATH=pkg python tests/emulated_gpu/run.py --sample 2      # the first 2 cases of each test

On two cores tests/cuda takes ~10 minutes and the op parity on the cuda backends (3104 cases)
~3; tests/native has ~1700 kernel cases of tens of seconds to minutes each (every CUDA thread an
OS thread), hours in all. ``--sample N`` keeps the first N parametrizations of every test function
(the rest deselected): the Python, binding and integration paths every case shares. The kernels'
logic itself is covered at small sizes by tests/native/test_cuda_emulated*.py.

Every CUDA thread is an OS thread, so tests with large shapes are far too slow: SKIP below lists
the ones deselected and why. What the emulation cannot check: timing, asynchrony and stream
races (every launch completes before it returns), the memory pool, more than one device, and the
real hardware (tensor-core numerics, register and shared-memory limits); see fake_cupy/cupy.
"""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

DEFAULT_TARGETS = [
    "tests/cuda",
    "tests/native",
    "tests/ops/test_parity.py",
    "tests/nn/test_module.py",
    "tests/test_serialization.py",
]

# Tests skipped under the emulation: node id prefix -> why.
SKIP = {
    # attention on 70x90 and longer rows: minutes per case emulated (the kernels run at small
    # sizes in tests/native/test_cuda_emulated_attention*.py)
    "tests/native/test_cuda_attention.py::test_attention_masks": "2x70x90 attention: minutes per case",
    "tests/native/test_cuda_attention.py::test_rows_with_no_key": "minutes per case",
    "tests/native/test_cuda_attention.py::test_sharp_softmax_and_long_rows": "long rows: minutes per case",
    "tests/native/test_cuda_kernels.py::test_softmax_grid_stride_and_default_stream": "a grid past its stride: many minutes",
    "tests/native/test_cuda_conv.py::test_split_weight_gradient_is_used_and_deterministic": "large conv: many minutes",
}


class _Selection:
    """Marks the SKIP tests skipped, with their reason in the report; with a sample size, keeps
    only the first `sample` cases of each test function."""

    def __init__(self, sample=None):
        self.sample = sample

    def pytest_collection_modifyitems(self, config, items):
        import pytest
        if self.sample:
            seen, keep, drop = {}, [], []
            for item in items:
                key = item.nodeid.split("[")[0]
                seen[key] = seen.get(key, 0) + 1
                (keep if seen[key] <= self.sample else drop).append(item)
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
        for item in items:
            for prefix, why in SKIP.items():
                if item.nodeid.startswith(prefix):
                    item.add_marker(pytest.mark.skip(reason=f"emulated GPU: {why}"))


def install():
    """Put the fake CuPy first on sys.path and the emulated module in sys.modules as
    tilegrad._cuda; call before tilegrad is imported."""
    if "tilegrad" in sys.modules:
        raise RuntimeError("install() must run before tilegrad is imported")
    sys.path.insert(0, str(HERE / "fake_cupy"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "fake_cupy")] + os.environ.get("PYTHONPATH", "").split(os.pathsep))
    sys.path.insert(0, str(HERE))
    from build_module import build
    lib = build()
    spec = importlib.util.spec_from_file_location("tilegrad._cuda", lib)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["tilegrad._cuda"] = module
    return module


def main(argv):
    sample = None
    if "--sample" in argv:
        i = argv.index("--sample")
        sample = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    install()
    import pytest
    # test paths given (a file, folder or node id): those; otherwise the default targets
    given = any((ROOT / a.split("::")[0]).exists() for a in argv if not a.startswith("-"))
    args = argv if given else DEFAULT_TARGETS + argv
    os.chdir(ROOT)
    return pytest.main(["-p", "no:cacheprovider", "-m", "cuda", *args], plugins=[_Selection(sample)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
