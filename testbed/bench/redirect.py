"""The redirection benchmark: for each architecture and each redirection (and the `none`
baseline), in one run: fixed-rate load with hey from a client pod to a service on the same
node and to one on another node, the load generator pinned to its own CPU away from the
proxies and apps, warm-up trimmed, N repetitions interleaved in a seeded random order.
Reports p50/p90/p99 and throughput per variant as medians with 95 % bootstrap intervals,
and the ebpf/iptables ratio of each percentile with its interval."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import random
import secrets
from pathlib import Path

from .. import runner
from ..measure.stats import median_ci, percentile, ratio_ci
from ..mesh import envoy
from ..report.svg import bar_chart
from ..traffic.load import hey

PATHS = {"same-node": "local", "cross-node": "remote"}
CLIENT = "client-0"
PERCENTILES = (50, 90, 99)


def _pin(pid: int, cpus: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), cpus)


def run(spec: str | Path, archs: list[str], redirects: list[str], repeat: int = 3, seconds: float = 5.0,
        rate: float = 200.0, warmup: float = 1.0, keepalive: bool = True, seed: int = 1,
        out_dir: str | Path | None = None, progress=lambda msg: None) -> dict:
    variants = [("none", r) for r in redirects] + [(a, r) for a in archs if a != "none" for r in redirects]
    ncpu = os.cpu_count() or 1
    gen_cpus, work_cpus = ({ncpu - 1}, set(range(ncpu - 1))) if ncpu > 1 else ({0}, {0})
    samples: dict[str, dict[str, list[dict]]] = {f"{a}/{r}": {p: [] for p in PATHS} for a, r in variants}
    tag = secrets.token_hex(2)
    with contextlib.ExitStack() as stack:
        runs = {}
        for i, (arch, redirect) in enumerate(variants):
            run_id = f"b{tag}{i}"
            progress(f"building {arch}/{redirect} (run {run_id})")
            st = runner.up(spec, arch, redirect, run_id)
            stack.callback(runner.down, run_id)
            for pid in [p["pid"] for p in st["proxies"]] + [p["pid"] for p in st["pods"]]:
                _pin(pid, work_cpus)
            runs[f"{arch}/{redirect}"] = runner.cluster_of(run_id)
        order = list(runs)
        rng = random.Random(seed)
        for rep in range(repeat):
            rng.shuffle(order)
            for name in order:
                cluster = runs[name]
                for path, service in PATHS.items():
                    svc = cluster.plan.service(service)
                    progress(f"repetition {rep + 1}/{repeat}: {name} {path}")
                    res = hey(cluster.plan.pod(CLIENT), f"http://{svc.vip}:{svc.port}/", rate, seconds + warmup,
                              warmup, keepalive=keepalive, cpus=",".join(map(str, sorted(gen_cpus))))
                    samples[name][path].append({
                        **{f"p{q}": percentile(res.latencies_ms, q) for q in PERCENTILES},
                        "rps": res.throughput_rps, "requests": len(res.latencies_ms), "errors": res.errors})
    result = {
        "benchmark": "redirect", "version": 1,
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(), "envoy": envoy.version(), "spec": str(spec), "seed": seed,
        "settings": {"repeat": repeat, "seconds": seconds, "warmup": warmup, "rate": rate, "keepalive": keepalive,
                     "generator_cpus": sorted(gen_cpus), "proxy_cpus": sorted(work_cpus)},
        "variants": {}, "ratios": {}, "samples": samples,
    }
    for name, paths in samples.items():
        result["variants"][name] = {
            path: {m: dict(zip(("median", "low", "high"), median_ci([s[m] for s in reps], seed=seed), strict=True))
                   for m in [f"p{q}" for q in PERCENTILES] + ["rps"]}
            for path, reps in paths.items()}
    for arch in dict.fromkeys(a for a, _ in variants):
        if "ebpf" in redirects and "iptables" in redirects:
            e, i = samples[f"{arch}/ebpf"], samples[f"{arch}/iptables"]
            result["ratios"][arch] = {
                path: {f"p{q}": dict(zip(("ratio", "low", "high"),
                                         ratio_ci([s[f"p{q}"] for s in e[path]], [s[f"p{q}"] for s in i[path]],
                                                  seed=seed), strict=True))
                       for q in PERCENTILES}
                for path in PATHS}
    if out_dir:
        write(result, Path(out_dir))
    return result


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "redirect.json").write_text(json.dumps(result, indent=1))
    names = list(result["variants"])
    for q in ("p50", "p99"):
        series = {path: [tuple(result["variants"][n][path][q][k] for k in ("median", "low", "high")) for n in names]
                  for path in PATHS}
        svg = bar_chart(f"Request latency {q} by architecture/redirect (median, 95 % CI)", names, series, f"{q} ms")
        (out / f"redirect-{q}.svg").write_text(svg)


def table(result: dict) -> list[str]:
    lines = [f"{'variant':<18} {'path':<11} {'p50 ms':>16} {'p90 ms':>16} {'p99 ms':>16} {'req/s':>8}"]
    for name, paths in result["variants"].items():
        for path, m in paths.items():
            cells = [f"{m[k]['median']:.3f} [{m[k]['low']:.2f},{m[k]['high']:.2f}]" for k in ("p50", "p90", "p99")]
            rps = m["rps"]["median"]
            lines.append(f"{name:<18} {path:<11} " + " ".join(f"{c:>16}" for c in cells) + f" {rps:>8.1f}")
    if result["ratios"]:
        lines.append("")
        lines.append(f"{'ebpf/iptables':<18} {'path':<11} {'p50':>18} {'p90':>18} {'p99':>18}")
        for arch, paths in result["ratios"].items():
            for path, r in paths.items():
                cells = [f"{r[k]['ratio']:.2f} [{r[k]['low']:.2f},{r[k]['high']:.2f}]" for k in ("p50", "p90", "p99")]
                lines.append(f"{arch:<18} {path:<11} " + " ".join(f"{c:>18}" for c in cells))
    return lines
