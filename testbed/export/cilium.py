"""Cilium's per-node Envoy (the testbed's `node` architecture) carrying the spec's `calls`.

One CiliumNetworkPolicy per service selects its serving pods. Its ingress rule admits the
callers' service accounts (Cilium labels every endpoint with its account), on the service's
port, with an HTTP rule, which sends the traffic through the node's Envoy, and with mutual
authentication required (Cilium's SPIFFE identities). A service nobody calls gets an empty
rule: selected, so default deny, and nothing allowed. A denied caller's packets are dropped,
where the testbed's node proxy answers 403.

Field names follow Cilium v1.19 (validated against its published schema by the tests)."""

from __future__ import annotations

from . import engines
from .engines import Site
from .k8s import MeshHooks, meta, to_dict

API_VERSION = "cilium.io/v2"


def hooks(site: Site) -> MeshHooks:
    return MeshHooks()


def caller_accounts(site: Site, service: str) -> list[str]:
    return sorted({site.spec.service(s).service_account for s in site.spec.callers_of(service)})


def policy(site: Site, service: str) -> dict:
    port = site.spec.service(service).port
    accounts = caller_accounts(site, service)
    if accounts:
        ingress = [{
            "fromEndpoints": [{"matchLabels": {engines.CILIUM_SA_LABEL: sa}} for sa in accounts],
            "toPorts": [{"ports": [{"port": str(port), "protocol": "TCP"}], "rules": {"http": [{}]}}],
            "authentication": {"mode": "required"},
        }]
    else:
        ingress = [{}]
    spec = {"endpointSelector": {"matchLabels": engines.selector_labels(service)}, "ingress": ingress}
    return {"apiVersion": API_VERSION, "kind": "CiliumNetworkPolicy",
            "metadata": to_dict(meta(site, engines.dns_label("allow", service))), "spec": spec}


def policies(site: Site) -> list[dict]:
    return [policy(site, s.name) for s in site.spec.services]
