"""Shared test helpers. Tests are split by privilege: tests/unit runs anywhere; tests/root
needs root (namespaces, cgroups) and is skipped with a reason otherwise. Each root test
gets its own run id, and whatever it created is removed even when it fails."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TESTBED = [sys.executable, "-m", "testbed.cli"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, cgroups, BPF): run `make test` as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def run_id():
    """A fresh run id per test; everything tagged with it is swept afterwards."""
    rid = "t" + secrets.token_hex(3)
    yield rid
    if os.geteuid() == 0:
        from testbed import runner

        runner.clean(rid)


def tb(*args, check=True, timeout=120, **kw) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, capturing its output."""
    r = subprocess.run(TESTBED + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, **kw)
    if check and r.returncode != 0:
        cmd = " ".join(map(str, args))
        raise AssertionError(f"testbed {cmd} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r
