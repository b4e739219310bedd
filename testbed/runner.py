"""Runs composed of stages (DESIGN.md's data flow). Every stage has one small interface:

    build(progress) -> {step: seconds}   create what the stage owns
    teardown() -> [what was removed]      undo it (idempotent)
    sweep(run_id) -> [what was removed]   (static) remove whatever carries the run's tag,
                                           with no state at all

The runner builds the list forward, registering each stage's teardown on an `Unwind` before
the stage acts, so a failure, Ctrl-C, SIGTERM or SIGHUP at any point undoes what exists,
shielded from further signals. `down` and `clean` sweep the stage types backward by tag.
Experiments (chaos/) add traffic and faults on top of a run built here."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import idblocks, naming, signals
from .cluster import cgroups, netns, procs
from .cluster.backend import BACKENDS, DEFAULT_BACKEND, ClusterBackend, check_backend, make_cluster
from .cluster.namespaces import NamespaceCluster
from .cluster.plan import make_plan
from .errors import NotRootError, TestbedError
from .mesh import supervisorctl
from .mesh.stage import MeshStage
from .mesh.topology import ARCHITECTURES, has_waypoints, limits, make_topology
from .mesh.upgrades import PROXY_STRATEGIES, ROLLED_BACK
from .redirect import bpffs
from .redirect.ebpf import EbpfRedirect
from .redirect.iptables import IptablesRedirect
from .redirect.kinds import DEFAULT_REDIRECT, REDIRECTS
from .spec import load_cluster
from .state import Run, list_runs, process_start, resolve

__all__ = ["ARCHITECTURES", "REDIRECTS", "DEFAULT_REDIRECT", "BACKENDS", "DEFAULT_BACKEND", "up", "down", "clean",
           "sweep", "status"]
REDIRECT_STAGES = {"ebpf": EbpfRedirect, "iptables": IptablesRedirect}
# build order; the namespace backend's sweep is every backend's (cluster/backend.py: both name
# and tag everything the same way), so `clean` needs no state to know which one built a run
STAGE_TYPES = (NamespaceCluster, MeshStage, EbpfRedirect, IptablesRedirect)


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError("the testbed needs root (namespaces, cgroups, BPF): run it as root (e.g. with sudo)")


def stages(plan, run: Run, arch: str, redirect: str, backend: str = DEFAULT_BACKEND) -> list:
    """The stages of a run, in build order; `backend` builds the cluster (cluster/backend.py)."""
    cluster = make_cluster(plan, run, backend)
    mesh = MeshStage(plan, run, arch, redirect) if arch != "none" else None
    return [s for s in (cluster, mesh, REDIRECT_STAGES[redirect](plan, run, mesh)) if s is not None]


def up(spec_path: str | Path, arch: str = "none", redirect: str = DEFAULT_REDIRECT, run_id: str | None = None,
       progress=lambda msg: None, backend: str = DEFAULT_BACKEND) -> dict:
    """Build a run and leave it running. Returns its status. On any failure or signal,
    everything created so far is removed before the error propagates."""
    spec = load_cluster(spec_path)  # a bad spec fails here, before anything exists
    check_backend(backend)
    if arch not in ARCHITECTURES:
        raise TestbedError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHITECTURES)})")
    if redirect not in REDIRECTS:
        raise TestbedError(f"unknown redirect {redirect!r} (choose from {', '.join(REDIRECTS)})")
    over = limits(spec, arch)
    if over:
        raise TestbedError(f"{spec_path}: cannot build this cluster with --arch {arch}: " + "; ".join(over))
    require_root()
    run_id = naming.check_run_id(run_id) if run_id else naming.new_run_id()
    with signals.handled(), signals.Unwind() as unwind:
        t0 = time.monotonic()
        run = Run.create(run_id)
        unwind.callback(run.remove)
        unwind.callback(idblocks.release, run_id)
        block = idblocks.claim(run_id)
        run.save({"status": "building", "architecture": arch, "redirect": redirect, "backend": backend,
                  "spec_path": str(spec_path), "spec_text": Path(spec_path).read_text(), "id_block": block,
                  "created": time.time(), "pid": os.getpid(), "pid_start": process_start(os.getpid())})
        plan = make_plan(spec, run_id, proxy_node=has_waypoints(arch), id_block=block)
        timings: dict[str, float] = {}
        built = stages(plan, run, arch, redirect, backend)
        for stage in built:
            unwind.callback(stage.teardown)  # registered before the stage acts
            timings.update(stage.build(progress))
        timings["up"] = time.monotonic() - t0
        run.update(status="up", agents=built[0].agents, timings=timings)
        unwind.pop_all()  # success: leave it running
    return status(run_id)


def down(run_id: str | None = None) -> list[str]:
    """Tear a run down (idempotent): everything tagged with its id goes, whether or not its
    state survived."""
    require_root()
    if run_id is None:
        run_id = resolve(None).run_id
    naming.check_run_id(run_id)
    if run_id not in known_runs():
        raise TestbedError(f"no run {run_id} (runs: {', '.join(sorted(known_runs())) or 'none'})")
    return sweep(run_id)


def sweep(run_id: str) -> list[str]:
    """Every stage's tagged objects, latest stage first (faults' leftovers, then the
    redirection while the cgroups still exist, the supervisor before the proxies it would
    restart, processes before their namespaces), then the run's id block and directory.
    Every step is tried; failures are raised together at the end."""
    removed: list[str] = []
    with signals.Attempts() as steps:
        for sweeper in (sweep_fault_leftovers, *(t.sweep for t in reversed(STAGE_TYPES))):
            removed += steps.attempt(f"sweeping {getattr(sweeper, '__qualname__', sweeper)}", sweeper, run_id) or []
        removed += idblocks.release(run_id)
        if Run(run_id).remove():
            removed.append(f"run directory {Run(run_id).dir}")
    return removed


def sweep_fault_leftovers(run_id: str | None) -> list[str]:
    """Keys an identity-compromise fault copied out (normally removed when it is reverted)."""
    removed = []
    prefix = naming.run_prefix(run_id) if run_id else f"{naming.TAG}-"
    for loot in glob.glob(os.path.join(tempfile.gettempdir(), f"{prefix}*loot-*")):
        shutil.rmtree(loot, ignore_errors=True)
        removed.append(f"stolen keys {loot}")
    return removed


def known_runs() -> set[str]:
    """Every run id that something on this machine carries: run directories, namespaces,
    cgroups, BPF pins, id blocks, tagged processes, stolen-key directories."""
    names = netns.list_tagged(f"{naming.TAG}-") + cgroups.list_tagged(f"{naming.TAG}-")
    if os.path.isdir(bpffs.BPF_FS):
        names += [e for e in os.listdir(bpffs.BPF_FS) if e.startswith(f"{naming.TAG}-")]
    names += [os.path.basename(p) for p in glob.glob(os.path.join(tempfile.gettempdir(), f"{naming.TAG}-*loot-*"))]
    ids = {naming.run_id_of(n) for n in names} | set(list_runs()) | set(idblocks.claims().values())
    ids |= {rid for rid in (procs.run_tag(pid) for pid in procs.tagged(None)) if rid}
    return {i for i in ids if i and naming.RUN_ID_RE.match(i)}


def clean(run_id: str | None = None, force: bool = False) -> dict:
    """Remove every object carrying the testbed's tag, of one run or of every run, state or
    not. A run whose owning process (the `up` building it, the `run` driving it) is still
    alive is left alone unless `force`. Returns {"removed": {run: [...]}, "skipped": {run:
    reason}}."""
    require_root()
    ids = [naming.check_run_id(run_id)] if run_id else sorted(known_runs())
    out: dict = {"removed": {}, "skipped": {}}
    for rid in ids:
        owner = Run(rid).owner()
        if owner is not None and owner != os.getpid() and not force:
            out["skipped"][rid] = f"in use by process {owner} ({_cmdline(owner)}); stop it, or clean --force"
            continue
        out["removed"][rid] = sweep(rid)
    if run_id is None and not out["skipped"]:
        from .mesh import envoy

        stray = envoy.shared_memory_files(None)  # of runs whose id block is already gone
        for path in stray:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if stray:
            out["removed"]["-"] = [f"Envoy shared memory {p}" for p in stray]
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    shown = " ".join(a for a in argv if a)
    return shown if len(shown) < 80 else shown[:77] + "..."


def status(run_id: str | None = None) -> dict:
    run = resolve(run_id)
    state = run.load()
    plan = run.plan()
    return {
        "run": run.run_id,
        "status": state.get("status"),
        "architecture": state.get("architecture"),
        "redirect": state.get("redirect"),
        "backend": state.get("backend", DEFAULT_BACKEND),
        "spec": state.get("spec_path"),
        "fabric": {"netns": plan.fabric_netns},
        "nodes": [{"name": n.name, "ip": n.fabric_ip, "netns": n.netns, "podCIDR": n.pod_cidr}
                  for n in plan.nodes],
        "pods": [{"name": p.name, "service": p.service, "serviceAccount": p.service_account,
                  "node": p.node, "ip": p.ip, "netns": p.netns, "cgroup": p.cgroup,
                  "pid": state.get("agents", {}).get(p.name)} for p in plan.pods],
        "services": [{"name": s.name, "vip": s.vip, "port": s.port, "serviceAccount": s.service_account,
                      "pods": list(s.pods)} for s in plan.services],
        "calls": [{"from": c.source, "to": c.target} for c in plan.spec.calls],
        "proxies": proxies_status(run, plan, state.get("architecture", "none")),
        "timings": state.get("timings", {}),
    }


def proxies_status(run: Run, plan, arch: str) -> list[dict]:
    if arch == "none":
        return []
    stage = MeshStage(plan, run, arch)
    live = stage.proxy_status()
    out = []
    for p in make_topology(plan, arch).proxies:
        s = live.get(p.name, {})
        out.append({"name": p.name, "role": p.role, "netns": p.netns, "node": p.node, "pid": s.get("pid"),
                    "state": s.get("state"), "restarts": s.get("restarts"), "epoch": s.get("epoch"),
                    "admin": f"127.0.0.1:{p.admin_port}@{p.netns}", "adminPort": p.admin_port,
                    "serves": list(p.serves), "identities": list(p.identities), "uid": p.uid,
                    "plaintextHop": p.plaintext_hop, "config": str(stage.config_path(p))})
    return out


def mesh_of(run_id: str | None = None) -> MeshStage:
    run = resolve(run_id)
    state = run.load()
    arch = state.get("architecture", "none")
    if arch == "none":
        raise TestbedError(f"run {run.run_id} has no mesh (architecture none)")
    return MeshStage(run.plan(), run, arch, state.get("redirect", DEFAULT_REDIRECT))


def proxy_for(mesh: MeshStage, name: str):
    """The proxy named `name`, or the one that serves pod `name` (its sidecar, node proxy or
    micro-proxy)."""
    try:
        return mesh.topo.proxy(name)
    except KeyError:
        pass
    try:
        mesh.plan.pod(name)
    except KeyError:
        known = ", ".join(p.name for p in mesh.plan.pods)
        raise TestbedError(f"no pod or proxy named {name!r} (pods: {known})") from None
    return mesh.topo.serving(name)


def upgrade(run_id: str | None, name: str, strategy: str = PROXY_STRATEGIES[0]) -> dict:
    """Replace a proxy in place (mesh/upgrades.py names the strategies). Returns when the
    new one is ready; raises when it was not and the supervisor rolled it back."""
    require_root()
    mesh = mesh_of(run_id)
    proxy = proxy_for(mesh, name)
    r = supervisorctl.request(mesh.run.supervisor_socket, {"op": "upgrade", "proxy": proxy.name,
                                                            "strategy": strategy})
    if r.get("outcome") == ROLLED_BACK:
        raise TestbedError(f"{proxy.name}: {r['reason']}; rolled back ({r['rollback']})"
                           + (f": {r['envoy_said']}" if r.get("envoy_said") else ""))
    return r


def cluster_of(run_id: str | None = None) -> ClusterBackend:
    """The cluster stage of a running run, of the backend that built it."""
    run = resolve(run_id)
    return make_cluster(run.plan(), run, backend_of(run))


def backend_of(run: Run) -> str:
    return run.load().get("backend", DEFAULT_BACKEND)  # runs made before backends existed: namespaces

