"""Writing a journal: the whole file replaced atomically (atomic.py) after every
architecture and at the end, whatever happened, so a kill at any moment leaves the
previous complete version, never half of one."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from ..atomic import write_json
from .schema import KIND, VERSION


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def git_sha() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                           cwd=Path(__file__).resolve().parents[2])
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None


def environment(envoy_version: str | None = None) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        testbed = version("mesh-testbed")
    except PackageNotFoundError:
        testbed = None
    return {"git": git_sha(), "kernel": platform.release(), "envoy": envoy_version, "cpus": os.cpu_count(),
            "python": platform.python_version(), "testbed": testbed}


def command_line() -> str:
    """How this run was started, as a user would type it again."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("testbed", "cli.py", "__main__.py")):
        argv[0] = "testbed"
    return " ".join(argv)


class JournalWriter:
    """Holds a journal while it is made; `save()` writes it whole."""

    def __init__(self, path: Path, header: dict):
        self.path = Path(path)
        self.t0 = time.monotonic()
        self.data = {"journal": VERSION, "kind": KIND, "engine": "namespaces", "simulated": False,
                     "status": "running", "started": now(), "finished": None, "seconds": None,
                     "command": command_line(), **header, "architectures": {}}

    def architecture(self, arch: str, result: dict) -> None:
        self.data["architectures"][arch] = result
        self.save()

    def finish(self, status: str) -> dict:
        self.data.update(status=status, finished=now(), seconds=round(time.monotonic() - self.t0, 1))
        self.save()
        return self.data

    def save(self) -> None:
        write_json(self.path, self.data)
