"""A real run and its simulation, side by side, with the issue's rules for when they agree:

- counts must be equal: proxies, config counts (listeners, clusters, endpoints, routes,
  secrets), hops, proxies hit, pods served, identities exposed, flows affected by a crash;
- measured figures must be within 10 % or within the run-to-run spread, whichever is
  larger: memory (PSS, and RSS beside it), requests failed, time to recover. The spread is the range over
  repeated real runs when several are given; with one, for requests failed the Poisson
  spread of a count (2 sqrt(n + 1), so that a count of 0 has one too), for time to recover the recovery step (1 s, the
  measurement's own resolution). PSS splits shared pages among every process mapping them,
  so other Envoys on the machine (other runs) lower a real run's PSS; the journal's RSS
  and PSS tell by how much, and the simulated figure (a machine running only this run) is
  held to the real one plus that share.

Shown, not required: flows affected by other faults, service pairs reached, CPU per
1,000 requests/s (25 %, the spread seen between runs on 2 cores). Pure: journals in, rows out."""

from __future__ import annotations

import math

from ..measure.blast import STEP

RELATIVE = 0.10
CPU_TOLERANCE = 0.25
COUNTS = ("listeners", "clusters", "endpoints", "routes", "secrets")


def _row(arch, what, real, sim, rule, tolerance=None, required=True, center=None) -> dict:
    """`center`: what the simulated figure is held to, when not the real one itself."""
    if tolerance is None:
        within = real == sim
    elif real is None or sim is None:
        within = real is None and sim is None
    else:
        within = abs(sim - (real if center is None else center)) <= tolerance + 1e-9
    return {"arch": arch, "what": what, "real": real, "simulated": sim, "rule": rule,
            "tolerance": None if tolerance is None else round(tolerance, 3), "within": within, "required": required}


def _spread(values: list) -> float:
    vals = [v for v in values if v is not None]
    return max(vals) - min(vals) if len(vals) > 1 else 0.0


def _others_share_mib(cost: dict, shared_kib: float | None) -> float:
    """How much of the shared image other Envoys on the machine took from this run's proxies
    in the real window (MiB): RSS - PSS summed over the proxies, beyond what the run's own
    n Envoys sharing the image explain, (n - 1) x shared."""
    proxies = [p for p in cost.get("proxies", []) if p.get("rss_kib") and p.get("pss_kib")]
    if not proxies or not shared_kib:
        return 0.0
    taken = sum(p["rss_kib"] - p["pss_kib"] for p in proxies) - (len(proxies) - 1) * shared_kib
    return max(taken, 0.0) / 1024


def _cost_rows(arch, rc, sc, repeats, shared_kib) -> list[dict]:
    rows = [_row(arch, "proxies", rc["proxies_count"], sc["proxies_count"], "count")]
    for k in COUNTS:
        rows.append(_row(arch, f"config {k} (all proxies)", rc["config_totals"].get(k),
                         sc["config_totals"].get(k), "count"))
    rows.append(_row(arch, "hops per flow", sorted((f, h["hops"]) for f, h in rc.get("hops", {}).items()),
                     sorted((f, h["hops"]) for f, h in sc.get("hops", {}).items()), "count"))
    pss = rc["memory"]["pss_mib"]
    others = _others_share_mib(rc, shared_kib)
    alone = pss + others  # the real figure had the run's proxies been the only Envoys on the machine
    spread = _spread([r["memory"]["pss_mib"] for r in repeats])
    rule = f"max(10 %, range over repeats) of the real figure + {others:.1f} taken by other Envoys" if others \
        else "max(10 %, range over repeats)"
    rows.append(_row(arch, "memory PSS MiB", pss, sc["memory"]["pss_mib"], rule, max(RELATIVE * alone, spread),
                     center=alone))
    rss = rc["memory"]["rss_mib"]
    rows.append(_row(arch, "memory RSS MiB", rss, sc["memory"]["rss_mib"], "max(10 %, range over repeats)",
                     max(RELATIVE * rss, _spread([r["memory"]["rss_mib"] for r in repeats]))))
    cpu = rc["vcpu_per_krps"]["proxies"]
    if cpu:
        rows.append(_row(arch, "proxy vCPU per 1,000 rps", cpu, sc["vcpu_per_krps"]["proxies"], "25 %",
                         CPU_TOLERANCE * cpu, required=False))
    return rows


def _fault_rows(arch, i, rf, sf, repeats) -> list[dict]:
    label = f"fault {i} ({rf['kind']})"
    rows = [_row(arch, f"{label} proxies hit", rf.get("proxies_hit"), sf.get("proxies_hit"), "count"),
            _row(arch, f"{label} pods served", rf.get("pods_served"), sf.get("pods_served"), "count")]
    if rf["kind"] == "identity-compromise":
        rows.append(_row(arch, f"{label} identities exposed", sorted(rf.get("identities_exposed", [])),
                         sorted(sf.get("identities_exposed", [])), "count"))
        rows.append(_row(arch, f"{label} service pairs reached", len(rf.get("reachable_pairs", [])),
                         len(sf.get("reachable_pairs", [])), "count", required=False))
    if not (rf.get("measured", True) and sf.get("measured", True)) or sf.get("simulated"):
        return rows
    rows.append(_row(arch, f"{label} flows affected", rf.get("flows_affected"), sf.get("flows_affected"), "count",
                     required=rf["kind"] == "proxy-crash"))
    failed = rf.get("requests_failed") or 0
    others = [r.get("requests_failed") for r in repeats]
    spread = _spread(others) if len(others) > 1 else 2 * math.sqrt(failed + 1)
    rule = "max(10 %, range over repeats)" if len(others) > 1 else "max(10 %, 2 sqrt(n + 1))"
    rows.append(_row(arch, f"{label} requests failed", failed, sf.get("requests_failed") or 0, rule,
                     max(RELATIVE * failed, spread)))
    ttr = rf.get("time_to_recover")
    spread = max(_spread([r.get("time_to_recover") for r in repeats]), STEP)
    rows.append(_row(arch, f"{label} time to recover s", ttr, sf.get("time_to_recover"),
                     f"max(10 %, {spread:g} s)", max(RELATIVE * (ttr or 0), spread)))
    return rows


def compare(real: dict, sim: dict, repeats: list[dict] | None = None, shared_kib: float | None = None) -> dict:
    """Rows for every architecture both journals hold; `repeats`: every real run of the
    experiment (real included) for the run-to-run spread; `shared_kib`: the Envoy image
    (the calibration's) to tell other Envoys' share of PSS."""
    repeats = repeats or [real]
    rows = []
    for arch, rr in real["architectures"].items():
        sr = sim["architectures"].get(arch)
        if sr is None or rr.get("status") != "completed":
            continue
        if rr.get("cost") and sr.get("cost"):
            reps = [j["architectures"][arch]["cost"] for j in repeats
                    if (j["architectures"].get(arch) or {}).get("cost")]
            rows += _cost_rows(arch, rr["cost"], sr["cost"], reps, shared_kib)
        for i, (rf, sf) in enumerate(zip(rr.get("faults", []), sr.get("faults", []), strict=False)):
            if rf["kind"] == sf["kind"]:
                reps = [j["architectures"][arch]["faults"][i] for j in repeats
                        if len((j["architectures"].get(arch) or {}).get("faults", [])) > i]
                rows += _fault_rows(arch, i, rf, sf, reps)
    required = [r for r in rows if r["required"]]
    return {"real": real.get("_path"), "simulated": sim.get("_path"), "rows": rows,
            "required": len(required), "within": sum(r["within"] for r in required),
            "all_within": all(r["within"] for r in required)}
