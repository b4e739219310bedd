"""The compile cache of the BPF programs: bcc (clang underneath) compiles each program once
per content, and every later run loads the recorded instructions through libbpf
(bpf_load.py) in milliseconds instead of seconds of clang.

A record (one JSON file per program) holds what bcc produced for one program:
  {"program": "connect4", "license": "GPL", "insns": base64 of the raw instructions,
   "refs": [[instruction index, map name], ...],        every map reference in the code
   "maps": {name: {"type", "key_size", "value_size", "max_entries", "flags"}}}
                                                        every map bpf/include declares
The instructions reference maps by file descriptor (ld_imm64 with src_reg
BPF_PSEUDO_MAP_FD); the loader creates the maps, pins them, and patches its own fds in.

Key: a hash of every file under bpf/ (sources and headers), the -D constants other than the
pin directory (which never reaches the instructions), bcc's version and the kernel release
(bcc compiles against that kernel's headers). A changed source is a new key, hence a
recompile; entries of old keys are simply never read again.

Where: /var/cache/mesh-testbed/bpf/<key>/ (root's, 0700), or $TESTBED_BPF_CACHE;
TESTBED_BPF_CACHE=off compiles with bcc on every run, as before the cache. `testbed clean`
leaves it (it holds nothing of any run); `testbed bpf cache --clear` or `make clean`
removes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

from .. import atomic
from . import bpffs

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
DEFAULT_ROOT = "/var/cache/mesh-testbed/bpf"
FORMAT = 2  # of the records; part of the key
LD_IMM64, PSEUDO_MAP_FD = 0x18, 1  # BPF_LD | BPF_IMM | BPF_DW; src_reg of a map fd reference
CALL = 0x85  # BPF_JMP | BPF_CALL; src_reg 1 would be a call into another BPF function


def root() -> Path | None:
    """The cache directory, or None when the cache is switched off."""
    value = os.environ.get("TESTBED_BPF_CACHE", DEFAULT_ROOT)
    return None if value in ("", "off", "0") else Path(value)


def key(constants: list[str], toolchain: str) -> str:
    """The content key: sources, headers, constants, toolchain (bcc's version), kernel."""
    h = hashlib.sha256(f"format {FORMAT}\nkernel {os.uname().release}\ntoolchain {toolchain}\n".encode())
    for c in sorted(constants):
        h.update(f"const {c}\n".encode())
    for path in sorted(p for p in BPF_DIR.rglob("*") if p.is_file()):
        h.update(f"file {path.relative_to(BPF_DIR)}\n".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:24]


def usable(directory: Path) -> bool:
    """Only a directory root owns and nobody else may write is trusted with code that
    will run in the kernel."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & 0o022


def ensure(directory: Path) -> Path:
    """The entry directory, created root-only (parents too) where it is missing."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def read(entry: Path, program: str) -> dict | None:
    """A program's record, or None (missing, unreadable or malformed: compile again)."""
    try:
        record = json.loads((entry / f"{program}.json").read_text())
        record["code"] = base64.b64decode(record["insns"])
        if record["program"] != program or len(record["code"]) % 8:
            return None
        for index, name in record["refs"]:
            if name not in record["maps"] or not 0 <= index < len(record["code"]) // 8:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def write(entry: Path, record: dict) -> None:
    """Atomically: a concurrent run compiling the same program writes the same bytes."""
    atomic.write_text(entry / f"{record['program']}.json", json.dumps(record), mode=0o600)


def map_refs(code: bytes) -> list[tuple[int, int]]:
    """(instruction index, fd) of every map reference in the instructions. Anything else
    that depends on the loading process (a map value address, a call into another
    function) cannot be recorded: ValueError, and the program is not cached."""
    out = []
    k = 0
    while k < len(code) // 8:
        op, regs, _off, imm = struct.unpack_from("<BBhi", code, 8 * k)
        if op == LD_IMM64:
            if regs >> 4 == PSEUDO_MAP_FD:
                out.append((k, imm))
            elif regs >> 4:
                raise ValueError(f"instruction {k}: a 64-bit load of kind {regs >> 4} (only map fds are recorded)")
            k += 2  # the second half of a 16-byte instruction
            continue
        if op == CALL and regs >> 4:
            raise ValueError(f"instruction {k}: a call into another BPF function (not recorded)")
        k += 1
    return out


def extract(code: bytes, license: str, program: str, scratch: str) -> dict:
    """The record of a program bcc has just loaded in this process: its maps are pinned
    under `scratch` by their names (bpf/include/tb_maps.h pins every map at
    TB_PIN_DIR/<name>); each fd in the instructions is matched to a pin by map id."""
    by_id: dict[int, tuple[str, bpffs.MapInfo]] = {}
    for name in sorted(os.listdir(scratch)):
        fd = bpffs.obj_get(f"{scratch}/{name}")
        try:
            info = bpffs.map_info(fd)
        finally:
            os.close(fd)
        by_id[info.id] = (name, info)
    refs = []
    for index, fd in map_refs(code):
        info = bpffs.map_info(fd)
        if info.id not in by_id:
            raise LookupError(f"bpf/{program}.c references a map that is not pinned under TB_PIN_DIR")
        refs.append([index, by_id[info.id][0]])
    # every map the headers declare, used by this program or not: a run has them all, as
    # a bcc load would have left them (`testbed bpf stats` reads maps no program of a
    # mesh-less run writes)
    maps = {name: {"type": i.type, "key_size": i.key_size, "value_size": i.value_size,
                   "max_entries": i.max_entries, "flags": i.map_flags} for name, i in by_id.values()}
    return {"program": program, "license": license, "insns": base64.b64encode(code).decode(), "refs": refs,
            "maps": maps}


def entries() -> list[dict]:
    """What the cache holds: one row per key directory."""
    base = root()
    if base is None or not base.is_dir():
        return []
    out = []
    for entry in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(p.stem for p in entry.glob("*.json"))
        out.append({"key": entry.name, "programs": files,
                    "bytes": sum(p.stat().st_size for p in entry.glob("*.json"))})
    return out


def clear() -> list[str]:
    base = root()
    if base is None or not base.is_dir():
        return []
    removed = [str(p) for p in base.iterdir()]
    shutil.rmtree(base, ignore_errors=True)
    return removed
