"""The cluster spec: pure data loaded from YAML. Loading never touches the kernel; a bad spec
is rejected with file, line and field before anything is created (docs/spec.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import naming, yamlsrc
from .addressing import MAX_NODES, MAX_PODS, MAX_PODS_PER_NODE, MAX_SERVICES, MESH_PORTS
from .checker import NAME_RE, Checker, kind, parse_duration
from .errors import SpecError
from .yamlsrc import YMap

__all__ = ["ClusterSpec", "Service", "Call", "Pod", "MeshSettings", "load_cluster", "loads_cluster", "parse_cluster",
           "parse_duration", "NAME_RE", "PROXY_NODE", "WAYPOINT_PREFIX", "TUNNELS", "STATS"]
PROXY_NODE = "waypoints"  # the dedicated node of the L7 proxies (waypoints) of ambient and ztunnel
WAYPOINT_PREFIX = "waypoint-"  # waypoint-<sa>: a waypoint's own identity, so no service account may be named so
TRUST_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
MIN_CONNECT_TIMEOUT, MAX_CONNECT_TIMEOUT = 0.01, 60.0  # seconds
MAX_CONCURRENCY = 64
SCOPES = ("all", "calls")
# which stats each Envoy keeps: Istio's default inclusion list (the server's, the cluster and
# listener managers', Wasm's), or every stat Envoy creates (per cluster, per listener, per
# HTTP connection manager: thousands for a sidecar that knows 20 services)
STATS = ("istio", "all")
# how L4 proxies (ambient, ztunnel) carry app connections to each other: HTTP/2 CONNECT streams
# pooled in mTLS connections (Istio's HBONE), or one mTLS connection per app connection
TUNNELS = ("hbone", "tcp")


@dataclass(frozen=True)
class Service:
    name: str
    service_account: str
    port: int
    replicas: int = 1
    nodes: tuple[str, ...] = ()  # empty: every node of the cluster
    l7: bool = True  # ambient, ztunnel: whether calls to it go through its service account's waypoint


@dataclass(frozen=True)
class Call:
    source: str  # service name
    target: str  # service name


@dataclass(frozen=True)
class Pod:
    name: str
    service: str
    service_account: str
    node: str
    index: int


@dataclass(frozen=True)
class MeshSettings:
    trust_domain: str = "cluster.local"
    concurrency: int = 1  # Envoy worker threads per proxy
    connect_timeout: float = 5.0  # seconds for a proxy's upstream TCP connect (Envoy's own default)
    scope: str = "all"  # which services a proxy knows: all, or only those its workloads call (Istio's Sidecar)
    tunnel: str = "hbone"  # ambient, ztunnel: how L4 proxies carry app connections (TUNNELS)
    stats: str = "istio"  # which stats each Envoy keeps (STATS)


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: tuple[str, ...]
    services: tuple[Service, ...]
    calls: tuple[Call, ...] = ()
    source: str = "<spec>"
    mesh: MeshSettings = MeshSettings()
    pods: tuple[Pod, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "pods", tuple(_place_pods(self)))

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def pod(self, name: str) -> Pod:
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(name)

    def pods_of(self, service: str) -> list[Pod]:
        return [p for p in self.pods if p.service == service]

    def pods_on(self, node: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node]

    def calls_from(self, service: str) -> list[str]:
        return [c.target for c in self.calls if c.source == service]

    def service_accounts(self) -> list[str]:
        return sorted({s.service_account for s in self.services})

    def callers_of(self, service: str) -> list[str]:
        """Services with a `calls` edge to `service`: the only ones allowed to call it."""
        return [c.source for c in self.calls if c.target == service]


def _place_pods(spec: ClusterSpec) -> list[Pod]:
    """Replicas spread round-robin over the service's nodes (else all nodes), in spec order."""
    pods = []
    for svc in spec.services:
        nodes = svc.nodes or spec.nodes
        for i in range(svc.replicas):
            pods.append(Pod(f"{svc.name}-{i}", svc.name, svc.service_account, nodes[i % len(nodes)], i))
    return pods


# --------------------------------------------------------------------------- validation
# the checker lives in checker.py (shared with experiments); these names stay importable here
EXPERIMENT_KEYS = {"cluster", "traffic", "faults", "architectures", "affected", "redirect", "seed"}


def parse_cluster(data, source: str = "<spec>", problems: list[str] | None = None) -> ClusterSpec:
    """Validate parsed YAML (from yamlsrc) into a ClusterSpec, or raise SpecError listing
    every problem (`problems`: those the YAML loader found, reported with the rest)."""
    ck = Checker(source, problems)
    if isinstance(data, YMap) and "nodes" not in data and "services" not in data and EXPERIMENT_KEYS & set(data):
        ck.fail(data.line, "document", f"this is an experiment, not a cluster spec: run it with "
                                       f"`testbed run {source}` (or check it with `testbed validate`)")
        raise SpecError(ck.problems)
    top = ck.mapping(data, getattr(data, "line", 1), "", {"name", "nodes", "services"}, {"calls", "mesh"})
    if top is None:
        raise SpecError(ck.problems)

    name = ck.name(top.get("name"), top.line_of("name"), "name", 32, "cluster") if "name" in top else None

    nodes: list[str] = []
    if "nodes" in top:
        raw = ck.sequence(top["nodes"], top.line_of("nodes"), "nodes")
        if raw is not None and not raw:
            ck.fail(top.line_of("nodes"), "nodes", "at least one node is needed")
        if raw is not None and len(raw) > MAX_NODES:
            ck.fail(top.line_of("nodes"), "nodes", f"{len(raw)} nodes do not fit the address plan "
                                                   f"(at most {MAX_NODES})")
            raw = None
        for i, n in enumerate(raw or []):
            where = f"nodes[{i}]"
            n = ck.name(n, raw.line_of(i), where, naming.MAX_NODE_NAME, "node")
            if n is None:
                continue
            if n in nodes:
                ck.fail(raw.line_of(i), where, f"duplicate node {kind(n)}")
                continue
            if n == PROXY_NODE:
                ck.fail(raw.line_of(i), where, f"{n!r} is reserved for the waypoints' node")
                continue
            nodes.append(n)

    services: list[Service] = []
    service_lines: dict[str, int] = {}
    if "services" in top:
        raw = ck.sequence(top["services"], top.line_of("services"), "services")
        if raw is not None and not raw:
            ck.fail(top.line_of("services"), "services", "at least one service is needed")
        if raw is not None and len(raw) > MAX_SERVICES:
            ck.fail(top.line_of("services"), "services", f"{len(raw)} services do not fit the port plan "
                                                         f"(at most {MAX_SERVICES})")
            raw = None
        for i, item in enumerate(raw or []):
            svc_name, svc = _parse_service(ck, item, raw.line_of(i), f"services[{i}]", nodes)
            if svc_name is None:
                continue
            if svc_name in service_lines:
                ck.fail(item.line_of("name"), f"services[{i}].name",
                        f"duplicate service {svc_name!r} (first at line {service_lines[svc_name]})")
                continue
            # known even when another field is wrong, so calls to it are not reported too
            service_lines[svc_name] = item.line_of("name")
            if svc is not None:
                services.append(svc)

    calls: list[Call] = []
    if "calls" in top and top["calls"] is not None:
        raw = ck.sequence(top["calls"], top.line_of("calls"), "calls")
        for i, item in enumerate(raw or []):
            where = f"calls[{i}]"
            m = ck.mapping(item, raw.line_of(i), where, {"from", "to"}, set())
            if m is None or not {"from", "to"} <= set(m):
                continue
            ends = []
            for key in ("from", "to"):
                v = m[key]
                if not isinstance(v, str) or v not in service_lines:
                    known = ", ".join(service_lines) or "none"
                    ck.fail(m.line_of(key), f"{where}.{key}",
                            f"unknown service {v!r} (services: {known})")
                else:
                    ends.append(v)
            if len(ends) == 2:
                call = Call(*ends)
                if call in calls:
                    ck.fail(m.line, where, f"duplicate call {call.source} -> {call.target}")
                else:
                    calls.append(call)

    mesh = MeshSettings()
    if "mesh" in top:
        mesh = _parse_mesh(ck, top["mesh"], top.line_of("mesh")) or mesh

    if ck.problems:
        raise SpecError(ck.problems)
    spec = ClusterSpec(name, tuple(nodes), tuple(services), tuple(calls), source, mesh)
    for node in spec.nodes:
        count = len(spec.pods_on(node))
        if count > MAX_PODS_PER_NODE:
            ck.fail(top.line_of("services"), "services",
                    f"node {node!r} would hold {count} pods (at most {MAX_PODS_PER_NODE}: one /24 per node)")
    if len(spec.pods) > MAX_PODS:
        ck.fail(top.line_of("services"), "services", f"{len(spec.pods)} pods in all (at most {MAX_PODS}, what the "
                                                     "eBPF maps hold)")
    if ck.problems:
        raise SpecError(ck.problems)
    return spec


def _parse_service(ck: Checker, item, line: int, where: str,
                   nodes: list[str]) -> tuple[str | None, Service | None]:
    """The service's name (None when it has no valid one) and the service (None when any
    field is wrong)."""
    m = ck.mapping(item, line, where, {"name", "port"}, {"serviceAccount", "replicas", "nodes", "l7"})
    if m is None:
        return None, None
    ok = True
    name = port = None
    if "name" in m:
        # the longest pod name, "<service>-<last index>", must fit an interface name
        name = ck.name(m["name"], m.line_of("name"), f"{where}.name", naming.MAX_POD_NAME - 2, "service")
    if "port" in m:
        port = ck.integer(m["port"], m.line_of("port"), f"{where}.port", 1, 65535)
        if port in MESH_PORTS:
            ck.fail(m.line_of("port"), f"{where}.port",
                    f"{port} is reserved for the proxies ({MESH_PORTS.start}-{MESH_PORTS.stop - 1})")
            port = None
    l7 = True
    if "l7" in m:
        if not isinstance(m["l7"], bool):
            ck.fail(m.line_of("l7"), f"{where}.l7", f"expected true or false, got {kind(m['l7'])}")
            ok = False
        else:
            l7 = m["l7"]
    sa = name
    if "serviceAccount" in m:
        sa = ck.name(m["serviceAccount"], m.line_of("serviceAccount"), f"{where}.serviceAccount", 63,
                     "service account")
        ok = ok and sa is not None
    if sa is not None and sa.startswith(WAYPOINT_PREFIX):
        ck.fail(m.line_of("serviceAccount") if "serviceAccount" in m else m.line_of("name"),
                f"{where}.serviceAccount", f"{sa!r}: names starting with {WAYPOINT_PREFIX!r} are the waypoints' "
                "own identities")
        ok = False
    replicas = 1
    if "replicas" in m:
        replicas = ck.integer(m["replicas"], m.line_of("replicas"), f"{where}.replicas", 1,
                              MAX_PODS_PER_NODE)
        ok = ok and replicas is not None
    if name is not None and replicas is not None:
        longest = f"{name}-{replicas - 1}"
        if len(longest) > naming.MAX_POD_NAME:
            ck.fail(m.line_of("name"), f"{where}.name",
                    f"pod name {longest!r} would not fit an interface name "
                    f"(at most {naming.MAX_POD_NAME} characters): shorten the service name")
            ok = False
    svc_nodes: list[str] = []
    if "nodes" in m:
        raw = ck.sequence(m["nodes"], m.line_of("nodes"), f"{where}.nodes")
        if raw is not None and not raw:
            ck.fail(m.line_of("nodes"), f"{where}.nodes", "give at least one node, or leave the field out")
            ok = False
        for j, n in enumerate(raw or []):
            if n not in nodes:
                ck.fail(raw.line_of(j), f"{where}.nodes[{j}]",
                        f"unknown node {kind(n)} (nodes: {', '.join(nodes) or 'none'})")
                ok = False
            elif n in svc_nodes:
                ck.fail(raw.line_of(j), f"{where}.nodes[{j}]", f"duplicate node {kind(n)}")
                ok = False
            else:
                svc_nodes.append(n)
        ok = ok and raw is not None
    if not ok or name is None or port is None:
        return name, None
    return name, Service(name, sa, port, replicas, tuple(svc_nodes), l7)


def _parse_mesh(ck: Checker, value, line: int) -> MeshSettings | None:
    """Every problem of the mesh section is reported (not only the first)."""
    m = ck.mapping(value, line, "mesh", set(), {"trustDomain", "concurrency", "connectTimeout", "scope", "tunnel",
                                                          "stats"})
    if m is None:
        return None
    settings, ok = MeshSettings(), True
    if "trustDomain" in m:
        td = m["trustDomain"]
        if not isinstance(td, str) or not TRUST_DOMAIN_RE.match(td) or len(td) > 255:
            ck.fail(m.line_of("trustDomain"), "mesh.trustDomain",
                    f"{kind(td)} is not a valid trust domain (lower-case letters, digits, '.', '-'; at most 255)")
            ok = False
        else:
            settings = replace(settings, trust_domain=td)
    if "concurrency" in m:
        c = ck.integer(m["concurrency"], m.line_of("concurrency"), "mesh.concurrency", 1, MAX_CONCURRENCY)
        ok = ok and c is not None
        settings = replace(settings, concurrency=c or 1)
    if "connectTimeout" in m:
        t = ck.duration(m["connectTimeout"], m.line_of("connectTimeout"), "mesh.connectTimeout",
                        MIN_CONNECT_TIMEOUT, MAX_CONNECT_TIMEOUT, "5s")
        ok = ok and t is not None
        settings = replace(settings, connect_timeout=t or 5.0)
    if "scope" in m:
        scope = ck.choice(m["scope"], m.line_of("scope"), "mesh.scope", SCOPES, "a scope")
        ok = ok and scope is not None
        settings = replace(settings, scope=scope or "all")
    if "tunnel" in m:
        tunnel = ck.choice(m["tunnel"], m.line_of("tunnel"), "mesh.tunnel", TUNNELS, "a tunnel")
        ok = ok and tunnel is not None
        settings = replace(settings, tunnel=tunnel or "hbone")
    if "stats" in m:
        stats = ck.choice(m["stats"], m.line_of("stats"), "mesh.stats", STATS, "a stats setting")
        ok = ok and stats is not None
        settings = replace(settings, stats=stats or "istio")
    return settings if ok else None


def to_yaml(spec: ClusterSpec) -> str:
    """The spec as YAML a user could have written (loads back to an equal spec)."""
    import yaml

    services = []
    for s in spec.services:
        item = {"name": s.name, "serviceAccount": s.service_account, "port": s.port, "replicas": s.replicas}
        if s.nodes:
            item["nodes"] = list(s.nodes)
        if not s.l7:
            item["l7"] = False
        services.append(item)
    mesh = spec.mesh
    doc = {"name": spec.name, "nodes": list(spec.nodes), "services": services,
           "calls": [{"from": c.source, "to": c.target} for c in spec.calls],
           "mesh": {"trustDomain": mesh.trust_domain, "concurrency": mesh.concurrency,
                    "connectTimeout": f"{mesh.connect_timeout * 1000:g}ms", "scope": mesh.scope,
                    "tunnel": mesh.tunnel, "stats": mesh.stats}}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)


def load_cluster(path: str | Path) -> ClusterSpec:
    """Load and validate a cluster spec file."""
    problems: list[str] = []
    return parse_cluster(yamlsrc.load(path, problems), str(path), problems)


def loads_cluster(text: str, source: str = "<string>") -> ClusterSpec:
    problems: list[str] = []
    return parse_cluster(yamlsrc.loads(text, source, problems), source, problems)
