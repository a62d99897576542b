"""Builds tilegrad._cuda for the CPU emulation: the real bindings (csrc/cuda_module.cpp,
csrc/cuda/*.cpp) linked with every kernels/cuda/*.cu compiled by g++ against the stand-in
cuda_runtime.h of tests/native/cuda_emu (a std::thread per CUDA thread; see emulate.py).

The module is cached under $TILEGRAD_EMU_CACHE (default: <tmp>/tilegrad-emugpu/<hash>), keyed by a
hash of every source and header that goes into it, so only the first run pays the few minutes
of compiling (two jobs at a time).

    python tests/emulated_gpu/build_module.py     # builds (if needed) and prints the module path
"""
import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "native"))
from cuda_emu import emulate  # noqa: E402

# The archs setup.py embeds (tilegrad._cuda.compiled_archs(), checked by `tilegrad doctor`).
ARCHS = "sm_80 sm_90 compute_90 sm_90a"
JOBS = 2


def _inputs():
    kernels = sorted((ROOT / "kernels" / "cuda").glob("*.cu"))
    files = kernels + sorted((ROOT / "kernels" / "cuda").glob("*.cuh")) + sorted((ROOT / "kernels" / "include").glob("*.h"))
    files += [ROOT / "csrc" / "cuda_module.cpp"] + sorted((ROOT / "csrc").glob("*.h")) + sorted((ROOT / "csrc" / "cuda").glob("*"))
    files += [emulate.HERE / "cuda_runtime.h", Path(emulate.__file__), Path(__file__)]
    return kernels, files


def _key(files):
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def _cache_root():
    return Path(os.environ.get("TILEGRAD_EMU_CACHE") or Path(tempfile.gettempdir()) / "tilegrad-emugpu")


def _run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"emulated tilegrad._cuda: compile failed:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}")


def build(verbose=True):
    """Path of the emulated tilegrad._cuda shared library, built if not cached."""
    kernels, files = _inputs()
    out_dir = _cache_root() / _key(files)
    lib = out_dir / ("_cuda" + sysconfig.get_config_var("EXT_SUFFIX"))
    if lib.exists():
        return lib
    if verbose:
        print(f"building the emulated tilegrad._cuda in {out_dir} (a few minutes, cached)", file=sys.stderr, flush=True)
    import pybind11
    _cache_root().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=_cache_root()))
    cpp, kflags = emulate._prepare([k.name for k in kernels], work / "kernels")
    kflags = [f for f in kflags if f != "-g"] + ["-fPIC", "-fvisibility=hidden"]
    bflags = ["-std=c++17", "-O1", "-fPIC", "-fvisibility=hidden", "-pthread", f"-I{ROOT / 'kernels' / 'include'}",
              f"-I{ROOT / 'csrc'}", f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}",
              f"-DTG_CUDA_ARCHS={ARCHS}"]
    bindings = [ROOT / "csrc" / "cuda_module.cpp"] + sorted((ROOT / "csrc" / "cuda").glob("*.cpp"))
    jobs = [(src, kflags) for src in cpp] + [(str(src), bflags) for src in bindings]

    def compile_one(job):
        src, flags = job
        obj = work / (Path(src).stem + ("_bind" if src.endswith(".cpp") and "csrc" in src else "") + ".o")
        _run(["g++", *flags, "-c", src, "-o", str(obj)])
        return str(obj)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        objects = list(pool.map(compile_one, jobs))
    tmp_lib = work / lib.name
    _run(["g++", "-shared", "-pthread", *objects, "-o", str(tmp_lib)])
    out_dir.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_lib, lib)  # atomic: a concurrent build just replaces it with the same thing
    return lib


if __name__ == "__main__":
    print(build())
