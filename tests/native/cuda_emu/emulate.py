"""Builds tilegrad's CUDA kernels (kernels/cuda/*.cu) as a host shared library that runs them on
the CPU (see cuda_runtime.h here): launches `k<<<grid, block[, smem[, stream]]>>>(args);` become
`emu::launch([&] { k(args); }, grid, block[, smem[, stream]]);` and dynamic shared memory a
per-block heap buffer. Device pointers are host pointers. For tests of kernel logic (indexing,
shared memory, barriers, shuffles) where no GPU exists; numbers match a GPU's up to libm."""
import os
import re
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

_DYN_SMEM = re.compile(r"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;")


def _matching(s, i, open_ch, close_ch, step):
    """Index of the bracket matching s[i] (scanning forward for step 1, backward for -1)."""
    depth = 0
    while True:
        if s[i] == open_ch:
            depth += 1
        elif s[i] == close_ch:
            depth -= 1
        if depth == 0:
            return i
        i += step


def rewrite(src):
    src = _DYN_SMEM.sub(r"\1* \2 = static_cast<\1*>(emu::g_dyn_smem);", src)
    while (i := src.find("<<<")) >= 0:
        j = i - 1
        if src[j] == ">":  # template arguments of the kernel name
            j = _matching(src, j, ">", "<", -1) - 1
        while src[j].isalnum() or src[j] in "_:":
            j -= 1
        name = src[j + 1:i]
        end_cfg = src.index(">>>", i)
        config = src[i + 3:end_cfg]
        open_args = end_cfg + 3
        assert src[open_args] == "(", src[j:open_args + 20]
        close_args = _matching(src, open_args, "(", ")", 1)
        args = src[open_args + 1:close_args]
        src = src[:j + 1] + f"emu::launch([&] {{ {name}({args}); }}, {config})" + src[close_args + 1:]
    return src


def _prepare(sources, out_dir):
    """Rewritten sources and the shim header in out_dir; returns (.cpp paths, compiler flags)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inc = out_dir / "include"
    inc.mkdir(exist_ok=True)
    shutil.copy(HERE / "cuda_runtime.h", inc / "cuda_runtime.h")
    files = []
    for name in sources:
        path = out_dir / (Path(name).stem + ".cpp")
        path.write_text(rewrite((ROOT / "kernels" / "cuda" / name).read_text()))
        files.append(str(path))
    flags = ["-std=c++20", "-O1", "-g", "-pthread", "-fno-strict-aliasing", "-Wno-unknown-pragmas", f"-I{inc}",
             f"-I{ROOT / 'kernels' / 'include'}", f"-I{ROOT / 'kernels' / 'cuda'}"]
    return files, flags


def build(sources, out_dir, sanitize=True):
    """Compiles kernels/cuda/<source> for each name in `sources` into out_dir/libtgemu.so, with
    AddressSanitizer when `sanitize` (load it into a process started with libasan preloaded)."""
    files, flags = _prepare(sources, out_dir)
    lib = Path(out_dir) / "libtgemu.so"
    flags += ["-fPIC", "-shared"] + (["-fsanitize=address"] if sanitize else [])
    subprocess.run(["g++", *flags, *files, "-o", str(lib)], check=True)
    return lib


def build_race_driver(sources, out_dir, driver="race_driver.cpp"):
    """`driver` (a file here: race_driver.cpp, race_driver_conv.cpp) linked with the kernels under
    ThreadSanitizer: out_dir/race_driver. With every __syncthreads and shuffle a barrier, a
    shared-memory access that a missing barrier leaves unordered is reported as a data race."""
    files, flags = _prepare(sources, out_dir)
    exe = Path(out_dir) / "race_driver"
    subprocess.run(["g++", *flags, "-fsanitize=thread", *files, str(HERE / driver), "-o", str(exe)],
                   check=True)
    return exe


def assert_no_races(sources, out_dir, driver, args=(), timeout=1800):
    """Build `driver` with the kernels under ThreadSanitizer (ThreadSanitizer cannot be loaded
    into Python), run it with `args`, and fail on any report; skip where g++ cannot build it."""
    import pytest  # the test helpers are only used under pytest
    try:
        exe = build_race_driver(sources, out_dir, driver)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("g++ cannot build the ThreadSanitizer driver")
    # TSan needs a fixed memory layout: without address-space randomisation where setarch exists.
    cmd = ["setarch", os.uname().machine, "-R", str(exe)] if shutil.which("setarch") else [str(exe)]
    run = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    report = run.stdout + run.stderr
    assert "ThreadSanitizer" not in report, report[-4000:]
    assert run.returncode == 0 and "race driver done, error 0" in report, report[-4000:]
