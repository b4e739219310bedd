"""Two runs side by side: what changed from A to B beyond the noise. The rules, stated with
each change in the report:

- requests failed: beyond the noise when the two runs' noise bands do not overlap; each
  band is the wider of `requests_failed_band` (two standard deviations of what baseline
  errors alone give) and two standard deviations of the count itself taken as Poisson
  (`2 sqrt(n)`), so a run without baseline errors does not get a band of zero width;
- latency (from the cost windows' records): when the bootstrap interval of B - A excludes 0;
- memory (PSS): when it moved by more than 5 %, CPU per 1,000 rps by more than 25 % (the
  spread seen between repeated runs on our 2-core machines);
- counts (flows affected, identities exposed, pairs reached): any difference is shown; a
  single run gives no noise estimate for them, so they are marked as counts, not tests.
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


def _band(f: dict) -> tuple[float, float] | None:
    n = f.get("requests_failed")
    if n is None:
        return None
    lo, hi = f.get("requests_failed_band") or (n, n)
    poisson = 2 * math.sqrt(max(n, 1))
    return min(lo, n - poisson), max(hi, n + poisson)


def _relative(a, b) -> float | None:
    return None if a in (None, 0) or b is None else (b - a) / a


def compare(a: dict, b: dict) -> dict:
    changes = []
    same = a["experiment"] == b["experiment"]
    for arch in [x for x in a["architectures"] if x in b["architectures"]]:
        ra, rb = a["architectures"][arch], b["architectures"][arch]
        if same:
            for i, (fa, fb) in enumerate(zip(ra.get("faults", []), rb.get("faults", []), strict=False)):
                if fa["kind"] != fb["kind"] or not (fa.get("measured", True) and fb.get("measured", True)):
                    continue
                for key in ("flows_affected",):
                    if fa.get(key) != fb.get(key):
                        changes.append({"arch": arch, "what": f"fault {i} ({fa['kind']}) {key}", "a": fa.get(key),
                                        "b": fb.get(key), "beyond_noise": None, "rule": "count"})
                if fa["kind"] == "identity-compromise":
                    for key in ("identities_exposed", "reachable_pairs"):
                        if len(fa.get(key, [])) != len(fb.get(key, [])):
                            changes.append({"arch": arch, "what": f"fault {i} {key}", "a": len(fa.get(key, [])),
                                            "b": len(fb.get(key, [])), "beyond_noise": None, "rule": "count"})
                band_a, band_b = _band(fa), _band(fb)
                if fa.get("requests_failed") != fb.get("requests_failed") and band_a and band_b:
                    apart = band_a[1] < band_b[0] or band_b[1] < band_a[0]
                    changes.append({"arch": arch, "what": f"fault {i} ({fa['kind']}) requests_failed",
                                    "a": fa["requests_failed"], "b": fb["requests_failed"], "beyond_noise": apart,
                                    "rule": "noise bands overlap?"})
        ca, cb = ra.get("cost"), rb.get("cost")
        if ca and cb:
            rel = _relative(ca["memory"]["pss_mib"], cb["memory"]["pss_mib"])
            if rel is not None:
                changes.append({"arch": arch, "what": "proxy PSS MiB", "a": ca["memory"]["pss_mib"],
                                "b": cb["memory"]["pss_mib"], "beyond_noise": abs(rel) > MEMORY_TOLERANCE,
                                "rule": f"> {MEMORY_TOLERANCE:.0%}"})
            va, vb = ca["vcpu_per_krps"]["proxies"], cb["vcpu_per_krps"]["proxies"]
            rel = _relative(va, vb)
            if rel is not None:
                changes.append({"arch": arch, "what": "proxy vCPU per 1,000 rps", "a": va, "b": vb,
                                "beyond_noise": abs(rel) > CPU_TOLERANCE, "rule": f"> {CPU_TOLERANCE:.0%}"})
            diff = latency.added(_lat(b, arch), _lat(a, arch))
            for q, d in diff.items():
                if d["estimate"] is not None:
                    changes.append({"arch": arch, "what": f"latency {q} ms (B - A)", "a": ca["latency_ms"].get(q),
                                    "b": cb["latency_ms"].get(q), "beyond_noise": d["significant"],
                                    "rule": f"bootstrap interval [{d['low']}, {d['high']}] excludes 0?"})
    return {"a": a.get("_path"), "b": b.get("_path"), "same_experiment": same, "changes": changes,
            "beyond_noise": [c for c in changes if c["beyond_noise"]]}
