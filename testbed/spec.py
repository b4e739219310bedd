"""The cluster spec: pure data loaded from YAML. Loading never touches the kernel; a bad spec
is rejected with file, line and field before anything is created (docs/spec.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import naming, yamlsrc
from .errors import SpecError
from .yamlsrc import YList, YMap

NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
MAX_PODS_PER_NODE = 250  # one /24 per node, minus gateway and broadcast
MAX_SERVICES = 500  # the ambient L7 proxies give each service a port in 15200-15699
MESH_PORTS = range(15000, 16000)  # the proxies' own ports; apps may not use them
PROXY_NODE = "waypoints"  # the dedicated node of the ambient L7 proxies
TRUST_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
MIN_CONNECT_TIMEOUT, MAX_CONNECT_TIMEOUT = 0.01, 60.0  # seconds


@dataclass(frozen=True)
class Service:
    name: str
    service_account: str
    port: int
    replicas: int = 1
    nodes: tuple[str, ...] = ()  # empty: every node of the cluster
    l7: bool = True  # ambient: whether calls to it go through its service account's L7 proxy


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
class _Checker:
    """Collects every problem with file, line and field, so one run shows them all."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def fail(self, line: int, where: str, message: str) -> None:
        self.problems.append(f"{self.source}:{line}: {where}: {message}")

    def mapping(self, value, line: int, where: str, required: set, optional: set) -> YMap | None:
        if not isinstance(value, YMap):
            self.fail(line, where, f"expected a mapping, got {_kind(value)}")
            return None
        for key in value:
            if key not in required | optional:
                known = ", ".join(sorted(required | optional))
                self.fail(value.line_of(key), f"{where}.{key}" if where else str(key),
                          f"unknown field (known fields: {known})")
        for key in sorted(required - set(value)):
            self.fail(value.line, f"{where}.{key}" if where else key, "required field is missing")
        return value

    def name(self, value, line: int, where: str, max_len: int, what: str) -> str | None:
        if not isinstance(value, str):
            self.fail(line, where, f"expected a name, got {_kind(value)}")
            return None
        if not NAME_RE.match(value):
            self.fail(line, where, f"{value!r} is not a valid {what} name "
                                   "(lower-case letters, digits and '-', starting with a letter)")
            return None
        if len(value) > max_len:
            self.fail(line, where, f"{value!r} is longer than {max_len} characters")
            return None
        return value

    def integer(self, value, line: int, where: str, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(line, where, f"expected a whole number, got {_kind(value)}")
            return None
        if not lo <= value <= hi:
            self.fail(line, where, f"{value} is out of range ({lo}-{hi})")
            return None
        return value

    def sequence(self, value, line: int, where: str) -> YList | None:
        if not isinstance(value, YList):
            self.fail(line, where, f"expected a list, got {_kind(value)}")
            return None
        return value


def _kind(value) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", YMap: "a mapping", list: "a list", YList: "a list", str: f"{value!r}",
            bool: f"{value}"}.get(type(value), repr(value))


def parse_cluster(data, source: str = "<spec>") -> ClusterSpec:
    """Validate parsed YAML (from yamlsrc) into a ClusterSpec, or raise SpecError listing
    every problem."""
    ck = _Checker(source)
    top = ck.mapping(data, getattr(data, "line", 1), "", {"name", "nodes", "services"}, {"calls", "mesh"})
    if top is None:
        raise SpecError(ck.problems)

    name = ck.name(top.get("name"), top.line_of("name"), "name", 32, "cluster") if "name" in top else None

    nodes: list[str] = []
    if "nodes" in top:
        raw = ck.sequence(top["nodes"], top.line_of("nodes"), "nodes")
        if raw is not None and not raw:
            ck.fail(top.line_of("nodes"), "nodes", "at least one node is needed")
        for i, n in enumerate(raw or []):
            where = f"nodes[{i}]"
            n = ck.name(n, raw.line_of(i), where, naming.MAX_NODE_NAME, "node")
            if n is None:
                continue
            if n in nodes:
                ck.fail(raw.line_of(i), where, f"duplicate node {n!r}")
                continue
            if n == PROXY_NODE:
                ck.fail(raw.line_of(i), where, f"{n!r} is reserved for the ambient L7 proxies' node")
                continue
            nodes.append(n)

    services: list[Service] = []
    service_lines: dict[str, int] = {}
    if "services" in top:
        raw = ck.sequence(top["services"], top.line_of("services"), "services")
        if raw is not None and not raw:
            ck.fail(top.line_of("services"), "services", "at least one service is needed")
        if raw is not None and len(raw) > MAX_SERVICES:
            ck.fail(top.line_of("services"), "services", f"more than {MAX_SERVICES} services")
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
                    f"node {node!r} would hold {count} pods (at most {MAX_PODS_PER_NODE})")
    if ck.problems:
        raise SpecError(ck.problems)
    return spec


def _parse_service(ck: _Checker, item, line: int, where: str,
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
            ck.fail(m.line_of("l7"), f"{where}.l7", f"expected true or false, got {_kind(m['l7'])}")
            ok = False
        else:
            l7 = m["l7"]
    sa = name
    if "serviceAccount" in m:
        sa = ck.name(m["serviceAccount"], m.line_of("serviceAccount"), f"{where}.serviceAccount", 63,
                     "service account")
        ok = ok and sa is not None
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
                        f"unknown node {n!r} (nodes: {', '.join(nodes) or 'none'})")
                ok = False
            elif n in svc_nodes:
                ck.fail(raw.line_of(j), f"{where}.nodes[{j}]", f"duplicate node {n!r}")
                ok = False
            else:
                svc_nodes.append(n)
        ok = ok and raw is not None
    if not ok or name is None or port is None:
        return name, None
    return name, Service(name, sa, port, replicas, tuple(svc_nodes), l7)


def parse_duration(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = DURATION_RE.match(value.strip())
        if m:
            return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60}[m.group(2)]
    return None


def _parse_mesh(ck: _Checker, value, line: int) -> MeshSettings | None:
    m = ck.mapping(value, line, "mesh", set(), {"trustDomain", "concurrency", "connectTimeout"})
    if m is None:
        return None
    settings = MeshSettings()
    if "trustDomain" in m:
        td = m["trustDomain"]
        if not isinstance(td, str) or not TRUST_DOMAIN_RE.match(td) or len(td) > 255:
            ck.fail(m.line_of("trustDomain"), "mesh.trustDomain",
                    f"{td!r} is not a valid trust domain (lower-case letters, digits, '.', '-')")
            return None
        settings = replace(settings, trust_domain=td)
    if "concurrency" in m:
        c = ck.integer(m["concurrency"], m.line_of("concurrency"), "mesh.concurrency", 1, 64)
        if c is None:
            return None
        settings = replace(settings, concurrency=c)
    if "connectTimeout" in m:
        t = parse_duration(m["connectTimeout"])
        if t is None or not MIN_CONNECT_TIMEOUT <= t <= MAX_CONNECT_TIMEOUT:
            ck.fail(m.line_of("connectTimeout"), "mesh.connectTimeout",
                    f"expected a duration from {MIN_CONNECT_TIMEOUT * 1000:g}ms to {MAX_CONNECT_TIMEOUT:g}s, "
                    f"like 5s, got {_kind(m['connectTimeout'])}")
            return None
        settings = replace(settings, connect_timeout=t)
    return settings


def load_cluster(path: str | Path) -> ClusterSpec:
    """Load and validate a cluster spec file."""
    return parse_cluster(yamlsrc.load(path), str(path))


def loads_cluster(text: str, source: str = "<string>") -> ClusterSpec:
    return parse_cluster(yamlsrc.loads(text, source), source)
