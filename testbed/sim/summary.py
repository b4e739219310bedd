"""What `testbed calibrate` and `testbed simulate` print: the parameters with their fit
quality and the published anchors beside ours; and per architecture the figures a projection
is read for (proxies, memory, CPU, config per proxy with and without scoping, and each
fault's reach). Text only, from the calibration document and the journal."""

from __future__ import annotations

from .params import value


def _q(fitq) -> str:
    if not isinstance(fitq, dict):
        return ""
    parts = []
    for k in ("r2", "rmse", "n", "stderr", "informed", "error", "flows", "low", "high"):
        if fitq.get(k) is not None:
            parts.append(f"{k}={fitq[k]}")
    return " ".join(parts)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def calibration_lines(doc: dict) -> list[str]:
    p = doc["parameters"]
    lines = [f"calibrated from {len(doc['from'])} journal(s): {doc['counts']['cost_windows']} cost windows, "
             f"{doc['counts']['faults']} faults" + (f"; prior: {doc['prior']}" if doc.get("prior") else "")]
    if doc.get("memory_from"):
        lines.append(f"  private memory and config bytes from {len(doc['memory_from'])} of them only")

    def row(name, e):
        anchor = f"   [published: {e['anchor']}]" if isinstance(e, dict) and e.get("anchor") else ""
        lines.append(f"  {name:<34} {_fmt(value(e)):>12} {e.get('unit', ''):<8.8} {e.get('source', ''):<7} "
                     f"{_q(e.get('fit'))}{anchor}")

    lines.append("memory (KiB; private = base + per count, shared image once per host)")
    for k, e in p["memory"].items():
        row(k, e)
    lines.append("config bytes (/config_dump)")
    for k, e in p["config_bytes"].items():
        row(k, e)
    lines.append("CPU (vCPU per 1,000 requests/s crossing a proxy; idle vCPU)")
    for k, e in p["cpu"]["per_krps"].items():
        row(f"per_krps {k}", e)
    for k, e in p["cpu"]["idle_vcpu"].items():
        row(f"idle {k}", e)
    row("workloads_per_krps", p["cpu"]["workloads_per_krps"])
    lines.append("latency (ms added per proxy crossed; none's own)")
    for q, e in p["latency"]["none_ms"].items():
        row(f"none {q}", e)
    for redirect, roles in p["latency"]["per_hop_ms"].items():
        for role, qs in roles.items():
            row(f"{redirect} {role} p50/p99", {**qs["p50"], "value": f"{value(qs['p50']):.2f}/{value(qs['p99']):.2f}"})
    lines.append("times (s)")
    for k, e in p["times"].items():
        if "value" in e:
            row(k, e)
        else:
            for role, x in e.items():
                row(f"{k} {role}", x)
    lines.append("failures: cause/role/position -> onset s, fail share, served share, resume s, after s")
    for k, e in p["effects"].items():
        vals = "/".join(f"{value(e.get(f), 0):.2f}" for f in ("onset", "fail", "served", "resume", "after"))
        lines.append(f"  {k:<34} {vals:>28} {e.get('source', ''):<7} {_q(e.get('fit'))}")
    return lines


def simulation_lines(journal: dict) -> list[str]:
    sim = journal.get("simulation") or {}
    lines = [f"simulated {sim.get('nodes')} nodes, {sim.get('pods')} pods, {sim.get('services')} services, "
             f"{sim.get('accounts')} service accounts, {sim.get('flows')} flows; a host is a {sim.get('hosts')}; "
             f"{sim.get('seconds')}s of computing"]
    stand_ins = (sim.get("calibration") or {}).get("stand_ins") or {}
    if stand_ins:  # a role the calibration has no runs of (params.STAND_IN)
        lines.append("the calibration has no runs of some roles; their figures are others': " +
                     ", ".join(f"{k} <- {v}" for k, v in sorted(stand_ins.items())))
    head = (f"{'architecture':<12} {'proxies':>8} {'PSS GiB all/calls':>18} {'vCPU':>7} {'vCPU @traffic':>13} "
            f"{'config KiB max all/calls':>25} {'ids/proxy':>9}")
    rows = []
    for arch, r in journal["architectures"].items():
        c = r.get("cost")
        if not c or arch == "none":
            continue
        s = c.get("scoping") or {}
        ids = max((v.get("identities_max", 0) for v in (c.get("proxies_summary") or {}).values()), default=0)
        pss = "/".join(f"{s.get(k, {}).get('pss_mib', 0) / 1024:.1f}" for k in ("all", "calls"))
        kib = "/".join(f"{s.get(k, {}).get('per_proxy_bytes_max', 0) / 1024:.0f}" for k in ("all", "calls"))
        busy = (c.get("at_traffic_rate") or {}).get("proxies_vcpu")
        rows.append(f"{arch:<12} {c['proxies_count']:>8} {pss:>18} {c['vcpu']['proxies']:>7.2f} "
                    f"{busy if busy is not None else '-':>13} {kib:>25} {ids:>9}")
    if rows:
        rate = next((r["cost"].get("at_traffic_rate") for r in journal["architectures"].values()
                     if r.get("cost") and r["cost"].get("at_traffic_rate")), None)
        lines += ["", head] + rows
        lines.append("PSS and config: with every service known (mesh.scope all) / only the called ones (calls); "
                     "vCPU: at the cost window's rate" + (f"; @traffic: every flow at {rate['per_flow_rate']:g}/s, "
                                                          f"{rate['requests_per_s']:g} requests/s" if rate else ""))
    return lines
