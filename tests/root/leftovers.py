"""What the testbed left on the machine, counted the way a user would look for it."""

from __future__ import annotations

import os
import subprocess

from testbed import naming
from testbed.cluster import cgroups, netns
from testbed.mesh.envoy import shared_memory_files
from testbed.state import state_dir


def tagged_processes(run_id: str) -> list[int]:
    """Processes carrying the run's tag on their command line (agents, later proxies)."""
    found = []
    needle = f"--run\0{run_id}\0".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def envoy_processes(run_id: str) -> list[int]:
    """Envoy processes whose --base-id is in the run's block."""
    lo = naming.proxy_id_block(run_id)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if b"--base-id" in args and args[0].endswith(b"envoy"):
                base = int(args[args.index(b"--base-id") + 1])
                if lo <= base < lo + naming.PROXY_ID_BLOCK:
                    found.append(int(entry))
    return found


def bpf_programs_attached(run_id: str) -> list[str]:
    """Our programs (named tb_*) attached to any cgroup of the run, as bpftool shows them."""
    root = cgroups.root()
    if not os.path.isdir(f"{root}/tb-{run_id}"):
        return []
    out = subprocess.run(["bpftool", "cgroup", "tree", f"{root}/tb-{run_id}"], capture_output=True, text=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.split() and line.split()[-1].startswith("tb_")]


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def snapshot(run_id: str) -> dict:
    """Everything of this run that exists now; all empty means nothing is left."""
    prefix = f"tb-{run_id}"
    return {
        "namespaces": netns.list_tagged(prefix + "-"),
        "cgroups": [g for g in cgroups.list_tagged(prefix) if g == prefix],
        "processes": tagged_processes(run_id),
        "run_dir": [str(state_dir() / run_id)] if (state_dir() / run_id).exists() else [],
        "root_links": sorted(link for link in root_links() if link.startswith("tb")),
        "envoys": envoy_processes(run_id),
        "bpf_pins": [p for p in (f"/sys/fs/bpf/tb-{run_id}",) if os.path.exists(p)],
        "bpf_programs": bpf_programs_attached(run_id),
        "shared_memory": shared_memory_files(run_id),
    }


def nothing_left(run_id: str) -> bool:
    return not any(snapshot(run_id).values())
