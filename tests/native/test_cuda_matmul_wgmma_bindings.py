"""The `version` argument of tilegrad._cuda.matmul_half (0 automatic, 1 the mma.sync kernel, 2
Hopper's wgmma kernel) on fake CUDA arrays: checked before any CUDA call, so this runs without a
GPU. Arguments that pass every check would launch on the fake pointers, so those calls run only
where no GPU is present (the launch, or the device check for version 2, reports it)."""
import pytest

from .fake_cuda_arrays import cai, call, raises_naming

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

GPU = _cuda is not None and _cuda.is_available()
needs_module = pytest.mark.skipif(_cuda is None, reason="tilegrad._cuda was not built")
no_gpu = pytest.mark.skipif(GPU, reason="a GPU is present: fake pointers must not reach a kernel")

FN = "matmul_half"


def args(m=16, n=24, k=32, trans_a=False, trans_b=False, offset=0):
    """Fake float16 operands; `offset` bytes added to a's (16-byte aligned) address."""
    return {"a": cai((k, m) if trans_a else (m, k), typestr="<f2", ptr=(1 << 30) + offset),
            "b": cai((n, k) if trans_b else (k, n), typestr="<f2", ptr=2 << 30),
            "out": cai((m, n), typestr="<f2", ptr=3 << 30)}


@needs_module
def test_version_values():
    for bad in (-1, 3, 1 << 40):
        with raises_naming(ValueError, FN, "_cuda", "version", "0", "1", "2"):
            call(_cuda, FN, args(), version=bad)
    for bad in (True, 1.0, "2", None):
        with raises_naming(TypeError, FN, "_cuda", "'version'", "int"):
            call(_cuda, FN, args(), version=bad)


@needs_module
def test_wgmma_refuses_shapes_it_does_not_take():
    # K, a transposed's M or b's N not a multiple of 8, or a not 16-byte aligned: the wgmma kernel
    # copies 16-byte chunks. The same arguments are fine for versions 0 and 1 (checked elsewhere).
    for kw in [dict(k=12), dict(m=12, trans_a=True), dict(n=12), dict(k=12, trans_b=True), dict(offset=2)]:
        flags = {f: kw[f] for f in ("trans_a", "trans_b") if f in kw}
        with raises_naming(ValueError, FN, "_cuda", "version=2", "multiples of 8"):
            call(_cuda, FN, args(**kw), version=2, **flags)


@needs_module
@no_gpu
def test_wgmma_needs_an_sm90a_device():
    with raises_naming(RuntimeError, FN, "_cuda", "version=2", "sm_90a"):
        call(_cuda, FN, args(), version=2)


@needs_module
@no_gpu
def test_other_versions_reach_the_launch():
    for version in (0, 1):
        for kw in [{}, dict(k=12, trans_b=True)]:
            with raises_naming(RuntimeError, FN, "_cuda", "CUDA error"):
                call(_cuda, FN, args(**kw), version=version, **{f: kw[f] for f in ("trans_b",) if f in kw})
