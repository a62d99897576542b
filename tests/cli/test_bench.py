"""``tilegrad bench``: runs, writes its documented JSON, and fails loudly on a wrong kernel."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tilegrad
from tilegrad.backends import cpu, reference
from tilegrad.bench.timing import measure
from tilegrad.cli.main import main

TINY = ["bench", "--sizes", "tiny", "--repeats", "1", "-q"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny bench of every case, shared by the tests that only read its results."""
    path = tmp_path_factory.mktemp("bench") / "tiny.json"
    status = main(TINY + ["--devices", "cpu", "--json", str(path)])
    with open(path) as f:
        return status, json.load(f)


def test_tiny_bench_exits_zero(tiny_run):
    status, report = tiny_run
    assert status == 0, [c for c in report["cases"] if c["status"] != "ok"]
    assert report["failed"] == 0


def test_json_has_documented_keys_and_types(tiny_run):
    _, report = tiny_run
    assert report["schema"] == 1
    assert set(report) >= {"schema", "tilegrad", "machine", "settings", "failed", "cases", "command"}
    m = report["machine"]
    assert isinstance(m["cpu"], str) and isinstance(m["cores"], int) and isinstance(m["numpy"], str)
    assert isinstance(m["native_cpu"]["built"], bool)
    assert m["torch"] is None or isinstance(m["torch"], str)
    assert report["settings"]["sizes"] == "tiny" and report["settings"]["devices"] == ["cpu"]
    kinds = {c["kind"] for c in report["cases"]}
    assert kinds == {"kernel", "overhead"}
    for c in report["cases"]:
        assert {"kind", "op", "size", "device", "impl", "kernels", "mode", "status", "error", "time_s", "best_s",
                "number", "ratios"} <= set(c)
        assert c["status"] == "ok" and c["error"] is None
        assert isinstance(c["time_s"], float) and 0 < c["best_s"] <= c["time_s"]
        assert isinstance(c["ratios"], dict)
        if c["kind"] == "kernel":
            assert isinstance(c["flops"], float) and isinstance(c["bytes"], float)
            assert isinstance(c["gflops"], float) and isinstance(c["gbps"], float)
    ops = {c["op"] for c in report["cases"] if c["kind"] == "kernel"}
    assert ops == {"relu", "add", "softmax", "matmul", "sum"}
    tg_rows = [c for c in report["cases"] if c["kind"] == "kernel" and c["impl"] == "tilegrad"]
    assert {c["kernels"] for c in tg_rows} == {"native", "reference"}
    assert all("numpy" in c["ratios"] for c in tg_rows)
    modes = {(c["op"], c["mode"]) for c in report["cases"] if c["kind"] == "overhead" and c["impl"] == "tilegrad"}
    assert modes == {(op, mode) for op in ("add", "mul", "relu") for mode in ("grad", "no_grad")}


def test_flops_come_from_the_op_table(tiny_run):
    _, report = tiny_run
    mm = next(c for c in report["cases"] if c["op"] == "matmul" and c["kind"] == "kernel")
    n = mm["shapes"][0][0]
    assert mm["flops"] == 2 * n ** 3


def test_wrong_kernel_is_reported_failed(monkeypatch, capsys):
    monkeypatch.setitem(cpu.KERNELS, "relu", lambda x: reference.relu(x) + 1)
    status = main(TINY + ["--ops", "relu", "--devices", "cpu"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAILED relu" in out and "tilegrad/native" in out
    # the reference kernels and the peers still pass and are timed
    assert out.count("FAILED") == 2  # the table cell and the failure line


def test_crashing_kernel_is_reported_failed(monkeypatch, tmp_path):
    def broken(a, b):
        raise RuntimeError("kernel exploded")
    monkeypatch.setitem(cpu.KERNELS, "add", broken)
    path = tmp_path / "r.json"
    assert main(TINY + ["--ops", "add", "--json", str(path)]) == 1
    report = json.loads(path.read_text())
    bad = [c for c in report["cases"] if c["status"] != "ok"]
    assert len(bad) == report["failed"] == 1
    assert bad[0]["kernels"] == "native" and bad[0]["time_s"] is None and "kernel exploded" in bad[0]["error"]


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0
    assert "--sizes" in capsys.readouterr().out
    assert main(["bench", "--ops", "nope"]) == 2
    assert main(["bench", "--sizes", "huge"]) == 2


def test_runs_as_a_module():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(tilegrad.__file__)))
    done = subprocess.run([sys.executable, "-m", "tilegrad.cli.main", "--help"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "bench" in done.stdout


def test_measure_reports_seconds_per_call():
    calls = []
    t = measure(lambda: calls.append(np.ones(3).sum()), repeats=3, min_time=1e-4)
    assert t.repeats == 3 and t.number >= 1 and 0 < t.best <= t.median
    assert len(calls) >= 2 + 3 * t.number
