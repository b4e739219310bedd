"""Benchmark: a sidecar mesh with eBPF redirection at 30, 100, 200 (and, with --big, 500 and
800) pods: `up` with its split per step, `ready` (up, then every flow of the connectivity
matrix answered), `down`, and the memory per pod (PSS of each proxy and each agent, and the
machine's available memory used per pod, kernel objects included).

Each optimisation can be switched off, and the variants run interleaved in one run, so the
ratios are measured under the same conditions (the machine may be shared):
  after            everything on
  no-bpf-cache     TESTBED_BPF_CACHE=off: bcc compiles the programs in every `up`
  no-spawner       TESTBED_AGENT_SPAWNER=off: one interpreter per agent
  all-starts       TESTBED_PROXY_STARTS=0: every Envoy started at once
  all-stats        `mesh: {stats: all}`: every Envoy keeps every stat (not Istio's inclusion list)
  before           (with --before DIR) the testbed as it was before, from a checkout:
                   git worktree add DIR <commit>   (or: git archive <commit> | tar -x -C DIR)
Sizes of 500 and more run `before` and `after` once each: they take several GB of memory.

Targets (issue: scale on one box): 200 pods up < 15 s and down < 3 s; 500 up < 40 s and down
< 5 s; 800 held (up, the matrix answered, down with nothing left).

Run as root: `.venv/bin/python benchmarks/bench_scale.py [--repeat N] [--sizes 30,100,200]
[--big] [--before DIR] [--variants after,no-spawner,...] [--json FILE]`. Every run is
cleaned by its id when it ends, fails or is interrupted (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from testbed.synthetic import SIZES, flows, scale_spec, scale_yaml  # noqa: E402

VARIANTS = {  # name -> environment
    "after": {},
    "no-bpf-cache": {"TESTBED_BPF_CACHE": "off"},
    "no-spawner": {"TESTBED_AGENT_SPAWNER": "off"},
    "all-starts": {"TESTBED_PROXY_STARTS": "0"},
    "all-stats": {},  # a spec setting: see SPEC_TAIL
    "before": {},
}
SPEC_TAIL = {"all-stats": "mesh: {stats: all}\n"}  # variant -> what its spec adds
BIG = 500  # from this size on: `before` and `after` only, once
STEPS = ["namespaces", "links", "agents", "identities_and_configs", "proxies", "redirect"]
TARGETS = {200: (15.0, 3.0), 500: (40.0, 5.0)}  # size -> (up, down) seconds


MEM_FLOOR_MIB = 1536  # below this much available memory a run is interrupted (others share the machine)
MIB_PER_POD = {"before": 32.0}  # a guess before anything is measured: proxy + agent + kernel
MIB_PER_POD_DEFAULT = 25.0
KERNEL_MIB_PER_POD = 2.0


def cli(tree: Path, *args, env: dict, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI of `tree`, watched: if the machine runs short of memory it is interrupted
    (SIGINT: it unwinds what it built) rather than left to the OOM killer."""
    proc = subprocess.Popen([sys.executable, "-m", "testbed.cli", *map(str, args)], cwd=tree,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    short = threading.Event()

    def watch():
        while proc.poll() is None:
            if mem_available_kib() / 1024 < MEM_FLOOR_MIB:
                short.set()
                proc.send_signal(signal.SIGINT)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    if short.is_set():
        raise RuntimeError(f"interrupted: less than {MEM_FLOOR_MIB} MiB of memory left available")
    if check and proc.returncode != 0:
        raise RuntimeError(f"testbed {' '.join(map(str, args))} exited {proc.returncode}: {err.strip()[-800:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def fits(pods: int, variant: str, measured: dict) -> tuple[bool, float]:
    """Whether `pods` pods should fit in the memory available now, with the floor to spare:
    per pod as measured at a smaller size in this run (PSS and the kernel's share), else a
    guess."""
    per_pod = measured.get(variant) or MIB_PER_POD.get(variant, MIB_PER_POD_DEFAULT)
    need = pods * per_pod * 1.1 + MEM_FLOOR_MIB
    return mem_available_kib() / 1024 > need, need


def kib(pid: int, field: str = "Pss:") -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


IDLE_WINDOW_S = 5.0


def busy_cpus(seconds: float) -> float:
    """CPUs kept busy, machine-wide, over `seconds` of doing nothing (the mesh up and idle:
    its proxies' timers, the agents, anything else running)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return ((t1 - t0) - (i1 - i0)) / os.sysconf("SC_CLK_TCK") / seconds


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def measure(tree: Path, spec: Path, pods: int, env: dict, run_id: str) -> dict:
    """One run: up, the matrix, memory, down. Cleaned by its id whatever happens."""
    timeout = 120 + 1.0 * pods
    avail0 = mem_available_kib()
    try:
        t0 = time.monotonic()
        st = json.loads(cli(tree, "up", spec, "--arch", "sidecar", "--run-id", run_id, "--json", env=env,
                            timeout=timeout).stdout)
        up_s = time.monotonic() - t0
        t1 = time.monotonic()
        edges = json.loads(cli(tree, "matrix", "--run", run_id, "--count", "1", "--json", env=env,
                               timeout=timeout, check=False).stdout or "[]")
        matrix_s = time.monotonic() - t1
        idle_cpu = busy_cpus(IDLE_WINDOW_S)
        proxies = [kib(p["pid"]) / 1024 for p in st["proxies"] if p.get("pid")]
        agents = [kib(p["pid"]) / 1024 for p in st["pods"] if p.get("pid")]
        used_mib = (avail0 - mem_available_kib()) / 1024
        t2 = time.monotonic()
        cli(tree, "down", "--run", run_id, env=env, timeout=timeout)
        down_s = time.monotonic() - t2
    finally:
        cli(REPO, "clean", "--run", run_id, env={}, timeout=timeout, check=False)
    timings = st.get("timings", {})
    return {"up_s": up_s, "ready_s": up_s + matrix_s, "matrix_s": matrix_s, "down_s": down_s,
            "flows_ok": sum(1 for e in edges if e.get("ok")), "flows": len(edges),
            "pss_proxy_mib": statistics.median(proxies) if proxies else 0.0,
            "pss_agent_mib": statistics.median(agents) if agents else 0.0,
            "pss_total_mib": sum(proxies) + sum(agents), "mem_used_mib": used_mib, "idle_cpu": idle_cpu,
            **{f"{k}_s": timings.get(k, 0.0) for k in STEPS}}


def plan_runs(sizes: list[int], variants: list[str], repeat: int) -> list[tuple[int, str, int]]:
    """(size, variant, repetition), interleaved: every variant of a size before the next
    repetition; big sizes once, before and after only."""
    out = []
    for size in sizes:
        big = size >= BIG
        for rep in range(1 if big else repeat):
            for v in variants:
                if not big or v in ("before", "after"):
                    out.append((size, v, rep))
    return out


def run_id(size: int, variant: str, rep: int) -> str:
    return f"s{size}{'abcdefgh'[list(VARIANTS).index(variant)]}{rep}"[:10]


def summary(rows: list[dict]) -> dict:
    """Median of each figure per (size, variant), and each variant's ratio to `after`."""
    out: dict = {}
    for r in rows:
        if "skipped_need_mib" in r:
            continue
        out.setdefault(r["size"], {}).setdefault(r["variant"], []).append(r)
    for by_variant in out.values():
        for v, runs in by_variant.items():
            by_variant[v] = {k: statistics.median(x[k] for x in runs) for k in runs[0]
                             if isinstance(runs[0][k], int | float) and k not in ("size", "rep")}
            by_variant[v]["runs"] = len(runs)
        after = by_variant.get("after")
        for v, med in by_variant.items():
            if after and v != "after":
                med["ratio_up"] = med["up_s"] / after["up_s"] if after["up_s"] else None
                med["ratio_down"] = med["down_s"] / after["down_s"] if after["down_s"] else None
    return out


def table(summ: dict) -> list[str]:
    cols = ["up_s", *[f"{s}_s" for s in STEPS], "ready_s", "matrix_s", "down_s", "pss_proxy_mib", "pss_agent_mib",
            "mem_used_mib", "idle_cpu"]
    heads = ["up", *STEPS, "ready", "matrix", "down", "PSS/proxy", "PSS/agent", "MemAv drop", "idle CPUs"]
    lines = [f"{'pods':>5} {'variant':<13} {'runs':>4} " + " ".join(f"{h[:10]:>10}" for h in heads) +
             f" {'up ratio':>9} {'flows ok':>9}"]
    for size in sorted(summ):
        for v, m in summ[size].items():
            ratio = f"{m['ratio_up']:9.2f}" if m.get("ratio_up") else f"{'-':>9}"
            lines.append(f"{size:>5} {v:<13} {m['runs']:>4} " + " ".join(f"{m.get(c, 0):>10.2f}" for c in cols) +
                         f" {ratio} {m['flows_ok']:>4.0f}/{m['flows']:<4.0f}")
        if "after" in summ[size] and size in TARGETS:
            up_t, down_t = TARGETS[size]
            a = summ[size]["after"]
            lines.append(f"      {size} pods: up < {up_t:g} s {'met' if a['up_s'] < up_t else 'MISSED'} "
                         f"({a['up_s']:.1f}), down < {down_t:g} s {'met' if a['down_s'] < down_t else 'MISSED'} "
                         f"({a['down_s']:.1f})")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of the small sizes")
    ap.add_argument("--sizes", default="30,100,200",
                    help=f"comma-separated pod counts (of: {','.join(map(str, SIZES))})")
    ap.add_argument("--big", action="store_true", help="add 500 and 800 pods (several GB of memory)")
    ap.add_argument("--variants", default="after,no-bpf-cache,no-spawner,all-starts,all-stats,before")
    ap.add_argument("--before", type=Path, help="a checkout of the testbed before the optimisations")
    ap.add_argument("--json", type=Path, help="write every run and the summary here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([500, 800] if args.big else [])
    variants = [v for v in args.variants.split(",") if v and (v != "before" or args.before)]
    unknown = [v for v in variants if v not in VARIANTS] + [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"unknown: {unknown}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        specs = {}
        for size in sizes:
            for v in variants:
                specs[size, v] = Path(tmp) / f"scale-{size}-{v}.yaml"
                specs[size, v].write_text(scale_yaml(SIZES[size][0], SIZES[size][1], size) + SPEC_TAIL.get(v, ""))
        per_pod: dict[str, float] = {}  # variant -> MiB per pod, measured
        for size, variant, rep in plan_runs(sizes, variants, args.repeat):
            tree = args.before.resolve() if variant == "before" else REPO
            rid = run_id(size, variant, rep)
            ok, need = fits(size, variant, per_pod)
            if not ok:
                print(f"{size} pods, {variant}: skipped, would need ~{need / 1024:.1f} GiB, "
                      f"{mem_available_kib() / 2 ** 20:.1f} GiB available", file=sys.stderr, flush=True)
                rows.append({"size": size, "variant": variant, "rep": rep, "skipped_need_mib": need})
                continue
            print(f"{size} pods, {variant}, run {rep + 1} ({rid})", file=sys.stderr, flush=True)
            try:
                r = measure(tree, specs[size, variant], size, VARIANTS[variant], rid)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"  failed: {exc}", file=sys.stderr)
                continue
            rows.append({"size": size, "variant": variant, "rep": rep, **r})
            # PSS per pod, and ~2 MiB of the kernel's (namespaces, links, sockets, cgroups) beside it;
            # the drop in available memory says the same but moves with everything else on the machine
            per_pod[variant] = max(per_pod.get(variant, 0.0), r["pss_total_mib"] / size + KERNEL_MIB_PER_POD)
            print(f"  up {r['up_s']:.1f} s, ready {r['ready_s']:.1f} s, down {r['down_s']:.1f} s, "
                  f"flows {r['flows_ok']}/{r['flows']}", file=sys.stderr, flush=True)
    summ = summary(rows)
    shapes = ", ".join(f"{s} pods: {SIZES[s][0]} nodes x {SIZES[s][1]} services, "
                       f"{flows(scale_spec(*SIZES[s], s))} flows" for s in sizes)
    print(f"sidecar mesh, eBPF redirection (testbed/synthetic.py: {shapes})")
    print("medians; times in s, memory in MiB (MemAv drop: MemAvailable before up minus after the matrix, the "
          "kernel's share included, moved by anything else running; idle CPUs: CPUs busy machine-wide over "
          f"{IDLE_WINDOW_S:g} s with the mesh up and idle); up ratio = variant / after (> 1: it helps)")
    print("\n".join(table(summ)))
    for r in rows:
        if "skipped_need_mib" in r:
            print(f"{r['size']} pods, {r['variant']}: not run, would need ~{r['skipped_need_mib'] / 1024:.1f} GiB")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": {str(k): v for k, v in summ.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
