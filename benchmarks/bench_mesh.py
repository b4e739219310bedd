"""Benchmark: time to a ready mesh and total proxy memory (PSS, and RSS for contrast) per
architecture and redirection, for the shop cluster and for 3 nodes x 10 pods, all in one
run (the redirect variants interleaved, so the machine's drift hits both alike).

Target (issue: the mesh): sidecar with 30+ Envoys ready in under 10 s on 2 cores.
Run as root: `.venv/bin/python benchmarks/bench_mesh.py [--repeat N] [--redirect R] [--json]`."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from testbed import runner
from testbed.measure.memory import pss_kib, rss_kib

HERE = Path(__file__).resolve().parent
SPECS = {"shop": HERE.parent / "experiments" / "clusters" / "shop.yaml",
         "3x10": HERE.parent / "tests" / "fixtures" / "big.yaml"}
ARCHS = list(runner.ARCHITECTURES)


def measure(spec: Path, arch: str, redirect: str, run_id: str) -> dict:
    t0 = time.monotonic()
    st = runner.up(spec, arch, redirect, run_id)
    up_s = time.monotonic() - t0
    try:
        pids = [p["pid"] for p in st["proxies"]]
        return {"up_s": up_s, "proxy_s": st["timings"].get("proxies", 0.0), "proxies": len(pids),
                "pss_mib": sum(pss_kib(p) for p in pids) / 1024, "rss_mib": sum(rss_kib(p) for p in pids) / 1024}
    finally:
        runner.down(run_id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--arch", action="append", choices=ARCHS, help="only these (repeatable)")
    ap.add_argument("--redirect", action="append", choices=runner.REDIRECTS,
                    help="only these (repeatable; default: both)")
    args = ap.parse_args()
    redirects = args.redirect or list(runner.REDIRECTS)
    rows = []
    for name, spec in SPECS.items():
        for arch in args.arch or ARCHS:
            runs = {r: [] for r in redirects}
            for i in range(args.repeat):
                for redirect in redirects:
                    runs[redirect].append(measure(spec, arch, redirect, f"bm{i}"))
            for redirect, got in runs.items():
                med = {k: statistics.median(r[k] for r in got) for k in got[0]}
                rows.append({"cluster": name, "arch": arch, "redirect": redirect, **med})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"median of {args.repeat} runs each; up = whole `testbed up`; proxies = start to all /ready")
    print(f"{'cluster':<8} {'arch':<8} {'redirect':<9} {'proxies':>7} {'up s':>7} {'proxies s':>9} {'PSS MiB':>8} "
          f"{'RSS MiB':>8}")
    for r in rows:
        print(f"{r['cluster']:<8} {r['arch']:<8} {r['redirect']:<9} {r['proxies']:>7.0f} {r['up_s']:>7.2f} "
              f"{r['proxy_s']:>9.2f} "
              f"{r['pss_mib']:>8.1f} {r['rss_mib']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
