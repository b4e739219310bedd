"""Bypass: a process in the target pod tries to reach every other pod without its proxy, in
each way a workload could (kinds.BYPASS_WAYS), and the journal keeps what each attempt met.

An attempt is a plain-HTTP GET (chaos/bypass_probe.py). The app answers with the peer it
saw: when that peer is the prober's own address, nothing stood between them, so the request
went in plaintext and no proxy checked its identity or the `calls` policy (`plaintext`).
Otherwise a proxy carried it (`proxied`: through the mesh, mTLS and RBAC on the way),
refused it (`denied`, 403), failed it (`proxy-error`), or nothing answered in HTTP at all
(`blocked`: a TLS listener met plaintext, or no route); `self` when a service sent the
prober back to its own pod (kube-proxy's hairpin masquerade hides the peer there). What should stop a bypass is the
capture of inbound traffic at the destination; where the source's own redirect is taken
away, only that remains.

Each way is tried and undone at injection (a detached redirect is put back, a route taken
away), so the fault's window holds only the moment of the attempts; revert undoes whatever
an interrupted injection left."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import naming
from ..cluster import cgroups, links, procs
from ..cluster.plan import NODE_IF
from ..errors import TestbedError
from ..redirect import ebpf, iptables
from .base import Fault, target_pods
from .kinds import BYPASS_WAYS

PROBE = str(Path(__file__).resolve().parent / "bypass_probe.py")
TIMEOUT = 1.0  # seconds per attempt (all attempts of a way run at once)
SCOPE_LINK = 253


def verdict(result: dict, prober_ip: str, prober_pod: str | None = None) -> str:
    if result["status"] is None:
        return "blocked"
    if result["status"] == 200 and result.get("pod") is not None and result["pod"] == prober_pod:
        return "self"  # a service balanced back to the prober's own pod: no other pod reached
    if result["status"] == 200 and (result.get("peer") or "").split(":")[0] == prober_ip:
        return "plaintext"
    if result["status"] == 200:
        return "proxied"
    return "denied" if result["status"] == 403 else "proxy-error"


class Bypass(Fault):
    kind = "bypass"

    def __init__(self, spec, ctx, index: int = 0):
        super().__init__(spec, ctx, index)
        self._undo: list = []  # what to put back, newest last

    @property
    def cgroup(self) -> str:
        """A cgroup of the run's that no redirect program is attached to."""
        return f"{naming.run_cgroup(self.ctx.plan.run_id)}/bypass{self.index}"

    def inject(self) -> None:
        ways = self.spec.options.get("ways") or list(BYPASS_WAYS)
        self.details.update(reachability={}, notes={}, plaintext=[], ways=ways)
        for src in target_pods(self.ctx, self.spec):
            self.details["reachability"][src] = {}
            self.details["notes"][src] = {}
            for way in ways:
                table, note = getattr(self, "_" + way.replace("-", "_"))(src)
                self.details["reachability"][src][way] = table
                if note:
                    self.details["notes"][src][way] = note
        self.details["reached_plaintext"] = len(self.details["plaintext"])

    def revert(self) -> None:
        while self._undo:
            self._undo.pop()()

    # ------------------------------------------------------------------ the ways
    def _pod_address(self, src: str):
        return self._try(src, "pod-address", self._pods(src), self.ctx.plan.pod(src).cgroup), None

    def _outside_cgroup(self, src: str):
        cgroups.create(self.cgroup)
        self._undo.append(lambda: cgroups.remove(self.cgroup))
        try:
            return self._try(src, "outside-cgroup", self._services() + self._pods(src), self.cgroup), None
        finally:
            self._undo.pop()()

    def _detached(self, src: str):
        plan, mesh, pod = self.ctx.plan, self.ctx.mesh, self.ctx.plan.pod(src)
        if mesh is None:
            return {}, "no mesh: there is no redirect to take away"
        if mesh.redirect == "ebpf":
            taken = ebpf.detach_cgroup(plan.run_id, pod.cgroup)
            self._undo.append(lambda: ebpf.reattach(plan.run_id, taken))
            note = None if taken else ("the redirect programs are attached once to the run's pods level, above "
                                        "the pod's own cgroup: nothing of them is the pod's to detach, so these "
                                        "attempts went through its redirect")
        elif iptables.holds_rules(plan, mesh.topo, pod.netns):
            iptables.release(pod.netns)
            self._undo.append(lambda: iptables.reinstall(plan, mesh.topo, pod.netns))
            note = None
        else:
            node = plan.pod(src).node
            return {}, f"the capture rules are in node {node}'s namespace, out of the pod's reach"
        try:
            return self._try(src, "detached", self._services() + self._pods(src), pod.cgroup), note
        finally:
            self._undo.pop()()

    def _on_link(self, src: str):
        plan, pod = self.ctx.plan, self.ctx.plan.pod(src)
        neighbours = [p for p in self._pods(src) if plan.pod(p["label"]).node == pod.node]
        if not neighbours:
            return {}, f"no other pod on node {pod.node}: only a node's own pods share its bridge"
        routes = [f"{p['ip']}/32" for p in neighbours]
        self._routes(pod.netns, routes, "add")
        self._undo.append(lambda: self._routes(pod.netns, routes, "del"))
        try:
            return self._try(src, "on-link", neighbours, pod.cgroup), None
        finally:
            self._undo.pop()()

    # ------------------------------------------------------------------ helpers
    def _pods(self, src: str) -> list[dict]:
        return [{"label": p.name, "ip": p.ip, "port": p.port, "service": p.service}
                for p in self.ctx.plan.pods if p.name != src]

    def _services(self) -> list[dict]:
        return [{"label": f"service {s.name}", "ip": s.vip, "port": s.port, "service": s.name}
                for s in self.ctx.plan.services]

    @staticmethod
    def _routes(ns: str, routes: list[str], command: str) -> None:
        with links.netlink(ns) as ipr:
            eth = ipr.link_lookup(ifname=NODE_IF)[0]
            for dst in routes:
                try:
                    ipr.route(command, dst=dst, oif=eth, scope=SCOPE_LINK)
                except Exception:  # noqa: BLE001 - already there, or already gone
                    if command == "add":
                        raise

    def _try(self, src: str, way: str, targets: list[dict], cgroup: str) -> dict[str, str]:
        """Probe every target from inside `src`'s namespace and `cgroup`; the verdicts by label."""
        plan = self.ctx.plan
        pod = plan.pod(src)
        req = {"timeout": TIMEOUT, "targets": [{k: t[k] for k in ("label", "ip", "port")} for t in targets]}
        r = procs.run([sys.executable, "-I", "-S", PROBE, json.dumps(req)], pod.netns, cgroup, timeout=30)
        if r.returncode != 0:
            raise TestbedError(f"the bypass probe in {src} failed: {r.stderr.strip()[-300:]}")
        allowed = set(plan.spec.calls_from(pod.service))
        table = {}
        for t, res in zip(targets, json.loads(r.stdout), strict=True):
            v = verdict(res, pod.ip, src)
            table[t["label"]] = v
            if v == "plaintext":
                self.details["plaintext"].append({"from": src, "way": way, "to": t["label"],
                                                  "address": res["address"], "answered_by": res["pod"],
                                                  "policy": "allow" if t["service"] in allowed else "deny"})
        return table
