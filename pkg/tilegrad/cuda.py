"""``tilegrad.cuda``: is there a usable NVIDIA GPU, and what is it."""
import functools


@functools.lru_cache(maxsize=None)
def _cupy():
    """CuPy when it imports and sees a GPU; None otherwise. A missing driver, no device or a
    driver older than the runtime all mean "no GPU" rather than an error."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # ImportError, CUDARuntimeError (no device / insufficient driver), ...
        pass
    return None


def is_available():
    """True when a GPU, its driver and CuPy are all usable, so ``.cuda()`` tensors work."""
    return _cupy() is not None


def device_count():
    cp = _cupy()
    return cp.cuda.runtime.getDeviceCount() if cp else 0


def get_device_name(index=0):
    cp = _cupy()
    if cp is None:
        raise RuntimeError("no CUDA GPU is available (tilegrad.cuda.is_available() is False)")
    return cp.cuda.runtime.getDeviceProperties(index)["name"].decode()


def synchronize():
    """Wait for all work queued on the current stream of the current GPU."""
    cp = _cupy()
    if cp is not None:
        cp.cuda.get_current_stream().synchronize()


def manual_seed(seed):
    cp = _cupy()
    if cp is not None:
        cp.random.seed(seed)


def require():
    """CuPy, or a RuntimeError that says why the GPU cannot be used."""
    cp = _cupy()
    if cp is None:
        try:
            import cupy  # noqa: F401
        except ImportError:
            raise RuntimeError("CUDA tensors need CuPy: pip install 'tilegrad[cuda]' (cupy-cuda13x)") from None
        raise RuntimeError("no CUDA GPU is available: CuPy found no device or no driver")
    return cp
