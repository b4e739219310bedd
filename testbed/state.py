"""Run directories: one per run id under the state directory (default /run/testbed, or
$TESTBED_STATE_DIR), holding state.json, a copy of the spec, agent sockets and logs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from . import naming
from .cluster.plan import ClusterPlan, make_plan
from .errors import TestbedError
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
        try:
            # 0711: proxies (each its own uid) may reach their own 0700 directory, list nothing
            run.dir.mkdir(mode=0o711)
        except FileExistsError:
            raise TestbedError(f"run {run_id} already exists: pick another --run-id, "
                               f"or `testbed down --run {run_id}`") from None
        for sub in ("agents", "logs"):
            (run.dir / sub).mkdir()
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
        state = dict(state, version=STATE_VERSION, run=self.run_id, updated=time.time())
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    def load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise TestbedError(f"run {self.run_id} has no state file") from None

    def update(self, **changes) -> dict:
        state = dict(self.load(), **changes)
        self.save(state)
        return state

    def plan(self) -> ClusterPlan:
        state = self.load()
        spec = loads_cluster(state["spec_text"], state["spec_path"])
        return make_plan(spec, self.run_id, proxy_node=state.get("architecture") == "ambient")

    def remove(self) -> bool:
        if not self.dir.exists():
            return False
        shutil.rmtree(self.dir)
        return True


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
