"""``tilegrad parity``: errors against the float64 reference for every op of the table, and a
non-zero exit naming the op when a kernel is wrong."""
import json

import numpy as np
import pytest

from tilegrad import ops
from tilegrad.backends import cpu, reference
from tilegrad.cli import parity
from tilegrad.cli.main import main
from tilegrad.ops.base import Op, Sample


def test_passing_ops_exit_zero(capsys, tmp_path):
    path = tmp_path / "p.json"
    assert main(["parity", "--ops", "Relu,MatMul,Sum", "--seed", "3", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0 failed; seed 3" in out and "MatMul" in out
    report = json.loads(path.read_text())
    assert report["seed"] == 3 and report["failed"] == 0
    keys = {(c["op"], c["backend"], c["dtype"], c["direction"]) for c in report["checks"]}
    assert ("MatMul", "cpu", "float32", "backward") in keys and ("Relu", "reference", "float64", "forward") in keys
    for c in report["checks"]:
        assert {"max_abs", "max_rel", "max_ulp", "worst", "seed", "status", "samples", "bad"} <= set(c)
        assert c["status"] == "ok" and isinstance(c["max_ulp"], float)
    mm = next(c for c in report["checks"] if c["op"] == "MatMul" and c["dtype"] == "float32"
              and c["direction"] == "forward")
    assert 0 < mm["max_abs"] < 1e-4 and mm["worst"]["index"] is not None


def test_wrong_kernel_exits_nonzero_and_names_the_op(monkeypatch, capsys):
    monkeypatch.setitem(cpu.KERNELS, "relu", lambda x: reference.relu(x) * 1.01)
    assert main(["parity", "--ops", "Relu,Abs", "--seed", "5", "-q"]) == 1
    out = capsys.readouterr().out
    assert "FAILED Relu forward float32 on cpu" in out and "--seed 5" in out
    assert "FAILED Abs" not in out and "FAILED Relu forward float32 on reference" not in out


def test_new_ops_in_the_table_are_checked(monkeypatch):
    class Twice(Op):
        samples = staticmethod(lambda rng: [Sample((rng.standard_normal((3, 4)),), lambda x: Twice.apply(x), "(3, 4)")])

        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, gy):
            return gy * 2

    monkeypatch.setitem(ops.OPS, "Twice", Twice)
    report = parity.run_parity(seed=0, backend_names=["reference"])
    assert {c["dtype"] for c in report["checks"] if c["op"] == "Twice"} == {"float32", "float64"}
    assert all(c["status"] == "ok" for c in report["checks"] if c["op"] == "Twice")


def test_compare_measures_abs_rel_ulp_and_worst_index():
    e = np.array([[1.0, 2.0], [0.0, 4.0]])
    a = np.array([[1.0, 2.0], [0.0, 4.0]], np.float32)
    a[1, 1] = np.nextafter(np.float32(4), np.float32(5))  # one float32 ULP above 4
    found = parity.compare(a, e, "float32")
    assert found["bad"] == 0 and found["worst_index"] == [1, 1]
    assert found["max_ulp"] == pytest.approx(1.0) and found["max_abs"] == pytest.approx(2 ** -21)
    assert found["max_rel"] == pytest.approx(2 ** -23)
    bad = parity.compare(a + 1, e, "float32")
    assert bad["bad"] == 4 and bad["max_abs"] == pytest.approx(1.0, abs=1e-6)
    assert parity.compare(np.zeros(3), e, "float32")["error"].startswith("shape")
    ints = parity.compare(np.array([1, 2, 4]), np.array([1, 2, 3]), "float32")
    assert ints["bad"] == 1 and ints["worst_index"] == [2]


def test_usage_errors():
    assert main(["parity", "--ops", "NoSuchOp"]) == 2
    assert main(["parity", "--dtype", "float8"]) == 2
