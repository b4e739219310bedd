"""The experiment's faults as one Chaos Mesh Workflow: each fault waits (a Suspend node) until
its `at`, then runs for its duration (the chaos node's deadline, after which Chaos Mesh
recovers it). Faults Chaos Mesh cannot express are left out, each with the reason.

A fault still aims at a workload, resolved the way the architecture does it:

| fault on pod P  | sidecar                   | ambient (Istio)              | node (Cilium)               |
|-----------------|---------------------------|------------------------------|-----------------------------|
| proxy-crash     | kill P's istio-proxy      | kill the ztunnel on P's node | kill cilium-envoy on P's node |
|   proxy: l7     | (none)                    | kill P's account's waypoint  | (none)                      |
| drop, delay     | NetworkChaos loss/delay on P, both ways, with every pod of the run   |

A testbed pod `<service>-<i>` is two pods here: the workload replica that serves (the
service's replica on P's node) and the traffic Job's pod of index i that calls; a fault on
the pod hits both. Field names follow Chaos Mesh v2.8.3 (no schema package exists to check
them against: tests/unit/test_export_chaos.py holds them field by field)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..experiment import Experiment, FaultSpec
from . import engines
from .engines import ISTIO_AMBIENT, ISTIO_SIDECAR, NONE, Site
from .k8s import meta, to_dict

API_VERSION = "chaos-mesh.org/v1alpha1"
WORKFLOW = "faults"
LEFT_OUT = {
    "proxy-hang": "Chaos Mesh cannot stop (SIGSTOP) a container; its pod-failure swaps the image, a crash "
                  "rather than a hang",
    "upgrade": "a proxy upgrade is an operator's act (istioctl upgrade, a rollout of the Cilium Envoy "
               "DaemonSet), not a chaos tool's: run it by hand during the traffic",
    "identity-compromise": "no chaos tool steals a proxy's keys; the attacker host is the testbed's own",
    "wasm": "Istio's WasmPlugin loads modules only from an image or URL the cluster can fetch; the misbehaving "
            "module is built on the testbed's machine",
    "tcp-reset": "Chaos Mesh has no fault that resets live TCP connections (NetworkChaos partition drops "
                 "packets instead)",
    "config": "a per-workload setting is a mesh resource (an Istio DestinationRule or VirtualService, a Cilium "
              "CiliumEnvoyConfig), not a chaos: apply it by hand during the traffic",
    "config-reject": "a control plane validates configs before it pushes them (istiod, the Cilium operator), and a "
                     "refused xDS update leaves the proxy on its old config: there is no hot restart to fail",
    "noisy-neighbour": "the traffic Jobs send at one rate; a second Job at the higher rate, started by hand, "
                       "plays the neighbour",
    "bypass": "the ways around a proxy are tried from inside the testbed's own pods; on a cluster they need a "
              "privileged debug container in the pod",
}


@dataclass
class Faults:
    """One architecture's faults: those exported (with the workflow's template names, and
    what they touch) and those left out, by index into the experiment's faults."""

    exported: list[dict] = field(default_factory=list)
    omitted: list[dict] = field(default_factory=list)
    templates: list[dict] = field(default_factory=list)

    def workflow(self, site: Site) -> dict | None:
        if not self.exported:
            return None
        entry = {"name": "faults", "templateType": "Parallel", "children": [f"fault-{f['index']}"
                                                                            for f in self.exported]}
        return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": to_dict(meta(site, WORKFLOW)),
                "spec": {"entry": "faults", "templates": [entry] + self.templates}}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _units(site: Site, fault: FaultSpec) -> list[dict]:
    """Chaos Mesh selections for the pods the target names (kind, name) in this namespace."""
    ns, t = [site.namespace], fault.target
    if t.kind == "node":
        return [{"selector": {"namespaces": ns, "nodeSelectors": {engines.NODE_LABEL: t.name}}, "mode": "all"}]
    if t.kind == "service":
        return [{"selector": {"namespaces": ns, "labelSelectors": {engines.SERVICE_LABEL: t.name}}, "mode": "all"}]
    pod = site.spec.pod(t.name)
    units = [{"selector": {"namespaces": ns, "labelSelectors": {engines.SERVICE_LABEL: pod.service,
                                                                engines.ROLE_LABEL: engines.WORKLOAD},
                           "nodeSelectors": {engines.NODE_LABEL: pod.node}}, "mode": "one"}]
    if site.spec.calls_from(pod.service):
        units.append({"selector": {"namespaces": ns, "labelSelectors": {
            engines.SERVICE_LABEL: pod.service, engines.ROLE_LABEL: engines.TRAFFIC,
            engines.INDEX_LABEL: str(pod.index)}}, "mode": "all"})
    return units


def target_pods(site: Site, fault: FaultSpec) -> list[str]:
    t = fault.target
    if t.kind == "pod":
        return [t.name]
    if t.kind == "service":
        return [p.name for p in site.spec.pods_of(t.name)]
    return [p.name for p in site.spec.pods_on(t.name)]


def _node_proxy(site: Site, fault: FaultSpec, namespace: str, labels: dict, what: str) -> tuple[list, list, list]:
    """Kill the per-node proxy pod on every node holding the target's pods."""
    nodes = sorted({site.spec.pod(p).node for p in target_pods(site, fault)})
    units = [{"selector": {"namespaces": [namespace], "labelSelectors": labels,
                           "nodeSelectors": {engines.NODE_LABEL: n}}, "mode": "all"} for n in nodes]
    served = [p.name for p in site.spec.pods if p.node in nodes]
    return units, [f"{what} on {n}" for n in nodes], served


def _proxy_crash(site: Site, fault: FaultSpec) -> tuple[str, list, list, list, list] | str:
    """(action, selections, proxies, pods served, notes), or why it is left out."""
    t = fault.target
    if site.engine == NONE:
        return "the `none` architecture has no proxy to crash"
    if t.proxy == "l7" and site.engine != ISTIO_AMBIENT:
        return "it names a waypoint (`proxy: l7`), which this architecture does not have"
    notes = ["restartDelay is the kubelet's: Chaos Mesh kills, the kubelet restarts (then backs off)"] \
        if fault.options.get("restartDelay") else []
    if site.engine == ISTIO_SIDECAR:
        pods = target_pods(site, fault)
        return "container-kill", _units(site, fault), [f"istio-proxy of {p}" for p in pods], pods, notes
    if t.proxy == "l7":
        accounts = sorted({site.spec.service(site.spec.pod(p).service).service_account
                           for p in target_pods(site, fault) if site.spec.service(site.spec.pod(p).service).l7})
        if not accounts:
            return "its services have `l7: false`: no waypoint serves them"
        names = [engines.waypoint_of(sa) for sa in accounts]
        units = [{"selector": {"namespaces": [site.namespace], "labelSelectors": {engines.WAYPOINT_NAME_LABEL: w}},
                  "mode": "all"} for w in names]
        served = [p.name for p in site.spec.pods if p.service_account in accounts and site.spec.service(p.service).l7]
        return "pod-kill", units, names, served, notes
    if site.engine == ISTIO_AMBIENT:
        units, proxies, served = _node_proxy(site, fault, engines.ISTIO_NAMESPACE, engines.ZTUNNEL_LABELS, "ztunnel")
        notes.append("Istio's ztunnel serves every pod on its node, where the testbed's micro-proxy serves one")
        return "pod-kill", units, proxies, served, notes
    units, proxies, served = _node_proxy(site, fault, engines.CILIUM_NAMESPACE, engines.CILIUM_ENVOY_LABELS,
                                         "cilium-envoy")
    return "pod-kill", units, proxies, served, notes


def _network(site: Site, fault: FaultSpec) -> tuple[dict, list]:
    """The NetworkChaos fields of a drop or delay, and how it differs from the testbed's."""
    notes = []
    if fault.target.kind == "node":
        notes.append("on one machine the fault holds the node's port on the fabric (traffic leaving or entering "
                     "the node); here every pod of the run on that node, with every other pod, both ways")
    if fault.kind == "drop":
        return {"action": "loss", "loss": {"loss": f"{fault.options.get('percent', 10):g}", "correlation": "0"}}, notes
    latency = fault.options.get("latency", 0.05)
    return {"action": "delay", "delay": {"latency": f"{latency * 1000:g}ms", "correlation": "0",
                                         "jitter": f"{fault.options.get('jitter', 0) * 1000:g}ms"}}, notes


def faults(site: Site, exp: Experiment) -> Faults:
    out = Faults()
    for i, f in enumerate(exp.faults):
        base = {"index": i, "kind": f.kind, "target": dict(f.target.__dict__), "at": f.at, "duration": f.duration}
        if f.kind in LEFT_OUT:
            out.omitted.append({**base, "reason": LEFT_OUT[f.kind]})
            continue
        chaos_type, deadline = "PodChaos", _seconds(max(f.duration, 1.0))
        if f.kind == "proxy-crash":
            got = _proxy_crash(site, f)
            if isinstance(got, str):
                out.omitted.append({**base, "reason": got})
                continue
            action, units, proxies, served, notes = got
            specs = [{"action": action, **u, **({"containerNames": ["istio-proxy"]}
                                                 if action == "container-kill" else {"gracePeriod": 0})}
                     for u in units]
            key = "podChaos"
        else:
            fields, notes = _network(site, f)
            chaos_type, key = "NetworkChaos", "networkChaos"
            specs = [{**copy.deepcopy(fields), **u, "direction": "both",
                      "target": {"mode": "all", "selector": {"namespaces": [site.namespace]}}} for u in _units(site, f)]
            proxies, served = [], target_pods(site, f)
        names = [f"chaos-{i}-{j}" for j in range(len(specs))]
        children = names[0] if len(names) == 1 else f"all-{i}"
        out.templates += [{"name": f"fault-{i}", "templateType": "Serial", "children": [f"wait-{i}", children]},
                          {"name": f"wait-{i}", "templateType": "Suspend", "deadline": _seconds(f.at)}]
        if len(names) > 1:
            out.templates.append({"name": children, "templateType": "Parallel", "children": names})
        out.templates += [{"name": n, "templateType": chaos_type, "deadline": deadline, key: s}
                          for n, s in zip(names, specs, strict=True)]
        what = ", ".join(proxies) or f"{f.target.describe()}'s network"
        out.exported.append({**base, "templates": names, "chaos": chaos_type, "description": f"{f.kind} on {what}",
                             "proxies": proxies, "pods_served": served, "notes": notes})
    return out
