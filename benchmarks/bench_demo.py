"""Benchmark: how long the demo takes (target: under 10 minutes on 2 cores, `--quick` under
3), and the cost-sweep figures (experiments/cost.yaml): PSS, proxy vCPU per 1,000
requests/s, the largest proxy config and the time to build, per architecture and step.

Run as root: `.venv/bin/python benchmarks/bench_demo.py [--quick-only] [--skip-sweep] [--out DIR] [--json]`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from testbed.experiment import load_experiment
from testbed.experiment_runner import run_experiment

HERE = Path(__file__).resolve().parent
EXPERIMENTS = HERE.parent / "experiments"


def timed(name: str, out: Path) -> tuple[float, dict]:
    path = EXPERIMENTS / f"{name}.yaml"
    t0 = time.monotonic()
    journal = run_experiment(load_experiment(path), path.read_text(), None, out / name,
                             progress=lambda m: print(f"  .. {m}", flush=True))
    return time.monotonic() - t0, journal


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick-only", action="store_true", help="only the quick demo")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--out", default="out/bench-demo")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    result: dict = {"demo": {}, "sweep": None}
    for name, target in (("demo-quick", 180), ("demo", 600)):
        if args.quick_only and name == "demo":
            continue
        seconds, journal = timed(name, out)
        result["demo"][name] = {"seconds": round(seconds, 1), "target_s": target, "status": journal["status"],
                                "architectures": list(journal["architectures"])}
    if not args.skip_sweep:
        seconds, journal = timed("cost", out)
        rows = []
        for step in journal["sweep"]["steps"]:
            for arch, r in step["architectures"].items():
                c = r.get("cost") or {}
                rows.append({"podsPerService": step["value"], "pods": step["pods"], "arch": arch,
                             "up_s": r.get("up_s"), "pss_mib": (c.get("memory") or {}).get("pss_mib"),
                             "proxy_vcpu_per_krps": (c.get("vcpu_per_krps") or {}).get("proxies"),
                             "config_kib_max": round(
                                 (c.get("config_totals") or {}).get("per_proxy_bytes_max", 0) / 1024, 1),
                             "p99_ms": (c.get("latency_ms") or {}).get("p99")})
        result["sweep"] = {"seconds": round(seconds, 1), "rows": rows}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for name, d in result["demo"].items():
        verdict = "within" if d["seconds"] < d["target_s"] else "OVER"
        print(f"{name:<11} {d['seconds']:>7.1f} s  ({verdict} the {d['target_s']} s target), {d['status']}")
    if result["sweep"]:
        print(f"\ncost sweep ({result['sweep']['seconds']:.0f} s):")
        print(f"{'pods/svc':>8} {'pods':>5} {'arch':<9} {'up s':>6} {'PSS MiB':>8} {'vCPU/krps':>10} {'cfg KiB':>8} "
              f"{'p99 ms':>7}")
        for r in result["sweep"]["rows"]:
            def f(x, spec):
                return format(x, spec) if x is not None else "-"
            print(f"{r['podsPerService']:>8} {r['pods']:>5} {r['arch']:<9} {f(r['up_s'], '6.2f')} "
                  f"{f(r['pss_mib'], '8.1f')} {f(r['proxy_vcpu_per_krps'], '10.3f')} {f(r['config_kib_max'], '8.1f')} "
                  f"{f(r['p99_ms'], '7.2f')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
