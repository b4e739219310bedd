"""Service virtual IPs without a mesh, as kube-proxy does it in iptables mode: in every node
namespace, a connection to VIP:port is DNAT-ed to one of the service's pods, chosen at
random with equal weights. This is the `none` architecture's data path."""

from __future__ import annotations

from . import procs
from .plan import ClusterPlan, NodePlan


def render_rules(plan: ClusterPlan) -> str:
    """iptables-restore input for the nat table of a node (the same on every node)."""
    lines = ["*nat", ":TB-SERVICES - [0:0]"]
    body = [
        "-A PREROUTING -j TB-SERVICES",
        "-A OUTPUT -j TB-SERVICES",
    ]
    for k, svc in enumerate(plan.services):
        chain = f"TB-SVC-{k}"
        lines.append(f":{chain} - [0:0]")
        body.append(f"-A TB-SERVICES -d {svc.vip}/32 -p tcp --dport {svc.port} "
                    f"-m comment --comment {svc.name} -j {chain}")
        endpoints = [plan.pod(name) for name in svc.pods]
        for j, pod in enumerate(endpoints):
            left = len(endpoints) - j
            pick = f"-m statistic --mode random --probability {1 / left:.6f} " if left > 1 else ""
            body.append(f"-A {chain} {pick}-m comment --comment {pod.name} "
                        f"-p tcp -j DNAT --to-destination {pod.ip}:{pod.port}")
    # hairpin: a pod calling its own service may be sent to itself; masquerade so the
    # answer comes back through the node (as kube-proxy's KUBE-MARK-MASQ does)
    for pod in plan.pods:
        body.append(f"-A POSTROUTING -s {pod.ip}/32 -d {pod.ip}/32 -j MASQUERADE")
    return "\n".join(lines + body + ["COMMIT", ""])


def install(plan: ClusterPlan, node: NodePlan) -> None:
    r = procs.run(["iptables-restore", "-w", "5"], node.netns, input=render_rules(plan))
    if r.returncode != 0:
        raise RuntimeError(f"iptables-restore in {node.netns} failed: {r.stderr.strip()}")
