"""Properties of every plan, over random valid clusters and every architecture: names that
never collide, no two sockets on one (namespace, port), and every address inside the
testbed's range and distinct from the extra hosts'. The ports are read from the rendered
Envoy configs themselves, not from the plan's arithmetic."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter

import pytest
import yaml

from testbed import addressing
from testbed.cluster.plan import make_plan
from testbed.mesh import render
from testbed.mesh.topology import ARCHITECTURES, has_waypoints, make_topology
from testbed.spec import TUNNELS, Call, ClusterSpec, MeshSettings, Service

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
WORDS = ["a", "b", "a-b", "n1", "n1-a", "x", "x1", "db", "api", "web", "a1", "b-1"]


def random_spec(rng: random.Random) -> ClusterSpec:
    nodes = rng.sample(["n1", "n1-a", "n2", "a", "n1-a-b", "b", "zz"], rng.randint(1, 5))
    names = rng.sample(WORDS, rng.randint(1, 8))
    accounts = rng.sample(WORDS, rng.randint(1, len(names)))
    services = []
    used_ports = set()
    for name in names:
        port = rng.choice([80, 8080, 9090, 443, 14999, 16000])
        used_ports.add(port)
        svc_nodes = tuple(rng.sample(nodes, rng.randint(1, len(nodes)))) if rng.random() < 0.4 else ()
        services.append(Service(name, rng.choice(accounts), port, rng.randint(1, 4), svc_nodes, rng.random() < 0.8))
    calls = {Call(rng.choice(names), rng.choice(names)) for _ in range(rng.randint(0, 10))}
    return ClusterSpec("c", tuple(nodes), tuple(services), tuple(sorted(calls, key=lambda c: (c.source, c.target))),
                       mesh=MeshSettings(tunnel=rng.choice(TUNNELS)))


def sockets(plan, topo) -> list[tuple[str, int, str]]:
    """(netns, port, owner) of every listening socket: the apps' and every proxy's, as its
    rendered config says."""
    out = [(p.netns, p.port, f"app {p.name}") for p in plan.pods]
    for proxy in topo.proxies:
        config = yaml.load(render.render(plan, topo, proxy, "/certs"), Loader=LOADER)
        out.append((proxy.netns, config["admin"]["address"]["socket_address"]["port_value"], f"{proxy.name} admin"))
        for listener in config["static_resources"].get("listeners", []):
            address = listener.get("address", {})  # an internal listener has none
            if "socket_address" in address:
                out.append((proxy.netns, address["socket_address"]["port_value"], f"{proxy.name} {listener['name']}"))
    return out


@pytest.mark.parametrize("seed", range(25))
def test_names_sockets_and_addresses_never_collide(seed):
    rng = random.Random(seed)
    spec = random_spec(rng)
    for arch in ARCHITECTURES:
        plan = make_plan(spec, "r1", proxy_node=has_waypoints(arch), id_block=rng.randrange(10000))
        topo = make_topology(plan, arch)
        names = [p.name for p in topo.proxies]
        assert len(names) == len(set(names)), (arch, Counter(names).most_common(3))
        assert len({p.cgroup for p in topo.proxies}) == len(names)
        assert len({p.uid for p in topo.proxies}) == len(names)
        socks = Counter((ns, port) for ns, port, _ in sockets(plan, topo))
        clash = [k for k, n in socks.items() if n > 1]
        assert not clash, (arch, clash, [s for s in sockets(plan, topo) if (s[0], s[1]) in clash])
        spaces = plan.namespaces()
        assert len(spaces) == len(set(spaces))
        extra = {addressing.extra_host_ip(i) for i in range(addressing.MAX_EXTRA_HOSTS)}
        addrs = [n.fabric_ip for n in plan.nodes] + [n.gateway for n in plan.nodes] + [p.ip for p in plan.pods] + \
            [s.vip for s in plan.services]
        assert len(addrs) == len(set(addrs))
        for a in addrs + sorted(extra):
            assert ipaddress.ip_address(a) in addressing.CLUSTER_NET, a
        assert not set(addrs) & extra


def test_the_largest_clusters_the_limits_allow_still_fit_the_plans():
    """At the limits themselves: 198 nodes, 250 pods on a node, 500 services, 90 accounts on
    one node (node-sa), 100 waypoints (ambient, ztunnel), with either tunnel."""
    nodes = tuple(f"n{i}" for i in range(addressing.MAX_NODES))
    services = tuple(Service(f"s{i}", f"sa{i % 100}", 8080, 1, ("n0",) if i < 90 else (f"n{1 + i % 197}",))
                     for i in range(500))
    for tunnel in TUNNELS:
        _fits(ClusterSpec("c", nodes, services, (), mesh=MeshSettings(tunnel=tunnel)))


def _fits(spec: ClusterSpec) -> None:
    for arch in ARCHITECTURES:
        plan = make_plan(spec, "r1", proxy_node=has_waypoints(arch))
        topo = make_topology(plan, arch)
        fabric = [n.fabric_ip for n in plan.nodes]
        assert len(set(fabric)) == len(fabric) and all(ipaddress.ip_address(a) in addressing.FABRIC_NET
                                                       for a in fabric)
        assert max(int(ipaddress.ip_address(a)) for a in fabric) < int(ipaddress.ip_address(
            addressing.extra_host_ip(0)))
        ports = Counter((p.netns, port) for p in topo.proxies for port in (p.admin_port, p.outbound_port,
                                                                               p.inbound_port, p.hbone_port) if port)
        assert all(n == 1 for n in ports.values()), arch
        assert all(port in addressing.MESH_PORTS for _, port in ports)
