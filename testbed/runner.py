"""Runs composed of stages (DESIGN.md's data flow). Each stage registers its teardown before
it acts, on one ExitStack, so a failure or Ctrl-C at any point unwinds what was made.

Stages: cluster, mesh (when the architecture has one), redirect. Experiments
(chaos/run.py) add traffic, faults and measurement on top of a run built here."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from . import naming
from .cluster import namespaces
from .cluster.plan import make_plan
from .errors import NotRootError, TestbedError
from .mesh import stage as mesh_stage
from .mesh import supervisorctl
from .mesh.topology import ARCHITECTURES, make_topology
from .redirect import ebpf as ebpf_redirect
from .redirect import iptables as iptables_redirect
from .spec import load_cluster
from .state import Run, list_runs, resolve

REDIRECTS = ("ebpf", "iptables")
DEFAULT_REDIRECT = "ebpf"


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError("the testbed needs root (namespaces, cgroups, BPF): run it with sudo")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM unwinds like Ctrl-C, so teardown runs either way."""
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked helper (e.g. a library's) inherited this handler
            os._exit(128 + signum)
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def up(spec_path: str | Path, arch: str = "none", redirect: str = DEFAULT_REDIRECT, run_id: str | None = None,
       progress=lambda msg: None) -> dict:
    """Build a run and leave it running. Returns its status. On any failure (or Ctrl-C)
    everything created so far is removed before the error propagates."""
    spec = load_cluster(spec_path)  # a bad spec fails here, before anything exists
    if arch not in ARCHITECTURES:
        raise TestbedError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHITECTURES)})")
    if redirect not in REDIRECTS:
        raise TestbedError(f"unknown redirect {redirect!r} (choose from {', '.join(REDIRECTS)})")
    require_root()
    run_id = naming.check_run_id(run_id) if run_id else naming.new_run_id()
    plan = make_plan(spec, run_id, proxy_node=arch == "ambient")
    with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        t0 = time.monotonic()
        run = Run.create(run_id)
        stack.callback(run.remove)
        run.save({"status": "building", "architecture": arch, "redirect": redirect,
                  "spec_path": str(spec_path), "spec_text": Path(spec_path).read_text(),
                  "created": time.time(), "pid": os.getpid()})
        cluster = namespaces.NamespaceCluster(plan, run)
        stack.callback(cluster.teardown)
        # without eBPF, service VIPs are translated by iptables in the nodes (kube-proxy)
        built = cluster.build(progress, service_nat=redirect == "iptables")
        timings = dict(built["timings"])
        mesh = None
        if arch != "none":
            mesh = mesh_stage.MeshStage(plan, run, arch, redirect)
            stack.callback(mesh.teardown)
            timings.update(mesh.build(progress))
        t1 = time.monotonic()
        if redirect == "ebpf":
            bpf = ebpf_redirect.EbpfRedirect(plan, mesh.topo if mesh else None, run.dir)
            stack.callback(bpf.teardown)
            pids = {name: s["pid"] for name, s in mesh.proxy_status().items()} if mesh else {}
            bpf.install(pids, progress)
        elif mesh:
            progress("capturing app traffic with iptables")
            iptables_redirect.install(plan, mesh.topo)  # rules live in the run's namespaces
        timings["redirect"] = time.monotonic() - t1
        timings["up"] = time.monotonic() - t0
        run.update(status="up", agents=built["agents"], timings=timings)
        stack.pop_all()  # success: leave it running
    return status(run.run_id)


def down(run_id: str | None = None) -> list[str]:
    """Tear a run down (idempotent): everything tagged with its id goes."""
    require_root()
    run = resolve(run_id)
    removed = sweep(run.run_id)
    if run.remove():
        removed.append(f"run directory {run.dir}")
    return removed


def clean(run_id: str | None = None) -> list[str]:
    """Remove every object carrying the testbed's tag (of one run, or of all), state or not."""
    require_root()
    removed = sweep(naming.check_run_id(run_id) if run_id else None)
    for rid in [run_id] if run_id else list_runs():
        if Run(rid).remove():
            removed.append(f"run directory {Run(rid).dir}")
    return removed


def sweep(run_id: str | None) -> list[str]:
    """Every stage's tagged objects, latest stage first (the supervisor before the proxies
    it would restart, processes before their namespaces)."""
    removed = mesh_stage.sweep(run_id)
    record = Run(run_id).dir / "ebpf.json" if run_id else None
    removed += ebpf_redirect.sweep(run_id, record)  # detach while the cgroups still exist
    removed += namespaces.sweep(run_id)
    # keys an identity-compromise fault copied out (normally removed when it is reverted)
    prefix = naming.run_prefix(run_id) if run_id else f"{naming.TAG}-"
    for loot in glob.glob(os.path.join(tempfile.gettempdir(), f"{prefix}*loot-*")):
        shutil.rmtree(loot, ignore_errors=True)
        removed.append(f"stolen keys {loot}")
    return removed


def status(run_id: str | None = None) -> dict:
    run = resolve(run_id)
    state = run.load()
    plan = run.plan()
    return {
        "run": run.run_id,
        "status": state.get("status"),
        "architecture": state.get("architecture"),
        "redirect": state.get("redirect"),
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
    stage = mesh_stage.MeshStage(plan, run, arch)
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


def mesh_of(run_id: str | None = None) -> mesh_stage.MeshStage:
    run = resolve(run_id)
    arch = run.load().get("architecture", "none")
    if arch == "none":
        raise TestbedError(f"run {run.run_id} has no mesh (architecture none)")
    return mesh_stage.MeshStage(run.plan(), run, arch)


def proxy_for(mesh: mesh_stage.MeshStage, name: str):
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


def upgrade(run_id: str | None, name: str, strategy: str = "hot-restart") -> dict:
    """Replace a proxy in place: `hot-restart` (Envoy hands its listeners to the new process)
    or `restart` (stop, then start). Returns when the new one is ready."""
    require_root()
    mesh = mesh_of(run_id)
    proxy = proxy_for(mesh, name)
    return supervisorctl.request(mesh.run.supervisor_socket, {"op": "upgrade", "proxy": proxy.name,
                                                               "strategy": strategy})


def cluster_of(run_id: str | None = None) -> namespaces.NamespaceCluster:
    run = resolve(run_id)
    return namespaces.NamespaceCluster(run.plan(), run)
