"""``tilegrad bench``: time kernels and per-op overhead against NumPy, PyTorch and CuPy."""
import argparse
import os
import sys
import time

DTYPES = ("float32", "float64", "float16")


def _names(text, allowed, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or '(none)'}: "
                                         f"choose from {', '.join(allowed)}")
    return names


def _ops(text, allowed):
    """Bench case names, or op-table names of benched ops (``MatMul`` for ``matmul``)."""
    from tilegrad.bench import SPECS
    by_table = {spec.table.lower(): name for name, spec in SPECS.items()}
    # a case's own name wins over an op-table name that aliases another case (conv2d vs conv2d_grad)
    names = [n if n in SPECS else by_table.get(n, n) for n in (m.strip().lower() for m in text.split(",")) if n]
    return _names(",".join(names), allowed, "case")


def _sizes(text):
    from tilegrad.bench import SIZES
    if text in SIZES:
        return text
    try:
        sizes = [int(float(n)) for n in text.split(",") if n.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: expected one of {', '.join(SIZES)} or positive "
                                         "integers N,N,... (elements; the side of the matrices for matmul)")
    return sorted(sizes)


def add_parser(commands):
    from tilegrad.bench import ALL_CASES, PEERS, SIZES
    p = commands.add_parser(
        "bench", help="time kernels and per-op overhead against peers",
        description="Check, then time, tilegrad's kernels (native and reference) through the tensor API "
                    "next to NumPy, PyTorch and CuPy when they are installed, on the CPU and the GPU, with "
                    "the machine's measured peaks (roofline), the GPU/CPU speedup and crossover, and the "
                    "per-op Python overhead against PyTorch. A wrong result is reported as FAILED, with no "
                    "time, and makes the exit status 1.")
    p.add_argument("--ops", default=",".join(ALL_CASES), type=lambda s: _ops(s, ALL_CASES),
                   help=f"comma-separated cases (default: all: {','.join(ALL_CASES)})")
    p.add_argument("--sizes", default="quick", type=_sizes,
                   help=f"size set: {', '.join(SIZES)} (quick is the default, under a minute on 2 cores), or "
                        "N,N,...: elements (rows of 1024 for softmax), the side of square matrices for matmul")
    p.add_argument("--devices", default=None, type=lambda s: _names(s, ("cpu", "cuda"), "device"),
                   help="comma-separated devices (default: cpu, and cuda when a GPU is available)")
    p.add_argument("--dtype", default=["float32"], type=lambda s: _names(s, DTYPES, "dtype"),
                   help=f"comma-separated dtypes of the kernel cases (default float32; from {','.join(DTYPES)})")
    p.add_argument("--peers", default=list(PEERS), type=lambda s: _names(s, PEERS, "peer"),
                   help=f"comma-separated peers to time when installed (default: {','.join(PEERS)})")
    p.add_argument("--repeats", type=int, default=10, help="timed samples per case; the median is reported")
    p.add_argument("--interleave", action="store_true",
                   help="alternate the samples of a case's implementations (steadier under drifting load; "
                        "worse when several thread pools spin on few cores)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (schema in tilegrad.bench)")
    p.add_argument("--plot", metavar="FILE.png", help="also plot throughput against size (needs matplotlib)")
    p.add_argument("--markdown", metavar="FILE.md",
                   help="also write the report as a Markdown page (bench/RESULTS.md), keeping the hand-written "
                        "part of an existing page")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)
    return p


class ProgressBar:
    """``[#####.....] 12/40 matmul 1024x1024x1024 float32 cpu``: redrawn in place on a
    terminal, one line per step otherwise (logs)."""

    WIDTH = 24

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, i, n, label):
        done = int(self.WIDTH * i / max(n, 1))
        bar = "#" * done + "." * (self.WIDTH - done)
        line = f"[{bar}] {i + 1}/{n} {time.perf_counter() - self.start:4.0f}s {label}"
        self.stream.write("\r" + line[:100].ljust(100) if self.tty else line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _need_matplotlib():
    from tilegrad.bench import plot
    try:
        plot.require()
    except ImportError as exc:
        print(f"tilegrad bench: {exc}", file=sys.stderr)
        return False
    return True


def run(args):
    import tilegrad
    from tilegrad import bench
    from tilegrad.bench import report
    if args.repeats < 1:
        print("tilegrad bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    if args.plot and not _need_matplotlib():  # before the run, not after a minute of timing
        return 2
    devices = args.devices or bench.available_devices()
    if "cuda" in devices and not tilegrad.cuda.is_available():
        print("tilegrad bench: no usable GPU (tilegrad.cuda.is_available() is False; see `tilegrad doctor`); "
              "skipping cuda", file=sys.stderr)
        devices = [d for d in devices if d != "cuda"]
    if "cpu" in devices and "torch" in args.peers and "OMP_WAIT_POLICY" not in os.environ:
        # Two OpenMP runtimes (PyTorch's and tilegrad's) in one process: threads that one of them
        # leaves spinning after a parallel region take cores from the other's next region.
        print("tilegrad bench: note: OMP_WAIT_POLICY is not set; with PyTorch as a CPU peer, "
              "OMP_WAIT_POLICY=passive keeps each library's idle threads from slowing the other "
              "(bench/RESULTS.md, 'Reading it')", file=sys.stderr)
    progress = None if args.quiet else ProgressBar(sys.stderr)
    result = bench.run(cases=args.ops, sizes=args.sizes, devices=devices, dtypes=args.dtype, peers=args.peers,
                       repeats=args.repeats, progress=progress, interleave=args.interleave)
    if progress:
        progress.close()
    result["command"] = " ".join(["tilegrad"] + args.argv)
    print(report.text(result))
    if args.json:
        report.write_json(result, args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        from tilegrad.bench import plot
        plot.write_png(result, args.plot)
        print(f"wrote {args.plot}")
    if args.markdown:
        from tilegrad.bench import markdown
        markdown.write(result, args.markdown, json_path=args.json, plot_path=args.plot)
        print(f"wrote {args.markdown}")
    return 1 if result["failed"] else 0
