"""Benchmark of the simulation: its speed at scale, and (as root) its fidelity against real
runs on the shop cluster and on the largest sidecar mesh this machine holds.

- speed (no root): experiments/at-scale.yaml at 500 nodes x 30 pods x 200 services, 60
  simulated seconds with four faults, every architecture and the `none` baseline. Target
  (issue: the simulation): under 60 s on 2 cores.
- --fidelity shop|mesh100 (root): a real run, then the same spec simulated with the shipped
  calibration (or --calibration FILE), compared as sim/fidelity.py rules (counts equal,
  memory, requests failed and time to recover within 10 % or the run-to-run spread), and
  the report with both side by side. `shop`: the shop cluster, --arch pairs at a time
  (about 2 minutes each); `mesh100`: 100 sidecar pods (4 nodes x 25), about 3 minutes.

Run: `.venv/bin/python benchmarks/bench_sim.py [--repeat N] [--json]`
     `.venv/bin/python benchmarks/bench_sim.py --fidelity shop --arch sidecar --arch node --repeat 2 --out DIR`
     (`--real DIR` counts an earlier real run of the same experiment in the spread)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from testbed import journal  # noqa: E402
from testbed.experiment import load_experiment  # noqa: E402
from testbed.sim.fidelity import compare  # noqa: E402
from testbed.sim.params import load_calibration  # noqa: E402
from testbed.sim.placement import Scale  # noqa: E402
from testbed.sim.simulate import simulate  # noqa: E402

AT_SCALE = ROOT / "experiments" / "at-scale.yaml"
SHOP = f"""name: fidelity-shop
cluster: {ROOT / 'experiments' / 'clusters' / 'shop.yaml'}
architectures: [sidecar, node, node-sa, ambient, ztunnel]
traffic: {{rate: 10, duration: 26s}}
cost: {{totalRate: 200, seconds: 4s, idle: 2s}}
faults:
  - {{kind: proxy-crash, target: {{pod: payments-1}}, at: 3s, restartDelay: 3s}}
  - {{kind: wasm, target: {{pod: cart-0}}, behavior: loop, failurePolicy: closed, at: 11s, duration: 3s}}
  - {{kind: identity-compromise, target: {{pod: frontend-1}}, at: 18s, duration: 1s}}
  - {{kind: upgrade, target: {{service: frontend}}, strategy: restart, at: 21s, duration: 1s}}
"""


def mesh100() -> str:
    """100 sidecar pods: 4 nodes x 25, 10 services of 10 replicas, a ring of calls."""
    services = "\n".join(f"  - {{name: s{k}, serviceAccount: a{k % 5}, port: {8000 + k}, replicas: 10}}"
                         for k in range(10))
    calls = "\n".join(f"  - {{from: s{k}, to: s{(k + 1) % 10}}}" for k in range(10))
    return f"""name: fidelity-mesh100
cluster:
  name: mesh100
  nodes: [n1, n2, n3, n4]
  services:
{services}
  calls:
{calls}
architectures: [sidecar]
traffic: {{rate: 2, duration: 24s}}
cost: {{totalRate: 200, seconds: 4s, idle: 2s}}
faults:
  - {{kind: proxy-crash, target: {{pod: s3-0}}, at: 4s, restartDelay: 3s}}
  - {{kind: proxy-crash, target: {{node: n2}}, at: 12s, restartDelay: 3s}}
  - {{kind: identity-compromise, target: {{pod: s5-1}}, at: 20s, duration: 1s}}
"""


def speed(repeat: int) -> dict:
    exp = load_experiment(AT_SCALE)
    params = load_calibration()
    times, out = [], Path("/tmp") / "bench-sim-at-scale"
    for _ in range(repeat):
        t0 = time.monotonic()
        j = simulate(exp, AT_SCALE.read_text(), params, Scale(500, 30, 200), out_dir=out)
        times.append(time.monotonic() - t0)
    sim = j["simulation"]
    return {"benchmark": "speed", "pods": sim["pods"], "nodes": sim["nodes"], "flows": sim["flows"],
            "simulated_seconds": exp.duration, "faults": len(exp.faults), "architectures": list(j["architectures"]),
            "wall_s": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
            "per_arch_s": {a: r.get("simulated_s") for a, r in j["architectures"].items()}, "target_s": 60}


def fidelity(which: str, archs: list[str], out: Path, calibration: str | None, repeat: int,
             more: list[str]) -> dict:
    """Real runs (`repeat` of them, plus any earlier ones of the same experiment in `more`),
    the simulation, and the comparison with the spread over the real runs."""
    out.mkdir(parents=True, exist_ok=True)
    exp_file = out / "experiment.yaml"
    exp_file.write_text(SHOP if which == "shop" else mesh100())
    t0 = time.monotonic()
    reals = []
    for k in range(repeat):
        target = out / ("real" if k == 0 else f"real-{k + 1}")
        cmd = [sys.executable, "-m", "testbed.cli", "run", str(exp_file), "--out", str(target)]
        for a in archs:
            cmd += ["--arch", a]
        subprocess.run(cmd, cwd=ROOT, check=False)  # a failed architecture is recorded in the journal
        reals.append(target)
    reals += [Path(m) for m in more]
    real_s = time.monotonic() - t0
    sim_cmd = [sys.executable, "-m", "testbed.cli", "simulate", str(exp_file), "--out", str(out / "sim")]
    for a in archs:
        sim_cmd += ["--arch", a]
    if calibration:
        sim_cmd += ["--calibration", calibration]
    subprocess.run(sim_cmd, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "testbed.cli", "report", *map(str, reals), str(out / "sim"), "--out",
                    str(out / "report")], cwd=ROOT, check=True, capture_output=True)
    runs, sim = [journal.load(r) for r in reals], journal.load(out / "sim")
    got = compare(runs[0], sim, runs, shared_kib=sim["simulation"]["shared_kib"])
    return {"benchmark": f"fidelity-{which}", "pods": sim["simulation"]["pods"], "real_s": round(real_s, 1),
            "real_runs": [str(r) for r in reals],
            "required": got["required"], "within": got["within"], "rows": got["rows"],
            "report": str(out / "report" / "report.html")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fidelity", choices=["shop", "mesh100"])
    ap.add_argument("--arch", action="append", help="with --fidelity shop: only these (repeatable)")
    ap.add_argument("--calibration", help="a calibration file (default: the shipped one)")
    ap.add_argument("--real", action="append", default=[],
                    help="with --fidelity: an earlier real run of the same experiment to count in the spread")
    ap.add_argument("--repeat", type=int, default=None,
                    help="speed: runs to take the median of (default 3); --fidelity: real runs (default 1)")
    ap.add_argument("--out", default="out/bench-sim")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.fidelity:
        archs = args.arch or (["sidecar"] if args.fidelity == "mesh100" else ["sidecar", "node"])
        got = fidelity(args.fidelity, archs, Path(args.out), args.calibration, args.repeat or 1, args.real)
    else:
        got = speed(args.repeat or 3)
    if args.json:
        print(json.dumps(got, indent=1))
    elif args.fidelity:
        print(f"{got['benchmark']}: {got['pods']} pods; {got['within']} of {got['required']} required figures agree "
              f"({len(got['real_runs'])} real runs; {got['real_s']} s of running); report: {got['report']}")
        for r in got["rows"]:
            real = (len(r["real"]) if r["rule"] == "count" else "/".join(map(str, r["real"]))) \
                if isinstance(r["real"], list) else r["real"]
            sim = len(r["simulated"]) if isinstance(r["simulated"], list) else r["simulated"]
            mark = "ok" if r["within"] else ("NO" if r["required"] else "--")
            print(f"  {mark:2} {r['arch']:<8} {r['what']:<48} {real!s:>10} {sim!s:>10}  {r['rule']}")
    else:
        print(f"at scale: {got['nodes']} nodes, {got['pods']} pods, {got['flows']} flows, {got['simulated_seconds']:g} "
              f"simulated seconds, {got['faults']} faults, {len(got['architectures'])} architectures: median "
              f"{got['median_s']} s over {len(got['wall_s'])} runs {got['wall_s']} (target < {got['target_s']} s)")
        print("  per architecture (s): " + ", ".join(f"{a} {s}" for a, s in got["per_arch_s"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
