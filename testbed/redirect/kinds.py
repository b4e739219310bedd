"""The ways app traffic can reach its proxy (the closed set; the stages are in ebpf.py and
iptables.py)."""

REDIRECTS = ("ebpf", "iptables")
DEFAULT_REDIRECT = "ebpf"
DESCRIPTIONS = {
    "ebpf": "cgroup connect/getsockopt/sockops hooks, sk_msg and sk_lookup; services balanced at the socket",
    "iptables": "REDIRECT rules in the pods' or nodes' nat tables; services translated by DNAT in the nodes",
}
