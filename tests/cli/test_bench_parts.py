"""The bench's parts that need no timing run: roofline labels, ratios, crossover, rotation and
the device-event clock (with stand-in events, so the GPU code path runs without a GPU)."""
import pytest

from tilegrad.bench import roofline, runner, timing


def _rec(op, size, device, impl, kernels, t, flops=1e6, nbytes=1e6, dtype="float32"):
    return {"kind": "kernel", "op": op, "size": size, "dtype": dtype, "device": device, "impl": impl,
            "kernels": kernels, "time_s": t, "flops": flops, "bytes": nbytes,
            "gflops": flops / t / 1e9 if t else None}


PEAKS = {"cpu": {"gflops": {"float32": 100.0}, "gbps": 10.0}, "cuda": {"gflops": {"float32": 1e4}, "gbps": 1e3}}


def test_roofline_bound_and_percent_of_peak():
    low = _rec("add", "1M", "cpu", "tilegrad", "native", 1e-3, flops=1e6, nbytes=12e6)   # 0.083 flop/byte
    high = _rec("matmul", "1024", "cpu", "tilegrad", "native", 0.04, flops=2e9, nbytes=12e6)  # 167 flop/byte
    failed = _rec("add", "1M", "cpu", "numpy", None, None)
    roofline.add_roofline([low, high, failed], PEAKS)
    assert low["bound"] == "memory" and high["bound"] == "compute"  # balance point: 10 flop/byte
    assert low["pct_peak"] == pytest.approx(100 * 1.0 / (1e6 / 12e6 * 10.0))
    assert high["pct_peak"] == pytest.approx(100 * 50.0 / 100.0)
    assert failed["pct_peak"] is None and failed["bound"] == "memory"


def test_roofline_without_compute_peak_uses_bandwidth():
    r = _rec("relu", "1M", "cpu", "tilegrad", "native", 1e-3, dtype="float16")
    roofline.add_roofline([r], PEAKS)
    assert r["bound"] == "memory" and r["pct_peak"] == pytest.approx(100 * 1.0 / 10.0)


def test_ratios_and_gpu_speedup():
    rows = [_rec("relu", "1M", "cpu", "tilegrad", "native", 4e-3), _rec("relu", "1M", "cpu", "numpy", None, 2e-3),
            _rec("relu", "1M", "cuda", "tilegrad", "native", 1e-4), _rec("relu", "1M", "cuda", "cupy", None, 2e-4)]
    roofline.add_ratios(rows)
    assert rows[0]["ratios"] == {"numpy": 2.0} and rows[0]["speedup_vs_cpu"] is None
    assert rows[2]["ratios"] == {"cupy": 0.5} and rows[2]["speedup_vs_cpu"] == pytest.approx(40.0)
    assert rows[3]["speedup_vs_cpu"] == pytest.approx(10.0)  # against NumPy


def test_crossover_counts_the_transfer():
    rows = []
    for size, cpu, gpu in (("1K", 1e-6, 5e-6), ("64K", 5e-5, 6e-6), ("4M", 4e-3, 2e-5)):
        rows += [_rec("relu", size, "cpu", "tilegrad", "native", cpu), _rec("relu", size, "cuda", "tilegrad", "native", gpu)]
    transfers = {("relu", "1K", "float32"): 2e-5, ("relu", "64K", "float32"): 1e-4, ("relu", "4M", "float32"): 3e-3}
    (c,) = roofline.crossover(rows, transfers)
    assert c["op"] == "relu" and c["size_without_transfer"] == "64K" and c["size"] == "4M"
    assert [s["size"] for s in c["sizes"]] == ["1K", "64K", "4M"]
    assert c["sizes"][2]["gpu_total_s"] == pytest.approx(3.02e-3)


def test_rotation_spans_twice_the_cache(monkeypatch):
    monkeypatch.setattr(runner, "cache_bytes", lambda device: 32 << 20)
    assert runner.rotate_count(1 << 30, "cpu") == 1
    assert runner.rotate_count(16 << 20, "cpu") == 4
    assert runner.rotate_count(1000, "cpu") == runner.MAX_ROTATE
    seen = []
    call = runner._rotating([lambda i=i: seen.append(i) for i in range(3)])
    for _ in range(7):
        call()
    assert seen == [0, 1, 2, 0, 1, 2, 0]


class FakeEvent:
    """Stands in for cupy.cuda.Event / torch.cuda.Event: a device clock that runs 10 ms per call."""
    now = 0.0
    log = []

    def record(self):
        self.t = FakeEvent.now
        FakeEvent.log.append("record")

    def synchronize(self):
        FakeEvent.log.append("event-sync")

    def elapsed_time(self, other):  # milliseconds, as torch's
        return (other.t - self.t) * 1e3


def test_event_clock_reads_device_time_not_host_time():
    syncs = []

    def fn():
        FakeEvent.now += 0.01
    clock = timing.cuda_event_clock(FakeEvent, lambda: syncs.append(1))
    t = timing.measure(fn, repeats=3, min_time=0.05, clock=clock)
    assert t.median == pytest.approx(0.01) and t.number == 8  # 8 calls = 80 ms >= 50 ms of device time
    assert syncs and "event-sync" in FakeEvent.log
