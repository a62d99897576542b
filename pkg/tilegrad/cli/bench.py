"""``tilegrad bench``: time kernels and per-op overhead against NumPy, PyTorch and CuPy."""
import argparse
import sys


def _names(text, allowed, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or '(none)'}: "
                                         f"choose from {', '.join(allowed)}")
    return names


def add_parser(commands):
    from tilegrad.bench import ALL_CASES, SIZES
    p = commands.add_parser(
        "bench", help="time kernels and per-op overhead against peers",
        description="Check, then time, tilegrad's kernels (native and reference) through the tensor API "
                    "next to NumPy, PyTorch and CuPy when they are installed, and the per-op Python "
                    "overhead against PyTorch. A wrong result is reported as FAILED and makes the exit "
                    "status 1.")
    p.add_argument("--ops", default=",".join(ALL_CASES), type=lambda s: _names(s, ALL_CASES, "case"),
                   help=f"comma-separated cases (default: all: {','.join(ALL_CASES)})")
    p.add_argument("--sizes", default="quick", choices=list(SIZES),
                   help="size set: tiny (smoke test), quick (default, under a minute), full")
    p.add_argument("--devices", default=None, type=lambda s: _names(s, ("cpu", "cuda"), "device"),
                   help="comma-separated devices (default: cpu, and cuda when a GPU is available)")
    p.add_argument("--repeats", type=int, default=10, help="timed samples per case; the median is reported")
    p.add_argument("--interleave", action="store_true",
                   help="alternate the samples of a case's implementations (steadier under drifting load; "
                        "worse when several thread pools spin on few cores)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (schema in tilegrad.bench)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)
    return p


def _progress(stream):
    tty = stream.isatty()

    def show(i, n, label):
        line = f"bench [{i + 1}/{n}] {label}"
        stream.write("\r" + line.ljust(70) if tty else line + "\n")
        stream.flush()
    return show


def run(args):
    import tilegrad
    from tilegrad import bench
    from tilegrad.bench import report
    if args.repeats < 1:
        print("tilegrad bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    devices = args.devices or bench.available_devices()
    if "cuda" in devices and not tilegrad.cuda.is_available():
        print("tilegrad bench: no usable GPU (tilegrad.cuda.is_available() is False); skipping cuda", file=sys.stderr)
        devices = [d for d in devices if d != "cuda"]
    progress = None if args.quiet else _progress(sys.stderr)
    result = bench.run(cases=args.ops, sizes=args.sizes, devices=devices, repeats=args.repeats, progress=progress,
                       interleave=args.interleave)
    if progress and sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 70 + "\r")
    result["command"] = " ".join(["tilegrad"] + args.argv)
    print(report.text(result))
    if args.json:
        report.write_json(result, args.json)
        print(f"\nwrote {args.json}")
    return 1 if result["failed"] else 0
