"""Build of tilegrad's compiled modules (metadata lives in pyproject.toml).

tilegrad._cpu   always: kernels/cpu/*.cpp + csrc/cpu_module.cpp + csrc/cpu/*.cpp, C++17, -O3, OpenMP.
                No -march flag: AVX2/AVX-512 code is selected at run time.
tilegrad._cuda  when a CUDA compiler is found (TILEGRAD_CUDA=auto|0|1, default auto;
                1 fails loudly without one): kernels/cuda/*.cu are compiled by nvcc into
                objects (register spills are errors), csrc/cuda_module.cpp and csrc/cuda/*.cpp by the host
                C++ compiler, and everything is linked against the static CUDA runtime.

nvcc is searched in CUDA_HOME (or CUDA_PATH), PATH, the pip wheels'
site-packages/nvidia/cu13/bin, then /usr/local/cuda/bin. See docs/build.md.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build import build as _build
from setuptools.command.build_ext import build_ext as _build_ext

ROOT = Path(__file__).resolve().parent

# (virtual architecture, code) pairs: SASS for sm_80 and sm_90, PTX for compute_90
# so newer GPUs JIT-compile it.
CUDA_GENCODE = [("compute_80", "sm_80"), ("compute_90", "sm_90"), ("compute_90", "compute_90")]
# Files built for other targets than CUDA_GENCODE. Hopper's wgmma exists only in sm_90a code
# (compute capability 9.0 exactly); its kernel is launched only on such a device, and an sm_90a
# image alone leaves the loader no other (empty-bodied) image to pick.
CUDA_GENCODE_OVERRIDE = {"matmul_wgmma.cu": [("compute_90a", "sm_90a")]}
# Every code the module embeds, as tilegrad._cuda.compiled_archs() (and `tilegrad doctor`) list it.
CUDA_ARCHS = list(dict.fromkeys([c for _, c in CUDA_GENCODE] +
                                [c for targets in CUDA_GENCODE_OVERRIDE.values() for _, c in targets]))
NVCC_FLAGS = [
    "-O3",
    "--std=c++17",
    "-Xcompiler", "-fPIC",
    "-Xcompiler", "-fvisibility=hidden",
    # Report register spills and make every ptxas warning (spills included) an error.
    "-Xptxas", "-warn-spills",
    "-Xptxas", "--warning-as-error",
]
CUDA_LIBS = ["cudart_static", "dl", "pthread", "rt"]
EXT_NAMES = ("_cpu", "_cuda")


def _sources(pattern):
    return sorted(glob(pattern, root_dir=ROOT))


def _log(msg):
    print(f"tilegrad setup: {msg}", file=sys.stderr, flush=True)


def cuda_mode():
    mode = os.environ.get("TILEGRAD_CUDA", "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        raise SystemExit(f"TILEGRAD_CUDA must be auto, 0 or 1, got {mode!r}")
    return mode


def _site_packages_dirs():
    """site-packages directories where the nvidia-* wheels may live, even when
    pip's isolated build environment hides the target environment from sys.path."""
    dirs = []
    for prefix in (sys.prefix, os.environ.get("VIRTUAL_ENV"), sys.base_prefix):
        if prefix:
            for key in ("purelib", "platlib"):
                dirs.append(sysconfig.get_path(key, vars={"base": prefix, "platbase": prefix}))
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    seen, out = set(), []
    for d in dirs:
        if d and d not in seen and os.path.isdir(d):
            seen.add(d)
            out.append(d)
    return out


def find_nvcc():
    """First nvcc in: CUDA_HOME/CUDA_PATH, PATH, pip wheels, /usr/local/cuda."""
    candidates = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "nvcc"))
    on_path = shutil.which("nvcc")
    if on_path:
        candidates.append(on_path)
    for sp in _site_packages_dirs():
        candidates.append(os.path.join(sp, "nvidia", "cu13", "bin", "nvcc"))
    candidates.append("/usr/local/cuda/bin/nvcc")
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def find_cudart_static(nvcc):
    """Directory holding libcudart_static.a for this nvcc. The toolkit keeps it in
    lib64 or targets/<arch>/lib, the pip wheels in cu13/lib (nvcc's own profile
    points those at a lib64 that does not exist), so look around nvcc's TOP."""
    tops = [Path(nvcc).resolve().parent.parent]
    try:
        # nvcc may be a wrapper script elsewhere; ask it where its toolkit is.
        dry = subprocess.run(
            [nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
            capture_output=True, text=True, timeout=60,
        )
        for line in (dry.stdout + dry.stderr).splitlines():
            m = re.match(r"#\$ TOP=(.*)", line.strip())
            if m:
                tops.insert(0, Path(m.group(1).strip().strip('"')).resolve())
    except (OSError, subprocess.SubprocessError):
        pass
    for top in tops:
        dirs = [top / "lib", top / "lib64"] + sorted(top.glob("targets/*/lib"))
        for d in dirs:
            if (d / "libcudart_static.a").is_file():
                return str(d)
    return None


class build(_build):
    """Start every build from an empty build/lib and build/temp: setuptools reuses
    build/ for in-tree installs, and stale modules or .so files would ship."""

    def run(self):
        for d in (self.build_lib, self.build_temp):
            if d and os.path.isdir(d):
                shutil.rmtree(d)
        super().run()


class build_ext(_build_ext):
    def finalize_options(self):
        super().finalize_options()
        self.force = True  # always recompile; never trust old objects

    def run(self):
        self._remove_stale_outputs()
        mode = cuda_mode()
        keep = []
        for ext in self.extensions:
            if ext.name == "tilegrad._cuda":
                if mode == "0":
                    _log("TILEGRAD_CUDA=0: not building tilegrad._cuda")
                    continue
                if not self._prepare_cuda(ext, mode):
                    continue
            keep.append(ext)
        self.extensions = keep
        super().run()

    def _remove_stale_outputs(self):
        """Delete earlier builds of our extensions where this build writes them
        (build/lib/tilegrad, or pkg/tilegrad for --inplace builds), so a module
        that is not rebuilt this time (e.g. _cuda without nvcc) cannot ship."""
        out_dir = str(ROOT / "pkg" / "tilegrad") if self.inplace else os.path.join(self.build_lib, "tilegrad")
        for name in EXT_NAMES:
            for path in glob(os.path.join(out_dir, name + ".*")):
                if path.endswith((".so", ".pyd")):
                    os.remove(path)

    def _prepare_cuda(self, ext, mode):
        """Compile the .cu files for ext with nvcc and add the objects and the
        static runtime to its link line. False (auto mode) when CUDA is missing."""
        nvcc = find_nvcc()
        if nvcc is None:
            if mode == "1":
                raise SystemExit(
                    "TILEGRAD_CUDA=1 but no nvcc was found (looked in CUDA_HOME, PATH, "
                    "site-packages/nvidia/cu13/bin, /usr/local/cuda/bin). Install the CUDA "
                    "compiler wheels or set CUDA_HOME."
                )
            _log("no nvcc found: building without tilegrad._cuda (TILEGRAD_CUDA=1 makes this an error)")
            return False
        libdir = find_cudart_static(nvcc)
        if libdir is None:
            msg = f"{nvcc} found, but not libcudart_static.a next to it"
            if mode == "1":
                raise SystemExit(f"TILEGRAD_CUDA=1: {msg}")
            _log(f"{msg}: building without tilegrad._cuda")
            return False
        _log(f"nvcc: {nvcc}; static CUDA runtime in {libdir}")
        objects = self._compile_cuda(nvcc, ext)
        ext.extra_objects = list(ext.extra_objects or []) + objects
        ext.library_dirs = list(ext.library_dirs or []) + [libdir]
        ext.libraries = list(ext.libraries or []) + CUDA_LIBS
        return True

    def _compile_cuda(self, nvcc, ext):
        out_dir = Path(self.build_temp) / "cuda"
        out_dir.mkdir(parents=True, exist_ok=True)
        includes = [f"-I{ROOT / d}" for d in ext.include_dirs_cuda]
        jobs = []
        for src in ext.cuda_sources:
            targets = CUDA_GENCODE_OVERRIDE.get(Path(src).name, CUDA_GENCODE)
            gencode = [f"-gencode=arch={a},code={c}" for a, c in targets]
            obj = out_dir / (Path(src).stem + ".o")
            cmd = [nvcc, "-c", str(ROOT / src), "-o", str(obj), *NVCC_FLAGS, *gencode, *includes]
            jobs.append((cmd, str(obj)))

        def run(job):
            cmd, obj = job
            _log(" ".join(cmd))
            proc = subprocess.run(cmd, capture_output=True, text=True)
            return cmd, obj, proc

        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            results = list(pool.map(run, jobs))
        failed = False
        for cmd, _, proc in results:
            output = (proc.stdout + proc.stderr).strip()
            if output:
                print(output, file=sys.stderr)
            if proc.returncode != 0:
                failed = True
                _log(f"nvcc failed ({proc.returncode}): {' '.join(cmd)}")
        if failed:
            raise SystemExit("tilegrad._cuda: CUDA compilation failed (register spills are errors)")
        return [obj for _, obj, _ in results]


def sanitizer_flags():
    """TILEGRAD_SANITIZE=1 builds tilegrad._cpu with AddressSanitizer and UBSan (.ci/sanitize runs
    the tests against that build); any UBSan report aborts, so a clean run means no reports."""
    if os.environ.get("TILEGRAD_SANITIZE", "0").strip() not in ("", "0"):
        return ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
    return []


def extensions():
    import numpy  # the allocator binding uses NumPy's C API (a build requirement)
    include = ["kernels/include", "kernels/cpu", "csrc"]
    sanitize = sanitizer_flags()
    headers = (_sources("kernels/include/*.h") + _sources("kernels/cpu/*.h") + _sources("csrc/*.h")
               + _sources("csrc/*/*.h"))
    cpu = Pybind11Extension(
        "tilegrad._cpu",
        sources=["csrc/cpu_module.cpp"] + _sources("csrc/cpu/*.cpp") + _sources("kernels/cpu/*.cpp"),
        include_dirs=include + [numpy.get_include()],
        depends=headers,
        cxx_std=17,
        extra_compile_args=["-O3", "-fopenmp"] + sanitize,
        extra_link_args=["-fopenmp"] + sanitize,
    )
    cuda = Pybind11Extension(
        "tilegrad._cuda",
        sources=["csrc/cuda_module.cpp"] + _sources("csrc/cuda/*.cpp"),
        include_dirs=["kernels/include", "csrc"],
        depends=headers + _sources("kernels/cuda/*.cu"),
        cxx_std=17,
        define_macros=[("TG_CUDA_ARCHS", " ".join(CUDA_ARCHS))],
        extra_compile_args=["-O3"],
        # Keep the static runtime's symbols private to this module.
        extra_link_args=["-Wl,--exclude-libs,ALL"],
    )
    cuda.cuda_sources = _sources("kernels/cuda/*.cu")
    cuda.include_dirs_cuda = ["kernels/include"]
    return [cpu, cuda]


setup(
    ext_modules=extensions(),
    cmdclass={"build": build, "build_ext": build_ext},
    zip_safe=False,
)
