"""Real runs and their simulation, side by side, with the issue's rules for when they agree:

- counts must be equal: proxies, config counts (listeners, clusters, endpoints, routes,
  secrets), hops, proxies hit, pods served, identities exposed, flows affected by a crash;
- measured figures must be within 10 % or within the run-to-run spread, whichever is
  larger: memory (PSS, and RSS beside it), requests failed, time to recover. With repeated
  real runs, the simulated figure agrees when it lies between the least and the largest of
  them, or within 10 % of one of them. With one run the spread is stood in for: for requests
  failed by the Poisson spread of a count, 2 sqrt(n + 1) (so that a count of 0 has one), for
  time to recover by the recovery step, 1 s (the measurement's own resolution; it applies
  with repeats too). PSS splits shared pages among every process mapping them, so other
  Envoys on the machine (other runs) lower a real run's PSS; the journal's RSS and PSS tell
  by how much, and the simulated figure (a machine running only this run) is held to each
  real one plus that share.

Shown, not required: flows affected by other faults, service pairs reached, CPU per 1,000
requests/s (25 %, the spread seen between runs on 2 cores). Pure: journals in, rows out."""

from __future__ import annotations

import math

from ..measure.blast import STEP

RELATIVE = 0.10
CPU_TOLERANCE = 0.25
COUNTS = ("listeners", "clusters", "endpoints", "routes", "secrets")


def _count(arch, what, real, sim, required=True) -> dict:
    return {"arch": arch, "what": what, "real": real, "simulated": sim, "rule": "count", "within": real == sim,
            "required": required}


def _measured(arch, what, reals: list, sim, rule: str, slack=lambda v: RELATIVE * abs(v), required=True) -> dict:
    """Within [min, max] of the real values, or within `slack(v)` of one of them."""
    vals = [v for v in reals if v is not None]
    if not vals or sim is None:
        within = (not vals) and sim is None
    else:
        within = min(vals) - 1e-9 <= sim <= max(vals) + 1e-9 or any(abs(sim - v) <= slack(v) + 1e-9 for v in vals)
    shown = reals[0] if len(reals) == 1 else reals
    return {"arch": arch, "what": what, "real": shown, "simulated": sim, "rule": rule, "within": within,
            "required": required}


def _others_share_mib(cost: dict, shared_kib: float | None) -> float:
    """How much of the shared image other Envoys on the machine took from this run's proxies
    in the real window (MiB): RSS - PSS summed over the proxies, beyond what the run's own
    n Envoys sharing the image explain, (n - 1) x shared."""
    proxies = [p for p in cost.get("proxies", []) if p.get("rss_kib") and p.get("pss_kib")]
    if not proxies or not shared_kib:
        return 0.0
    taken = sum(p["rss_kib"] - p["pss_kib"] for p in proxies) - (len(proxies) - 1) * shared_kib
    return max(taken, 0.0) / 1024


def _hops_text(hops: dict[str, int]) -> str:
    tally: dict[int, int] = {}
    for n in hops.values():
        tally[n] = tally.get(n, 0) + 1
    return f"{len(hops)} flows: " + ", ".join(f"{k} hops x{v}" for k, v in sorted(tally.items()))


def _cost_rows(arch, costs: list[dict], sc: dict, shared_kib) -> list[dict]:
    rc = costs[0]
    rows = [_count(arch, "proxies", rc["proxies_count"], sc["proxies_count"])]
    for k in COUNTS:
        rows.append(_count(arch, f"config {k} (all proxies)", rc["config_totals"].get(k), sc["config_totals"].get(k)))
    hops = [{f: h["hops"] for f, h in c.get("hops", {}).items()} for c in (rc, sc)]
    row = _count(arch, "hops per flow", *(_hops_text(h) for h in hops))
    row["within"] = hops[0] == hops[1]  # flow by flow, not only the tally shown
    rows.append(row)
    others = [_others_share_mib(c, shared_kib) for c in costs]
    alone = [round(c["memory"]["pss_mib"] + o, 2) for c, o in zip(costs, others, strict=True)]
    row = _measured(arch, "memory PSS MiB (+ other Envoys' share)", alone, sc["memory"]["pss_mib"],
                    "10 % or the range" + (f"; other Envoys took {max(others):.1f} MiB" if max(others) else ""))
    row["measured"] = [c["memory"]["pss_mib"] for c in costs]
    rows.append(row)
    rows.append(_measured(arch, "memory RSS MiB", [c["memory"]["rss_mib"] for c in costs], sc["memory"]["rss_mib"],
                          "10 % or the range"))
    cpu = [c["vcpu_per_krps"]["proxies"] for c in costs if c["vcpu_per_krps"]["proxies"]]
    if cpu:
        rows.append(_measured(arch, "proxy vCPU per 1,000 rps", cpu, sc["vcpu_per_krps"]["proxies"],
                              "25 % or the range", lambda v: CPU_TOLERANCE * abs(v), required=False))
    return rows


def _fault_rows(arch, i, faults: list[dict], sf: dict) -> list[dict]:
    rf = faults[0]
    label = f"fault {i} ({rf['kind']})"
    rows = [_count(arch, f"{label} proxies hit", rf.get("proxies_hit"), sf.get("proxies_hit")),
            _count(arch, f"{label} pods served", rf.get("pods_served"), sf.get("pods_served"))]
    if rf["kind"] == "identity-compromise":
        rows.append(_count(arch, f"{label} identities exposed", sorted(rf.get("identities_exposed", [])),
                           sorted(sf.get("identities_exposed", []))))
        rows.append(_count(arch, f"{label} service pairs reached", len(rf.get("reachable_pairs", [])),
                           len(sf.get("reachable_pairs", [])), required=False))
    if not (rf.get("measured", True) and sf.get("measured", True)) or sf.get("simulated"):
        return rows
    rows.append(_count(arch, f"{label} flows affected", rf.get("flows_affected"), sf.get("flows_affected"),
                       required=rf["kind"] == "proxy-crash"))
    failed = [f.get("requests_failed") or 0 for f in faults]
    if len(faults) > 1:
        rows.append(_measured(arch, f"{label} requests failed", failed, sf.get("requests_failed") or 0,
                              "10 % or the range"))
    else:
        rows.append(_measured(arch, f"{label} requests failed", failed, sf.get("requests_failed") or 0,
                              "10 % or 2 sqrt(n + 1)", lambda v: max(RELATIVE * v, 2 * math.sqrt(v + 1))))
    rows.append(_measured(arch, f"{label} time to recover s", [f.get("time_to_recover") for f in faults],
                          sf.get("time_to_recover"), f"10 % or the range, at least {STEP:g} s (its step)",
                          lambda v: max(RELATIVE * v, STEP)))
    return rows


def compare(real: dict, sim: dict, repeats: list[dict] | None = None, shared_kib: float | None = None) -> dict:
    """Rows for every architecture both journals hold. `repeats`: every real run of the
    experiment (`real` among them) for the run-to-run spread; `shared_kib`: the Envoy image
    (the calibration's) to tell other Envoys' share of PSS."""
    repeats = repeats or [real]
    rows = []
    for arch, rr in real["architectures"].items():
        sr = sim["architectures"].get(arch)
        if sr is None or rr.get("status") != "completed":
            continue
        runs = [j["architectures"][arch] for j in repeats if (j["architectures"].get(arch) or {}).get("status")
                == "completed"]
        if rr.get("cost") and sr.get("cost"):
            rows += _cost_rows(arch, [r["cost"] for r in runs if r.get("cost")], sr["cost"], shared_kib)
        for i, (rf, sf) in enumerate(zip(rr.get("faults", []), sr.get("faults", []), strict=False)):
            if rf["kind"] == sf["kind"]:
                rows += _fault_rows(arch, i, [r["faults"][i] for r in runs if len(r.get("faults", [])) > i], sf)
    required = [r for r in rows if r["required"]]
    return {"real": [j.get("_path") for j in repeats], "simulated": sim.get("_path"), "rows": rows,
            "required": len(required), "within": sum(r["within"] for r in required),
            "all_within": all(r["within"] for r in required)}
