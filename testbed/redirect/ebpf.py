"""Capture with eBPF (`--redirect ebpf`), no iptables rule anywhere. The programs are in
bpf/, one per attach point, compiled and loaded with bcc; their maps (bpf/include/tb_maps.h)
and the programs themselves are pinned under /sys/fs/bpf/tb-<run>/, so that `down`, the
supervisor and `testbed bpf stats` can reach them after the loader has exited.

- connect4, getpeername4, sockops on every pod's cgroup: a connection to a service VIP goes
  to the proxy serving the pod (or, without a mesh, straight to a pod of the service); the
  app still sees the VIP as its peer.
- getsockopt on every proxy's cgroup: answers SO_ORIGINAL_DST for redirected connections
  (Envoy's original_dst listener filter). Proxies' own connections are never captured:
  they sit in their own cgroups.
- sk_lookup on the namespace where inbound is captured: connections to a served pod's port
  go to its proxy's inbound listener (dropped while that proxy restarts), and HBONE tunnels
  to a pod's port 15008 to its node's ztunnel. For node, node-sa and ztunnel, policy routing
  first makes such packets local to the node.
- sockops + sk_msg: local (loopback) connections, app <-> its sidecar or micro-proxy, move
  bytes socket to socket, skipping TCP/IP.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .. import naming
from ..addressing import HBONE_PORT, MAX_PROXIES
from ..atomic import write_json
from ..cluster import cgroups, netns, procs
from ..cluster.plan import BRIDGE, ClusterPlan
from ..errors import TestbedError
from ..mesh.topology import FINAL_HOP_MARK, Proxy
from ..state import Run
from . import bpffs
from .bpf_compile import load_all

INBOUND_TABLE = 100  # node, node-sa: the routing table that makes captured pod traffic local
RULE_PREF = 100
BPF_F_ALLOW_MULTI = 2

# attach types (linux/bpf.h enum bpf_attach_type)
CGROUP_SOCK_OPS, SK_MSG_VERDICT, CGROUP_INET4_CONNECT = 3, 7, 10
CGROUP_GETSOCKOPT, CGROUP_INET4_GETPEERNAME, SK_LOOKUP = 21, 29, 36
# program types (enum bpf_prog_type)
PROG_SOCK_OPS, PROG_SK_MSG, PROG_CGROUP_SOCK_ADDR, PROG_CGROUP_SOCKOPT, PROG_SK_LOOKUP = 13, 16, 18, 25, 30

# file -> (program type, expected attach type, attach type)
PROGRAMS = {
    "connect4": (PROG_CGROUP_SOCK_ADDR, CGROUP_INET4_CONNECT),
    "getpeername4": (PROG_CGROUP_SOCK_ADDR, CGROUP_INET4_GETPEERNAME),
    "sockops": (PROG_SOCK_OPS, CGROUP_SOCK_OPS),
    "getsockopt": (PROG_CGROUP_SOCKOPT, CGROUP_GETSOCKOPT),
    "sk_msg": (PROG_SK_MSG, SK_MSG_VERDICT),
    "sk_lookup": (PROG_SK_LOOKUP, SK_LOOKUP),
}
MODE_BALANCE, MODE_REDIRECT = 0, 1


# --- map layouts, as in bpf/include/tb_maps.h ------------------------------------------
class Pod(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_uint32), ("proxy_ip", ctypes.c_uint32), ("proxy_port", ctypes.c_uint16),
                ("pad", ctypes.c_uint16), ("pad2", ctypes.c_uint32)]


class SvcKey(ctypes.Structure):
    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("pad", ctypes.c_uint16)]


class Svc(ctypes.Structure):
    _fields_ = [("first", ctypes.c_uint32), ("count", ctypes.c_uint32)]


class Addr(ctypes.Structure):
    _fields_ = [("ip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("pad", ctypes.c_uint16)]


InboundKey = SvcKey  # same layout: address (field "vip"), port, both in network order


class Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("redirected", "balanced", "orig_dst", "sc_sockets", "sc_msgs",
                                                "sc_bytes")]


class InboundStats(ctypes.Structure):
    _fields_ = [("steered", ctypes.c_uint64), ("dropped", ctypes.c_uint64)]


def ip_net(ip: str) -> int:
    """An IPv4 address as the u32 a BPF program sees (network byte order in memory)."""
    return int.from_bytes(socket.inet_aton(ip), "little")


def ip_str(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "little"))


def pin_dir(run_id: str) -> str:
    return f"{bpffs.BPF_FS}/{naming.TAG}-{run_id}"


NODE_LEVEL = ("node", "node-sa", "ztunnel")  # proxies in the node's namespace, serving pods behind it


def captures(plan: ClusterPlan, proxy: Proxy) -> list[tuple[str, int, int, int]]:
    """What sk_lookup steers to `proxy`: (pod address, port, slot in tb_inbound_socks, the
    proxy's listening port). Every proxy with an inbound listener takes its pods' own ports;
    a ztunnel also takes HBONE to its pods (port 15008 of their addresses, which are not the
    node's), in a second range of slots."""
    out = []
    for name in proxy.serves if proxy.inbound_port else ():
        pod = plan.pod(name)
        out.append((pod.ip, pod.port, proxy.index, proxy.inbound_port))
        if proxy.role == "ztunnel" and proxy.hbone_port:
            out.append((pod.ip, proxy.hbone_port, MAX_PROXIES + proxy.index, proxy.hbone_port))
    return out


def listener_slots(plan: ClusterPlan, proxy: Proxy) -> list[tuple[int, int]]:
    """(slot, listening port) of each of `proxy`'s listeners that sk_lookup steers to."""
    return sorted({(slot, port) for _, _, slot, port in captures(plan, proxy)})


@dataclass(frozen=True)
class Attachment:
    program: str
    target: str  # a cgroup (relative) or a netns name
    attach_type: int


class EbpfRedirect:
    """The redirect stage with eBPF: loads, attaches and populates; `teardown()` detaches
    and unpins. Without a mesh (`mesh` None) it balances services at the socket only."""

    name = "redirect"

    def __init__(self, plan: ClusterPlan, run: Run, mesh=None):
        self.plan, self.mesh = plan, mesh
        self.topo = mesh.topo if mesh is not None else None
        self.pins = pin_dir(plan.run_id)
        self.record = record_path(plan.run_id)
        self.loaded_by: str | None = None  # "cache", "compiled" or "bcc" (bpf_compile.load_all)

    # ------------------------------------------------------------------ build
    def build(self, progress=lambda msg: None) -> dict[str, float]:
        t0 = time.monotonic()
        bpffs.ensure_mounted()
        os.makedirs(self.pins, exist_ok=True)
        progress("loading the BPF programs")
        progs = self._load(progress)
        t_load = time.monotonic() - t0
        self._populate()
        attachments = self._plan_attachments()
        progress(f"attaching {len(attachments)} BPF programs")
        self._save(attachments)  # before attaching: a sweep detaches what is there of them
        for a in attachments:
            self._attach(progs, a)
        if self.topo is not None:
            msg_map = bpffs.obj_get(f"{self.pins}/tb_sockets")
            try:
                bpffs.prog_attach(progs["sk_msg"], msg_map, SK_MSG_VERDICT)
            finally:
                os.close(msg_map)
            self._capture_inbound(progs["sk_lookup"])
            pids = {name: st["pid"] for name, st in self.mesh.proxy_status().items()}
            for proxy in self.topo.proxies:
                for slot, port in listener_slots(self.plan, proxy):
                    register_listener(self.pins, slot, port, pids[proxy.name])
        for fd in progs.values():
            os.close(fd)
        return {"bpf_load": t_load, "redirect": time.monotonic() - t0}

    def programs(self) -> list[str]:
        """Without a mesh only the socket-level balancing is needed."""
        return list(PROGRAMS) if self.topo else ["connect4", "getpeername4"]

    def _load(self, progress) -> dict[str, int]:
        """Load and pin every program (from the compile cache, else compiled: bpf_compile.py);
        returns the program fds."""
        self.loaded_by, why = load_all(self.plan.run_id, self.pins, {name: PROGRAMS[name] for name in self.programs()})
        if why:
            progress(f"BPF programs compiled with bcc: the compile cache was not used ({why})")
        return {name: bpffs.obj_get(f"{self.pins}/prog_{name}") for name in self.programs()}

    def _populate(self) -> None:
        plan = self.plan
        services = bpffs.obj_get(f"{self.pins}/tb_services")
        backends = bpffs.obj_get(f"{self.pins}/tb_backends")
        pods = bpffs.obj_get(f"{self.pins}/tb_pods")
        try:
            slot = 0
            for svc in plan.services:
                bpffs.map_update(services, SvcKey(ip_net(svc.vip), socket.htons(svc.port)),
                                 Svc(slot, len(svc.pods)))
                for name in svc.pods:
                    pod = plan.pod(name)
                    bpffs.map_update(backends, ctypes.c_uint32(slot), Addr(ip_net(pod.ip), socket.htons(pod.port)))
                    slot += 1
            for pod in plan.pods:
                cg = ctypes.c_uint64(os.stat(cgroups.path(pod.cgroup)).st_ino)  # = bpf_get_current_cgroup_id()
                proxy = self.topo.serving(pod.name) if self.topo else None
                if proxy is None:
                    value = Pod(MODE_BALANCE, 0, 0)
                elif proxy.role in ("sidecar", "micro"):
                    value = Pod(MODE_REDIRECT, ip_net("127.0.0.1"), socket.htons(proxy.outbound_port))
                else:  # node, node-sa: the proxy listens in the node namespace, behind the pod's gateway
                    gateway = plan.node(pod.node).gateway
                    value = Pod(MODE_REDIRECT, ip_net(gateway), socket.htons(proxy.outbound_port))
                bpffs.map_update(pods, cg, value)
        finally:
            for fd in (services, backends, pods):
                os.close(fd)

    def _plan_attachments(self) -> list[Attachment]:
        """Once per cgroup level, not per pod: every pod's cgroup is under the run's `pods`,
        every captured proxy's under `proxies` (naming.py), and a program attached to a
        level with BPF_F_ALLOW_MULTI runs for every cgroup below it. The programs check the
        cgroup themselves (connect4 acts only for cgroups in tb_pods), so this is the same
        redirection as one attachment per pod, in a handful of system calls."""
        run = self.plan.run_id
        per_pod = ("connect4", "getpeername4", "sockops") if self.topo else ("connect4", "getpeername4")
        out = [Attachment(prog, naming.pods_cgroup(run), PROGRAMS[prog][1]) for prog in per_pod]
        captured = [p for p in self.topo.proxies if p.role != "l7"] if self.topo else []
        if captured:
            out.append(Attachment("getsockopt", naming.proxies_cgroup(run), CGROUP_GETSOCKOPT))
            if all(p.role in ("sidecar", "micro") for p in captured):  # the proxy's end of app <-> proxy
                out.append(Attachment("sockops", naming.proxies_cgroup(run), CGROUP_SOCK_OPS))
        return out

    def _attach(self, progs: dict[str, int], a: Attachment) -> None:
        fd = os.open(cgroups.path(a.target), os.O_RDONLY | os.O_DIRECTORY)
        try:
            bpffs.prog_attach(progs[a.program], fd, a.attach_type, BPF_F_ALLOW_MULTI)
        finally:
            os.close(fd)

    def _capture_inbound(self, sk_lookup_fd: int) -> None:
        """Which pod addresses and ports go to which proxy's listener slot, and where sk_lookup
        runs."""
        inbound = bpffs.obj_get(f"{self.pins}/tb_inbound")
        spaces: dict[str, list[tuple[str, int]]] = {}
        node_level = set()
        try:
            for proxy in self.topo.proxies:
                for ip, port, slot, _ in captures(self.plan, proxy):
                    bpffs.map_update(inbound, InboundKey(ip_net(ip), socket.htons(port)), ctypes.c_uint32(slot))
                    spaces.setdefault(proxy.netns, []).append((ip, port))
                if proxy.role in NODE_LEVEL:
                    node_level.add(proxy.netns)
        finally:
            os.close(inbound)
        for i, (ns, targets) in enumerate(sorted(spaces.items())):
            if ns in node_level:
                self._route_inbound_locally(ns, sorted(set(targets)))
            fd = os.open(netns.path(ns), os.O_RDONLY)
            try:
                link = bpffs.link_create(sk_lookup_fd, fd, SK_LOOKUP)
                bpffs.obj_pin(link, f"{self.pins}/link_sk_lookup_{i}")
                os.close(link)
            finally:
                os.close(fd)

    def _route_inbound_locally(self, node_netns: str, targets: list[tuple[str, int]]) -> None:
        """Policy routing (not iptables) in a node: TCP to a local pod's captured port
        (`targets`: its served port, and 15008 behind a ztunnel) is delivered locally, where
        sk_lookup hands it to the serving proxy; the proxies' own final hop to the pod
        carries a mark and is routed normally."""
        node = next(n for n in self.plan.nodes if n.netns == node_netns)
        # "src": the node's own connections to a pod (a proxy's same-node call) need a local
        # source address. accept_local: with port-based rules, the reverse-path check of the
        # pod's answers (ports swapped) meets the local route; it must not call them martians.
        netns.sysctl(node_netns, {f"net.ipv4.conf.{BRIDGE}.accept_local": 1})
        cmds = [["ip", "rule", "add", "pref", str(RULE_PREF), "fwmark", str(FINAL_HOP_MARK), "lookup", "main"],
                ["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", str(INBOUND_TABLE),
                 "src", node.gateway]]
        for ip, port in targets:
            cmds.append(["ip", "rule", "add", "pref", str(RULE_PREF + 1), "to", f"{ip}/32", "ipproto", "tcp",
                         "dport", str(port), "lookup", str(INBOUND_TABLE)])
        for cmd in cmds:
            r = procs.run(cmd, node_netns)
            if r.returncode != 0:
                raise TestbedError(f"{' '.join(cmd)} in {node_netns}: {r.stderr.strip()}")

    def _save(self, attachments: list[Attachment]) -> None:
        write_json(self.record, {"pins": self.pins, "loaded_by": self.loaded_by,
                                 "attached": [a.__dict__ for a in attachments]})

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> list[str]:
        return sweep(self.plan.run_id)

    @staticmethod
    def sweep(run_id: str | None) -> list[str]:
        return sweep(run_id)


def record_path(run_id: str) -> Path:
    """What was attached where: the run directory's ebpf.json."""
    return Run(run_id).dir / "ebpf.json"


def register_listener(pins: str, slot: int, port: int, pid: int) -> None:
    """Put Envoy `pid`'s listener on `port` into the inbound socket map at `slot` (after a
    start or restart of that proxy). Needs no bcc: the supervisor calls it."""
    sock_fd = bpffs.listening_socket(pid, port)
    socks = bpffs.obj_get(f"{pins}/tb_inbound_socks")
    try:
        bpffs.map_update(socks, ctypes.c_uint32(slot), ctypes.c_uint64(sock_fd))
    finally:
        os.close(socks)
        os.close(sock_fd)


def _cgroup_prog(pins: str, a: dict, fn, *args) -> None:
    """fn(program fd, cgroup fd, attach type, *args) for one recorded attachment."""
    pfd = bpffs.obj_get(f"{pins}/prog_{a['program']}")
    try:
        cfd = os.open(cgroups.path(str(a["target"])), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fn(pfd, cfd, int(a["attach_type"]), *args)
        finally:
            os.close(cfd)
    finally:
        os.close(pfd)


def detach_cgroup(run_id: str, cgroup_rel: str) -> list[dict]:
    """Take the run's programs off one pod's cgroup, as a workload holding the BPF rights on
    its own cgroup could (chaos: bypass); returns what was detached, for `reattach`."""
    pins, attached = _attached(run_id)
    mine = [a for a in attached if a.get("target") == cgroup_rel]
    for a in mine:
        _cgroup_prog(pins, a, bpffs.prog_detach)
    return mine


def reattach(run_id: str, attachments: list[dict]) -> None:
    pins, _ = _attached(run_id)
    for a in attachments:
        _cgroup_prog(pins, a, bpffs.prog_attach, BPF_F_ALLOW_MULTI)


def _attached(run_id: str | None) -> tuple[str, list[dict]]:
    """The record of a run's attachments; nothing when it is missing or broken (a run killed
    while writing it): removing the cgroups detaches what it would have named."""
    if run_id is None:
        return "", []
    try:
        data = json.loads(record_path(run_id).read_text())
        return str(data["pins"]), [a for a in data["attached"] if isinstance(a, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return "", []


def sweep(run_id: str | None) -> list[str]:
    """Detach what the run's record says was attached (cgroups that still exist), then
    remove the run's pins (programs, maps, links: unpinning the sk_lookup links detaches
    them). Without a record, cgroup removal detaches the rest. Every run when run_id is
    None. Safe to run twice at once: what is already gone is skipped."""
    removed = []
    pins, attached = _attached(run_id)
    if attached:
        for a in attached:
            try:
                target, prog = cgroups.path(str(a["target"])), f"{pins}/prog_{a['program']}"
                attach_type = int(a["attach_type"])
            except (KeyError, TypeError, ValueError):
                continue
            if not (os.path.isdir(target) and os.path.exists(prog)):
                continue
            try:
                pfd = bpffs.obj_get(prog)
            except OSError:
                continue
            try:
                cfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                os.close(pfd)
                continue
            try:
                bpffs.prog_detach(pfd, cfd, attach_type)
                removed.append(f"BPF {a['program']} detached from {a['target']}")
            except OSError:
                pass
            finally:
                os.close(pfd)
                os.close(cfd)
    if not os.path.isdir(bpffs.BPF_FS):
        return removed
    prefix = f"{naming.TAG}-{run_id}" if run_id else f"{naming.TAG}-"
    for entry in sorted(os.listdir(bpffs.BPF_FS)):
        if entry == prefix or (run_id is None and entry.startswith(prefix)):
            shutil.rmtree(f"{bpffs.BPF_FS}/{entry}", ignore_errors=True)
            if not os.path.exists(f"{bpffs.BPF_FS}/{entry}"):
                removed.append(f"BPF pins {bpffs.BPF_FS}/{entry}")
    return removed


def stats(plan: ClusterPlan) -> dict:
    """The counters of a run's programs, per pod (and per node for node proxies): read from
    the pinned maps; connection counts are exact, so a known workload can be checked."""
    pins = pin_dir(plan.run_id)
    if not os.path.exists(f"{pins}/tb_stats"):
        raise TestbedError(f"run {plan.run_id} has no BPF programs (it was started with --redirect iptables?)")
    names = {}
    for pod in plan.pods:
        names[bpffs.netns_cookie(pod.netns)] = ("pod", pod.name)
    for node in plan.nodes:
        names[bpffs.netns_cookie(node.netns)] = ("node", node.name)
    out = {"pods": {p.name: {f: 0 for f, _ in Stats._fields_} | {"inbound_steered": 0, "inbound_dropped": 0}
                    for p in plan.pods}, "nodes": {}}
    fd = bpffs.obj_get(f"{pins}/tb_stats")
    try:
        for key in bpffs.map_keys(fd, ctypes.c_uint64):
            value = Stats()
            if not bpffs.map_lookup(fd, key, value):
                continue
            kind, name = names.get(key.value, ("other", str(key.value)))
            row = {f: getattr(value, f) for f, _ in Stats._fields_}
            if kind == "pod":
                out["pods"][name].update(row)
            else:
                out["nodes"][name] = row
    finally:
        os.close(fd)
    # a pod's own port, and HBONE to the pod (its ztunnel's): both are connections into the pod
    by_addr = {(p.ip, port): p.name for p in plan.pods for port in (p.port, HBONE_PORT)}
    fd = bpffs.obj_get(f"{pins}/tb_inbound_stats")
    try:
        for key in bpffs.map_keys(fd, InboundKey):
            value = InboundStats()
            pod = by_addr.get((ip_str(key.vip), socket.ntohs(key.port)))
            if pod and bpffs.map_lookup(fd, key, value):
                out["pods"][pod]["inbound_steered"] += value.steered
                out["pods"][pod]["inbound_dropped"] += value.dropped
    finally:
        os.close(fd)
    return out
