"""Processes inside a pod or node: started in a cgroup and a network namespace before they
exec the program, so that everything it does (and every BPF hook on that cgroup) applies
from the start."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from . import cgroups, netns

# Joins the cgroup whose cgroup.procs file is $1, then execs the rest: the pid is the
# program's own, and no Python runs between fork and exec (a fork of a threaded process
# may only call async-signal-safe functions before exec).
_JOIN_CGROUP = 'echo $$ > "$1" && shift && exec "$@"'


def wrap(argv: Sequence[str], netns_name: str | None, cgroup_rel: str | None) -> list[str]:
    """argv, started inside the namespace (nsenter) and the cgroup (a shell that moves
    itself there, then execs argv); None: stay in this one."""
    argv = list(argv)
    if cgroup_rel:
        argv = ["/bin/sh", "-c", _JOIN_CGROUP, "sh", os.path.join(cgroups.path(cgroup_rel), "cgroup.procs"), *argv]
    if netns_name:
        argv = ["nsenter", f"--net={netns.path(netns_name)}", "--", *argv]
    return argv


def spawn(argv: Sequence[str], netns_name: str | None, cgroup_rel: str | None = None, *, log: str | None = None,
          env: dict | None = None, daemon: bool = True, **popen) -> subprocess.Popen:
    """Start argv in the namespace (and cgroup). `daemon` puts it in its own session so that a
    Ctrl-C at the terminal reaches only the testbed, which then tears down in order."""
    out = open(log, "ab") if log else None  # noqa: SIM115 - handed to the child
    try:
        if out is not None:
            popen.setdefault("stdout", out)
            popen.setdefault("stderr", subprocess.STDOUT)
        return subprocess.Popen(wrap(argv, netns_name, cgroup_rel), start_new_session=daemon, env=env,
                                close_fds=True, **popen)
    finally:
        if out is not None:
            out.close()


def run(argv: Sequence[str], netns_name: str, cgroup_rel: str | None = None, *, input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run argv to completion inside the namespace, capturing its output."""
    if not netns.exists(netns_name):
        raise FileNotFoundError(f"no network namespace {netns_name}")
    return subprocess.run(wrap(argv, netns_name, cgroup_rel), input=input, capture_output=True, text=True,
                          timeout=timeout)


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


def run_tag(pid: int) -> str | None:
    """The run id a testbed worker (`python -m testbed.X ... --run ID`, the agent script)
    carries on its command line; None for any other process."""
    from .agentctl import AGENT_SCRIPT

    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    modules = [b for a, b in zip(argv, argv[1:], strict=False) if a == "-m"]
    ours = AGENT_SCRIPT in argv or any(m.startswith("testbed.") and m != "testbed.cli" for m in modules)
    if ours and "--run" in argv and argv.index("--run") + 1 < len(argv):
        return argv[argv.index("--run") + 1] or None
    return None


def tagged(run_id: str | None) -> list[int]:
    """Pids of the testbed's own workers for this run (or any run when None), wherever they
    are: a worker that lost its namespace or cgroup is still found by its tag."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        tag = run_tag(int(entry))
        if tag and (run_id is None or tag == run_id):
            found.append(int(entry))
    return found


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
