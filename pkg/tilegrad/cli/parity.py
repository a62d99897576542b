"""``tilegrad parity``: every op of the table x every dtype x every available backend, forward
and backward, against the float64 reference: max absolute and relative error, error in ULPs, the
worst input index and the seed that reproduces it. Exit status 1 past the tolerance table
(``tilegrad.testing.TOLERANCES``).

The ops come from ``tilegrad.ops.OPS`` and their ``samples(rng)``; nothing here names an op.
"""
import json
import math
import sys

import numpy as np

from tilegrad import dtypes, ops, testing

DTYPES = ("float32", "float64")
DIRECTIONS = ("forward", "backward")


def _names(text, allowed, what):
    import argparse
    names = [n.strip() for n in text.split(",") if n.strip()]
    lower = {a.lower(): a for a in allowed}
    unknown = [n for n in names if n.lower() not in lower]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or '(none)'}: "
                                         f"choose from {', '.join(allowed)}")
    return [lower[n.lower()] for n in names]


def compare(actual, expected, dtype):
    """Errors of ``actual`` (computed in ``dtype``) against the float64 ``expected``: a dict with
    max_abs, max_rel and max_ulp (relative and ULP errors over the elements whose expected magnitude
    exceeds atol: near zero only the absolute error means something), the worst index (the
    element that uses the largest share of its tolerance), the number of values out of tolerance
    and, for a shape mismatch, an error."""
    rtol, atol = testing.tolerance(dtype)
    a, e = np.asarray(actual), np.asarray(expected)
    out = {"max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0.0, "worst_index": None, "bad": 0, "size": int(e.size),
           "error": None}
    if a.shape != e.shape:
        out.update(error=f"shape {a.shape} != expected {e.shape}", bad=max(1, int(e.size)))
        return out
    if e.size == 0:
        return out
    if a.dtype.kind in "biu" or e.dtype.kind in "biu":
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        bad = diff != 0
        excess = diff
    else:
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        both_nan = np.isnan(a64) & np.isnan(e64)
        diff = np.where(both_nan, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        bound = atol + rtol * np.abs(np.where(np.isfinite(e64), e64, 0.0))
        bad = ~np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        excess = diff / bound  # the share of its tolerance each element uses
        big = np.abs(e64) > atol
        if big.any():
            mag = np.abs(e64[big])
            out["max_rel"] = float(np.max(diff[big] / mag))
            np_dtype = dtypes.to_dtype(dtype).np
            ulp = np.spacing(np.maximum(mag, np.finfo(np_dtype).tiny).astype(np_dtype)).astype(np.float64)
            out["max_ulp"] = float(np.max(diff[big] / ulp))
    i = np.unravel_index(int(np.argmax(excess)), e.shape) if e.ndim else ()
    out.update(max_abs=float(np.max(diff)), worst_index=[int(j) for j in i], bad=int(np.count_nonzero(bad)))
    return out


def _merge(total, found, where):
    """Fold one comparison into the running worst of an (op, dtype, backend, direction) check."""
    total["values"] += found["size"]
    total["bad"] += found["bad"]
    for key in ("max_abs", "max_rel", "max_ulp"):
        total[key] = max(total[key], found[key])
    score = (found["bad"] > 0 or found["error"] is not None, found["max_abs"])
    if total["_score"] is None or score > total["_score"]:
        total["_score"] = score
        total["worst"] = dict(where, index=found["worst_index"])
    if found["error"] and total["error"] is None:
        total["error"] = f"{where['sample']} {where['what']}: {found['error']}"


def _new_check(name, dtype, backend, direction, seed):
    return {"op": name, "dtype": dtype, "backend": backend, "direction": direction, "seed": seed,
            "samples": 0, "values": 0, "bad": 0, "max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0.0,
            "worst": None, "error": None, "_score": None}


def check_op(name, dtype, backend, seed, strided=False):
    """The forward and backward checks of op ``name`` on ``backend`` = (name, device, choice)."""
    samples = ops.OPS[name].samples(np.random.default_rng(seed))
    label, device, choice = backend
    checks = {d: _new_check(name, dtype, label, d, seed) for d in DIRECTIONS}
    for i, sample in enumerate(samples):
        try:
            which = "the float64 reference"
            expected = testing.run_sample(sample, "float64", "cpu", "reference", False, seed)
            which = "it"
            got = testing.run_sample(sample, dtype, device, choice, strided, seed)
        except Exception as exc:  # a crash fails the forward check of this op
            checks["forward"]["samples"] += 1
            checks["forward"]["bad"] += 1
            checks["forward"]["error"] = checks["forward"]["error"] or \
                f"sample {i} [{sample.desc}]: {which} raised {type(exc).__name__}: {exc}"
            continue
        for direction, got_arrays, exp_arrays in zip(DIRECTIONS, got, expected):
            c = checks[direction]
            compared = False
            for k, (g, e) in enumerate(zip(got_arrays, exp_arrays)):
                what = f"output {k}" if direction == "forward" else f"grad of input {k}"
                where = {"sample": i, "desc": sample.desc, "what": what}
                if (g is None) != (e is None):
                    c["bad"] += 1
                    c["error"] = c["error"] or f"sample {i} [{sample.desc}] {what}: present in one result only"
                    continue
                if e is None:
                    continue
                compared = True
                _merge(c, compare(g, e, dtype), where)
            c["samples"] += compared
            if len(got_arrays) != len(exp_arrays):
                c["bad"] += 1
                c["error"] = c["error"] or f"sample {i}: {len(got_arrays)} results, expected {len(exp_arrays)}"
    result = []
    for c in checks.values():
        c.pop("_score")
        c["status"] = "FAILED" if c["bad"] or c["error"] else ("ok" if c["samples"] else "n/a")
        result.append(c)
    return result


def run_parity(names=None, dtype_names=DTYPES, backend_names=None, seed=0, strided=False, progress=None):
    """Every check; ``names`` defaults to every op of the table that has samples."""
    names = names or [n for n, cls in sorted(ops.OPS.items()) if cls.samples(np.random.default_rng(0))]
    found = [b for b in testing.backends() if backend_names is None or b[0] in backend_names]
    checks = []
    for j, name in enumerate(names):
        if progress:
            progress(j, len(names), name)
        for backend in found:
            for dtype in dtype_names:
                checks.extend(check_op(name, dtype, backend, seed, strided))
    return {"schema": 1, "seed": seed, "strided": strided, "dtypes": list(dtype_names),
            "backends": [b[0] for b in found], "tolerances": {d: list(testing.tolerance(d)) for d in dtype_names},
            "failed": sum(c["status"] == "FAILED" for c in checks), "checks": checks}


def _fmt(x):
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    return f"{x:.2g}" if x < 1e4 else f"{x:.1e}"


def _worst(c):
    w = c["worst"]
    if not w:
        return "-"
    desc = w["desc"] if len(w["desc"]) <= 28 else w["desc"][:25] + "..."
    return f"#{w['sample']} [{desc}] {w['what']} at {tuple(w['index']) if w['index'] is not None else '-'}"


def table(report, failures_only=False):
    header = ["op", "backend", "dtype", "pass", "samples", "max abs", "max rel", "max ulp", "worst", "status"]
    rows = [[c["op"], c["backend"], c["dtype"], {"forward": "fwd", "backward": "bwd"}[c["direction"]], str(c["samples"]), _fmt(c["max_abs"]),
             _fmt(c["max_rel"]), _fmt(c["max_ulp"]), _worst(c), c["status"]]
            for c in report["checks"] if c["status"] != "n/a" and (not failures_only or c["status"] != "ok")]
    if not rows:
        return ""
    widths = [max(len(v) for v in col) for col in zip(header, *rows)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def failure_lines(report):
    lines = []
    for c in report["checks"]:
        if c["status"] == "FAILED":
            detail = c["error"] or (f"{c['bad']} of {c['values']} values out of tolerance; worst {_worst(c)}, "
                                    f"abs {_fmt(c['max_abs'])}")
            lines.append(f"FAILED {c['op']} {c['direction']} {c['dtype']} on {c['backend']}: {detail} "
                         f"(reproduce: tilegrad parity --ops {c['op']} --dtype {c['dtype']} "
                         f"--backends {c['backend']} --seed {report['seed']})")
    return lines


def add_parser(commands):
    p = commands.add_parser("parity", help="error of every op against the float64 reference",
                            description="Run every op of the table (each sample, forward and backward) in each "
                                        "dtype on each available backend and compare with the float64 reference: "
                                        "max absolute and relative error, ULPs, the worst input index and the "
                                        "seed that reproduces it. Exit status 1 when a result is past the "
                                        "tolerance table.")
    op_names = sorted(ops.OPS)
    backend_names = [b[0] for b in testing.backends()]
    p.add_argument("--ops", type=lambda s: _names(s, op_names, "op"), default=None,
                   help="comma-separated op-table names (default: every op with samples)")
    p.add_argument("--dtype", type=lambda s: _names(s, sorted(testing.TOLERANCES), "dtype"), default=list(DTYPES),
                   help=f"comma-separated dtypes (default: {','.join(DTYPES)})")
    p.add_argument("--backends", type=lambda s: _names(s, backend_names, "backend"), default=None,
                   help=f"comma-separated backends (default: all available here: {','.join(backend_names)})")
    p.add_argument("--seed", type=int, default=None, help="seed of the sample inputs (default: fresh, printed)")
    p.add_argument("--strided", action="store_true", help="non-contiguous inputs (every other element)")
    p.add_argument("--json", metavar="FILE", help="also write every check as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    p.set_defaults(run=run)
    return p


def run(args):
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    report = run_parity(args.ops, args.dtype, args.backends, seed, args.strided)
    body = table(report, failures_only=args.quiet)
    if body:
        print(body)
    fails = failure_lines(report)
    if fails:
        print("\n" + "\n".join(fails))
    ran = sum(c["status"] != "n/a" for c in report["checks"])
    ops_seen = len({c["op"] for c in report["checks"]})
    print(f"\nparity: {ran} checks of {ops_seen} ops on {', '.join(report['backends'])} in {', '.join(args.dtype)}; "
          f"{report['failed']} failed; seed {seed}" + (" (strided inputs)" if args.strided else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    sys.stdout.flush()
    return 1 if report["failed"] else 0
