"""Memory as the kernel accounts it per process: PSS (proportional set size), so that a
binary shared by twenty Envoys is counted once in total, not twenty times as RSS would."""

from __future__ import annotations


def _kib(path: str, field: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise ValueError(f"no {field} line in {path}")


def pss_kib(pid: int) -> int:
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def rss_kib(pid: int) -> int:
    return _kib(f"/proc/{pid}/status", "VmRSS:")
