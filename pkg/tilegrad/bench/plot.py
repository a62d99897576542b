"""The bench report as a PNG: one panel per op, throughput against size, one line per device,
implementation and dtype, with the device's measured peak as a dashed line. Compute-bound ops
are drawn in GFLOP/s, memory-bound ones in GB/s.

matplotlib is optional (``pip install 'tilegrad[plot]'``) and imported only here.
"""
import math

STYLE = {"tilegrad": "-", "numpy": ":", "torch": "--", "cupy": "-."}


def require():
    """matplotlib with a file-only backend, or ImportError saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'tilegrad[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _metric(records):
    """"gflops" when most timed rows of the op are compute-bound, else "gbps"."""
    bounds = [r.get("bound") for r in records if r.get("bound")]
    return "gflops" if bounds and bounds.count("compute") * 2 > len(bounds) else "gbps"


def _series(records):
    """{line label: [(size index, value)]} and the op's sizes in run order."""
    sizes = []
    for r in records:
        if r["size"] not in sizes:
            sizes.append(r["size"])
    metric = _metric(records)
    lines = {}
    for r in records:
        if r.get(metric) is None:
            continue
        impl = r["impl"] + (f" {r['kernels']}" if r["kernels"] else "")
        label = (r["device"], impl, r["dtype"])
        lines.setdefault(label, []).append((sizes.index(r["size"]), r[metric]))
    return sizes, metric, lines


def write_png(report, path):
    plt = require()
    records = [r for r in report["cases"] if r["kind"] == "kernel"]
    ops = []
    for r in records:
        if r["op"] not in ops:
            ops.append(r["op"])
    if not ops:
        raise ValueError("no kernel cases in the report: nothing to plot")
    cols = min(3, len(ops))
    rows = math.ceil(len(ops) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    colors = {}
    for ax, op in zip(axes.flat, ops):
        sizes, metric, lines = _series([r for r in records if r["op"] == op])
        for (device, impl, dtype), points in lines.items():
            color = colors.setdefault((device, impl.split()[0], impl), f"C{len(colors) % 10}")
            xs, ys = zip(*points)
            ax.plot(xs, ys, STYLE.get(impl.split()[0], "-"), marker="o" if device == "cpu" else "s",
                    color=color, label=f"{device} {impl} {dtype}")
        for device, peak in report.get("peaks", {}).items():
            dtypes = {d for (dev, _, d) in lines if dev == device}
            values = [peak["gbps"]] if metric == "gbps" else [peak["gflops"][d] for d in dtypes if d in peak["gflops"]]
            for v in values:
                ax.axhline(v, color="grey", linestyle="--", linewidth=0.8)
                ax.annotate(f"{device} peak", (0, v), fontsize=7, color="grey", va="bottom")
        ax.set_title(f"{op} ({'compute' if metric == 'gflops' else 'memory'}-bound)")
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels(sizes, fontsize=8, rotation=15)
        ax.set_yscale("log")
        ax.set_ylabel("GFLOP/s" if metric == "gflops" else "GB/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(ops):]:
        ax.set_visible(False)
    m = report["machine"]
    gpu = f", GPU {m['cuda']['name']}" if m.get("cuda") else ""
    fig.suptitle(f"tilegrad bench: {m['cpu']}, {m['usable_cores']} cores{gpu}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
