"""cgroup v2 directories for pods and proxies. Every run has one directory named after its
run id; pods (and, later, proxies) get leaves below it. BPF programs attach to pod leaves."""

from __future__ import annotations

import functools
import os

from ..errors import TestbedError
from ..wait import wait_for


@functools.cache
def root() -> str:
    """The cgroup2 mount: /sys/fs/cgroup on a unified host, elsewhere e.g. /sys/fs/cgroup/unified.
    Found once per process: /proc/self/mounts lists every namespace's bind mount, so reading
    it for each of a thousand cgroups of a run took seconds."""
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                mounts.append(mnt)
    if not mounts:
        raise TestbedError("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
    return "/sys/fs/cgroup" if "/sys/fs/cgroup" in mounts else mounts[0]


def path(rel: str) -> str:
    return os.path.join(root(), rel)


def create(rel: str) -> str:
    p = path(rel)
    os.makedirs(p, exist_ok=True)
    return p


def procs(rel: str) -> list[int]:
    """Every pid in the cgroup and its descendants."""
    out = []
    for dirpath, _dirs, _files in os.walk(path(rel)):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def kill_all(rel: str, timeout: float = 5.0) -> bool:
    """SIGKILL every process in the subtree and wait until it is empty. True when there was
    any. (Not how many: counting walks every cgroup of the subtree, a second with 200 pods.)"""
    p = path(rel)
    if not os.path.isdir(p) or not populated(rel):
        return False
    kill_file = os.path.join(p, "cgroup.kill")
    if os.path.exists(kill_file):
        with open(kill_file, "w") as f:
            f.write("1")
    else:  # kernels before 5.14
        for pid in procs(rel):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    # one file says whether any process is left in the whole subtree
    wait_for(lambda: not populated(rel), timeout, f"the processes of cgroup {p} to exit")
    return True


def populated(rel: str) -> bool:
    """Whether any process is left in the cgroup or below it (cgroup.events)."""
    try:
        with open(os.path.join(path(rel), "cgroup.events")) as f:
            return any(line.split() == ["populated", "1"] for line in f)
    except FileNotFoundError:
        return False


def remove(rel: str) -> bool:
    """rmdir the subtree, leaves first. True when it existed."""
    p = path(rel)
    if not os.path.isdir(p):
        return False
    for dirpath, _dirs, _files in sorted(os.walk(p), key=lambda w: -w[0].count("/")):
        # a killed process still counts until its parent has reaped it: EBUSY for a moment
        wait_for(lambda d=dirpath: _rmdir(d), 5, f"cgroup {dirpath} to be empty and removed")
    return True


def _rmdir(d: str) -> bool:
    try:
        os.rmdir(d)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == 16:  # EBUSY
            return False
        raise
    return True


def list_tagged(prefix: str) -> list[str]:
    try:
        return sorted(d for d in os.listdir(root()) if d.startswith(prefix) and os.path.isdir(path(d)))
    except (FileNotFoundError, TestbedError):
        return []
