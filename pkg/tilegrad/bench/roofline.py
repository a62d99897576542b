"""What the timed cases mean against the machine: arithmetic intensity and the memory- or
compute-bound label, the per cent of the roofline reached, the GPU's speedup over the CPU, the
ratio to each peer, and the crossover size past which moving an op to the GPU pays.

All functions add keys to the records of ``runner.run`` (see the schema in ``tilegrad.bench``).
"""


def add_roofline(records, peaks):
    """``intensity`` (flops per byte), ``bound`` ("memory" or "compute": below or above the
    device's balance point, peak flops / peak bandwidth) and ``pct_peak``: achieved throughput
    over the roofline at the case's intensity, min(peak flops, intensity x peak bandwidth), in
    per cent. Without a compute peak for the dtype, the bandwidth alone is the roof."""
    for r in records:
        if r["kind"] != "kernel":
            continue
        r["intensity"] = r["flops"] / r["bytes"] if r["bytes"] else None
        r.setdefault("bound", None)
        r.setdefault("pct_peak", None)
        peak = peaks.get(r["device"])
        if not peak or r["intensity"] is None:
            continue
        bw = peak["gbps"]
        pf = peak["gflops"].get(r["dtype"])
        if pf is None:
            r["bound"] = "memory"
        else:
            r["bound"] = "compute" if r["intensity"] >= pf / bw else "memory"
        if r["time_s"]:
            roof = r["intensity"] * bw if pf is None else min(pf, r["intensity"] * bw)
            r["pct_peak"] = 100 * r["gflops"] / roof if roof else None


def _key(r):
    return r["op"], r["size"], r["dtype"]


def add_ratios(records):
    """``ratios[peer]`` = tilegrad time / peer time (same op, size, dtype, device), and on GPU
    rows ``speedup_vs_cpu`` = the CPU time of the same implementation / its GPU time."""
    times = {}
    for r in records:
        if r["kind"] == "kernel" and r["time_s"]:
            times[(_key(r), r["device"], r["impl"], r["kernels"])] = r["time_s"]
    for r in records:
        if r["kind"] != "kernel":
            continue
        r["ratios"] = {}
        r["speedup_vs_cpu"] = None
        if not r["time_s"]:
            continue
        if r["impl"] == "tilegrad":
            for (key, device, impl, _), t in times.items():
                if key == _key(r) and device == r["device"] and impl != "tilegrad":
                    r["ratios"][impl] = r["time_s"] / t
        if r["device"] == "cuda":
            cpu = times.get((_key(r), "cpu", r["impl"], r["kernels"]))
            if cpu is None and r["impl"] == "cupy":  # CuPy's CPU counterpart is NumPy
                cpu = times.get((_key(r), "cpu", "numpy", None))
            r["speedup_vs_cpu"] = cpu / r["time_s"] if cpu else None


def crossover(records, transfers):
    """For each op and dtype benched on both devices: per size, tilegrad's CPU time, GPU time and
    the host-device transfer of the inputs and the result (``transfers[(op, size, dtype)]``,
    seconds), and the smallest size at which the GPU wins with the transfer counted (``size``)
    and without it (``size_without_transfer``); None when it never does at the sizes run."""
    tg = {}
    order = []
    for r in records:
        if r["kind"] == "kernel" and r["impl"] == "tilegrad" and r["kernels"] == "native":
            tg[(_key(r), r["device"])] = r["time_s"]
            if (r["op"], r["dtype"]) not in order:
                order.append((r["op"], r["dtype"]))
    out = []
    for op, dtype in order:
        rows = []
        sizes = []
        for r in records:
            if r["kind"] == "kernel" and r["op"] == op and r["dtype"] == dtype and r["size"] not in sizes:
                sizes.append(r["size"])
        for size in sizes:
            key = (op, size, dtype)
            cpu, gpu, move = tg.get((key, "cpu")), tg.get((key, "cuda")), transfers.get(key)
            if cpu and gpu and move is not None:
                rows.append({"size": size, "cpu_s": cpu, "gpu_s": gpu, "transfer_s": move, "gpu_total_s": gpu + move})
        if not rows:
            continue
        with_move = next((row["size"] for row in rows if row["gpu_total_s"] < row["cpu_s"]), None)
        without = next((row["size"] for row in rows if row["gpu_s"] < row["cpu_s"]), None)
        out.append({"op": op, "dtype": dtype, "size": with_move, "size_without_transfer": without, "sizes": rows})
    return out
