"""The terminal table of a journal: architectures as columns, faults as rows. Reads the
journal only."""

from __future__ import annotations


def _cell(f: dict) -> str:
    if (f.get("details") or {}).get("not_applicable"):
        return "n/a (no proxy)"
    if not f.get("measured", True):
        if f.get("simulated"):
            return "not modelled"
        # injected at or after the next fault's time (the schedule slipped): nothing is its own
        return "not injected" if f.get("injected_at") is None else "injected late, not measured"
    if f["kind"] == "identity-compromise":
        return f"{len(f['identities_exposed'])} ids, {len(f['reachable_pairs'])} pairs"
    d = f.get("details") or {}
    flows = f"{f['flows_affected']}/{f['flows_total']} flows"
    cell = f"{flows}, {f['requests_failed']} failed"
    if f["kind"] == "upgrade":
        ll = f.get("long_lived") or {}
        conns = ", ".join(f"{ll[k]} {k}" for k in ("drained", "cut") if ll.get(k))
        cell = f"{flows}, {conns or 'no conn lost'}"
        if d.get("rolled_back"):
            cell = f"{len(d['rolled_back'])} rolled back in {d['rollback_s_max']:.1f}s, {f['requests_failed']} failed" \
                + (", halted" if d.get("halted") else "")
    elif f["kind"] == "config":
        cell = f"{flows} ({len(f.get('flows_beyond_target') or [])} beyond), {f['requests_failed']} failed"
    elif f["kind"] == "config-reject":
        cell = f"{len(d.get('left_without_update', []))} pods not updated, {f['requests_failed']} failed"
    elif f["kind"] == "noisy-neighbour":
        n = f.get("neighbours") or {}
        ratio = (n.get("sharing") or {}).get("p99_ratio_median"), (n.get("apart") or {}).get("p99_ratio_median")
        shown = "/".join("-" if r is None else f"x{r:.1f}" for r in ratio)
        cell = f"{flows}, p99 {shown} shared/apart"
    elif f["kind"] == "bypass":
        cell = f"{d.get('reached_plaintext', 0)} plaintext paths"
    return cell


def fault_table(journal: dict) -> list[str]:
    """One row per fault: flows affected / total and requests failed beyond the baseline
    (identity: identities exposed and service pairs reached; upgrade: long-lived connections
    drained or cut, or the proxies rolled back; config: flows beyond the target's; config-reject:
    pods left without their update; noisy-neighbour: the p99 rise of the flows sharing a proxy
    with the noise and of the others; bypass: plaintext paths found); then the proxies hit and
    the pods they serve; then each architecture's status and clean window."""
    archs = list(journal["architectures"])
    results = journal["architectures"]
    n = max((len(a["faults"]) for a in results.values()), default=0)
    width = max([30] + [len(_cell(f)) + 2 for a in results.values() for f in a["faults"]])
    lines = [f"{'fault':<34}" + "".join(f"{a:>{width}}" for a in archs)]
    for i in range(n):
        first = next(results[a]["faults"][i] for a in archs if len(results[a]["faults"]) > i)
        t = first["target"]
        label = f"{first['kind']} {t['kind']}={t['name']}"
        cells = [_cell(results[a]["faults"][i]) if len(results[a]["faults"]) > i else "-" for a in archs]
        lines.append(f"{label[:34]:<34}" + "".join(f"{c:>{width}}" for c in cells))
        served = [f"{results[a]['faults'][i]['proxies_hit']} proxies, {results[a]['faults'][i]['pods_served']} pods "
                  "served" if len(results[a]["faults"]) > i else "-" for a in archs]
        lines.append(f"{'':<34}" + "".join(f"{c:>{width}}" for c in served))
    lines.append("")
    for a, v in results.items():
        clean = v.get("clean_after")
        state = v.get("status", "completed")
        extra = f": {v.get('error')}" if v.get("error") and state != "completed" else ""
        window = f"clean window {clean['failed']}/{clean['requests']} failed" if clean else "no clean window"
        flag = ", the load generator fell behind (requests not sent)" if v.get("generator_overloaded") else ""
        lines.append(f"{a}: {state}{extra}; {window}{flag}")
    return lines


def cost_table(journal: dict) -> list[str]:
    """Per architecture with a cost section: proxies, memory, CPU per 1,000 requests/s and
    latency, the p99 added against `none` (a * where its interval excludes zero)."""
    rows = [(a, r["cost"]) for a, r in journal["architectures"].items() if r.get("cost")]
    if not rows:
        return []
    lines = [f"{'cost':<10} {'proxies':>7} {'PSS MiB':>8} {'MiB/pod':>8} {'vCPU/krps':>10} {'rps':>7} {'p99 ms':>7} "
             f"{'p99 added':>10}"]
    for a, c in rows:
        added = (c.get("latency_added_ms") or {}).get("p99") or {}
        mark = "*" if added.get("significant") else ""
        shown = f"{added['estimate']:+.2f}{mark}" if added.get("estimate") is not None else "-"
        cpu = c["vcpu_per_krps"]["proxies"]
        p99 = c["latency_ms"]["p99"]
        lines.append(f"{a:<10} {c['proxies_count']:>7} {c['memory']['pss_mib']:>8.1f} "
                     f"{c['memory']['pss_per_pod_mib'] or 0:>8.1f} {cpu if cpu is not None else 0:>10.3f} "
                     f"{c['load']['measured_rps']:>7.0f} {p99 if p99 is not None else 0:>7.2f} {shown:>10}")
    lines.append("* the interval of the difference excludes zero (95 % bootstrap over requests)")
    return lines
