"""The redirection benchmark: for each architecture and each redirection (and the `none`
baseline), in one run: fixed-rate load with hey from a client pod to a service on the same
node and to one on another node, the load generator pinned to its own CPU away from the
proxies and apps, warm-up trimmed, N repetitions interleaved in a seeded random order.
Reports p50/p90/p99 and throughput per variant as medians with exact order-statistic
intervals (labelled with the coverage they reach: with fewer than 6 repetitions, less than
95 %), and the ebpf/iptables ratio of each percentile as the median of the per-repetition
ratios (paired: repetition k of both ran under the same machine state), with its interval.
A signal stops it cleanly: the runs are torn down and the repetitions done so far written."""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import random
import secrets
from pathlib import Path

from .. import runner, signals
from ..atomic import write_json, write_text
from ..measure.stats import median_ci, min_repeats, paired_ratio_ci, percentile
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


DEFAULT_REPEAT = min_repeats(0.95)  # 6: the fewest whose median interval reaches 95 %


def run(spec: str | Path, archs: list[str], redirects: list[str], repeat: int = DEFAULT_REPEAT, seconds: float = 5.0,
        rate: float = 200.0, warmup: float = 1.0, keepalive: bool = True, seed: int = 1,
        out_dir: str | Path | None = None, progress=lambda msg: None) -> dict:
    variants = [("none", r) for r in redirects] + [(a, r) for a in archs if a != "none" for r in redirects]
    ncpu = os.cpu_count() or 1
    gen_cpus, work_cpus = ({ncpu - 1}, set(range(ncpu - 1))) if ncpu > 1 else ({0}, {0})
    samples: dict[str, dict[str, list[dict]]] = {f"{a}/{r}": {p: [] for p in PATHS} for a, r in variants}
    tag = secrets.token_hex(2)
    status, done = "completed", 0
    with signals.handled():
        try:
            with signals.Unwind() as unwind:
                runs = {}
                for i, (arch, redirect) in enumerate(variants):
                    run_id = f"b{tag}{i}"
                    progress(f"building {arch}/{redirect} (run {run_id})")
                    st = runner.up(spec, arch, redirect, run_id)
                    unwind.callback(runner.down, run_id)
                    for pid in [p["pid"] for p in st["proxies"]] + [p["pid"] for p in st["pods"]]:
                        _pin(pid, work_cpus)
                    runs[f"{arch}/{redirect}"] = runner.cluster_of(run_id)
                order = list(runs)
                rng = random.Random(seed)
                for rep in range(repeat):
                    rng.shuffle(order)
                    got = {}
                    for name in order:
                        cluster = runs[name]
                        for path, service in PATHS.items():
                            svc = cluster.plan.service(service)
                            progress(f"repetition {rep + 1}/{repeat}: {name} {path}")
                            res = hey(cluster.plan.pod(CLIENT), f"http://{svc.vip}:{svc.port}/", rate,
                                      seconds + warmup, warmup, keepalive=keepalive,
                                      cpus=",".join(map(str, sorted(gen_cpus))))
                            got[(name, path)] = {
                                **{f"p{q}": percentile(res.latencies_ms, q) if res.latencies_ms else None
                                   for q in PERCENTILES},
                                "rps": res.throughput_rps, "requests": len(res.latencies_ms), "errors": res.errors}
                    for (name, path), sample in got.items():  # whole repetitions only: pairs stay aligned
                        samples[name][path].append(sample)
                    done += 1
        except signals.Interrupted:
            status = "interrupted"
            with signals.shielded(in_flight=True):
                result = summarize(samples, variants, redirects, spec, seed, repeat, seconds, warmup, rate,
                                   keepalive, gen_cpus, work_cpus, status, done)
                if out_dir:
                    write(result, Path(out_dir))
            raise
    result = summarize(samples, variants, redirects, spec, seed, repeat, seconds, warmup, rate, keepalive, gen_cpus,
                       work_cpus, status, done)
    if out_dir:
        write(result, Path(out_dir))
    return result


def summarize(samples, variants, redirects, spec, seed, repeat, seconds, warmup, rate, keepalive, gen_cpus,
              work_cpus, status, done) -> dict:
    result = {
        "benchmark": "redirect", "version": 2, "status": status, "repetitions_done": done,
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(), "envoy": envoy.version(), "spec": str(spec), "seed": seed,
        "settings": {"repeat": repeat, "seconds": seconds, "warmup": warmup, "rate": rate, "keepalive": keepalive,
                     "generator_cpus": sorted(gen_cpus), "proxy_cpus": sorted(work_cpus)},
        "variants": {}, "ratios": {}, "samples": samples,
    }
    for name, paths in samples.items():
        result["variants"][name] = {
            path: {m: median_ci([s[m] for s in reps]).as_dict("median")
                   for m in [f"p{q}" for q in PERCENTILES] + ["rps"]}
            for path, reps in paths.items()}
    for arch in dict.fromkeys(a for a, _ in variants):
        if "ebpf" in redirects and "iptables" in redirects:
            e, i = samples[f"{arch}/ebpf"], samples[f"{arch}/iptables"]
            result["ratios"][arch] = {
                path: {f"p{q}": paired_ratio_ci([s[f"p{q}"] for s in e[path]],
                                                [s[f"p{q}"] for s in i[path]]).as_dict("ratio")
                       for q in PERCENTILES}
                for path in PATHS}
    return result


def _nan(x):
    return math.nan if x is None else x


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "redirect.json", result)
    names = list(result["variants"])
    for q in ("p50", "p99"):
        series = {path: [tuple(_nan(result["variants"][n][path][q][k]) for k in ("median", "low", "high"))
                         for n in names] for path in PATHS}
        svg = bar_chart(f"Request latency {q} by architecture/redirect (median, order-statistic interval)", names,
                        series, f"{q} ms")
        write_text(out / f"redirect-{q}.svg", svg)


def _fmt(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _iv(m: dict, key: str, digits: int) -> str:
    """`estimate [low,high]`, with a * where the interval falls short of its stated level."""
    mark = "" if m.get("reaches_level", True) else "*"
    return f"{_fmt(m[key], digits)} [{_fmt(m['low'], 2)},{_fmt(m['high'], 2)}]{mark}"


def table(result: dict) -> list[str]:
    lines = [f"{'variant':<18} {'path':<11} {'p50 ms':>17} {'p90 ms':>17} {'p99 ms':>17} {'req/s':>8}"]
    short = False
    for name, paths in result["variants"].items():
        for path, m in paths.items():
            cells = [_iv(m[k], "median", 3) for k in ("p50", "p90", "p99")]
            short = short or any(not m[k].get("reaches_level", True) for k in ("p50", "p90", "p99"))
            lines.append(f"{name:<18} {path:<11} " + " ".join(f"{c:>17}" for c in cells) +
                         f" {_fmt(m['rps']['median'], 1):>8}")
    if result["ratios"]:
        lines.append("")
        lines.append(f"{'ebpf/iptables':<18} {'path':<11} {'p50':>18} {'p90':>18} {'p99':>18}  (paired)")
        for arch, paths in result["ratios"].items():
            for path, r in paths.items():
                cells = [_iv(r[k], "ratio", 2) for k in ("p50", "p90", "p99")]
                differs = [k for k in ("p50", "p90", "p99") if r[k]["high"] is not None and
                           (r[k]["high"] < 1 or r[k]["low"] > 1)]
                note = f"  differs: {','.join(differs)}" if differs else ""
                lines.append(f"{arch:<18} {path:<11} " + " ".join(f"{c:>18}" for c in cells) + note)
    level = next((m["p50"]["level"] for paths in result["variants"].values() for m in paths.values()), 0.95)
    lines.append(f"\nintervals: exact order statistics of {result['repetitions_done']} repetitions, "
                 f"{level:.0%} asked" + ("; * reaches less (too few repetitions)" if short else ""))
    if result.get("status") != "completed":
        lines.append(f"status: {result['status']} after {result['repetitions_done']} of {result['settings']['repeat']} "
                     "repetitions")
    return lines
