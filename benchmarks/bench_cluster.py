"""Benchmark: `testbed up` of 3 nodes x 10 pods with every agent ready, and `down`, for both
service translations of the `none` architecture (kube-proxy-style iptables DNAT, and the
eBPF socket-level balancing that `--redirect ebpf`, the default, loads), interleaved.

Targets (issue: foundation): up < 5 s, down < 2 s on 2 cores. Prints the figures of each
repetition and their median; run as root: `make bench` (as root) or
`.venv/bin/python benchmarks/bench_cluster.py [--repeat N] [--spec FILE]`."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from testbed import runner

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parent / "tests" / "fixtures" / "big.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--spec", default=str(DEFAULT_SPEC))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    rows = {"iptables": [], "ebpf": []}
    for i in range(args.repeat):
        for redirect in rows:
            run_id = f"bench{i}{redirect[0]}"
            t0 = time.monotonic()
            st = runner.up(args.spec, redirect=redirect, run_id=run_id)
            up_s = time.monotonic() - t0
            t1 = time.monotonic()
            runner.down(run_id)
            down_s = time.monotonic() - t1
            rows[redirect].append({"up_s": up_s, "down_s": down_s, "pods": len(st["pods"]), **{
                f"{k}_s": v for k, v in st["timings"].items() if k != "up"}})
    med = {r: {k: statistics.median(x[k] for x in runs) for k in runs[0] if k.endswith("_s")}
           for r, runs in rows.items()}
    if args.json:
        print(json.dumps({"runs": rows, "median": med}, indent=1))
        return 0
    print(f"spec {args.spec}: {rows['ebpf'][0]['pods']} pods, {args.repeat} repetitions each, interleaved")
    cols = ["up_s", "namespaces_s", "links_s", "agents_s", "redirect_s", "down_s"]
    print("  ".join(f"{c:>13}" for c in ["redirect", "run"] + cols))
    for redirect, runs in rows.items():
        for i, r in enumerate(runs):
            print("  ".join([f"{redirect:>13}", f"{i:>13}"] + [f"{r.get(c, 0):>13.3f}" for c in cols]))
        m = med[redirect]
        print("  ".join([f"{redirect:>13}", f"{'median':>13}"] + [f"{m.get(c, 0):>13.3f}" for c in cols]))
        print(f"{redirect}: up < 5 s {'met' if m['up_s'] < 5 else 'MISSED'}, "
              f"down < 2 s {'met' if m['down_s'] < 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
