"""What the testbed left on the machine, counted the way a user would look for it."""

from __future__ import annotations

import glob
import os
import subprocess
import tempfile

from testbed import idblocks
from testbed.cluster import cgroups, netns
from testbed.mesh.envoy import shared_memory_files
from testbed.state import state_dir


def _live(pid: str) -> bool:
    """Not a zombie: orphans are reaped late on these machines (PID 1 is not systemd)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tagged_processes(run_id: str) -> list[int]:
    """Live processes carrying the run's tag on their command line (agents, workers)."""
    found = []
    needle = f"--run\0{run_id}\0".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read() and _live(entry):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def envoy_processes(run_id: str) -> list[int]:
    """Live Envoy processes whose config is in the run's directory."""
    needle = f"/{run_id}/proxies/".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args[0].endswith(b"envoy") and any(needle in a for a in args) and _live(entry):
                found.append(int(entry))
    return found


def bpf_programs_attached(run_id: str) -> list[str]:
    """Our programs (named tb_*) attached to any cgroup of the run, as bpftool shows them."""
    root = cgroups.root()
    if not os.path.isdir(f"{root}/tb-{run_id}"):
        return []
    out = subprocess.run(["bpftool", "cgroup", "tree", f"{root}/tb-{run_id}"], capture_output=True, text=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.split() and line.split()[-1].startswith("tb_")]


def own_shared_memory(run_id: str) -> list[str]:
    """The hot-restart shared memory of a live run's proxies (by the id block it holds)."""
    block = idblocks.block_of(run_id)
    return shared_memory_files([block]) if block is not None else []


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
        "shared_memory": shared_memory_files(None),  # of no live run (this one is gone, or should be)
        "id_block": [b for b, holder in idblocks.claims().items() if holder == run_id],
        "stolen_keys": glob.glob(os.path.join(tempfile.gettempdir(), f"tb-{run_id}-loot-*")),
    }


def nothing_left(run_id: str) -> bool:
    return not any(snapshot(run_id).values())
