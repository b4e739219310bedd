"""Per-workload settings in a proxy's config (the `config` and `config-reject` faults): a
setting for pod P lands on every route and cluster of the proxy that carries P's traffic,
outbound (P's calls) and inbound (calls to P), and nowhere else. Which objects those are is
the architecture's: a sidecar's are all P's own; a shared proxy's outbound chains are per
service account and its inbound cluster (the final hop) is one for the whole node, so a
setting there reaches P's neighbours too. That spread is what the faults measure. Pure."""

from __future__ import annotations

from ..cluster.plan import ClusterPlan
from .topology import Proxy

# a route match Envoy refuses (the regex does not compile): config-reject's `invalid`
BAD_REGEX = "(["


def entry(settings: dict) -> dict:
    """A workload's settings (chaos/kinds.py CONFIG_SETTINGS, plus `generation`: a harmless
    update marker, and `reject`) as the templates read them: every key present, None when
    unset."""
    rate = settings.get("rateLimit")
    timeout = settings.get("timeout")
    return {
        "timeout": f"{timeout:g}s" if timeout is not None else None,
        "retries": settings.get("retries"),
        "rate_limit": {"tokens": rate["tokens"], "fill": f"{rate['seconds']:g}s"} if rate else None,
        "max_connections": settings.get("maxConnections"),
        "generation": settings.get("generation"),
        "reject": settings.get("reject"),
        "bad_regex": BAD_REGEX,
    }


def _merged(pods: list[str], tuning: dict[str, dict]) -> dict | None:
    """The settings of an object carrying these pods: theirs merged (a later pod's win)."""
    out: dict = {}
    for pod in pods:
        out.update(tuning.get(pod, {}))
    return out or None


def carried(plan: ClusterPlan, proxy: Proxy, item: dict) -> list[str]:
    """The pods whose traffic a listener entry (outbound route, inbound chain, L7 listener)
    carries, by what it matches: its source or destination addresses, or its service."""
    if proxy.role in ("sidecar", "micro"):
        return list(proxy.serves)  # one pod: everything in its proxy is its own
    if "sources" in item:
        by_ip = {plan.pod(p).ip: p for p in proxy.serves}
        return [by_ip[ip] for ip in item["sources"] if ip in by_ip]
    if "pods" in item:
        by_ip = {plan.pod(p).ip: p for p in proxy.serves}
        return [by_ip[ip] for ip in item["pods"] if ip in by_ip]
    return [p for p in proxy.serves if plan.pod(p).service == item["service"]]  # l7: a service's listener


def apply(ctx: dict, plan: ClusterPlan, proxy: Proxy, tuning: dict[str, dict] | None) -> dict:
    """Mark the context's routes and clusters with the settings of the pods they carry, and
    list the conflicting listeners asked for. Returns what was touched, for the journal."""
    ctx["conflicts"] = []
    touched = {"routes": [], "clusters": [], "listeners": []}
    if not tuning:
        return touched
    inbound = ctx.get("inbound", [])
    items = [("out", x) for x in ctx.get("outbound", [])] + \
        [("in", x) for x in ([inbound] if isinstance(inbound, dict) else inbound)] + \
        [("l7", x) for x in ctx.get("listeners", [])]
    per_cluster: dict[str, list[str]] = {}
    for direction, item in items:
        pods = carried(plan, proxy, item)
        settings = _merged(pods, tuning)
        if settings is None:
            continue
        item["tuning"] = entry(settings)
        touched["routes"].append("|".join([direction, *([item["sa"]] if direction == "out" and "sa" in item else []),
                                           item["service"]]))
        per_cluster.setdefault(item["cluster"], []).extend(pods)
    for c in ctx.get("clusters", []):
        if c["name"] in per_cluster:
            c["tuning"] = entry(_merged(per_cluster[c["name"]], tuning))
            touched["clusters"].append(c["name"])
    for pod in proxy.serves:
        if tuning.get(pod, {}).get("reject") == "conflict":
            listener = next((x for x in ctx.get("listeners", []) if x["service"] == plan.pod(pod).service), None)
            port = listener["port"] if listener else proxy.inbound_port
            if ctx.get("hbone"):  # a waypoint on HBONE binds one port; its services' listeners are internal
                port = ctx["hbone"]["port"]
            ctx["conflicts"].append({"name": f"conflict_{pod}", "port": port, "cluster": ctx["clusters"][0]["name"]})
            touched["listeners"].append(f"0.0.0.0:{port}")
    return touched
