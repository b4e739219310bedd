"""Who may call whom, read back from exported manifests alone, by the data plane's own rules,
so it can be compared with the testbed's local relation (`mesh.render.allowed_callers`):
every allowed (service account, service) pair allowed, every other pair denied.

Deliberately independent of the code that wrote the manifests: it knows only the kinds and
the semantics (Istio: DENY before ALLOW, no ALLOW policy allows all, an ALLOW policy with no
rule allows nothing; a waypoint decides for the Services that use it and the destination's
ztunnel then sees the waypoint's own account, named after its Gateway; Cilium: a selected
endpoint admits only what a rule's peers and ports allow). Anything it does not model (L7
conditions, other source fields) raises, so a richer export cannot pass unexamined."""

from __future__ import annotations

from ..cluster.plan import make_plan
from ..mesh.render import allowed_callers
from ..spec import ClusterSpec
from .engines import CILIUM, CILIUM_SA_LABEL, ISTIO_AMBIENT, ISTIO_SIDECAR, NONE

STRANGER = "stranger"  # an account no service runs as: must be denied everywhere


def local_relation(spec: ClusterSpec) -> dict[tuple[str, str], bool]:
    """The testbed's own: (account, service) -> allowed, from the SPIFFE IDs it admits."""
    plan = make_plan(spec, "k8s")
    accounts = spec.service_accounts() + [STRANGER]
    return {(sa, s.name): any(i.endswith(f"/sa/{sa}") for i in allowed_callers(plan, s.name))
            for sa in accounts for s in spec.services}


def _matches(selector: dict, labels: dict) -> bool:
    if set(selector) - {"matchLabels", "matchExpressions"}:
        raise NotImplementedError(f"selector {selector}")
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def _principal_matches(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def _istio_rule(rule: dict, principal: str) -> bool:
    if set(rule) - {"from"}:
        raise NotImplementedError(f"rule fields {sorted(rule)}")
    if not rule.get("from"):
        return True
    for entry in rule["from"]:
        source = entry.get("source", {})
        if set(source) - {"principals", "notPrincipals"}:
            raise NotImplementedError(f"source fields {sorted(source)}")
        if "principals" in source and not any(_principal_matches(p, principal) for p in source["principals"]):
            continue
        if any(_principal_matches(p, principal) for p in source.get("notPrincipals", [])):
            continue
        return True
    return False


def _istio_decides(policies: list[dict], principal: str) -> bool:
    def hit(p):
        return any(_istio_rule(r, principal) for r in p["spec"].get("rules", []))

    actions = {p["spec"].get("action", "ALLOW") for p in policies}
    if actions - {"ALLOW", "DENY"}:
        raise NotImplementedError(f"actions {sorted(actions)}")
    if any(hit(p) for p in policies if p["spec"].get("action") == "DENY"):
        return False
    allow = [p for p in policies if p["spec"].get("action", "ALLOW") == "ALLOW"]
    return not allow or any(hit(p) for p in allow)


class Manifests:
    """One namespace's objects, with the lookups the engines' rules need."""

    def __init__(self, docs: list[dict]):
        self.docs = docs
        ns = _by_kind(docs, "Namespace")
        self.namespace = ns[0]["metadata"]["name"] if ns else docs[0]["metadata"].get("namespace")
        self.services = {d["metadata"]["name"]: d for d in _by_kind(docs, "Service")}
        self.templates = [d["spec"]["template"] for d in _by_kind(docs, "Deployment") + _by_kind(docs, "Job")]

    def serving_labels(self, service: str) -> list[dict]:
        """Labels of the pod templates the Service selects (the pods that answer)."""
        sel = {"matchLabels": self.services[service]["spec"]["selector"]}
        return [t["metadata"]["labels"] for t in self.templates if _matches(sel, t["metadata"]["labels"])]

    def callers_as(self, account: str) -> list[dict]:
        """Labels of every pod template running as `account`, and of a bare pod of it."""
        pods = [t["metadata"]["labels"] for t in self.templates if t["spec"].get("serviceAccountName") == account]
        return pods + [{}]

    def port(self, service: str) -> int:
        return self.services[service]["spec"]["ports"][0]["port"]


def _istio_allows(m: Manifests, ambient: bool, trust_domain: str, account: str, service: str) -> bool:
    def principal(sa):
        return f"{trust_domain}/ns/{m.namespace}/sa/{sa}"

    policies = _by_kind(m.docs, "AuthorizationPolicy")
    selected = [p for p in policies if "targetRefs" not in p["spec"] and "targetRef" not in p["spec"]]

    def at_workload(who: str) -> bool:  # the destination's sidecar or ztunnel
        return all(_istio_decides([p for p in selected if _matches(p["spec"].get("selector", {}), labels)], who)
                   for labels in m.serving_labels(service))

    gateway = m.services[service]["metadata"].get("labels", {}).get("istio.io/use-waypoint") if ambient else None
    waypoints = {g["metadata"]["name"] for g in _by_kind(m.docs, "Gateway")
                 if g["spec"].get("gatewayClassName") == "istio-waypoint"}
    if gateway and gateway in waypoints:
        attached = [p for p in policies if any(
            (r.get("kind"), r.get("group", ""), r.get("name")) in {("Service", "", service),
                                                                   ("Gateway", "gateway.networking.k8s.io", gateway)}
            for r in p["spec"].get("targetRefs", []))]
        return _istio_decides(attached, principal(account)) and at_workload(principal(gateway))
    return at_workload(principal(account))


def _cilium_allows(m: Manifests, account: str, service: str) -> bool:
    port = str(m.port(service))
    policies = _by_kind(m.docs, "CiliumNetworkPolicy")
    for labels in m.serving_labels(service):
        rules = [r for p in policies if _matches(p["spec"]["endpointSelector"], labels)
                 for r in p["spec"].get("ingress", [])]
        if not rules:
            continue  # not selected: default allow
        for caller in m.callers_as(account):
            peer = {**caller, CILIUM_SA_LABEL: account}
            if not any(_cilium_rule(r, peer, port) for r in rules):
                return False
    return True


def _cilium_rule(rule: dict, peer: dict, port: str) -> bool:
    if set(rule) - {"fromEndpoints", "toPorts", "authentication"}:
        raise NotImplementedError(f"ingress fields {sorted(rule)}")
    if "fromEndpoints" in rule:
        if not any(_matches(sel, peer) for sel in rule["fromEndpoints"]):
            return False
    elif "toPorts" not in rule:
        return False  # an empty rule selects no peer: it only turns default deny on
    ports = [p for tp in rule.get("toPorts", []) for p in tp.get("ports", [])]
    return not ports or any(p["port"] == port and p.get("protocol", "ANY") in ("TCP", "ANY") for p in ports)


def exported_relation(docs: list[dict], engine: str, trust_domain: str,
                      accounts: list[str]) -> dict[tuple[str, str], bool]:
    """(account, service) -> whether the exported manifests let that account call it."""
    m = Manifests(docs)
    out = {}
    for sa in accounts:
        for service in m.services:
            if engine == NONE:
                out[(sa, service)] = True
            elif engine in (ISTIO_SIDECAR, ISTIO_AMBIENT):
                out[(sa, service)] = _istio_allows(m, engine == ISTIO_AMBIENT, trust_domain, sa, service)
            elif engine == CILIUM:
                out[(sa, service)] = _cilium_allows(m, sa, service)
            else:
                raise ValueError(f"unknown engine {engine!r}")
    return out


def differences(docs: list[dict], engine: str, spec: ClusterSpec) -> list[str]:
    """Every pair where the export and the testbed disagree, said plainly; [] when equal."""
    local = local_relation(spec)
    exported = exported_relation(docs, engine, spec.mesh.trust_domain, sorted({sa for sa, _ in local}))
    return [f"{sa} -> {svc}: the testbed {'allows' if ok else 'denies'}, the export "
            f"{'allows' if exported.get((sa, svc)) else 'denies'}"
            for (sa, svc), ok in sorted(local.items()) if exported.get((sa, svc)) != ok]
