"""Benchmark: the latency each architecture adds to a request, for an app that opens a
connection per request and for one that keeps its connection alive, and what HBONE
(`mesh.tunnel: hbone`) changes against one mTLS connection per app connection (`tcp`) in
ambient and ztunnel; beside it the proxies' count and memory (PSS). The shop cluster and
3 nodes x 10 pods, every variant in one run.

Each flow's source pod makes N sequential requests, each on a new connection, then N on one
kept-alive connection (after one warm-up request each); a variant's figure is the median
over its flows of each flow's median, and the p90 of all requests. The latency added is
the difference with `none` in the same run.

Run as root: `.venv/bin/python benchmarks/bench_tunnel.py [--requests N] [--cluster shop|3x10] [--json]`."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from testbed import runner
from testbed.cluster import procs
from testbed.measure.memory import pss_kib
from testbed.mesh.topology import SPLIT_ARCHITECTURES
from testbed.spec import TUNNELS
from testbed.traffic import driver

HERE = Path(__file__).resolve().parent
SPECS = {"shop": HERE.parent / "experiments" / "clusters" / "shop.yaml",
         "3x10": HERE.parent / "tests" / "fixtures" / "big.yaml"}

CLIENT = r"""
import http.client, json, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def timed(conn, headers):
    t = time.perf_counter()
    conn.request("GET", "/", headers=headers)
    r = conn.getresponse()
    r.read()
    return (time.perf_counter() - t) * 1000, r.status
def fresh():
    c = http.client.HTTPConnection(host, port, timeout=5)
    t = time.perf_counter()
    c.connect()
    ms, status = timed(c, {"Connection": "close"})
    c.close()
    return (time.perf_counter() - t) * 1000, status
fresh()
per = [fresh() for _ in range(n)]
c = http.client.HTTPConnection(host, port, timeout=5)
timed(c, {})
kept = [timed(c, {}) for _ in range(n)]
print(json.dumps({"per_request": per, "keep_alive": kept}))
"""


def variants() -> list[tuple[str, str]]:
    out = []
    for arch in runner.ARCHITECTURES:
        for tunnel in TUNNELS if arch in SPLIT_ARCHITECTURES else ("hbone",):
            out.append((arch, tunnel))
    return out


def with_tunnel(spec: Path, tunnel: str, tmp: Path) -> Path:
    if tunnel == "hbone":
        return spec  # the default
    path = tmp / f"{spec.stem}-{tunnel}.yaml"
    path.write_text(spec.read_text() + f"mesh: {{tunnel: {tunnel}}}\n")
    return path


def measure(spec: Path, arch: str, run_id: str, n: int) -> dict:
    st = runner.up(spec, arch, runner.DEFAULT_REDIRECT, run_id)
    try:
        plan = runner.cluster_of(run_id).plan
        per, kept, per_all, kept_all, failed = [], [], [], [], 0
        for pod_name, service in driver.flows(plan):
            pod, svc = plan.pod(pod_name), plan.service(service)
            r = procs.run(["python3", "-c", CLIENT, svc.vip, str(svc.port), str(n)], pod.netns, pod.cgroup,
                          timeout=60 + n)
            got = json.loads(r.stdout)
            for kind, medians, every in (("per_request", per, per_all), ("keep_alive", kept, kept_all)):
                ok = [ms for ms, status in got[kind] if status == 200]
                failed += len(got[kind]) - len(ok)
                medians.append(statistics.median(ok))
                every.extend(ok)
        pids = [p["pid"] for p in st["proxies"]]
        return {"proxies": len(pids), "pss_mib": round(sum(pss_kib(p) for p in pids) / 1024, 1),
                "per_request_ms": round(statistics.median(per), 3),
                "per_request_p90_ms": round(statistics.quantiles(per_all, n=10)[-1], 3),
                "keep_alive_ms": round(statistics.median(kept), 3),
                "keep_alive_p90_ms": round(statistics.quantiles(kept_all, n=10)[-1], 3),
                "flows": len(per), "failed": failed}
    finally:
        runner.down(run_id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="requests per flow and kind")
    ap.add_argument("--cluster", action="append", choices=SPECS, help="only these (repeatable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cluster or SPECS:
            for k, (arch, tunnel) in enumerate(variants()):
                spec = with_tunnel(SPECS[name], tunnel, Path(tmp))
                row = measure(spec, arch, f"bt{k}", args.requests)
                rows.append({"cluster": name, "arch": arch, "tunnel": tunnel if arch in SPLIT_ARCHITECTURES else "",
                             **row})
                print(f"  {name} {arch} {tunnel}: {row}", file=sys.stderr, flush=True)
    base = {r["cluster"]: r for r in rows if r["arch"] == "none"}
    for r in rows:
        r["added_per_request_ms"] = round(r["per_request_ms"] - base[r["cluster"]]["per_request_ms"], 3)
        r["added_keep_alive_ms"] = round(r["keep_alive_ms"] - base[r["cluster"]]["keep_alive_ms"], 3)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"median over flows of each flow's median, {args.requests} requests per flow and kind; added: against none")
    print(f"{'cluster':<7} {'arch':<8} {'tunnel':<6} {'proxies':>7} {'PSS MiB':>8} {'per-req ms':>10} "
          f"{'added':>6} {'p90':>6} {'kept ms':>8} {'added':>6} {'p90':>6}")
    for r in rows:
        print(f"{r['cluster']:<7} {r['arch']:<8} {r['tunnel']:<6} {r['proxies']:>7} {r['pss_mib']:>8.1f} "
              f"{r['per_request_ms']:>10.2f} {r['added_per_request_ms']:>6.2f} {r['per_request_p90_ms']:>6.2f} "
              f"{r['keep_alive_ms']:>8.2f} {r['added_keep_alive_ms']:>6.2f} {r['keep_alive_p90_ms']:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
