"""Processes inside a pod or node: started in a cgroup and a network namespace before they
exec, so that everything they do (and every BPF hook on that cgroup) applies from the start."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from . import cgroups, netns


def _enter(netns_name: str | None, cgroup_rel: str | None):
    """A pre-exec hook: join the cgroup, then the namespace (None: stay in this one). Files
    are opened before fork."""
    ns_fd = os.open(netns.path(netns_name), os.O_RDONLY) if netns_name else -1
    procs_file = os.path.join(cgroups.path(cgroup_rel), "cgroup.procs") if cgroup_rel else None

    def hook():
        if procs_file:
            with open(procs_file, "w") as f:
                f.write("0")  # "0" moves the writing process itself
        if ns_fd >= 0:
            netns.setns(ns_fd)

    return hook, ns_fd


def spawn(argv: Sequence[str], netns_name: str | None, cgroup_rel: str | None = None, *, log: str | None = None,
          env: dict | None = None, daemon: bool = True, **popen) -> subprocess.Popen:
    """Start argv in the namespace (and cgroup). `daemon` puts it in its own session so that a
    Ctrl-C at the terminal reaches only the testbed, which then tears down in order."""
    hook, ns_fd = _enter(netns_name, cgroup_rel)
    out = open(log, "ab") if log else None  # noqa: SIM115 - handed to the child
    try:
        if out is not None:
            popen.setdefault("stdout", out)
            popen.setdefault("stderr", subprocess.STDOUT)
        return subprocess.Popen(list(argv), preexec_fn=hook, start_new_session=daemon,
                                env=env, close_fds=True, **popen)
    finally:
        if ns_fd >= 0:
            os.close(ns_fd)
        if out is not None:
            out.close()


def run(argv: Sequence[str], netns_name: str, cgroup_rel: str | None = None, *, input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run argv to completion inside the namespace, capturing its output."""
    hook, ns_fd = _enter(netns_name, cgroup_rel)
    try:
        return subprocess.run(list(argv), preexec_fn=hook, input=input, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        if ns_fd >= 0:
            os.close(ns_fd)


def in_netns(inodes: set[int]) -> list[int]:
    """Pids of processes whose network namespace is one of `inodes`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


def tagged(run_id: str | None) -> list[int]:
    """Pids of the testbed's own workers (`python -m testbed.X ... --run ID`, the agent
    script) for this run (or any run when None), wherever they are: a worker that lost its
    namespace or cgroup is still found by its tag."""
    from .agentctl import AGENT_SCRIPT

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        modules = [b for a, b in zip(argv, argv[1:], strict=False) if a == "-m"]
        ours = AGENT_SCRIPT in argv or any(m.startswith("testbed.") and m != "testbed.cli" for m in modules)
        if ours and "--run" in argv:
            value = argv[argv.index("--run") + 1] if argv.index("--run") + 1 < len(argv) else ""
            if value and (run_id is None or value == run_id):
                found.append(int(entry))
    return found


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
