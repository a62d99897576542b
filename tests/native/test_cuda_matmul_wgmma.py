"""tilegrad._cuda.matmul_half with version=2, Hopper's wgmma kernel (kernels/cuda/matmul_wgmma.cu),
on a compute capability 9.0 GPU (H100 / H200): CuPy float16 arrays (bfloat16 as uint16 bits)
against float64 products of the same 16-bit values on ragged shapes the kernel takes (every
transpose, batched, bias and ReLU), an 8192^3 product against CuPy's float32 one, and version 0
choosing it. Other GPUs: version=2 must refuse with a clear error. The kernel on the CPU:
test_cuda_emulated_matmul_wgmma.py."""
import pytest

from .test_cuda_matmul16 import DTYPES, TRANS, _cuda, check_large, cp  # noqa: F401 (cp: the fixture)
from .test_cuda_matmul16 import check as check_16

MULT8 = [(8, 8, 8), (24, 136, 40), (136, 24, 72), (128, 256, 64), (264, 304, 328), (1032, 72, 16), (256, 512, 512)]


@pytest.fixture
def hopper(cp):
    if cp.cuda.Device().compute_capability != "90":
        pytest.skip("wgmma needs compute capability 9.0")
    return cp


def check(cp, rng, batch, m, n, k, dtype, trans_a=False, trans_b=False, bias=False, act="none", version=2):
    check_16(cp, rng, batch, m, n, k, dtype, trans_a, trans_b, bias=bias, act=act, version=version)


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
@pytest.mark.parametrize("shape", MULT8, ids=["x".join(map(str, s)) for s in MULT8])
def test_ragged_shapes(hopper, rng, shape, trans_a, trans_b, dtype):
    check(hopper, rng, None, *shape, dtype, trans_a, trans_b)


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_batched_bias_relu(hopper, rng, trans_a, trans_b, dtype):
    for act in ("none", "relu"):
        check(hopper, rng, 3, 72, 136, 48, dtype, trans_a, trans_b, bias=True, act=act)


@pytest.mark.cuda
@DTYPES
def test_automatic_choice(hopper, rng, dtype):
    check(hopper, rng, None, 264, 304, 328, dtype, version=0)       # mma.sync until wgmma is the default
    check(hopper, rng, None, 40, 24, 13, dtype, trans_b=True, version=0)  # the mma.sync guarded loads


@pytest.mark.cuda
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@DTYPES
def test_large_aligned(hopper, rng, trans_a, trans_b, dtype):
    check_large(hopper, rng, trans_a, trans_b, dtype, version=2)


@pytest.mark.cuda
def test_refused_off_hopper(cp):
    if cp.cuda.Device().compute_capability == "90":
        pytest.skip("this GPU runs wgmma")
    a = cp.zeros((16, 16), cp.float16)
    with pytest.raises(RuntimeError, match="sm_90a"):
        _cuda.matmul_half(a, a, cp.empty_like(a), version=2)
