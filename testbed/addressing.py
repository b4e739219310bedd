"""The address plan and the port plan of a run, and the limits that follow from them. Pure.

Every limit a spec is checked against is derived here, from the ranges below, so that a
cluster that would not fit is refused before anything is built:

  fabric    198.18.0.0/24    node i: 198.18.0.(i+1); the waypoints' node (ambient, ztunnel) comes
                             after the spec's nodes; extra hosts (attackers, generators): .200-.254
  services  198.18.128.0/17  service k: 198.18.128.0 + k + 1
  pods      198.19.0.0/16    node i: 198.19.(i+1).0/24, gateway .1, pods from .2

  ports 15000-15999 belong to the proxies (no app may use them):
    sidecar, micro, node,  admin 15000, outbound 15001, inbound 15006 (in their own netns);
    ztunnel                micro and ztunnel with `mesh.tunnel: hbone` also HBONE 15008 (Istio's)
    node-sa, k-th account  admin 15100+10k, outbound +1, inbound +6 (in the node's netns)
    waypoint (L7), k-th    admin 15100+k (on the waypoints' node); HBONE 15700+k, or with
                           `mesh.tunnel: tcp` service i's listener 15200+i
"""

from __future__ import annotations

import ipaddress

CLUSTER_NET = ipaddress.ip_network("198.18.0.0/15")
FABRIC_NET = ipaddress.ip_network("198.18.0.0/24")
SERVICE_NET = ipaddress.ip_network("198.18.128.0/17")
POD_NET = ipaddress.ip_network("198.19.0.0/16")
FIRST_HOST = 200  # extra hosts on the fabric from 198.18.0.200
LAST_HOST = 254

MESH_PORTS = range(15000, 16000)
ADMIN_PORT, OUTBOUND_PORT, INBOUND_PORT = 15000, 15001, 15006
HBONE_PORT = 15008
NODE_SA_PORT_BASE, NODE_SA_PORT_STEP = 15100, 10
L7_ADMIN_BASE = 15100
L7_PORT_BASE = 15200
WAYPOINT_HBONE_BASE = 15700

# --- limits, derived -------------------------------------------------------------------
# nodes: fabric addresses below the extra hosts, one left for ambient's proxy node, and one
# pod /24 each inside POD_NET
MAX_NODES = min(FIRST_HOST - 2, 2 ** (24 - POD_NET.prefixlen) - 2)
MAX_EXTRA_HOSTS = LAST_HOST - FIRST_HOST + 1
MAX_PODS_PER_NODE = 2 ** 8 - 3 - 3  # a /24 minus network, gateway, broadcast; 3 kept spare
MAX_SERVICES = min(WAYPOINT_HBONE_BASE - L7_PORT_BASE, SERVICE_NET.num_addresses - 2, 500)
# node-sa: the last account's inbound port (base + 10k + 6) stays inside the proxies' ports
MAX_ACCOUNTS_PER_NODE = (MESH_PORTS.stop - 1 - 6 - NODE_SA_PORT_BASE) // NODE_SA_PORT_STEP + 1
# waypoints: admin ports run from 15100 up to the first service listener, HBONE ports from
# 15700 to the end of the proxies' ports
MAX_L7_ACCOUNTS = min(L7_PORT_BASE - L7_ADMIN_BASE, MESH_PORTS.stop - WAYPOINT_HBONE_BASE)
# the eBPF maps (bpf/include/tb_maps.h) hold this many pods and backends in all
MAX_PODS = 4096
# each proxy has its own uid and Envoy --base-id, from a block of this size per run
MAX_PROXIES = 1000


def fabric_ip(index: int) -> str:
    return str(FABRIC_NET.network_address + index + 1)


def extra_host_ip(index: int) -> str:
    if not 0 <= index < MAX_EXTRA_HOSTS:
        raise ValueError(f"at most {MAX_EXTRA_HOSTS} extra hosts on the fabric")
    return str(FABRIC_NET.network_address + FIRST_HOST + index)


def pod_subnet(node_index: int) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(f"{POD_NET.network_address + ((node_index + 1) << 8)}/24")


def service_vip(index: int) -> str:
    return str(SERVICE_NET.network_address + index + 1)
