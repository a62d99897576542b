"""tilegrad: a deep-learning tensor engine with hand-written kernels and a PyTorch-shaped API.

    import tilegrad as tg
    x = tg.randn(3, 4, requires_grad=True)
    (x @ x.T).relu().sum().backward()
    x.grad.shape  # (3, 4)
"""
from . import autograd, cuda, dtypes, ops  # noqa: F401
from .autograd import (Function, enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,  # noqa: F401
                       no_grad, set_grad_enabled)
from .backends import kernels  # noqa: F401
from .backends.precision import get_float32_matmul_precision, set_float32_matmul_precision  # noqa: F401
from .creation import (arange, empty, empty_like, from_dlpack, from_numpy, full, full_like, linspace, ones,  # noqa: F401
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like)
from .device import Device as device  # noqa: F401
from .dtypes import (bfloat16, bool_ as bool, double, float16, float32, float64, half, int8, int16, int32,  # noqa: F401,A004
                     int64, long, short, uint8)
from .dtypes import DType as dtype  # noqa: F401
from .functional import *  # noqa: F401,F403
from .functional import cat, chunk, split, stack, where  # noqa: F401
from .random import Generator, initial_seed, manual_seed  # noqa: F401
from .tensor import Tensor  # noqa: F401
from . import datasets, linalg, nn, optim, utils  # noqa: F401,E402 - after Tensor: they build on it
from .serialization import load, save  # noqa: F401,E402
from . import memory  # noqa: E402

memory.install()

float = float32  # noqa: A001 - PyTorch's alias
int = int32  # noqa: A001

__version__ = "0.1.0"


def get_default_dtype():
    return dtypes.DEFAULT_FLOAT


def is_tensor(obj):
    return isinstance(obj, Tensor)
