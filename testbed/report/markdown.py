"""The report as Markdown: the scorecard, the costs and the faults as tables (the plots
are in report.html)."""

from __future__ import annotations

from .model import Report
from .scorecard import MESHES


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return out + [""]


def markdown(report: Report) -> str:
    archs = [a for a in MESHES if any(a in r.cells for r in report.scorecard)]
    lines = ["# mesh-testbed report", "", "## Scorecard", "",
             "Lower is better in every row; #1 marks the best. Details in report.html.", ""]
    rows = []
    for r in report.scorecard:
        if r.missing:
            rows.append([r.title, f"no data: {r.missing}"] + [""] * (len(archs) - 1))
        else:
            rows.append([r.title] + [f"{r.cells[a].text} (#{r.cells[a].rank})" if a in r.cells else "-"
                                     for a in archs])
    lines += _table(["trade-off"] + archs, rows) if archs else ["no architecture has data yet", ""]
    for run, by_arch in report.costs:
        lines += [f"## Cost: {run.journal['experiment']}", ""]
        lines += _table(["architecture", "proxies", "PSS MiB", "PSS MiB/pod", "proxy vCPU/1k rps", "p50 ms", "p99 ms",
                         "p99 added ms"],
                        [[a, c["proxies_count"], c["memory"]["pss_mib"], c["memory"]["pss_per_pod_mib"],
                          c["vcpu_per_krps"]["proxies"], c["latency_ms"]["p50"], c["latency_ms"]["p99"],
                          ((c.get("latency_added_ms") or {}).get("p99") or {}).get("estimate")]
                         for a, c in by_arch.items()])
    for f in report.faults:
        lines += [f"## {f.label}", ""]
        lines += _table(["architecture", "proxies hit", "pods served", "flows affected", "requests failed",
                         "time to recover s", "identities exposed"],
                        [[a, e["proxies_hit"], e["pods_served"],
                          f"{e.get('flows_affected')}/{e.get('flows_total')}" if e.get("measured", True) else "-",
                          e.get("requests_failed"), e.get("time_to_recover"), len(e.get("identities_exposed", []))]
                         for a, e in f.by_arch.items()])
    for f in report.fidelity:
        lines += [f"## Real and simulated: {f['within']} of {f['required']} required figures agree", "",
                  f"Real {', '.join(f'`{r}`' for r in f['real'])}, simulated `{f['simulated']}`; counts must be "
                  "equal, measured figures within "
                  "10 % or the run-to-run spread (docs/simulation.md).", ""]
        lines += _table(["architecture", "what", "real", "simulated", "rule", "agree"],
                        [[r["arch"], r["what"], r["real"], r["simulated"], r["rule"],
                          ("yes" if r["within"] else "NO") + ("" if r["required"] else " (shown)")] for r in f["rows"]])
    if report.comparison:
        lines += ["## What changed from A to B", "", f"Verdict: {report.comparison['verdict']}.", ""]
        lines += _table(["architecture", "what", "A", "B", "beyond the noise"],
                        [[c["arch"], c["what"], c["a"], c["b"], c["beyond_noise"]]
                         for c in report.comparison["changes"]])
    lines += ["## Runs", ""]
    for run in report.runs:
        env = run.journal.get("environment") or {}
        lines += [f"- `{run.path}`: {run.journal['experiment']}, {run.journal.get('status')}, engine {run.engine}"
                  f"{' (simulated)' if run.simulated else ''}; kernel {env.get('kernel')}, Envoy {env.get('envoy')}, "
                  f"git {env.get('git')}; rerun: `{run.rerun}`"]
    return "\n".join(lines) + "\n"
