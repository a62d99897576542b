"""Bad input gets a clear Python exception, never a crash."""
import numpy as np
import pytest

import tilegrad as tg
from tilegrad.device import Device
from tilegrad.tensor import Tensor


def test_shape_mismatch_names_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"Add.*\(3, 4\).*\(5,\)"):
        tg.ones(3, 4) + tg.ones(5)
    with pytest.raises(ValueError, match=r"MatMul.*\(3, 4\).*\(5, 2\)"):
        tg.ones(3, 4) @ tg.ones(5, 2)
    with pytest.raises(ValueError, match="MatMul"):
        tg.ones(3) @ tg.ones(4)
    with pytest.raises(ValueError, match="cat"):
        tg.cat([tg.ones(2, 3), tg.ones(2, 4)], 0)
    with pytest.raises(ValueError, match=r"Reshape.*\(2, 3\)"):
        tg.ones(2, 3).reshape(4, 2)


def test_unsupported_dtype_is_a_type_error():
    with pytest.raises(TypeError):
        tg.tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError):
        tg.tensor(["a", "b"])
    with pytest.raises(TypeError):
        tg.from_numpy(np.zeros(2, dtype=np.complex64))
    with pytest.raises(TypeError):
        tg.zeros(2, dtype="complex128")
    with pytest.raises(TypeError):
        tg.ones(2) + "x"


def test_tensors_on_different_devices_name_both():
    cpu = tg.ones(3)
    fake_gpu = Tensor(np.ones(3, dtype=np.float32), Device("cuda", 0))  # never computed on
    with pytest.raises(RuntimeError, match=r"cpu.*cuda:0"):
        cpu + fake_gpu


def test_backward_of_non_scalar_without_gradient():
    with pytest.raises(RuntimeError, match="scalar"):
        (tg.ones(3, requires_grad=True) * 2).backward()


def test_backward_of_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.ones(3).sum().backward()


def test_bad_sizes_and_dims():
    with pytest.raises(ValueError):
        tg.zeros(-1)
    with pytest.raises(IndexError):
        tg.ones(2, 3).sum(dim=2)
    with pytest.raises(IndexError):
        tg.ones(2, 3).softmax(5)
    with pytest.raises(ValueError):
        tg.ones(2, 3).permute(0, 0)
    with pytest.raises(RuntimeError):
        tg.ones(0).max()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.ones(2))
    with pytest.raises(RuntimeError, match="elements"):
        tg.ones(2).item()


def test_numpy_of_tensor_requiring_grad():
    with pytest.raises(RuntimeError, match="detach"):
        tg.ones(2, requires_grad=True).numpy()


def test_cuda_without_gpu_is_a_clear_error():
    if tg.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CuPy|GPU"):
        tg.ones(2).cuda()
    with pytest.raises(RuntimeError, match="CuPy|GPU"):
        tg.zeros(2, device="cuda")


def test_bad_device_and_kernel_choice_strings():
    with pytest.raises(ValueError):
        tg.device("tpu")
    with pytest.raises(ValueError):
        with tg.kernels("fastest"):
            pass
