"""Runs a check script once per CPU instruction-set path, each in its own process: the native
module picks its ISA once, at import, from the CPU's flags capped by TILEGRAD_CPU_ISA.

A child script gets argv[1] = the seed and argv[2] = the repository root (so it can import
`tests.native.<module>` for its cases), and prints a JSON line last:
{"isa": ..., "threads": ..., "failures": [...]}.
"""
import json
import os
import subprocess
import sys

import pytest

# (TILEGRAD_CPU_ISA, OMP_NUM_THREADS) pairs: each path single-threaded and with more threads
# than this machine has cores (uneven splits).
CASES = [("generic", "1"), ("generic", "3"), ("avx2", "1"), ("avx2", "3"), ("avx512", "2")]
IDS = [f"{isa}-{threads}t" for isa, threads in CASES]
RANK = {"generic": 0, "avx2": 1, "avx512": 2}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_child(script, seed, env_updates, timeout=600):
    """The JSON result of `script` run with the environment's TILEGRAD_CPU_ISA replaced."""
    env = dict(os.environ)
    env.pop("TILEGRAD_CPU_ISA", None)
    env.update(env_updates)
    proc = subprocess.run([sys.executable, "-c", script, str(seed), ROOT], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_path(script, rng, isa, threads):
    """Runs `script` on one ISA path: skipped where this CPU lacks it, else no failures allowed."""
    result = run_child(script, rng.seed, {"TILEGRAD_CPU_ISA": isa, "OMP_NUM_THREADS": threads})
    if RANK[isa] > RANK[result["isa"]]:
        pytest.skip(f"this CPU cannot run the {isa} path (best: {result['isa']})")
    assert result["isa"] == isa
    assert result["threads"] == int(threads)
    assert result["failures"] == [], f"isa={isa} threads={threads} {rng}"
