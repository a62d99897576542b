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

TINY = ["bench", "--sizes", "tiny", "--repeats", "1", "-q", "--ops", "relu,add,softmax,matmul,sum,overhead"]  # models: test_bench_models.py


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_peaks):
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
    assert report["schema"] == 2
    assert set(report) >= {"schema", "tilegrad", "date", "duration_s", "machine", "settings", "peaks", "failed",
                           "cases", "crossover", "command"}
    m = report["machine"]
    assert isinstance(m["cpu"], str) and isinstance(m["cores"], int) and isinstance(m["numpy"], str)
    assert isinstance(m["native_cpu"]["built"], bool)
    assert m["torch"] is None or isinstance(m["torch"], str)
    assert report["settings"]["sizes"] == "tiny" and report["settings"]["devices"] == ["cpu"]
    assert report["settings"]["dtypes"] == ["float32"] and set(report["settings"]["peers"]) == {"numpy", "torch", "cupy"}
    peak = report["peaks"]["cpu"]
    assert peak["gflops"]["float32"] > 0 and peak["gbps"] > 0 and isinstance(peak["method"]["compute"], str)
    assert report["crossover"] == []  # one device: nothing to cross over
    kinds = {c["kind"] for c in report["cases"]}
    assert kinds == {"kernel", "overhead"}
    for c in report["cases"]:
        assert {"kind", "op", "size", "dtype", "device", "impl", "kernels", "mode", "status", "error", "time_s",
                "best_s", "number", "ratios"} <= set(c)
        assert c["status"] == "ok" and c["error"] is None
        assert isinstance(c["time_s"], float) and 0 < c["best_s"] <= c["time_s"]
        assert isinstance(c["ratios"], dict)
        if c["kind"] == "kernel":
            assert isinstance(c["flops"], float) and isinstance(c["bytes"], float)
            assert isinstance(c["gflops"], float) and isinstance(c["gbps"], float)
            assert c["bound"] in ("memory", "compute") and 0 < c["pct_peak"]
            assert c["intensity"] == c["flops"] / c["bytes"] and 1 <= c["rotate"] <= 16
            assert c["cache_resident"] is True  # tiny sizes
            assert c["speedup_vs_cpu"] is None  # CPU rows
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


def test_bound_labels_follow_intensity(tiny_run):
    # The label compares each case's flops/byte with the ridge point of the peaks measured in the
    # same run (peak GFLOP/s over peak GB/s); the peaks themselves depend on the machine's load.
    _, report = tiny_run
    peak = report["peaks"]["cpu"]
    rows = [c for c in report["cases"] if c["kind"] == "kernel" and c["impl"] == "tilegrad"]
    assert {c["op"] for c in rows} >= {"relu", "matmul"}
    for c in rows:
        ridge = peak["gflops"][c["dtype"]] / peak["gbps"]
        assert c["bound"] == ("compute" if c["intensity"] >= ridge else "memory"), c
    relu = next(c for c in rows if c["op"] == "relu")
    assert relu["intensity"] == pytest.approx(1 / 8)  # one flop per 4-byte read and 4-byte write


def test_attention_cases_check_forward_and_gradients(monkeypatch, tmp_path, small_peaks):
    path = tmp_path / "r.json"
    ops = "attention,attention_causal,attention_grad,attention_causal_grad"
    assert main(TINY + ["--ops", ops, "--devices", "cpu", "--peers", "numpy", "--json", str(path)]) == 0
    cases = {(c["op"], c["kernels"]): c for c in json.loads(path.read_text())["cases"]}
    assert {op for op, _ in cases} == set(ops.split(","))
    assert all(c["status"] == "ok" for c in cases.values())
    assert cases[("attention_grad", "native")]["flops"] > 3 * cases[("attention", "native")]["flops"]
    assert cases[("attention_causal", "native")]["flops"] < cases[("attention", "native")]["flops"]
    # a wrong gradient fails the forward + backward case only
    def off_by_one_percent(*args):
        return tuple(g * 1.01 for g in reference.KERNELS["sdpa_backward"](*args))
    monkeypatch.setitem(cpu.KERNELS, "sdpa_backward", off_by_one_percent)
    assert main(TINY + ["--ops", ops, "--devices", "cpu", "--peers", "numpy", "--json", str(path)]) == 1
    failed = {(c["op"], c["kernels"]) for c in json.loads(path.read_text())["cases"] if c["status"] != "ok"}
    assert failed == {("attention_grad", "native"), ("attention_causal_grad", "native")}


def test_wrong_kernel_is_reported_failed(monkeypatch, capsys, small_peaks):
    monkeypatch.setitem(cpu.KERNELS, "relu", lambda x: reference.relu(x) + 1)
    status = main(TINY + ["--ops", "relu", "--devices", "cpu"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAILED relu" in out and "tilegrad/native" in out
    # the reference kernels and the peers still pass and are timed
    assert out.count("FAILED") == 2  # the table cell and the failure line


def test_crashing_kernel_is_reported_failed(monkeypatch, tmp_path, small_peaks):
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
    assert main(["bench", "--sizes", "0"]) == 2
    assert main(["bench", "--dtype", "int3"]) == 2
    assert main(["bench", "--peers", "jax"]) == 2


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


def test_sizes_dtypes_and_peers_options(tmp_path, small_peaks):
    path = tmp_path / "r.json"
    argv = ["bench", "--ops", "MatMul,add", "--sizes", "24,8", "--dtype", "float64,float32", "--peers", "numpy",
            "--repeats", "1", "-q", "--devices", "cpu", "--json", str(path)]
    assert main(argv) == 0
    report = json.loads(path.read_text())
    assert report["settings"]["sizes"] == [8, 24] and report["settings"]["dtypes"] == ["float64", "float32"]
    kernel = [c for c in report["cases"] if c["kind"] == "kernel"]
    assert {c["impl"] for c in kernel} == {"tilegrad", "numpy"}
    assert {(c["op"], c["size"], c["dtype"]) for c in kernel} == {
        (op, size, dt) for op, sizes in (("matmul", ("8x8x8", "24x24x24")), ("add", ("8", "24")))
        for size in sizes for dt in ("float32", "float64")}
    assert set(report["peaks"]["cpu"]["gflops"]) == {"float32", "float64"}


def test_plot_writes_a_png(tmp_path, small_peaks):
    pytest.importorskip("matplotlib")
    png = tmp_path / "r.png"
    assert main(TINY + ["--ops", "relu,matmul", "--devices", "cpu", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert main(TINY + ["--ops", "relu", "--plot", "x.png"]) == 2
    assert "pip install 'tilegrad[plot]'" in capsys.readouterr().err


def test_markdown_page_keeps_the_hand_written_part(tmp_path, small_peaks):
    from tilegrad.bench.markdown import KEEP
    page = tmp_path / "RESULTS.md"
    page.write_text(f"# old figures\n{KEEP}\n## Reading it\nhand-written notes\n")
    assert main(TINY + ["--ops", "relu", "--devices", "cpu", "--markdown", str(page)]) == 0
    text = page.read_text()
    assert "old figures" not in text and text.count(KEEP) == 1
    assert text.endswith("## Reading it\nhand-written notes\n")
    assert "Produced by `tilegrad bench` itself" in text and "relu" in text and "peak cpu" in text


def test_cuda_request_without_a_gpu_skips_cuda(capsys, small_peaks):
    if tilegrad.cuda.is_available():
        pytest.skip("a GPU is here")
    assert main(TINY + ["--ops", "relu", "--devices", "cpu,cuda"]) == 0
    assert "skipping cuda" in capsys.readouterr().err


@pytest.mark.cuda
def test_gpu_bench_has_speedup_and_crossover(tmp_path, small_peaks):
    path = tmp_path / "gpu.json"
    assert main(["bench", "--ops", "relu,matmul", "--sizes", "4096,65536", "--repeats", "2", "-q",
                 "--devices", "cpu,cuda", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["peaks"]["cuda"]["gbps"] > 0 and report["peaks"]["cuda"]["gflops"]["float32"] > 0
    gpu = [c for c in report["cases"] if c["kind"] == "kernel" and c["device"] == "cuda" and c["impl"] == "tilegrad"]
    assert gpu and all(c["speedup_vs_cpu"] > 0 for c in gpu)
    assert {c["op"] for c in report["crossover"]} == {"relu", "matmul"}
    assert all(s["transfer_s"] > 0 for c in report["crossover"] for s in c["sizes"])


def test_pooling_and_loss_cases_run_checked(small_peaks):
    """The pooling cases (a size is a shape and a window) and the cross-entropy step (integer
    targets, its own forward-and-backward cost) are checked against the float64 answer and timed."""
    from tilegrad import ops
    from tilegrad.bench import SIZES
    report = tilegrad.bench.run(cases=("max_pool2d", "avg_pool2d", "cross_entropy"), sizes="tiny", devices=["cpu"],
                                peers=("numpy",), repeats=1, min_time=1e-4)
    assert report["failed"] == 0, [c["error"] for c in report["cases"] if c["status"] != "ok"]
    rows = {(c["op"], c["kernels"]): c for c in report["cases"] if c["impl"] == "tilegrad"}
    assert {op for op, _ in rows} == {"max_pool2d", "avg_pool2d", "cross_entropy"}
    from tilegrad.backends import cpu
    if cpu._cpu is not None:  # without the compiled module the "native" rows run the reference
        assert all(c["native_kernel"] for (op, kernels), c in rows.items() if kernels == "native")
    (shape, (k, s, p)), = SIZES["tiny"]["max_pool2d"]
    assert rows[("max_pool2d", "native")]["size"] == f"{'x'.join(map(str, shape))} k{k}s{s}p{p}"
    x = np.zeros(shape, np.float32)
    assert rows[("max_pool2d", "native")]["flops"] == ops.OPS["MaxPool2d"].cost(x, (k, k)).flops
    (rows_, classes), = SIZES["tiny"]["cross_entropy"]
    forward = ops.OPS["CrossEntropy"].cost(np.zeros((rows_, classes), np.float32), np.zeros(rows_, np.int64))
    assert rows[("cross_entropy", "native")]["flops"] == 2 * forward.flops  # forward and backward
    assert rows[("cross_entropy", "native")]["shapes"] == [[rows_, classes], [rows_]]


@pytest.mark.parametrize("policy", [None, "passive"])
def test_notes_openmp_wait_policy_with_torch_peer(monkeypatch, capsys, small_peaks, policy):
    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    assert main(["bench", "--sizes", "tiny", "--repeats", "1", "-q", "--ops", "relu", "--devices", "cpu",
                 "--peers", "torch"]) == 0
    assert ("OMP_WAIT_POLICY=passive" in capsys.readouterr().err) is (policy is None)
