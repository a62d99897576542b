"""``tilegrad doctor``: what is built, what is found, which kernels run natively, and what to do
about the common failures.

``collect()`` gathers the facts, each behind its own ``try`` so that a module that failed to build
or import is a fact rather than a crash; ``diagnose(facts)`` is a pure function of those facts
(the tests feed it simulated machines); ``render`` prints both.
"""
import importlib
import json
import os
import shutil
import sys

CUDA_WHEELS = ("nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 "
               "nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85")
REBUILD = "pip install --force-reinstall --no-deps ."


def _import(name):
    """The module, or the text of the exception that importing it raised."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # ImportError, OSError from a missing shared library, ...
        return None, f"{type(exc).__name__}: {exc}"


def _call(fn, *args):
    try:
        return fn(*args), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _version_text(v):
    """13000 -> '13.0', 12040 -> '12.4'; None/0 stay as they are."""
    return f"{v // 1000}.{(v % 1000) // 10}" if v else v


def _proc_driver():
    """The kernel driver's version line when an NVIDIA driver is loaded (works without CuPy)."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip()
    except OSError:
        return None


def _cpu_facts():
    mod, error = _import("tilegrad._cpu")
    facts = {"built": mod is not None, "error": error, "isa": None, "threads": None}
    if mod is not None:
        facts["isa"], _ = _call(mod.isa)
        facts["threads"], _ = _call(mod.num_threads)
    return facts


def _cuda_facts():
    mod, error = _import("tilegrad._cuda")
    facts = {"built": mod is not None, "error": error, "archs": [], "runtime_version": None,
             "driver_version": None, "devices": [], "query_error": None}
    if mod is None:
        return facts
    facts["archs"] = list(_call(mod.compiled_archs)[0] or [])
    facts["runtime_version"], _ = _call(mod.runtime_version)
    facts["driver_version"], _ = _call(mod.driver_version)
    count, facts["query_error"] = _call(mod.device_count)
    for i in range(count or 0):
        name, _ = _call(mod.device_name, i)
        cc, _ = _call(mod.compute_capability, i)
        facts["devices"].append({"index": i, "name": name, "compute_capability": list(cc) if cc else None})
    return facts


def _cupy_facts():
    mod, error = _import("cupy")
    facts = {"installed": mod is not None, "error": error, "version": None, "devices": None,
             "runtime_version": None, "driver_version": None}
    if mod is not None:
        facts["version"] = getattr(mod, "__version__", None)
        facts["devices"], facts["error"] = _call(mod.cuda.runtime.getDeviceCount)
        facts["runtime_version"], _ = _call(mod.cuda.runtime.runtimeGetVersion)
        facts["driver_version"], _ = _call(mod.cuda.runtime.driverGetVersion)
    return facts


def _kernel_facts():
    from tilegrad.backends import native_kernel_names, reference
    names = sorted(reference.KERNELS)
    out = {}
    for device in ("cpu", "cuda"):
        native, error = _call(native_kernel_names, device)
        native = native or []
        out[device] = {"native": native, "fallback": [n for n in names if n not in native], "error": error}
    return out


def collect():
    """Every fact the doctor reports, as plain data (also ``tilegrad doctor --json``)."""
    import tilegrad
    available, _ = _call(tilegrad.cuda.is_available)
    return {
        "python": sys.version.split()[0],
        "tilegrad": tilegrad.__version__,
        "cpu": _cpu_facts(),
        "cuda": _cuda_facts(),
        "cupy": _cupy_facts(),
        "gpu_driver": _proc_driver(),
        "nvidia_smi": shutil.which("nvidia-smi"),
        "nvcc": shutil.which("nvcc"),
        "cuda_tensors": bool(available),
        "kernels": _kernel_facts(),
        "env": {k: os.environ[k] for k in ("TILEGRAD_KERNELS", "TILEGRAD_CUDA", "CUDA_HOME", "OMP_NUM_THREADS")
                if k in os.environ},
    }


def arch_runs(archs, cc):
    """Whether code compiled for ``archs`` (['sm_80', 'compute_90', ...]) runs on a GPU of compute
    capability ``cc`` = (major, minor): a cubin sm_XY runs on the same major with minor >= Y; PTX
    compute_XY is compiled by the driver for any GPU of capability >= XY."""
    have = cc[0] * 10 + cc[1]
    for arch in archs:
        kind, _, num = arch.partition("_")
        if not num.isdigit():
            continue
        n = int(num)
        if kind == "sm" and n // 10 == cc[0] and n % 10 <= cc[1]:
            return True
        if kind == "compute" and n <= have:
            return True
    return False


def _gpu_seen(f):
    return bool(f["cuda"]["devices"] or f["cupy"]["devices"] or f["gpu_driver"] or f["nvidia_smi"])


def diagnose(f):
    """A list of ``(level, problem, fix)``: level "problem" when something installed is broken or
    missing for this machine, "note" when it is only absent (e.g. no GPU here)."""
    found = []
    cpu, cuda, cupy = f["cpu"], f["cuda"], f["cupy"]
    if not cpu["built"]:
        found.append(("problem", f"tilegrad._cpu does not import ({cpu['error']}): every CPU kernel runs on the "
                      "NumPy reference", f"install a C++ compiler (g++ or clang++) and rebuild: {REBUILD}"))
    gpu = _gpu_seen(f)
    if not cuda["built"]:
        missing = cuda["error"] is None or "No module named" in cuda["error"]
        if missing:
            problem = "tilegrad._cuda was not built: no nvcc was found at build time"
            fix = (f"install the CUDA compiler wheels ({CUDA_WHEELS}) or a CUDA toolkit, then rebuild with "
                   f"TILEGRAD_CUDA=1 {REBUILD} (TILEGRAD_CUDA=1 fails loudly when nvcc is missing)")
        else:
            problem = f"tilegrad._cuda was built but does not import ({cuda['error']})"
            fix = f"check the NVIDIA driver install (nvidia-smi), then rebuild with TILEGRAD_CUDA=1 {REBUILD}"
        found.append(("problem" if gpu else "note", problem + ("" if gpu else " (and no GPU is visible here)"), fix))
    drv, rt = cuda["driver_version"], cuda["runtime_version"]
    if cuda["built"] and rt and drv and drv < rt:
        found.append(("problem", f"the NVIDIA driver supports CUDA {_version_text(drv)} but tilegrad._cuda was built "
                      f"with the CUDA {_version_text(rt)} runtime: the driver is older than the runtime",
                      f"update the NVIDIA driver to one supporting CUDA {_version_text(rt)} or newer, or rebuild "
                      f"with a CUDA {_version_text(drv)} compiler"))
    elif cuda["built"] and rt and not drv and gpu:
        found.append(("problem", "tilegrad._cuda is built but the CUDA driver does not answer",
                      "install or load the NVIDIA driver (nvidia-smi should list the GPU)"))
    for dev in cuda["devices"]:
        cc = dev["compute_capability"]
        if cc and cuda["archs"] and not arch_runs(cuda["archs"], cc):
            found.append(("problem", f"GPU {dev['index']} ({dev['name']}) is sm_{cc[0]}{cc[1]}, which is not compiled "
                          f"into tilegrad._cuda (it has {', '.join(cuda['archs'])}): its kernels cannot launch",
                          f"add (\"compute_{cc[0]}{cc[1]}\", \"sm_{cc[0]}{cc[1]}\") to CUDA_GENCODE in setup.py and "
                          f"rebuild with TILEGRAD_CUDA=1 {REBUILD}"))
    if not cupy["installed"]:
        found.append(("problem" if gpu else "note",
                      "CuPy is not installed: tensors cannot live on the GPU (device='cuda' is unavailable)",
                      "pip install 'tilegrad[cuda]' (cupy-cuda13x, matching the CUDA 13 runtime)"))
    elif cupy["error"] and gpu:
        found.append(("problem", f"CuPy is installed but finds no usable GPU ({cupy['error']})",
                      "check that the CuPy wheel matches the driver's CUDA major version (cupy-cuda13x for "
                      "CUDA 13) and that nvidia-smi lists the GPU"))
    if not gpu:
        found.append(("note", "no NVIDIA GPU or driver is visible on this machine", "none needed for CPU use"))
    return found


def _kernels_line(k):
    native = ", ".join(k["native"]) or "none"
    return f"native: {native}; {len(k['fallback'])} others fall back to the reference"


def render(f, findings):
    cpu, cuda, cupy = f["cpu"], f["cuda"], f["cupy"]
    lines = [f"tilegrad {f['tilegrad']} on Python {f['python']}", "", "Built"]
    lines.append(f"  tilegrad._cpu   {'yes: ' + str(cpu['isa']) + ' path chosen at run time, ' + str(cpu['threads']) + ' threads' if cpu['built'] else 'no (' + str(cpu['error']) + ')'}")
    if cuda["built"]:
        lines.append(f"  tilegrad._cuda  yes: archs {', '.join(cuda['archs']) or '?'}; "
                     f"runtime CUDA {_version_text(cuda['runtime_version'])}")
    else:
        lines.append(f"  tilegrad._cuda  no ({cuda['error']})")
    lines += ["", "Found"]
    drv = cuda["driver_version"] or cupy["driver_version"]
    lines.append(f"  driver          {f['gpu_driver'] or 'none loaded'}; supports CUDA {_version_text(drv) or '-'}")
    for dev in cuda["devices"]:
        cc = dev["compute_capability"]
        lines.append(f"  GPU {dev['index']}           {dev['name']}, compute capability "
                     f"{'.'.join(map(str, cc)) if cc else '?'}")
    if not cuda["devices"]:
        lines.append("  GPU             none seen by tilegrad._cuda")
    lines.append(f"  CuPy            {cupy['version'] + ' (' + str(cupy['devices']) + ' devices)' if cupy['installed'] else 'not installed'}")
    lines.append(f"  nvcc on PATH    {f['nvcc'] or 'no'}")
    lines.append(f"  cuda tensors    {'available' if f['cuda_tensors'] else 'unavailable'}")
    lines += ["", "Kernels"]
    lines.append(f"  cpu   {_kernels_line(f['kernels']['cpu'])}")
    cuda_kernels = f["kernels"]["cuda"] if cuda["built"] else {"native": [], "fallback": f["kernels"]["cuda"]["fallback"]}
    lines.append(f"  cuda  {_kernels_line(cuda_kernels)}")
    lines += ["", "Diagnosis"]
    problems = [x for x in findings if x[0] == "problem"]
    if not problems:
        lines.append("  OK: nothing to fix" + (" (CPU only)" if not f["cuda_tensors"] else ""))
    for level, problem, fix in findings:
        lines.append(f"  {level.upper()}: {problem}")
        lines.append(f"    fix: {fix}")
    return "\n".join(lines)


def add_parser(commands):
    p = commands.add_parser("doctor", help="what is built and found, and how to fix common failures",
                            description="Report the native modules (and the ISA / GPU architectures they "
                                        "carry), the GPU, driver, runtime and CuPy found, which kernels run "
                                        "natively, and a diagnosis with fixes. Exit status 1 when a problem is "
                                        "found, 0 otherwise (a machine without a GPU is not a problem).")
    p.add_argument("--json", action="store_true", help="print the facts and the diagnosis as JSON")
    p.set_defaults(run=run)
    return p


def run(args):
    facts = collect()
    findings = diagnose(facts)
    if args.json:
        facts["diagnosis"] = [{"level": lv, "problem": p, "fix": fx} for lv, p, fx in findings]
        print(json.dumps(facts, indent=1))
    else:
        print(render(facts, findings))
    return 1 if any(lv == "problem" for lv, _, _ in findings) else 0
