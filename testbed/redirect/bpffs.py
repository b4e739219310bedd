"""Pinned BPF objects through libbpf (ctypes), for processes that did not load them: the
supervisor registering a restarted proxy's listener, `testbed down` detaching programs,
`testbed bpf stats` reading counters. No bcc here: it is slow to import and not needed."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import socket

from ..errors import TestbedError

BPF_FS = "/sys/fs/bpf"
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438  # x86_64 and aarch64 alike


@functools.cache
def _libbpf():
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise TestbedError("libbpf is not installed (apt-get install libbpf1; or as root: make setup)") from None


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno() or -rc
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def is_mounted() -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == BPF_FS and line.split()[2] == "bpf" for line in f)


def ensure_mounted() -> None:
    """bpffs holds the run's pins; mount it where the system has not."""
    if is_mounted():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", BPF_FS.encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise TestbedError(f"cannot mount bpffs on {BPF_FS}: {os.strerror(err)}")


def obj_get(path: str) -> int:
    return _check(_libbpf().bpf_obj_get(path.encode()), f"bpf_obj_get {path}")


def obj_pin(fd: int, path: str) -> None:
    _check(_libbpf().bpf_obj_pin(fd, path.encode()), f"bpf_obj_pin {path}")


def map_update(map_fd: int, key: ctypes.Structure | ctypes._SimpleCData, value, flags: int = 0) -> None:
    _check(_libbpf().bpf_map_update_elem(map_fd, ctypes.byref(key), ctypes.byref(value), ctypes.c_uint64(flags)),
           "bpf_map_update_elem")


def map_lookup(map_fd: int, key, value) -> bool:
    return _libbpf().bpf_map_lookup_elem(map_fd, ctypes.byref(key), ctypes.byref(value)) == 0


def map_keys(map_fd: int, key_type) -> list:
    keys, prev, nxt = [], None, key_type()
    lib = _libbpf()
    while lib.bpf_map_get_next_key(map_fd, ctypes.byref(prev) if prev is not None else None, ctypes.byref(nxt)) == 0:
        keys.append(nxt)
        prev, nxt = nxt, key_type()
    return keys


def prog_attach(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
    _check(_libbpf().bpf_prog_attach(prog_fd, target_fd, attach_type, flags), "bpf_prog_attach")


def prog_detach(prog_fd: int, target_fd: int, attach_type: int) -> None:
    _check(_libbpf().bpf_prog_detach2(prog_fd, target_fd, attach_type), "bpf_prog_detach2")


def link_create(prog_fd: int, target_fd: int, attach_type: int) -> int:
    return _check(_libbpf().bpf_link_create(prog_fd, target_fd, attach_type, None), "bpf_link_create")


# --- creating maps and loading programs without bcc (bpf_load.py) ------------------------
class MapInfo(ctypes.Structure):
    """struct bpf_map_info (linux/bpf.h), as far as we read it."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (linux/bpf.h), its first fields: the tag is a hash of the
    instructions with map references zeroed, the same whoever loaded them."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32)]


class MapCreateOpts(ctypes.Structure):
    """libbpf's struct bpf_map_create_opts (libbpf >= 0.7): map flags, nothing else."""

    _fields_ = [("sz", ctypes.c_size_t), ("btf_fd", ctypes.c_uint32), ("btf_key_type_id", ctypes.c_uint32),
                ("btf_value_type_id", ctypes.c_uint32), ("btf_vmlinux_value_type_id", ctypes.c_uint32),
                ("inner_map_fd", ctypes.c_uint32), ("map_flags", ctypes.c_uint32), ("map_extra", ctypes.c_uint64),
                ("numa_node", ctypes.c_uint32), ("map_ifindex", ctypes.c_uint32)]


class ProgLoadOpts(ctypes.Structure):
    """libbpf's struct bpf_prog_load_opts (libbpf >= 0.7) up to the verifier log; `sz` tells
    libbpf how much of it we know."""

    _fields_ = [("sz", ctypes.c_size_t), ("attempts", ctypes.c_int), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32), ("prog_ifindex", ctypes.c_uint32),
                ("kern_version", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("attach_btf_obj_fd", ctypes.c_uint32),
                ("fd_array", ctypes.c_void_p), ("func_info", ctypes.c_void_p), ("func_info_cnt", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_void_p),
                ("line_info_cnt", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32), ("log_buf", ctypes.c_char_p)]


def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> int:
    opts = MapCreateOpts(sz=ctypes.sizeof(MapCreateOpts), map_flags=flags)
    lib = _libbpf()
    lib.bpf_map_create.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                                   ctypes.POINTER(MapCreateOpts)]
    return _check(lib.bpf_map_create(map_type, name.encode()[:15], key_size, value_size, max_entries,
                                     ctypes.byref(opts)), f"bpf_map_create {name}")


def prog_load(prog_type: int, name: str, license: str, insns: bytes, expected_attach_type: int = 0) -> int:
    """Load raw instructions (8 bytes each); on a verifier refusal the error quotes the
    verifier's log."""
    lib = _libbpf()
    lib.bpf_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.POINTER(ProgLoadOpts)]
    opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts), expected_attach_type=expected_attach_type)
    fd = lib.bpf_prog_load(prog_type, name.encode()[:15], license.encode(), insns, len(insns) // 8, ctypes.byref(opts))
    if fd >= 0:
        return fd
    err = ctypes.get_errno() or -fd
    log = ctypes.create_string_buffer(1 << 16)
    opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts), expected_attach_type=expected_attach_type, log_level=1,
                        log_size=len(log), log_buf=ctypes.cast(log, ctypes.c_char_p))
    retry = lib.bpf_prog_load(prog_type, name.encode()[:15], license.encode(), insns, len(insns) // 8,
                              ctypes.byref(opts))
    if retry >= 0:  # loaded the second time (e.g. EAGAIN the first): keep it
        return retry
    tail = " | ".join(log.value.decode(errors="replace").strip().splitlines()[-4:])
    raise OSError(err, f"bpf_prog_load {name}: {os.strerror(err)}{': ' + tail if tail else ''}")


def _obj_info(fd: int, info) -> None:
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(_libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "bpf_obj_get_info_by_fd")


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    _obj_info(fd, info)
    return info


def prog_info(fd: int) -> ProgInfo:
    info = ProgInfo()
    _obj_info(fd, info)
    return info


def take_fd(pid: int, fd: int) -> int:
    """A copy of another process's file descriptor (pidfd_getfd; root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = _check(libc.syscall(SYS_PIDFD_OPEN, pid, 0), f"pidfd_open {pid}")
    try:
        return _check(libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0), f"pidfd_getfd {pid}/{fd}")
    finally:
        os.close(pidfd)


def listening_socket(pid: int, port: int) -> int:
    """A copy (our own fd) of process `pid`'s TCP socket listening on `port` (any address).
    Each of its sockets is copied and asked (SO_ACCEPTCONN, getsockname): a few system
    calls, where reading /proc/PID/net/tcp walks the machine's whole connection table, in
    tens of milliseconds per proxy."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:["):
                continue
            mine = take_fd(pid, int(fd))
        except OSError:
            continue
        try:
            s = socket.socket(fileno=mine)
            try:
                if s.type == socket.SOCK_STREAM and s.family in (socket.AF_INET, socket.AF_INET6) and \
                        s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and s.getsockname()[1] == port:
                    return s.detach()
            finally:
                s.detach()  # never close through the wrapper: `mine` is closed below or returned
        except OSError:
            pass
        os.close(mine)
    raise LookupError(f"process {pid} has no socket listening on port {port}")


def netns_cookie(netns_path: str) -> int:
    """The kernel's cookie of a network namespace (what bpf_get_netns_cookie returns)."""
    from ..cluster import netns

    name = os.path.basename(netns_path)
    with netns.entered(name), socket.socket() as s:
        return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little")  # SO_NETNS_COOKIE
