"""The bench report as text tables and as JSON."""
import json

from .overhead import GOAL


def _time(seconds):
    if seconds is None:
        return "FAILED"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _num(x, fmt="{:.3g}"):
    return "-" if x is None else fmt.format(x)


def _ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def _table(header, rows):
    widths = [max(len(str(v)) for v in col) for col in zip(header, *rows)]
    line = lambda vals: "  ".join(str(v).ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _kernels_label(r):
    if r["impl"] != "tilegrad":
        return "-"
    if r["kernels"] == "native" and not r.get("native_kernel", True):
        return "native*"
    return r["kernels"]


def _pct(x):
    return "-" if x is None else f"{x:.0f}%"


def kernel_table(report):
    records = [r for r in report["cases"] if r["kind"] == "kernel"]
    if not records:
        return ""
    peers = sorted({r["impl"] for r in records if r["impl"] != "tilegrad"}, key=["numpy", "torch", "cupy"].index)
    gpu = any(r["device"] == "cuda" for r in records)
    dtypes = len({r["dtype"] for r in records}) > 1
    header = (["case", "size"] + (["dtype"] if dtypes else []) + ["device", "impl", "kernels", "time", "GFLOP/s",
              "GB/s", "%peak", "bound"] + [f"vs {p}" for p in peers] + (["GPU/CPU"] if gpu else []))
    rows = []
    for r in records:
        rows.append([r["op"], r["size"]] + ([r["dtype"]] if dtypes else [])
                    + [r["device"], r["impl"], _kernels_label(r), _time(r["time_s"]), _num(r.get("gflops")),
                       _num(r.get("gbps")), _pct(r.get("pct_peak")) + ("c" if r.get("cache_resident") and r.get("pct_peak") else ""),
                       r.get("bound") or "-"]
                    + [_ratio(r["ratios"].get(p)) if r["impl"] == "tilegrad" else "" for p in peers]
                    + ([_speedup(r) if r["device"] == "cuda" else ""] if gpu else []))
    notes = ["time: median per call; vs peer: tilegrad time / peer time (below 1 = tilegrad faster).",
             "%peak: throughput over the roofline at the case's flops/byte (min of the measured peak "
             "GFLOP/s and intensity x peak GB/s); bound: below or above the balance point;",
             "c: all rotated input copies fit in the last-level cache, so a memory-bound case can pass 100% "
             "of the DRAM roofline."]
    if gpu:
        notes.append("GPU/CPU: the same implementation's CPU time over its GPU time, without transfers "
                     "(NumPy's for CuPy).")
    if any(_kernels_label(r) == "native*" for r in records):
        notes.append("native*: no native kernel for this op on this device yet; it ran the reference kernel.")
    return _table(header, rows) + "\n" + "\n".join(notes)


def _speedup(r):
    return "-" if r.get("speedup_vs_cpu") is None else f"{r['speedup_vs_cpu']:.3g}x"


def peaks_lines(report):
    lines = []
    for device, p in report.get("peaks", {}).items():
        flops = ", ".join(f"{v:.4g} GFLOP/s {k}" for k, v in p["gflops"].items()) or "no compute peak"
        lines.append(f"peak {device}: {flops}; {p['gbps']:.4g} GB/s "
                     f"({p['method']['compute']}; {p['method']['memory']})")
    return "\n".join(lines)


def crossover_table(report):
    rows = []
    for c in report.get("crossover", []):
        for s in c["sizes"]:
            wins = "yes" if s["gpu_total_s"] < s["cpu_s"] else "no"
            rows.append([c["op"], c["dtype"], s["size"], _time(s["cpu_s"]), _time(s["gpu_s"]),
                         _time(s["transfer_s"]), wins])
    if not rows:
        return ""
    summary = [f"{c['op']} {c['dtype']}: the GPU pays from {c['size'] or 'no size run'} counting transfers "
               f"(kernel alone: from {c['size_without_transfer'] or 'no size run'})"
               for c in report["crossover"]]
    header = ["case", "dtype", "size", "cpu", "gpu", "transfer", "gpu+transfer < cpu"]
    return _table(header, rows) + "\n" + "\n".join(summary)


def overhead_table(report):
    records = [r for r in report["cases"] if r["kind"] == "overhead"]
    if not records:
        return ""
    by_key = {(r["op"], r["mode"], r["impl"]): r for r in records}
    header = ["op", "mode", "tilegrad us", "torch us", "tilegrad/torch", "numpy us"]
    rows = []
    for r in records:
        if r["impl"] != "tilegrad":
            continue
        torch = by_key.get((r["op"], r["mode"], "torch"))
        numpy = by_key.get((r["op"], None, "numpy"))
        us = lambda rec: None if rec is None else (rec["time_s"] * 1e6 if rec["time_s"] else "FAILED")  # noqa: E731
        fmt = lambda v: "-" if v is None else (v if isinstance(v, str) else f"{v:.2f}")  # noqa: E731
        rows.append([r["op"], r["mode"], fmt(us(r)), fmt(us(torch)), _ratio(r["ratios"].get("torch")), fmt(us(numpy))])
    shape = records[0]["size"]
    return (_table(header, rows) + f"\nus per op on {shape} float32 tensors (inputs require grad); "
            f"mode grad records autograd, no_grad does not;\ntilegrad/torch: median of per-round ratios of "
            f"adjacent samples; goal <= {GOAL}x.")


def model_table(report):
    records = [r for r in report["cases"] if r["kind"] == "model"]
    if not records:
        return ""
    by_key = {(r["op"], r["device"], r["impl"]): r for r in records}
    header = ["model", "batch", "device", "tilegrad steps/s", "samples/s", "torch steps/s", "tilegrad/torch time"]
    rows = []
    for r in records:
        if r["impl"] != "tilegrad":
            continue
        peer = by_key.get((r["op"], r["device"], "torch"))
        steps = lambda rec: "-" if rec is None else ("FAILED" if not rec["time_s"] else f"{1 / rec['time_s']:.1f}")  # noqa: E731
        rows.append([r["op"], r["size"].replace("batch ", ""), r["device"], steps(r),
                     f"{r['samples_per_s']:.0f}" if r.get("samples_per_s") else "-", steps(peer),
                     _ratio(r["ratios"].get("torch"))])
    return (_table(header, rows) + "\none training step each (forward, loss, backward, optimizer); the examples on "
            "their own data, mlp784/cnn28 against PyTorch twins with the same weights and data.")


def failures(report):
    return [f"FAILED {r['op']} {r['size']} {r.get('dtype', 'float32')} {r['device']} {r['impl']}"
            + (f"/{r['kernels']}" if r["kernels"] else "") + (f" {r['mode']}" if r["mode"] else "")
            + f": {r['error']}" for r in report["cases"] if r["status"] != "ok"]


def machine_line(report):
    m = report["machine"]
    nat = m["native_cpu"]
    native = f"built ({nat.get('isa', '?')}, {nat.get('threads', '?')} threads)" if nat.get("built") else "not built"
    env = "; " + " ".join(f"{k}={v}" for k, v in m.get("env", {}).items()) if m.get("env") else ""
    gpu = m["cuda"]["name"] if m["cuda"] else "none"
    load = f" (load {m['loadavg'][0]:.2f})" if m.get("loadavg") else ""
    return (f"machine: {m['cpu']}, {m['usable_cores']} cores{load}; numpy {m['numpy']}; "
            f"torch {m['torch'] or 'absent'} ({m['torch_threads']} threads); tilegrad._cpu {native}; GPU {gpu}{env}")


def text(report):
    parts = [machine_line(report)]
    if report.get("peaks"):
        parts.append(peaks_lines(report))
    for title, body in (("Kernels", kernel_table(report)), ("GPU crossover (tilegrad native kernels)",
                                                            crossover_table(report)),
                        ("Per-op overhead", overhead_table(report)), ("Models", model_table(report))):
        if body:
            parts += ["", f"## {title}", body]
    fails = failures(report)
    if fails:
        parts += [""] + fails
    return "\n".join(parts)


def write_json(report, path):
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
