"""Run directories: one per run id under the state directory (default /run/testbed, or
$TESTBED_STATE_DIR), holding state.json, a copy of the spec, agent sockets and logs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from . import naming
from .atomic import write_json
from .cluster.plan import ClusterPlan, make_plan
from .errors import TestbedError
from .mesh.topology import has_waypoints
from .spec import loads_cluster

STATE_VERSION = 1


def state_dir() -> Path:
    return Path(os.environ.get("TESTBED_STATE_DIR", "/run/testbed"))


class Run:
    """A run's directory and state file. Creating one claims the run id."""

    def __init__(self, run_id: str):
        self.run_id = naming.check_run_id(run_id)
        self.dir = state_dir() / run_id

    @classmethod
    def create(cls, run_id: str) -> Run:
        run = cls(run_id)
        run.dir.parent.mkdir(parents=True, exist_ok=True)
        # proxies (each its own uid) pass through to their own 0700 directory, list nothing;
        # set explicitly, whatever the caller's umask (sudo keeps a 077 one)
        os.chmod(run.dir.parent, os.stat(run.dir.parent).st_mode | 0o111)
        try:
            run.dir.mkdir(mode=0o711)
        except FileExistsError:
            raise TestbedError(f"run {run_id} already exists: pick another --run-id, "
                               f"or `testbed down --run {run_id}`") from None
        os.chmod(run.dir, 0o711)
        for sub in ("agents", "logs"):
            (run.dir / sub).mkdir(mode=0o700)
        return run

    @classmethod
    def open(cls, run_id: str) -> Run:
        run = cls(run_id)
        if not (run.dir / "state.json").exists():
            raise TestbedError(f"no run {run_id} (runs: {', '.join(list_runs()) or 'none'})")
        return run

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def agent_socket(self, pod: str) -> str:
        return str(self.dir / "agents" / f"{pod}.sock")

    @property
    def proxies_dir(self) -> Path:
        return self.dir / "proxies"

    @property
    def identity_dir(self) -> Path:
        return self.dir / "identity"

    @property
    def supervisor_socket(self) -> str:
        return str(self.dir / "supervisor.sock")

    @property
    def proxy_status_file(self) -> Path:
        return self.dir / "proxies-status.json"

    def log(self, name: str) -> str:
        return str(self.dir / "logs" / f"{name}.log")

    def save(self, state: dict) -> None:
        write_json(self.state_file, dict(state, version=STATE_VERSION, run=self.run_id, updated=time.time()),
                   mode=0o600)

    def load(self) -> dict:
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise TestbedError(f"run {self.run_id} has no state file") from None
        except ValueError:
            raise TestbedError(f"run {self.run_id}'s state file {self.state_file} is damaged: "
                               f"`testbed clean --run {self.run_id}` removes the run") from None
        if not isinstance(state, dict):
            raise TestbedError(f"run {self.run_id}'s state file {self.state_file} is damaged")
        return state

    def owner(self) -> int | None:
        """The pid of the live process that made (and may still be driving) this run, or None
        when it has exited (its start time guards against a recycled pid)."""
        try:
            state = json.loads(self.state_file.read_text())
            pid, started = int(state["pid"]), state.get("pid_start")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if process_start(pid) is not None and process_start(pid) == started else None

    def update(self, **changes) -> dict:
        state = dict(self.load(), **changes)
        self.save(state)
        return state

    def plan(self) -> ClusterPlan:
        state = self.load()
        spec = loads_cluster(state["spec_text"], state["spec_path"])
        return make_plan(spec, self.run_id, proxy_node=has_waypoints(state.get("architecture", "none")),
                         id_block=int(state.get("id_block", 0)))

    def remove(self) -> bool:
        if not self.dir.exists():
            return False
        shutil.rmtree(self.dir, ignore_errors=True)  # a concurrent sweep may take parts first
        return not self.dir.exists()


def process_start(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def list_runs() -> list[str]:
    try:
        return sorted(d.name for d in state_dir().iterdir()
                      if d.is_dir() and naming.RUN_ID_RE.match(d.name))
    except FileNotFoundError:
        return []


def resolve(run_id: str | None) -> Run:
    """The run named, or the only run there is."""
    if run_id:
        return Run.open(run_id)
    runs = list_runs()
    if not runs:
        raise TestbedError("no run is up (start one with `testbed up SPEC`)")
    if len(runs) > 1:
        raise TestbedError(f"several runs are up ({', '.join(runs)}): choose one with --run")
    return Run.open(runs[0])
