"""``cupy.cuda.runtime`` of the NumPy-backed CuPy stand-in: one device of compute capability 9.0."""


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():  # noqa: N802 - CuPy's names
    return 1


def getDevice():  # noqa: N802
    return 0


def setDevice(device):  # noqa: N802
    if device != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


def getDeviceProperties(device):  # noqa: N802
    if device != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {"name": b"tilegrad CPU emulation", "major": 9, "minor": 0, "totalGlobalMem": 80 << 30,
            "multiProcessorCount": 132, "sharedMemPerBlock": 48 << 10, "sharedMemPerBlockOptin": 227 << 10,
            "warpSize": 32, "maxThreadsPerBlock": 1024, "clockRate": 1980000, "memoryClockRate": 2619000,
            "memoryBusWidth": 5120, "l2CacheSize": 50 << 20}


def runtimeGetVersion():  # noqa: N802
    return 13000


def driverGetVersion():  # noqa: N802
    return 13000


def deviceSynchronize():  # noqa: N802
    pass
