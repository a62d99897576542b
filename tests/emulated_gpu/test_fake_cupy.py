"""The NumPy-backed CuPy stand-in keeps the CuPy rules the emulated GPU tests rely on to find
device bugs: its arrays are not NumPy arrays, host arrays are refused as operands, results stay
on the device, and __cuda_array_interface__ points at the data."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parent / "fake_cupy" / "cupy"


@pytest.fixture(scope="module")
def cp():
    """The stand-in under its own name, so a real CuPy (on a GPU machine) is left alone."""
    name = "fake_cupy_under_test"
    spec = importlib.util.spec_from_file_location(name, PACKAGE / "__init__.py", submodule_search_locations=[str(PACKAGE)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def test_arrays_are_not_numpy_arrays_and_results_stay_on_the_device(cp, seed):
    h = np.random.default_rng(seed).standard_normal((3, 4)).astype(np.float32)
    a = cp.asarray(h)
    assert not isinstance(a, np.ndarray) and isinstance(a, cp.ndarray) and a.device.id == 0
    for result in (a + 1, np.exp(a), a.T, a.sum(), a[0, 1], cp.matmul(a, a.T), np.concatenate([a, a]), a.reshape(-1)):
        assert isinstance(result, cp.ndarray)
    np.testing.assert_allclose((a * 2 + a.T.T).get(), h * 3, rtol=1e-6)
    assert float(a.sum()) == pytest.approx(float(h.sum()), rel=1e-5)


def test_host_arrays_are_refused_as_operands(cp, seed):
    h = np.random.default_rng(seed).standard_normal(4).astype(np.float32)
    a = cp.asarray(h)
    for op in (lambda: a + h, lambda: h * a, lambda: cp.maximum(a, h), lambda: np.asarray(a),
               lambda: cp.copyto(a, h)):
        with pytest.raises((TypeError, ValueError)):
            op()
    a[:] = h * 2  # item assignment copies host values in, as CuPy does
    np.testing.assert_array_equal(cp.asnumpy(a), h * 2)


def test_asarray_copies_host_data_in_and_get_copies_out(cp, seed):
    h = np.random.default_rng(seed).standard_normal(5).astype(np.float32)
    a = cp.asarray(h)
    h[0] += 1
    out = a.get()
    out[1] += 1
    assert a[0].item() != h[0] and a[1].item() != out[1]


def test_cuda_array_interface_points_at_the_data(cp, seed):
    a = cp.asarray(np.random.default_rng(seed).standard_normal((4, 6)).astype(np.float32))
    cai = a.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (4, 6) and cai["typestr"] == "<f4" and cai["strides"] is None
    assert cai["data"][0] == a.data.ptr
    t = a.T.__cuda_array_interface__
    assert t["strides"] == (4, 24) and t["data"][0] == cai["data"][0]


def test_in_place_operators_and_out_keep_the_array(cp, seed):
    a = cp.asarray(np.random.default_rng(seed).standard_normal(6).astype(np.float32))
    before = a.get()
    b = a
    a += 1
    assert a is b
    np.testing.assert_allclose(a.get(), before + 1, rtol=1e-6)
    out = cp.empty_like(a)
    assert np.multiply(a, 2, out=out) is out and cp.add(a, a, out=out) is out
