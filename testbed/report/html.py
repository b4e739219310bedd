"""The report as one self-contained HTML page (plots inline as SVG) and as Markdown, from
the report model (model.py). `write(paths, out)` is what `testbed report` calls."""

from __future__ import annotations

import datetime
from pathlib import Path

import jinja2

from ..atomic import write_text
from . import plots
from .compare import __doc__ as COMPARE_RULES
from .markdown import markdown
from .model import Report, anchor_of, build
from .scorecard import MESHES

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def _hops(cost: dict) -> str:
    counts = sorted({h["hops"] for h in cost.get("hops", {}).values()})
    return ", ".join(map(str, counts)) or "0"


def _cost_plots(report: Report) -> dict[str, str]:
    out = {}
    for run, by_arch in report.costs:
        svgs = [plots.bars("Proxy memory (PSS)", {a: c["memory"]["pss_mib"] for a, c in by_arch.items()}, "MiB"),
                plots.bars("Proxy CPU per 1,000 requests/s", {a: c["vcpu_per_krps"]["proxies"]
                                                              for a, c in by_arch.items()}, "vCPU"),
                plots.bars("Latency p99", {a: c["latency_ms"]["p99"] for a, c in by_arch.items()}, "ms")]
        out[run.anchor] = "\n".join(svgs)
    return out


def _sweep_plots(report: Report) -> dict[str, str]:
    out = {}
    for run, sweep in report.sweeps:
        steps = sweep["steps"]
        xs = [s["value"] for s in steps]
        archs = list(dict.fromkeys(a for s in steps for a in s["architectures"]))

        def series(fig, steps=steps, archs=archs):
            out_s = {}
            for a in archs:
                vals = []
                for s in steps:
                    c = (s["architectures"].get(a) or {}).get("cost")
                    vals.append(fig(c) if c else None)
                out_s[a] = vals
            return out_s

        p = sweep["parameter"]
        svgs = [plots.curves("Proxy memory (PSS)", xs, series(lambda c: c["memory"]["pss_mib"]), p, "MiB"),
                plots.curves("Largest proxy config", xs,
                             series(lambda c: c["config_totals"]["per_proxy_bytes_max"] / 1024), p, "KiB"),
                plots.curves("Proxy CPU per 1,000 rps", xs, series(lambda c: c["vcpu_per_krps"]["proxies"]), p,
                             "vCPU"),
                plots.curves("Up time", xs, series(lambda c: None), p, "s")]
        ups = {a: [(s["architectures"].get(a) or {}).get("up_s") for s in steps] for a in archs}
        svgs[-1] = plots.curves("Time to build the run", xs, ups, p, "s")
        out[run.anchor] = "\n".join(svgs)
    return out


def _fault_plots(report: Report) -> dict[str, str]:
    out = {}
    for f in report.faults:
        measured = {a: e for a, e in f.by_arch.items() if e.get("measured", True) and e.get("flows_total")}
        svgs = []
        if measured and f.kind == "identity-compromise":
            svgs.append(plots.bars("Identities exposed", {a: len(e["identities_exposed"]) for a, e in measured.items()},
                                   "SPIFFE IDs"))
            svgs.append(plots.bars("Service pairs the attacker reached",
                                   {a: len(e["reachable_pairs"]) for a, e in measured.items()}, "pairs"))
        elif measured:
            svgs.append(plots.bars("Flows affected", {a: e["flows_affected"] for a, e in measured.items()}, "flows"))
            svgs.append(plots.bars("Requests failed beyond the baseline",
                                   {a: e["requests_failed"] for a, e in measured.items()}, "requests",
                                   {a: tuple(e["requests_failed_band"]) for a, e in measured.items()
                                    if e.get("requests_failed_band")}))
        windows = [tuple(e["fault_window"]) for e in measured.values() if e.get("fault_window")]
        window = (min(w[0] for w in windows), max(w[1] for w in windows)) if windows else None
        rows = {a: t for a, t in f.timelines.items() if t}
        if rows:
            svgs.append(plots.success_over_time("Success rate per flow, fault window shaded", rows, window))
        out[f.anchor] = "\n".join(svgs)
    return out


def html(report: Report) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    archs = [a for a in MESHES if any(a in r.cells for r in report.scorecard)]
    first = report.runs[0].journal if report.runs else {}
    title = ", ".join(dict.fromkeys(r.journal["experiment"] for r in report.runs)) or "no runs"
    return env.get_template("report.html.j2").render(
        title=title, built=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), runs=report.runs,
        scorecard=report.scorecard, archs=archs, link=lambda c: anchor_of(report, c.sources[0]) if c.sources else "",
        comparison=report.comparison, compare_rules=COMPARE_RULES.split("\n\n", 1)[0], costs=report.costs,
        fidelity=report.fidelity, sweeps=report.sweeps, faults=report.faults, references=report.references,
        cost_plots=_cost_plots(report), sweep_plots=_sweep_plots(report), fault_plots=_fault_plots(report),
        fmt=_fmt, pct=_pct, hops=_hops, env=lambda run: run.journal.get("environment") or {},
        journal_cost=lambda run: run.journal.get("cost_settings") or {},
        affected=first.get("affected", {}), any_simulated=any(r.simulated for r in report.runs))


def write(paths: list[str | Path], out: str | Path) -> tuple[Path, Path]:
    """report.html and report.md in `out`, from the journals at `paths`."""
    report = build(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.html", html(report))
    write_text(out / "report.md", markdown(report))
    return out / "report.html", out / "report.md"
