"""Loading the recorded programs of the compile cache (bpf_cache.py) into a run, without
bcc: create every map the programs use and pin it under the run's directory by its name
(where bcc's BPF_TABLE_PINNED would have put it), patch each map reference with the new
map's fd, load the instructions with the program's type, expected attach type and license,
and pin the program as `prog_<name>`. What the rest of the testbed reads (pins, names,
program tags) is what a bcc load would have left."""

from __future__ import annotations

import os
import struct

from ..errors import TestbedError
from . import bpffs


def _maps(records: dict[str, dict]) -> dict[str, dict]:
    """The maps of all the programs; one name, one definition."""
    out: dict[str, dict] = {}
    for record in records.values():
        for name, definition in record["maps"].items():
            if out.setdefault(name, definition) != definition:
                raise TestbedError(f"map {name} is defined two ways in the compiled programs (stale cache?)")
    return out


def _open_maps(pins: str, definitions: dict[str, dict]) -> dict[str, int]:
    """fds of the run's maps: those already pinned (a partial earlier load) are reused."""
    fds: dict[str, int] = {}
    try:
        for name, d in sorted(definitions.items()):
            path = f"{pins}/{name}"
            if os.path.exists(path):
                fds[name] = bpffs.obj_get(path)
                continue
            fds[name] = bpffs.map_create(d["type"], name, d["key_size"], d["value_size"], d["max_entries"], d["flags"])
            bpffs.obj_pin(fds[name], path)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def patched(code: bytes, refs: list, fds: dict[str, int]) -> bytes:
    """The instructions with each map reference set to this process's fd of that map."""
    out = bytearray(code)
    for index, name in refs:
        op, regs, off, _imm = struct.unpack_from("<BBhi", out, 8 * index)
        struct.pack_into("<BBhi", out, 8 * index, op, regs, off, fds[name])
    return bytes(out)


def load(pins: str, records: dict[str, dict], programs: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Create and pin the maps, load and pin every program; returns {program: fd}."""
    fds = _open_maps(pins, _maps(records))
    progs: dict[str, int] = {}
    try:
        for name, (prog_type, attach_type) in programs.items():
            r = records[name]
            fd = bpffs.prog_load(prog_type, f"tb_{name}", r["license"], patched(r["code"], r["refs"], fds),
                                 attach_type)
            progs[name] = fd
            bpffs.obj_pin(fd, f"{pins}/prog_{name}")
    except BaseException:
        for fd in progs.values():
            os.close(fd)
        raise
    finally:
        for fd in fds.values():
            os.close(fd)
    return progs
