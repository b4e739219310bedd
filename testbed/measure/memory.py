"""Memory as the kernel accounts it per process: PSS (proportional set size), so that a
binary shared by twenty Envoys is counted once in total, not twenty times as RSS would."""

from __future__ import annotations


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise ValueError(f"no Pss line for pid {pid}")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError(f"no VmRSS line for pid {pid}")
