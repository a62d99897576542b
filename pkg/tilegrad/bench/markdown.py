"""The bench report as a Markdown page (``tilegrad bench --markdown bench/RESULTS.md``).

Everything above the ``KEEP`` marker is regenerated from the run; everything below it (the
reading of the figures, written by a person) is kept from the existing page.
"""
import os
import subprocess

from . import report as text_report

KEEP = "<!-- Written by hand below this line: `tilegrad bench --markdown` keeps it. -->"

METHOD = """\
Produced by `tilegrad bench` itself. Every case is first checked against a float64 NumPy answer
(a wrong result is reported FAILED, with no number, and the run exits non-zero), then timed:
warm-up, then the median of {repeats} samples of at least 2 ms of back-to-back calls (device events
on a GPU), each call on the next of up to 16 copies of the inputs so that a call does not read
what the previous one left in the cache. `vs numpy` / `vs torch` is tilegrad's time over the
peer's time **in the same run**: below 1 means tilegrad is faster. `%peak` is the throughput over
the roofline built from the peaks the run measured itself. The JSON schema is documented in
`pkg/tilegrad/bench/__init__.py`."""


def _git(*args):
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version(outputs=()):
    """``commit abc1234`` (plus a note when tracked files other than this run's ``outputs`` have
    uncommitted changes), or None."""
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 *(f":(exclude){os.path.abspath(p)}" for p in outputs if p))
    return f"commit {head}" + (" with uncommitted changes in the working tree" if dirty else "")


def _link(path, page):
    return os.path.relpath(path, os.path.dirname(os.path.abspath(page)) or ".")


def render(report, page_path, json_path=None, plot_path=None, kept=""):
    s = report["settings"]
    m = report["machine"]
    sizes = s["sizes"] if isinstance(s["sizes"], str) else ",".join(map(str, s["sizes"]))
    gpu = m["cuda"]["name"] if m.get("cuda") else "no GPU"
    native = m["native_cpu"]
    isa = f"`tilegrad._cpu` built, {native.get('isa')} path chosen at run time" if native.get("built") \
        else "`tilegrad._cpu` not built"
    env = "".join(f"{k}={v} " for k, v in m.get("env", {}).items())
    load = f" Load average at the start: {m['loadavg'][0]:.2f}." if m.get("loadavg") else ""
    lines = ["# Bench results", "", METHOD.format(repeats=s["repeats"]), "",
             f"## {' + '.join({'cpu': 'CPU', 'cuda': 'GPU'}[d] for d in s['devices'])}, {sizes} sizes (latest)",
             "", f"- Date: {report.get('date', '?')}. Code: {code_version((page_path, json_path, plot_path)) or 'unknown'}; {isa}.",
             f"- Machine: {m['cpu']}, {m['usable_cores']} cores, {gpu}; Python {m['python']}, NumPy {m['numpy']}, "
             f"PyTorch {m['torch'] or 'absent'} (a bench-only peer)." + load,
             "- Command, from the repository root:", "", "```", env + report.get("command", "tilegrad bench"), "```", ""]
    extra = []
    if json_path:
        extra.append(f"JSON: [{_link(json_path, page_path)}]({_link(json_path, page_path)})")
    if report.get("duration_s") is not None:
        extra.append(f"the checked and timed steps took {report['duration_s']:.0f} s")
    if extra:
        lines += ["- " + "; ".join(extra) + ".", ""]
    if plot_path:
        lines += [f"![throughput against size]({_link(plot_path, page_path)})", ""]
    lines += ["```", text_report.text(report), "```", "", KEEP]
    return "\n".join(lines) + "\n" + kept


def write(report, path, json_path=None, plot_path=None):
    kept = "\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if KEEP in old:
            kept = old.split(KEEP, 1)[1]
    with open(path, "w") as f:
        f.write(render(report, path, json_path, plot_path, kept))
