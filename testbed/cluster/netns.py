"""Network namespaces: create, delete, find by tag, and run code inside one."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

from ..errors import TestbedError

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 0x1000, 0x4000, 1 << 20, 2
_libc = ctypes.CDLL(None, use_errno=True)
_shared = False  # NETNS_DIR checked to be a shared mount, once per process


def path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def create(name: str) -> None:
    """A new namespace, bind-mounted at /run/netns/NAME as `ip netns add` does. Made on
    this thread (unshare, bind, then back home), not in a helper process per namespace as
    pyroute2's create does: a fork of the testbed each, 200 of them for 200 pods."""
    if exists(name):
        raise TestbedError(f"network namespace {name} already exists (is another run using this id? "
                           "see `testbed status` or `testbed clean`)")
    _share_dir()
    target = path(name)
    os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            try:
                _check(_libc.mount(b"/proc/thread-self/ns/net", target.encode(), b"none", MS_BIND, None),
                       f"bind mount on {target}")
            finally:
                setns(home)
        except OSError:
            os.unlink(target)
            raise
    finally:
        os.close(home)


def _share_dir() -> None:
    """/run/netns a shared mount, as `ip netns add` makes it, so the namespaces bound there are
    seen from every mount namespace (bound onto itself first where it is not a mount point)."""
    global _shared
    if _shared:
        return
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        _check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None),
               f"bind mount of {NETNS_DIR}")
        _check(_libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None), f"sharing {NETNS_DIR}")
    _shared = True


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def delete(name: str) -> bool:
    """Remove a namespace; True when this call removed it. Idempotent, and safe against a
    concurrent sweep removing it first."""
    if not exists(name):
        return False
    target = path(name)
    _libc.umount2(target.encode(), MNT_DETACH)  # not mounted (a half-made namespace): unlinked all the same
    try:
        os.unlink(target)
    except FileNotFoundError:
        return False
    return True


def list_tagged(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def inode(name: str) -> int | None:
    try:
        return os.stat(path(name)).st_ino
    except FileNotFoundError:
        return None


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace `name`, then come back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path(name), os.O_RDONLY)
    try:
        setns(target)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(target)
        os.close(home)


def sysctl(name: str, settings: dict[str, str | int]) -> None:
    """Write net.* sysctls inside namespace `name` (they are per namespace). net.bridge.*
    keys exist only where the kernel has br_netfilter; they are skipped elsewhere."""
    with entered(name):
        for key, value in settings.items():
            try:
                with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                    f.write(str(value))
            except FileNotFoundError:
                if not key.startswith("net.bridge."):
                    raise
