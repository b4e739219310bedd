"""Istio, in its two data planes, carrying the spec's `calls` as authorization.

- sidecar: the namespace is enrolled for injection; mTLS is STRICT; an AuthorizationPolicy
  per service, enforced by the destination's sidecar, allows the callers' service accounts.
- ambient: the namespace is enrolled in ambient mode (ztunnel on every node); each service
  account with L7 services gets a waypoint (a Gateway), its services use it, and the policy
  is attached to the Service (enforced by the waypoint, as the testbed's L7 proxy does). The
  destination's ztunnel admits only that waypoint, so nothing goes around it. A service with
  `l7: false` has no waypoint: its ztunnel checks the callers' identities (L4), as the
  testbed's micro-proxies do.

The policies are plain data: the Python client has no models for Istio's or the Gateway
API's kinds. Field names follow Istio 1.29 and Gateway API v1.5 (validated against their
published schemas by the tests)."""

from __future__ import annotations

from . import engines
from .engines import ISTIO_AMBIENT, ISTIO_SIDECAR, Site
from .k8s import MeshHooks, meta, to_dict

SECURITY = "security.istio.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
WAYPOINT_CLASS = "istio-waypoint"
HBONE_PORT = 15008


def hooks(site: Site) -> MeshHooks:
    if site.engine == ISTIO_SIDECAR:
        # Chaos Mesh's container-kill finds only regular containers: the serving pods keep
        # istio-proxy one; the Jobs' pods get a native sidecar so they can complete.
        return MeshHooks(namespace_labels={"istio-injection": "enabled"},
                         workload_annotations={"sidecar.istio.io/nativeSidecar": "false"},
                         traffic_annotations={"sidecar.istio.io/nativeSidecar": "true"})
    labels = {s.name: {"istio.io/use-waypoint": engines.waypoint_of(s.service_account)}
              for s in site.spec.services if s.l7}
    return MeshHooks(namespace_labels={"istio.io/dataplane-mode": "ambient"}, service_labels=labels)


def _obj(site: Site, api_version: str, kind: str, name: str, spec: dict, labels: dict | None = None) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": to_dict(meta(site, name, labels)), "spec": spec}


def _allow(site: Site, principals: list[str]) -> dict:
    """ALLOW from these identities; with none, a policy that matches nothing: deny all."""
    spec = {"action": "ALLOW"}
    if principals:
        spec["rules"] = [{"from": [{"source": {"principals": principals}}]}]
    return spec


def callers(site: Site, service: str) -> list[str]:
    """The principals of the accounts whose services call `service` (sharing an account
    shares its rights, as on one machine)."""
    accounts = {site.spec.service(s).service_account for s in site.spec.callers_of(service)}
    return sorted(site.principal(sa) for sa in accounts)


def peer_authentication(site: Site) -> dict:
    return _obj(site, SECURITY, "PeerAuthentication", "default", {"mtls": {"mode": "STRICT"}})


def waypoint(site: Site, service_account: str) -> dict:
    return _obj(site, GATEWAY_API, "Gateway", engines.waypoint_of(service_account), {
        "gatewayClassName": WAYPOINT_CLASS,
        "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
    }, labels={"istio.io/waypoint-for": "service"})


def policies(site: Site) -> list[dict]:
    out = [peer_authentication(site)]
    ambient = site.engine == ISTIO_AMBIENT
    if ambient:
        out += [waypoint(site, sa) for sa in sorted({s.service_account for s in site.spec.services if s.l7})]
    for svc in site.spec.services:
        selector = {"selector": {"matchLabels": engines.selector_labels(svc.name)}}
        allow = _allow(site, callers(site, svc.name))
        if ambient and svc.l7:
            target = {"targetRefs": [{"group": "", "kind": "Service", "name": svc.name}]}
            out.append(_obj(site, SECURITY, "AuthorizationPolicy", engines.dns_label("allow", svc.name),
                            {**target, **allow}))
            only = _allow(site, [site.principal(engines.waypoint_of(svc.service_account))])
            out.append(_obj(site, SECURITY, "AuthorizationPolicy", engines.dns_label("via-waypoint", svc.name),
                            {**selector, **only}))
        else:
            out.append(_obj(site, SECURITY, "AuthorizationPolicy", engines.dns_label("allow", svc.name),
                            {**selector, **allow}))
    return out
