"""Two runs side by side: what changed from A to B beyond the noise. The rules, stated with
each change in the report:

- requests failed, per second of the fault window (a crashed proxy that took longer to come
  back fails for longer; the window says how long): beyond the noise when the two runs'
  noise bands do not overlap, each band being `requests_failed_band` (two standard
  deviations of what baseline errors alone give) widened by two standard deviations of the
  count itself (its square root: a count of failures varies from run to run like a Poisson
  count, with which requests were in flight), divided by the window's length;
- latency (from the cost windows' records): when the bootstrap interval of B - A excludes 0;
- memory (PSS): when it moved by more than 5 %, CPU per 1,000 rps by more than 25 % (the
  spread seen between repeated runs on our 2-core machines);
- counts (proxies hit, pods served, flows affected, identities exposed, pairs reached): any
  difference is shown; a single run gives no noise estimate for them, so they are marked as
  counts, not tests.

The verdict: two runs *agree within noise* when they ran the same experiment, the same
architectures finished the same way, no figure moved beyond its noise and every count is
equal (what `testbed rerun` should give). Anything else is a difference, and the verdict
names the first ones.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..measure import latency

MEMORY_TOLERANCE = 0.05
CPU_TOLERANCE = 0.25


def _lat(j: dict, arch: str) -> list[float]:
    name = (j["architectures"][arch].get("files") or {}).get("cost")
    path = Path(j["_path"]).parent / name if name else None
    if not path or not path.exists():
        return []
    with open(path) as f:
        return [r["latency_ms"] for r in map(json.loads, f) if r.get("status") == 200]


def _per_second(fault: dict, band: list) -> tuple[float, float]:
    """A fault's requests-failed noise band, widened by two standard deviations of a Poisson
    count, per second of its fault window (whole counts when the window is unknown)."""
    spread = 2 * math.sqrt(max(fault.get("requests_failed") or 0, 0))
    window = fault.get("fault_window") or []
    seconds = window[1] - window[0] if len(window) == 2 and None not in window and window[1] > window[0] else 1.0
    return (band[0] - spread) / seconds, (band[1] + spread) / seconds


def _relative(a, b) -> float | None:
    return None if a in (None, 0) or b is None else (b - a) / a


COUNTS = ("proxies_hit", "pods_served", "flows_affected")


def compare(a: dict, b: dict) -> dict:
    changes = []
    compared = 0
    same = a["experiment"] == b["experiment"]
    for arch in sorted(set(a["architectures"]) ^ set(b["architectures"])):
        changes.append({"arch": arch, "what": "architecture run", "a": arch in a["architectures"],
                        "b": arch in b["architectures"], "beyond_noise": None, "rule": "count"})
    for arch in [x for x in a["architectures"] if x in b["architectures"]]:
        ra, rb = a["architectures"][arch], b["architectures"][arch]
        compared += 1
        if ra.get("status") != rb.get("status"):
            changes.append({"arch": arch, "what": "status", "a": ra.get("status"), "b": rb.get("status"),
                            "beyond_noise": None, "rule": "count"})
        if same:
            for i, (fa, fb) in enumerate(zip(ra.get("faults", []), rb.get("faults", []), strict=False)):
                if fa["kind"] != fb["kind"] or not (fa.get("measured", True) and fb.get("measured", True)):
                    continue
                for key in COUNTS:
                    compared += 1
                    if fa.get(key) != fb.get(key):
                        changes.append({"arch": arch, "what": f"fault {i} ({fa['kind']}) {key}", "a": fa.get(key),
                                        "b": fb.get(key), "beyond_noise": None, "rule": "count"})
                if fa["kind"] == "identity-compromise":
                    for key in ("identities_exposed", "reachable_pairs"):
                        compared += 1
                        if len(fa.get(key, [])) != len(fb.get(key, [])):
                            changes.append({"arch": arch, "what": f"fault {i} {key}", "a": len(fa.get(key, [])),
                                            "b": len(fb.get(key, [])), "beyond_noise": None, "rule": "count"})
                band_a, band_b = fa.get("requests_failed_band"), fb.get("requests_failed_band")
                compared += bool(band_a and band_b)
                if fa.get("requests_failed") != fb.get("requests_failed") and band_a and band_b:
                    wide_a, wide_b = _per_second(fa, band_a), _per_second(fb, band_b)
                    apart = wide_a[1] < wide_b[0] or wide_b[1] < wide_a[0]
                    changes.append({"arch": arch, "what": f"fault {i} ({fa['kind']}) requests_failed",
                                    "a": fa["requests_failed"], "b": fb["requests_failed"], "beyond_noise": apart,
                                    "rule": "noise bands per second (+ 2 sqrt of each count) overlap?"})
        ca, cb = ra.get("cost"), rb.get("cost")
        if ca and cb:
            rel = _relative(ca["memory"]["pss_mib"], cb["memory"]["pss_mib"])
            if rel is not None:
                compared += 1
                changes.append({"arch": arch, "what": "proxy PSS MiB", "a": ca["memory"]["pss_mib"],
                                "b": cb["memory"]["pss_mib"], "beyond_noise": abs(rel) > MEMORY_TOLERANCE,
                                "rule": f"> {MEMORY_TOLERANCE:.0%}"})
            va, vb = ca["vcpu_per_krps"]["proxies"], cb["vcpu_per_krps"]["proxies"]
            rel = _relative(va, vb)
            if rel is not None:
                compared += 1
                changes.append({"arch": arch, "what": "proxy vCPU per 1,000 rps", "a": va, "b": vb,
                                "beyond_noise": abs(rel) > CPU_TOLERANCE, "rule": f"> {CPU_TOLERANCE:.0%}"})
            diff = latency.added(_lat(b, arch), _lat(a, arch))
            for q, d in diff.items():
                if d["estimate"] is not None:
                    compared += 1
                    changes.append({"arch": arch, "what": f"latency {q} ms (B - A)", "a": ca["latency_ms"].get(q),
                                    "b": cb["latency_ms"].get(q), "beyond_noise": d["significant"],
                                    "rule": f"bootstrap interval [{d['low']}, {d['high']}] excludes 0?"})
    out = {"a": a.get("_path"), "b": b.get("_path"), "same_experiment": same, "changes": changes,
           "beyond_noise": [c for c in changes if c["beyond_noise"]], "compared": compared}
    out["agree"], out["verdict"] = verdict(out)
    return out


def verdict(cmp: dict) -> tuple[bool, str]:
    """Whether two runs agree within noise, and one line saying so (or what differs)."""
    if not cmp["same_experiment"]:
        return False, "the two runs differ: they are not the same experiment (only their costs were compared)"
    beyond = cmp["beyond_noise"]
    counts = [c for c in cmp["changes"] if c["rule"] == "count"]
    if not beyond and not counts:
        return True, (f"the two runs agree within noise: {cmp['compared']} figures compared, none beyond its noise, "
                      "every count equal")
    parts = []
    if beyond:
        parts.append(f"{len(beyond)} beyond the noise")
    if counts:
        parts.append(f"{len(counts)} count{'s' if len(counts) > 1 else ''} differ{'' if len(counts) > 1 else 's'}")
    first = "; ".join(f"{c['arch']} {c['what']}: {c['a']} -> {c['b']}" for c in (beyond + counts)[:3])
    return False, f"the two runs differ ({', '.join(parts)}): {first}{' ...' if len(beyond) + len(counts) > 3 else ''}"
