"""Reading a journal back: the only way reports, the model and comparisons get at one. A
file that is not JSON, not a journal, from a newer testbed, or missing what a journal must
hold is refused with an error that names the file and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TestbedError
from .schema import ARCH, FAULT, READABLE, TOP, upgrade


class JournalError(TestbedError):
    pass


def _check(obj: dict, fields: dict, where: str, source: str) -> None:
    for key, types in fields.items():
        if key not in obj:
            raise JournalError(f"{source}: {where}{key}: missing (is this a complete journal?)")
        if isinstance(obj[key], bool) or not isinstance(obj[key], types):
            raise JournalError(f"{source}: {where}{key}: expected {' or '.join(t.__name__ for t in types)}, "
                               f"got {type(obj[key]).__name__}")


def loads(text: str, source: str = "<journal>") -> dict:
    try:
        data = json.loads(text, parse_constant=lambda c: None)  # a bare NaN from an old writer reads as null
    except ValueError as exc:
        line, why = getattr(exc, "lineno", "?"), exc.args[0].split(":")[0]
        raise JournalError(f"{source}:{line}: not valid JSON ({why}): a journal cut short?") from None
    if not isinstance(data, dict) or "journal" not in data:
        raise JournalError(f"{source}: not a testbed journal (no \"journal\" version field)")
    version = data["journal"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise JournalError(f"{source}: journal: expected a version number, got {version!r}")
    if version not in READABLE:
        newer = version > max(READABLE)
        raise JournalError(f"{source}: journal version {version} "
                           f"{'is newer than this testbed reads' if newer else 'is not one this testbed reads'} "
                           f"(it reads {', '.join(map(str, READABLE))})")
    data = upgrade(data)
    _check(data, TOP, "", source)
    for arch, result in data["architectures"].items():
        if not isinstance(result, dict):
            raise JournalError(f"{source}: architectures.{arch}: expected an object")
        _check(result, ARCH, f"architectures.{arch}.", source)
        for i, fault in enumerate(result["faults"]):
            if not isinstance(fault, dict):
                raise JournalError(f"{source}: architectures.{arch}.faults[{i}]: expected an object")
            _check(fault, FAULT, f"architectures.{arch}.faults[{i}].", source)
    return data


def load(path: str | Path) -> dict:
    """The journal at `path` (a file, or a directory holding journal.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "journal.json"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    data = loads(text, str(path))
    data["_path"] = str(path)
    return data
