"""Files written whole or not at all: a temporary file in the same directory, flushed to
disk, then renamed over the target. A kill at any moment leaves the old file or the new
one, never half of one. JSON is strict: NaN and infinities become null (JSON has no such
numbers; a bare NaN breaks every other reader)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def finite(value):
    """`value` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value, indent: int | None = 1) -> str:
    return json.dumps(finite(value), indent=indent, allow_nan=False)


def write_bytes(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | Path, text: str, mode: int = 0o644) -> None:
    write_bytes(path, text.encode(), mode)


def write_json(path: str | Path, value, mode: int = 0o644, indent: int | None = 1) -> None:
    write_text(path, dumps(value, indent) + "\n", mode)
