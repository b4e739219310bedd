"""Calibrating what proxies cost, from the cost windows of real runs (docs/simulation.md):

- memory: the Envoy image every proxy on a host shares, and each proxy's private part. PSS
  splits the shared pages among every process mapping them, so RSS - PSS = shared x (1 - 1/n)
  for the n Envoys of a window; other Envoys on the machine (other runs) only ever raise n,
  so the image is taken from the windows that imply the least (within 5 %). The private part
  is then RSS - shared, fitted as a base plus a cost per listener, cluster, endpoint, route
  and secret (RSS, unlike PSS, does not depend on who else runs);
- config bytes: the /config_dump size, fitted the same way on the same counts;
- CPU: per role, the idle rate (the idle window) and the vCPU per 1,000 requests/s crossing
  a proxy (the steady window, requests counted as cost.passes counts them); the workloads'
  vCPU per 1,000 requests/s beside it;
- latency: per role and redirection, the p50/p90/p99 a proxy adds to a request: per window
  and path, the median over its flows of each flow's percentile less the same flow's under
  `none` in the same run and step; then per path the median over windows (a loaded window
  is one of many), fitted over the paths."""

from __future__ import annotations

import statistics

from ..measure.stats import percentile
from . import fit
from .config import COUNTS
from .cost import passes
from .params import ROLES
from .sources import CostWindow

ANCHORS = {"per_cluster_kib": "Envoy's docs: about 37-42 KB per cluster with stats, about 15 KB without",
           "per_endpoint_kib": "Envoy's docs: about 250 B per extra endpoint"}
QUANTILES = ("p50", "p90", "p99")


def _entry(value, unit, source, fit_quality=None, points=None, **extra) -> dict:
    out = {"value": None if value is None else round(value, 6), "unit": unit, "source": source,
           "fit": fit_quality, "points": points or []}
    out.update(extra)
    return out


def shared_image(costs: list[CostWindow]) -> dict:
    points = []
    for c in costs:
        proxies = [p for p in c.cost.get("proxies", []) if p.get("rss_kib") and p.get("pss_kib")]
        n = len(proxies)
        if n >= 2:
            d = statistics.median(p["rss_kib"] - p["pss_kib"] for p in proxies)
            points.append({"window": c.label, "journal": c.journal, "proxies": n, "rss_minus_pss_kib": round(d),
                           "implied_kib": round(d / (1 - 1 / n))})
    if not points:
        return _entry(None, "KiB", "assumed")
    low = min(p["implied_kib"] for p in points)
    clean = [p["implied_kib"] for p in points if p["implied_kib"] <= low * 1.05]
    s = fit.spread(clean)
    return _entry(s["value"], "KiB", "fit", {"n": len(clean), "of": len(points), "low": s["low"], "high": s["high"],
                                             "rule": "median of the windows implying the least (within 5 %)"},
                  points)


def memory(costs: list[CostWindow], shared_kib: float, prior: dict | None) -> dict:
    names = ["base_kib"] + [f"per_{k[:-1]}_kib" for k in COUNTS]
    rows, y, points = [], [], []
    for c in costs:
        for p in c.cost.get("proxies", []):
            if p.get("rss_kib") and p.get("config"):
                rows.append([1.0] + [float(p["config"][k]) for k in COUNTS])
                y.append(p["rss_kib"] - shared_kib)
                points.append({"window": c.label, "proxy": p["name"], "role": p["role"],
                               "private_kib": round(p["rss_kib"] - shared_kib), **{k: p["config"][k] for k in COUNTS}})
    return _linear(rows, y, names, "KiB", points, prior)


def config_bytes(costs: list[CostWindow], prior: dict | None) -> dict:
    names = ["base"] + [f"per_{k[:-1]}" for k in COUNTS]
    rows, y, points = [], [], []
    for c in costs:
        for p in c.cost.get("proxies", []):
            if p.get("config"):
                rows.append([1.0] + [float(p["config"][k]) for k in COUNTS])
                y.append(float(p["config"]["bytes"]))
                points.append({"window": c.label, "proxy": p["name"], "bytes": p["config"]["bytes"],
                               **{k: p["config"][k] for k in COUNTS}})
    return _linear(rows, y, names, "bytes", points, prior)


def _linear(rows, y, names, unit, points, prior: dict | None) -> dict:
    if not rows:
        return {n: (prior or {}).get(n) or _entry(0.0, unit, "assumed") for n in names}
    pv = [float((prior or {}).get(n, {}).get("value") or 0.0) for n in names] if prior else None
    got = fit.linear(rows, y, names, pv, nonneg=tuple(names[1:]))
    quality = got.pop("quality")
    out = {}
    for n in names:
        g = got[n]
        source = "fit" if prior is None or g["informed"] >= 0.5 else "prior"
        out[n] = _entry(g["value"], unit, source, dict(quality, stderr=round(g["stderr"], 3), informed=g["informed"]),
                        points if n == names[0] else [], **({"anchor": ANCHORS[n]} if n in ANCHORS else {}))
    out[names[0]]["points_note"] = f"{len(points)} proxies; the same points fit every coefficient"
    return out


def cpu(costs: list[CostWindow]) -> dict:
    per: dict[str, tuple[list, list, list]] = {r: ([], [], []) for r in ROLES}
    idle: dict[str, list[float]] = {r: [] for r in ROLES}
    workloads, wpoints = [], []
    for c in costs:
        steady, window = c.cost["steady"], c.cost["steady"]["seconds"] or c.cost["load"]["window_s"]
        rps = c.cost["load"]["measured_rps"]
        if rps and window:
            workloads.append(steady["workloads"] / window / (rps / 1000))
            wpoints.append({"window": c.label, "vcpu": round(steady["workloads"] / window, 4), "rps": rps})
        if not c.cost.get("proxies"):
            continue
        topo = c.topology()
        flows = max(c.cost["load"]["flows"], 1)
        through = passes(topo, rps / flows)
        by_name = {p.name: k for k, p in enumerate(topo.proxies)}
        for p in c.cost["proxies"]:
            k = by_name.get(p["name"])
            if k is None or p.get("cpu_s") is None:
                continue
            idle_rate = (p.get("idle_cpu_s") or 0.0) / (c.cost["idle"]["seconds"] or 1)
            idle[p["role"]].append(idle_rate)
            x, ys, pts = per[p["role"]]
            x.append(through[k])
            ys.append(p["cpu_s"] / window - idle_rate)
            pts.append({"window": c.label, "proxy": p["name"], "requests_per_s": round(through[k], 2),
                        "vcpu": round(p["cpu_s"] / window, 5), "idle_vcpu": round(idle_rate, 5)})
    per_krps, idle_out = {}, {}
    for role in ROLES:
        x, ys, pts = per[role]
        if x:
            g = fit.through_origin([v / 1000 for v in x], ys)
            per_krps[role] = _entry(g["value"], "vCPU per 1,000 requests/s crossing the proxy", "fit",
                                    {"r2": g["r2"], "rmse": g["rmse"], "n": g["n"]}, pts)
            s = fit.spread(idle[role])
            idle_out[role] = _entry(s["value"], "vCPU", "fit", {"n": s["n"], "low": s["low"], "high": s["high"]})
    w = fit.spread(workloads)
    return {"per_krps": per_krps, "idle_vcpu": idle_out,
            "workloads_per_krps": _entry(w["value"], "vCPU per 1,000 requests/s (the app servers and clients)", "fit",
                                         {"n": w["n"], "low": w["low"], "high": w["high"]}, wpoints)}


def latency(costs: list[CostWindow]) -> dict:
    """None's latency, and per redirection and role the latency a crossed proxy adds."""
    none = {}
    for c in costs:
        if c.arch == "none":
            none[(c.journal, c.label.replace("none", "", 1))] = c.latencies()
    base_q: dict[str, list[float]] = {q: [] for q in QUANTILES}
    for lat in none.values():
        allv = [v for vs in lat.values() for v in vs]
        for q in QUANTILES:
            if allv:
                base_q[q].append(percentile(allv, int(q[1:])))
    rows: dict[str, dict[str, tuple[list, list, list]]] = {}
    for c in costs:
        if c.arch == "none":
            continue
        base = none.get((c.journal, c.label.replace(c.arch, "", 1)))
        if not base:
            continue
        topo = c.topology()
        by_path: dict[tuple, dict[str, list[float]]] = {}  # a window counts once per path, however many flows
        for (src, dst), vs in c.latencies().items():
            if not base.get((src, dst)):
                continue
            roles = tuple(topo.proxies[k].role for k in topo.path(src, topo.cluster.pods_by_service[dst][0].name, dst))
            for q in QUANTILES:
                added = percentile(vs, int(q[1:])) - percentile(base[(src, dst)], int(q[1:]))
                by_path.setdefault(roles, {}).setdefault(q, []).append(added)
        for roles, qs in by_path.items():
            for q, added in qs.items():
                r = rows.setdefault(c.redirect, {}).setdefault(q, ([], [], []))
                r[0].append([float(roles.count(role)) for role in ROLES])
                r[1].append(statistics.median(added))
                r[2].append({"window": c.label, "roles": list(roles), "flows": len(added),
                             "added_ms": round(statistics.median(added), 3)})
    per_hop: dict[str, dict] = {}
    for redirect, by_q in rows.items():
        for q, (x, y, pts) in by_q.items():
            paths: dict[tuple, list[float]] = {}  # the median over windows per path: a loaded window is one of many
            for row, added in zip(x, y, strict=True):
                paths.setdefault(tuple(row), []).append(added)
            px = [list(k) for k in paths]
            py = [statistics.median(v) for v in paths.values()]
            present = [k for k, role in enumerate(ROLES) if any(r[k] for r in px)]
            got = fit.linear([[r[k] for k in present] for r in px], py, [ROLES[k] for k in present])
            quality = dict(got.pop("quality"), windows=len(y))
            for role in (ROLES[k] for k in present):
                e = per_hop.setdefault(redirect, {}).setdefault(role, {})
                e[q] = _entry(max(got[role]["value"], 0.0), "ms", "fit",
                              dict(quality, stderr=round(got[role]["stderr"], 3)), pts if role == ROLES[present[0]]
                              else [])
    none_ms = {q: _entry(fit.spread(v)["value"], "ms", "fit" if v else "assumed", {"n": len(v)}) for q, v in
               base_q.items()}
    return {"none_ms": none_ms, "per_hop_ms": per_hop}
