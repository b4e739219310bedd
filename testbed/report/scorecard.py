"""The scorecard of the design's trade-offs: architectures as columns; as rows, overhead
(memory and CPU), feature isolation (a bad extension, a bad per-workload setting, a refused
config), security granularity (stolen keys, ways around the proxy), upgrade impact (a good
and a failed upgrade) and failure isolation (a crash or hang, a noisy neighbour). Each cell
holds a figure computed from the journals, its rank (1 is best: the lowest figure; equal
figures share a rank), and where it came from (journal and fault).
Pure: journals in, rows out; a row no journal informs says which experiment would."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

MESHES = ("sidecar", "node", "node-sa", "ambient", "ztunnel")
ISOLATION = "run `testbed run experiments/isolation.yaml`"


@dataclass
class Cell:
    value: float | None  # what the rank is taken from (lower is better)
    text: str  # what the cell shows
    sources: list[dict] = field(default_factory=list)  # {"journal": path, "arch": a, "fault": i}
    rank: int | None = None
    spread: tuple[float, float] | None = None  # [min, max] over repeats, when there are several


@dataclass
class Row:
    key: str
    title: str
    question: str
    unit: str
    cells: dict[str, Cell]
    missing: str | None = None  # when no journal informs the row: what to run


def _rank(cells: dict[str, Cell]) -> None:
    """Competition ranking: 1 + how many did strictly better (equal figures share a rank)."""
    for c in cells.values():
        if c.value is not None:
            c.rank = 1 + sum(1 for other in cells.values() if other.value is not None and other.value < c.value)


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 or x == int(x) else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def _faults(journals: list[dict], kinds: tuple[str, ...], where=None) -> list[tuple[dict, str, int, dict]]:
    """(journal, arch, index, fault) for every measured fault of these kinds (and `where`)."""
    out = []
    for j in journals:
        for arch, result in j["architectures"].items():
            for i, f in enumerate(result.get("faults", [])):
                if f["kind"] in kinds and f.get("measured", True) and f.get("flows_total") is not None and \
                        (where is None or where(f)):
                    out.append((j, arch, i, f))
    return out


def _per_run(items, fig) -> dict[str, list[tuple[float, list[dict]]]]:
    """Per architecture: one figure per journal (summed over that journal's matching faults)."""
    acc: dict[tuple[str, str], tuple[float, list[dict]]] = {}
    for j, arch, i, f in items:
        key = (arch, j.get("_path", id(j)))
        total, srcs = acc.get(key, (0.0, []))
        acc[key] = (total + fig(f), srcs + [{"journal": j.get("_path"), "arch": arch, "fault": i, "kind": f["kind"]}])
    out: dict[str, list[tuple[float, list[dict]]]] = {}
    for (arch, _), v in acc.items():
        out.setdefault(arch, []).append(v)
    return out


def _cells(per_arch: dict[str, list[tuple[float, list[dict]]]], text) -> dict[str, Cell]:
    cells = {}
    for arch, runs in per_arch.items():
        values = [v for v, _ in runs]
        med = statistics.median(values)
        spread = (min(values), max(values)) if len(values) > 1 else None
        cells[arch] = Cell(med, text(med, spread), [s for _, srcs in runs for s in srcs], spread=spread)
    return cells


def _fault_row(key, title, question, unit, journals, kinds, primary, secondary, missing, where=None) -> Row:
    """`primary`: the ranked figure of a fault; `secondary`: (figure, label) shown beside it;
    `where`: which faults of those kinds count."""
    items = [x for x in _faults(journals, kinds, where) if x[1] in MESHES]
    firsts = _per_run(items, primary)
    seconds = _per_run(items, secondary[0]) if secondary else {}

    def text_for(arch):
        def text(med, spread):
            s = f"{_fmt(med)} {unit}" + (f" ({_fmt(spread[0])}-{_fmt(spread[1])})" if spread else "")
            if secondary and arch in seconds:
                s += f", {_fmt(statistics.median(v for v, _ in seconds[arch]))} {secondary[1]}"
            return s
        return text

    cells = {}
    for arch in firsts:
        cells.update(_cells({arch: firsts[arch]}, text_for(arch)))
    _rank(cells)
    return Row(key, title, question, unit, cells, None if cells else missing)


def _flows(f):
    return f["flows_affected"]


def _failed(f):
    return f.get("requests_failed") or 0


def _ids(f):
    return len(f.get("identities_exposed", []))


def _pairs(f):
    return len(f.get("reachable_pairs", []))


def _cut(f):
    return (f.get("long_lived") or {}).get("cut", 0)


def _fails(f):
    return (f.get("options") or {}).get("outcome") == "fails"


def _succeeds(f):
    return not _fails(f)


def _rollback_s(f):
    return (f.get("details") or {}).get("rollback_s_max") or 0.0


def _beyond(f):
    """Affected flows that are not the target's own (neither from it nor to its service)."""
    return len(f.get("flows_beyond_target") or [])


def _not_updated(f):
    return len((f.get("details") or {}).get("left_without_update", []))


def _neighbours_hurt(f):
    """Affected flows that do not leave from the noisy pods themselves."""
    noisy = set(f.get("target_pods") or [])
    return sum(1 for name, flow in (f.get("flows") or {}).items()
               if flow.get("affected") and name.split("->", 1)[0] not in noisy)


def _plaintext(f):
    return (f.get("details") or {}).get("reached_plaintext", 0)


def _cost_row(key, title, question, unit, journals, figure, text, missing) -> Row:
    per_arch: dict[str, list[tuple[float, list[dict]]]] = {}
    for j in journals:
        for arch, result in j["architectures"].items():
            cost = result.get("cost")
            if arch in MESHES and cost and figure(cost) is not None:
                per_arch.setdefault(arch, []).append((figure(cost), [{"journal": j.get("_path"), "arch": arch,
                                                                        "fault": None, "kind": "cost"}]))
    cells = _cells(per_arch, text)
    _rank(cells)
    return Row(key, title, question, unit, cells, None if cells else missing)


def scorecard(journals: list[dict]) -> list[Row]:
    """The rows, from every journal given (repeats of one experiment give medians, with the
    range over repeats beside them)."""
    def mem(c):
        return c["memory"]["pss_per_pod_mib"]

    def cpu(c):
        return c["vcpu_per_krps"]["proxies"]

    return [
        _cost_row("memory", "Overhead: memory", "proxy memory (PSS) per pod", "MiB per pod", journals, mem,
                  lambda m, s: f"{m:.1f} MiB/pod" + (f" ({s[0]:.1f}-{s[1]:.1f})" if s else ""),
                  "run an experiment with a `cost:` section, e.g. `testbed run experiments/cost.yaml`"),
        _cost_row("cpu", "Overhead: CPU", "proxy CPU per 1,000 requests/s", "vCPU per 1,000 rps", journals, cpu,
                  lambda m, s: f"{m:.3f} vCPU" + (f" ({s[0]:.3f}-{s[1]:.3f})" if s else ""),
                  "run an experiment with a `cost:` section, e.g. `testbed run experiments/cost.yaml`"),
        _fault_row("feature", "Feature isolation", "flows hurt by a bad Wasm extension", "flows", journals,
                   ("wasm",), _flows, (_failed, "failed"), "run `testbed run experiments/wasm.yaml`"),
        _fault_row("config", "Config isolation", "flows beyond the target's a bad per-workload setting hurts",
                   "flows", journals, ("config",), _beyond, (_failed, "failed"), ISOLATION),
        _fault_row("conflict", "Config conflicts", "pods left without their update when one workload's part is "
                   "refused", "pods", journals, ("config-reject",), _not_updated, (_failed, "failed"), ISOLATION),
        _fault_row("security", "Security granularity", "identities one compromised proxy exposes", "ids",
                   journals, ("identity-compromise",), _ids, (_pairs, "pairs reached"),
                   "run `testbed run experiments/identity.yaml`"),
        _fault_row("bypass", "Bypass", "plaintext paths around the proxy a workload finds", "paths", journals,
                   ("bypass",), _plaintext, None, ISOLATION),
        _fault_row("upgrade", "Upgrade impact", "requests failed while proxies are upgraded", "failed",
                   journals, ("upgrade",), _failed, (_cut, "cut"), "run `testbed run experiments/upgrade.yaml`",
                   where=_succeeds),
        _fault_row("failed-upgrade", "Failed upgrade", "requests failed while a version that never becomes ready "
                   "is rolled back", "failed", journals, ("upgrade",), _failed, (_rollback_s, "s to roll back"),
                   ISOLATION, where=_fails),
        _fault_row("failure", "Failure isolation", "flows a proxy crash or hang affects", "flows", journals,
                   ("proxy-crash", "proxy-hang"), _flows, (_failed, "failed"),
                   "run `testbed run experiments/blast-radius.yaml`"),
        _fault_row("noisy", "Noisy neighbour", "other pods' flows slowed or failed by one pod's extra traffic",
                   "flows", journals, ("noisy-neighbour",), _neighbours_hurt, (_failed, "failed"), ISOLATION),
    ]


def terminal(rows: list[Row]) -> list[str]:
    """The scorecard as text: one line per row, a cell per architecture with its rank."""
    archs = [a for a in MESHES if any(a in r.cells for r in rows)]
    width = max([26] + [len(f"{c.text} #{c.rank}") + 2 for r in rows for c in r.cells.values()])
    lines = [f"{'':<22}" + "".join(f"{a:>{width}}" for a in archs)]
    for r in rows:
        if r.missing:
            lines.append(f"{r.title:<22}  no data: {r.missing}")
            continue
        cells = [(f"{r.cells[a].text} #{r.cells[a].rank}" if a in r.cells else "-") for a in archs]
        lines.append(f"{r.title:<22}" + "".join(f"{c[-width + 1:]:>{width}}" for c in cells))
    lines.append("#1 = best (lowest); lower is better in every row")
    return lines
