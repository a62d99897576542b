import pytest

from tilegrad.bench import peaks


@pytest.fixture(scope="session")
def small_peaks():
    """Make the bench's peak probes small (a 256^3 GEMM, a 4 MiB copy): the tests check what is
    reported, not the machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(peaks, "CPU_GEMM_N", 256)
        mp.setattr(peaks, "CPU_COPY_BYTES", 4 << 20)
        yield
