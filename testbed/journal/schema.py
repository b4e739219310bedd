"""The journal's format, version 2 (version 1 files are read and upgraded).

    {"journal": 2, "kind": "experiment", "engine": "namespaces" | "simpy" | "kubernetes",
     "simulated": bool, "status": "running" | "completed" | "failed" | "interrupted",
     "experiment": NAME, "source": FILE, "command": "testbed run ...",
     "started": ISO time, "finished": ISO time | null, "seconds": float | null,
     "environment": {"git", "kernel", "envoy", "cpus", "python", "testbed"},
     "seed": int, "redirect": str, "backend": "namespaces" | "mininet" (absent: namespaces),
     "traffic": {...}, "affected": {...},
     "spec": text, "cluster": text, "repeat": {"index": i, "of": n},
     "architectures": {ARCH: {
         "status": "completed" | "failed" | "interrupted", "error": str | null,
         "run": id, "up_s": float, "timings": {...}, "requests": int, "not_sent": int,
         "generator_overloaded": bool, "faults": [FAULT...], "clean_after": {...},
         "cost": {...} | null, "files": {...}}},
     "sweep": {...} | null}

A FAULT holds its spec (kind, target, at, duration), the times it was actually injected
and reverted (`injected_at`, `reverted_at`, seconds since the traffic start, null when it
never happened), the blast-radius metrics (docs/experiments.md) and `details`."""

from __future__ import annotations

VERSION = 2
READABLE = (1, 2)
KIND = "experiment"
ENGINES = ("namespaces", "simpy", "kubernetes")
STATUSES = ("running", "completed", "failed", "interrupted")
ARCH_STATUSES = ("completed", "failed", "interrupted")

# field -> the types it may hold; checked on every journal read
TOP = {"journal": (int,), "experiment": (str,), "started": (str,), "architectures": (dict,)}
ARCH = {"status": (str,), "faults": (list,)}
FAULT = {"kind": (str,), "target": (dict,), "at": (int, float)}


def upgrade(data: dict) -> dict:
    """A version-1 journal in version-2 shape (what v1 did not record is null or implied)."""
    if data.get("journal") == 1:
        data = dict(data, journal=2)
        data.setdefault("kind", KIND)
        data.setdefault("engine", "namespaces")
        data.setdefault("simulated", False)
        data.setdefault("status", "completed" if data.get("seconds") is not None else "interrupted")
        data.setdefault("environment", {k: data.get(k) for k in ("git", "kernel", "envoy")})
        for arch in data.get("architectures", {}).values():
            if isinstance(arch, dict):
                arch.setdefault("status", "completed")
                arch.setdefault("error", None)
                arch.setdefault("cost", None)
    return data
