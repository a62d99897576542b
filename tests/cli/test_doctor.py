"""``tilegrad doctor`` on this machine and on simulated ones: a module that failed to build or
import, CuPy missing, a driver older than the runtime, a GPU architecture not compiled in."""
import json
import types

import pytest

from tilegrad.cli import doctor
from tilegrad.cli.main import main


def fake_cuda(cc=(9, 0), runtime=13000, driver=13000, archs=("sm_80", "sm_90", "compute_90"), count=1):
    return types.SimpleNamespace(
        compiled_archs=lambda: list(archs), runtime_version=lambda: runtime, driver_version=lambda: driver,
        device_count=lambda: count, device_name=lambda i: "NVIDIA H200", compute_capability=lambda i: cc)


FAKE_CPU = types.SimpleNamespace(isa=lambda: "avx2", num_threads=lambda: 2)


def fake_cupy(devices=1):
    runtime = types.SimpleNamespace(getDeviceCount=lambda: devices, runtimeGetVersion=lambda: 13000,
                                    driverGetVersion=lambda: 13000)
    return types.SimpleNamespace(__version__="13.6.0", cuda=types.SimpleNamespace(runtime=runtime))


@pytest.fixture
def machine(monkeypatch):
    """Simulate a machine: ``machine(**modules)`` where a module is a stand-in object or an
    exception text (the import failed); modules not named import for real."""
    def make(gpu_driver=None, **modules):
        modules.setdefault("cpu", FAKE_CPU)
        real = doctor._import
        names = {"cpu": "tilegrad._cpu", "cuda": "tilegrad._cuda", "cupy": "cupy"}

        def fake_import(name):
            for key, full in names.items():
                if name == full and key in modules:
                    value = modules[key]
                    return (None, value) if isinstance(value, str) else (value, None)
            return real(name)
        monkeypatch.setattr(doctor, "_import", fake_import)
        monkeypatch.setattr(doctor, "_proc_driver", lambda: gpu_driver)
        facts = doctor.collect()
        return facts, doctor.diagnose(facts)
    return make


def problems(findings):
    return [p + " | fix: " + fix for level, p, fix in findings if level == "problem"]


def test_healthy_gpu_machine(machine):
    facts, findings = machine(cuda=fake_cuda(), cupy=fake_cupy(), gpu_driver="NVRM version: 580")
    assert problems(findings) == []
    assert facts["cuda"]["devices"][0]["compute_capability"] == [9, 0]
    text = doctor.render(facts, findings)
    assert "NVIDIA H200, compute capability 9.0" in text and "OK: nothing to fix" in text


def test_cupy_missing_on_a_gpu_machine(machine):
    _, findings = machine(cuda=fake_cuda(), cupy="ModuleNotFoundError: No module named 'cupy'")
    (p,) = problems(findings)
    assert "CuPy is not installed" in p and "pip install 'tilegrad[cuda]'" in p


def test_cuda_module_not_built(machine):
    _, findings = machine(cuda="ModuleNotFoundError: No module named 'tilegrad._cuda'", cupy=fake_cupy(),
                          gpu_driver="NVRM version: 580")
    (p,) = problems(findings)
    assert "no nvcc was found at build time" in p and "TILEGRAD_CUDA=1" in p and "nvidia-cuda-nvcc" in p


def test_cuda_module_absent_without_gpu_is_only_a_note(machine):
    _, findings = machine(cuda="ModuleNotFoundError: No module named 'tilegrad._cuda'",
                          cupy="ModuleNotFoundError: No module named 'cupy'")
    if findings and any("NVIDIA" in p for _, p, _ in findings if "visible" not in p):
        pytest.skip("this machine has an NVIDIA driver")
    assert not [p for p in problems(findings) if "_cuda" in p or "CuPy" in p]


def test_cpu_module_failed_to_import(machine):
    facts, findings = machine(cpu="ImportError: undefined symbol: tg_relu_avx512")
    assert facts["cpu"]["built"] is False
    assert any("tilegrad._cpu does not import" in p and "rebuild" in p for p in problems(findings))
    assert "tilegrad._cpu   no (ImportError: undefined symbol" in doctor.render(facts, findings)


def test_driver_older_than_runtime(machine):
    _, findings = machine(cuda=fake_cuda(runtime=13000, driver=12040), cupy=fake_cupy())
    (p,) = problems(findings)
    assert "driver is older than the runtime" in p and "CUDA 12.4" in p and "CUDA 13.0" in p
    assert "update the NVIDIA driver" in p


def test_gpu_architecture_not_compiled_in(machine):
    _, findings = machine(cuda=fake_cuda(cc=(7, 5)), cupy=fake_cupy())
    (p,) = problems(findings)
    assert "sm_75, which is not compiled into tilegrad._cuda" in p and "CUDA_GENCODE" in p


@pytest.mark.parametrize("cc,runs", [((8, 0), True), ((8, 6), True), ((9, 0), True), ((10, 0), True),
                                     ((7, 5), False), ((8, 9), True)])
def test_arch_rules(cc, runs):
    # sm_80 cubins run on 8.x; compute_90 PTX is compiled by the driver for 9.0 and later
    assert doctor.arch_runs(["sm_80", "sm_90", "compute_90"], cc) is runs
    assert doctor.arch_runs(["sm_90"], (10, 0)) is False


def test_doctor_command_here(capsys):
    status = main(["doctor"])
    out = capsys.readouterr().out
    for section in ("Built", "Found", "Kernels", "Diagnosis"):
        assert f"\n{section}\n" in out
    assert status in (0, 1)
    assert main(["doctor", "--json"]) == status
    facts = json.loads(capsys.readouterr().out)
    assert {"cpu", "cuda", "cupy", "kernels", "diagnosis"} <= set(facts)
    assert facts["kernels"]["cpu"]["fallback"]
    assert status == (1 if any(d["level"] == "problem" for d in facts["diagnosis"]) else 0)
