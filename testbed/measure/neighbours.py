"""Who besides the target felt a fault, from its blast radius' per-flow entries. Pure.

- beyond_target: affected flows that neither leave from a target pod nor go to a service
  one of them serves (the target's own flows are where any fault is expected to be felt).
- groups (noisy-neighbour): the flows that share a proxy with the noise against those that
  share none, each flow's fault-window p99 over its baseline p99 and its error-rate rise;
  the medians per group, and their ratio. Both groups feel what the whole machine feels;
  the difference between them is what the shared proxies add."""

from __future__ import annotations

import statistics


def target_flow(flow: str, target_pods: set[str], service_of: dict[str, str]) -> bool:
    src, dst = flow.split("->", 1)
    return src in target_pods or dst in {service_of[p] for p in target_pods if p in service_of}


def beyond_target(flows: dict, target_pods: set[str], service_of: dict[str, str]) -> list[str]:
    return sorted(name for name, f in flows.items() if f["affected"] and
                  not target_flow(name, target_pods, service_of))


def _ratio(f: dict) -> float | None:
    b, w = f["baseline"]["p99_ms"], f["fault"]["p99_ms"]
    return round(w / b, 3) if b and w is not None else None


def _rise(f: dict) -> float | None:
    b, w = f["baseline"]["error_rate"], f["fault"]["error_rate"]
    return round((w - b) * 100, 2) if b is not None and w is not None else None


def groups(flows: dict, sharing: list[str], apart: list[str]) -> dict:
    out: dict = {}
    for name, members in (("sharing", sharing), ("apart", apart)):
        ratios = [r for m in members if m in flows and (r := _ratio(flows[m])) is not None]
        rises = [r for m in members if m in flows and (r := _rise(flows[m])) is not None]
        out[name] = {"flows": len(members), "affected": sorted(m for m in members if flows.get(m, {}).get("affected")),
                     "p99_ratio_median": round(statistics.median(ratios), 3) if ratios else None,
                     "p99_ratios": {m: _ratio(flows[m]) for m in members if m in flows},
                     "error_points_median": round(statistics.median(rises), 2) if rises else None}
    s, a = out["sharing"]["p99_ratio_median"], out["apart"]["p99_ratio_median"]
    out["sharing_over_apart"] = round(s / a, 3) if s is not None and a else None
    return out
