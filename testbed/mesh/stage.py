"""The mesh stage: identities, one directory per proxy holding exactly its keys and its
rendered config (owned by the proxy's own uid, so it can read nothing else), and the
supervisor that runs them. Teardown stops the supervisor and every Envoy and removes their
shared memory."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .. import idblocks, identity, naming
from ..cluster import cgroups, procs
from ..cluster.plan import ClusterPlan
from ..errors import TestbedError
from ..redirect.ebpf import listener_slots, pin_dir
from ..state import Run
from ..wait import wait_for
from . import envoy, render
from .topology import MeshTopology, Proxy, make_topology

READY_TIMEOUT = 60.0
READY_PER_PROXY = 0.25


def private_dir(path: Path, uid: int) -> None:
    """A directory only `uid` may enter, from the moment it exists (mode 0700 whatever the
    caller's umask)."""
    os.mkdir(path, 0o700)
    os.chown(path, uid, uid)
    os.chmod(path, 0o700)


def private_file(path: Path, data: bytes, uid: int) -> None:
    """A file only `uid` may read, 0600 from its first byte: created empty with that mode
    and owner, then filled."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchown(fd, uid, uid)
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def shared_dir(path: Path) -> None:
    """A root directory that proxies (other uids) may pass through but not list."""
    path.mkdir(mode=0o711, exist_ok=True)
    os.chmod(path, 0o711)


class MeshStage:
    def __init__(self, plan: ClusterPlan, run: Run, arch: str, redirect: str = "ebpf"):
        self.plan = plan
        self.run = run
        self.redirect = redirect
        self.topo: MeshTopology = make_topology(plan, arch)

    def proxy_dir(self, proxy: Proxy) -> Path:
        return self.run.proxies_dir / proxy.name

    def config_path(self, proxy: Proxy) -> Path:
        return self.proxy_dir(proxy) / "envoy.json"

    # ------------------------------------------------------------------ build
    def build(self, progress=lambda msg: None) -> dict:
        """The supervisor starts first and starts each proxy as soon as its config is in
        place, so that rendering and writing the configs (Python, here) overlaps starting
        the Envoys (other processes, other CPUs)."""
        t0 = time.monotonic()
        spec = self.plan.spec
        # every account's (what an attacker with stolen keys may hold), and the waypoints' own
        names = sorted(set(spec.service_accounts()) | set(self.topo.identities()))
        progress(f"issuing SVIDs for {len(names)} identities")
        ids = identity.issue(self.run.identity_dir, spec.mesh.trust_domain, names)
        shared_dir(self.run.proxies_dir)
        mpath = self.run.dir / "supervisor.json"
        mpath.write_text(json.dumps(self._manifest(), indent=1))
        for proxy in self.topo.proxies:
            cgroups.create(proxy.cgroup)
        cgroups.create(naming.supervisor_cgroup(self.run.run_id))
        progress(f"starting {len(self.topo.proxies)} Envoy proxies, each as soon as its config is rendered")
        t1 = time.monotonic()
        procs.spawn([sys.executable, "-m", "testbed.mesh.supervisor", "--run", self.run.run_id,
                     "--manifest", str(mpath)], None, naming.supervisor_cgroup(self.run.run_id),
                    log=self.run.log("supervisor"), cwd=str(Path(__file__).resolve().parents[2]))
        for proxy in self.topo.proxies:
            self._write_proxy(proxy, ids)
        t_files = time.monotonic() - t0
        self.wait_ready()
        # the two overlap: configs are written while the first proxies start
        return {"identities_and_configs": t_files, "proxies": time.monotonic() - t1}

    def _write_proxy(self, proxy: Proxy, ids: identity.Identities) -> None:
        d = self.proxy_dir(proxy)
        certs = d / "certs"
        private_dir(d, proxy.uid)
        private_dir(certs, proxy.uid)
        private_file(certs / "ca.crt", ids.ca_cert.read_bytes(), proxy.uid)
        for sa in proxy.identities:  # exactly the keys the architecture gives this proxy
            private_file(certs / f"{sa}.crt", ids.cert(sa).read_bytes(), proxy.uid)
            private_file(certs / f"{sa}.key", ids.key(sa).read_bytes(), proxy.uid)
        config = render.render(self.plan, self.topo, proxy, str(certs), self.redirect)
        partial = self.config_path(proxy).with_suffix(".partial")
        private_file(partial, config.encode(), proxy.uid)
        os.rename(partial, self.config_path(proxy))  # whole: the supervisor starts the proxy when it appears

    def _manifest(self) -> dict:
        return {
            "run": self.run.run_id,
            "envoy": envoy.envoy_path(),
            "status_file": str(self.run.proxy_status_file),
            "control": self.run.supervisor_socket,
            "proxies": [{
                "name": p.name, "role": p.role, "netns": p.netns, "cgroup": p.cgroup, "uid": p.uid,
                "base_id": p.base_id, "config": str(self.config_path(p)), "admin_port": p.admin_port,
                "concurrency": self.plan.spec.mesh.concurrency, "log": self.run.log(p.name),
                "net_admin": p.role in ("node", "node-sa", "ztunnel"),
                # eBPF capture: after every (re)start, these listeners (port) go into these slots
                "capture": {"pins": pin_dir(self.run.run_id), "listeners": listener_slots(self.plan, p)}
                if self.redirect == "ebpf" and listener_slots(self.plan, p) else None,
            } for p in self.topo.proxies],
        }

    def proxy_status(self) -> dict:
        try:
            return json.loads(self.run.proxy_status_file.read_text())["proxies"]
        except (FileNotFoundError, ValueError):
            return {}

    def wait_ready(self, timeout: float | None = None) -> None:
        if timeout is None:  # starting an Envoy takes ~0.1 s of CPU: hundreds of them take a while
            timeout = READY_TIMEOUT + READY_PER_PROXY * len(self.topo.proxies)
        def all_ready():
            st = self.proxy_status()
            for name, s in st.items():
                if s["restarts"] >= 2 and s["state"] != "ready":
                    last = s["last_exit"] or {}
                    tail = _tail(self.run.log(name))
                    raise TestbedError(f"proxy {name} keeps exiting (code {last.get('code')}):\n{tail}")
            return st and len(st) == len(self.topo.proxies) and all(s["state"] == "ready" for s in st.values())

        def not_ready():
            st = self.proxy_status()
            return "proxies " + ", ".join(n for n, s in st.items() if s["state"] != "ready") + " to be ready" \
                if st else "the proxy supervisor to start"

        try:
            wait_for(all_ready, timeout, not_ready, interval=0.1)  # 200 proxies: a 60 KB status each time
        except TestbedError:
            raise
        except Exception as exc:
            raise TestbedError(str(exc)) from None

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> list[str]:
        return sweep(self.run.run_id)

    @staticmethod
    def sweep(run_id: str | None) -> list[str]:
        return sweep(run_id)


def sweep(run_id: str | None = None) -> list[str]:
    """Stop the supervisor and proxies of a run (every run when None) and remove their Envoy
    shared memory. Works without state: processes by cgroup, shared memory by the run's id
    block (when None: every block no live run holds)."""
    removed = []
    prefix = naming.run_cgroup(run_id) if run_id else f"{naming.TAG}-"
    for group in cgroups.list_tagged(prefix):
        if run_id and group != prefix:
            continue
        # first the supervisor, so nothing is restarted; then the proxies, so that none still
        # starting creates its shared memory after it was removed below
        for sub, what in (("supervisor", "proxy supervisor"), ("proxies", "proxies"), ("waypoints", "L7 proxies")):
            if os.path.isdir(cgroups.path(f"{group}/{sub}")) and cgroups.kill_all(f"{group}/{sub}"):
                removed.append(f"{what} of {group}")
    if run_id is None:
        blocks = None
    else:
        block = idblocks.block_of(run_id)
        blocks = [] if block is None else [block]
    for path in envoy.shared_memory_files(blocks):
        try:
            os.unlink(path)
            removed.append(f"Envoy shared memory {path}")
        except FileNotFoundError:
            pass
    return removed


def _tail(path: str, lines: int = 8) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
