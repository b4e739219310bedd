"""Blocks of proxy ids (uids and Envoy --base-ids), one per live run, never shared.

A run claims a block by creating `<state dir>/id-blocks/<n>` exclusively (O_EXCL: two runs
starting at the same moment cannot both win), holding its run id; the claim goes when the
run is swept. The first block tried is derived from the run id, so a run usually keeps the
same block, but any free one will do. Without this, two live runs whose ids hash alike
would share uids (one run's proxy could read the other's keys) and unlink each other's
hot-restart shared memory."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from . import naming
from .errors import TestbedError


def _dir() -> Path:
    from .state import state_dir

    return state_dir() / "id-blocks"


def _holder(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def claims() -> dict[int, str]:
    """Block -> run id, for every block claimed now."""
    out = {}
    try:
        entries = list(_dir().iterdir())
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name.isdigit():
            holder = _holder(entry)
            if holder:
                out[int(entry.name)] = holder
    return out


def block_of(run_id: str) -> int | None:
    for block, holder in claims().items():
        if holder == run_id:
            return block
    return None


def claim(run_id: str) -> int:
    """The run's block: the one it holds already, or a free one it now holds."""
    held = block_of(run_id)
    if held is not None:
        return held
    d = _dir()
    d.mkdir(parents=True, exist_ok=True)
    start = zlib.crc32(run_id.encode()) % naming.PROXY_ID_BLOCKS
    for k in range(naming.PROXY_ID_BLOCKS):
        block = (start + k) % naming.PROXY_ID_BLOCKS
        try:
            fd = os.open(d / str(block), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(run_id)
        return block
    raise TestbedError(f"every one of the {naming.PROXY_ID_BLOCKS} proxy id blocks is held by a run: "
                       "`testbed clean` removes runs that are gone")


def release(run_id: str | None) -> list[str]:
    """Give the run's block back (every block when run_id is None)."""
    released = []
    for block, holder in claims().items():
        if run_id is None or holder == run_id:
            try:
                (_dir() / str(block)).unlink()
                released.append(f"proxy id block {block} of run {holder}")
            except FileNotFoundError:
                pass
    return released
