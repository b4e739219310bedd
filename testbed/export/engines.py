"""Which production data plane carries each testbed architecture, and the names and labels
every exported object shares. One place, so the workloads, the policy, the faults and
`collect` agree on how a pod, a service and a node are found in the cluster."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import TestbedError
from ..mesh.topology import ARCHITECTURES
from ..spec import ClusterSpec

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NONE, ISTIO_SIDECAR, ISTIO_AMBIENT, CILIUM = "plain", "istio-sidecar", "istio-ambient", "cilium"

# The testbed's `ztunnel` (a per-node L4 proxy with waypoints) is what Istio ambient is.
ENGINES = {"none": NONE, "sidecar": ISTIO_SIDECAR, "node": CILIUM, "ztunnel": ISTIO_AMBIENT}
_NO_DATA_PLANE = ("has no production data plane to export to: no mesh runs {what}. Measure it here "
                  "(`testbed run`) or, for clusters larger than one machine, in the model (`testbed simulate`)")
REFUSED = {"node-sa": _NO_DATA_PLANE.format(what="one proxy per service account per node"),
           "ambient": _NO_DATA_PLANE.format(what="a per-workload mTLS micro-proxy")}
EXPORTABLE = tuple(a for a in ARCHITECTURES if a in ENGINES)

# Labels: nodes carry the spec's node name; every pod carries its service and its role.
NODE_LABEL = "testbed.io/node"
SERVICE_LABEL = "testbed.io/service"
ROLE_LABEL = "testbed.io/role"  # workload (serves) | traffic (the Job pods that call)
EXPERIMENT_LABEL = "testbed.io/experiment"
ARCH_LABEL = "testbed.io/arch"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"  # set by Kubernetes on Indexed Job pods
WORKLOAD, TRAFFIC = "workload", "traffic"

DEFAULT_IMAGE = "python:3.11-slim"  # a stock image: the agent comes from a ConfigMap, nothing to build
ISTIO_NAMESPACE, CILIUM_NAMESPACE = "istio-system", "kube-system"
ZTUNNEL_LABELS = {"app": "ztunnel"}
CILIUM_ENVOY_LABELS = {"k8s-app": "cilium-envoy"}
WAYPOINT_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
CILIUM_SA_LABEL = "io.cilium.k8s.policy.serviceaccount"


def engine_of(arch: str) -> str:
    """The data plane `arch` exports to, or a TestbedError saying why there is none."""
    if arch in REFUSED:
        raise TestbedError(f"architecture {arch!r} {REFUSED[arch]}")
    if arch not in ENGINES:
        raise TestbedError(f"unknown architecture {arch!r} (exportable: {', '.join(EXPORTABLE)}; "
                           f"refused: {', '.join(REFUSED)})")
    return ENGINES[arch]


def dns_label(*parts: str) -> str:
    """A DNS-1123 label (at most 63 characters) from name parts joined by '-'; a longer one
    keeps its start and gets a short hash, so two long names stay distinct."""
    name = "-".join(p for p in parts if p).lower()
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[:56].rstrip('-')}-{digest}"


def namespace_of(name: str, arch: str) -> str:
    return dns_label("tb", name, arch)


def waypoint_of(service_account: str) -> str:
    """The Istio waypoint (a Gateway, and the service account Istio runs it as) of an account."""
    return dns_label("waypoint", service_account)


def principal(trust_domain: str, namespace: str, service_account: str) -> str:
    """Istio's form of a SPIFFE ID (no scheme), as AuthorizationPolicy principals want it."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


def workload_labels(service: str) -> dict[str, str]:
    return {"app": service, "app.kubernetes.io/name": service, SERVICE_LABEL: service, ROLE_LABEL: WORKLOAD}


def traffic_labels(service: str) -> dict[str, str]:
    """No `app` label: Services select workloads by it, and the callers must not answer."""
    return {"app.kubernetes.io/name": f"{service}-traffic", SERVICE_LABEL: service, ROLE_LABEL: TRAFFIC}


def selector_labels(service: str) -> dict[str, str]:
    """What a Service, a Deployment and a policy select a service's serving pods by."""
    return {"app": service, ROLE_LABEL: WORKLOAD}


@dataclass(frozen=True)
class Site:
    """Where one architecture's export lands: the cluster spec, the namespace that holds the
    run and the data plane that carries it."""

    spec: ClusterSpec
    name: str  # the experiment's (or the cluster's) name
    arch: str
    engine: str
    namespace: str
    image: str = DEFAULT_IMAGE

    @property
    def trust_domain(self) -> str:
        return self.spec.mesh.trust_domain

    def principal(self, service_account: str) -> str:
        return principal(self.trust_domain, self.namespace, service_account)


def make_site(spec: ClusterSpec, name: str, arch: str, namespace: str | None = None,
              image: str = DEFAULT_IMAGE) -> Site:
    if namespace is not None and not DNS_LABEL_RE.match(namespace):
        raise TestbedError(f"{namespace!r} is not a valid namespace name (at most 63 of a-z, 0-9 and '-', "
                           "starting and ending with a letter or digit)")
    return Site(spec, name, arch, engine_of(arch), namespace or namespace_of(name, arch), image)
