"""The proxy supervisor: one daemon per run, as a kubelet is per node. It starts every Envoy
of the run in its namespace, cgroup and uid, waits for `/ready`, restarts a proxy that
exits with a backoff, and upgrades a proxy in place (hot restart or stop-and-start).

Run as `python -m testbed.mesh.supervisor --run ID --manifest FILE`. It writes the state of
every proxy to the manifest's `status_file` whenever it changes, and answers JSON-line
commands on its `control` Unix socket:
  {"op": "status"}
  {"op": "upgrade", "proxy": NAME, "strategy": "hot-restart" | "restart" | "replace",
   "config": PATH (optional: the new process's config), "ready_timeout": S (optional)}
      (replace: SIGKILL every epoch, then start afresh). A new process that exits or is not
      ready within `ready_timeout` is rolled back (upgrades.py): after a hot restart the old
      process, which never stopped, serves on; after a restart the old config is started
      again. The answer says which (`outcome`: ready | rolled-back) and how long it took.
  {"op": "restart-delay", "proxy": NAME, "seconds": S | null}   (null: back to the backoff)
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..cluster import procs
from . import admin
from .upgrades import HOT_RESTART, READY, REPLACE, RESTART, ROLLED_BACK, UPGRADE_READY_TIMEOUT

TICK = 0.02  # the sync loop's period, like a kubelet's
STATUS_EVERY = 0.1  # the status file is rewritten at most this often
STATUS_CHECK = 1.0  # and compared with what it shows at least this often
FIRST_POLL = 0.05  # a starting Envoy is not asked if it is ready before this (it takes ~0.07 s of CPU at best)
POLL_MAX = 0.1  # nor less often than this
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
READY_TIMEOUT = 30.0


def max_starting() -> int:
    """How many proxies may be starting at once. Starting an Envoy is CPU work (~0.1 s),
    with waits in it (page faults, files): 8 per CPU kept 2 CPUs busiest (500 sidecars up in
    36.5-37.8 s against 38.2-39.3 s with 4 per CPU; two per CPU was slower still; 200 the
    same either way), where starting hundreds at once adds contention and readiness polls.
    TESTBED_PROXY_STARTS=N overrides it; 0 starts every proxy at once, as before."""
    value = os.environ.get("TESTBED_PROXY_STARTS")
    if value is not None and value.strip().isdigit():
        return int(value) or 1 << 30
    return 8 * (os.cpu_count() or 1)


def shm_path(base_id: int) -> str:
    return f"/dev/shm/envoy_shared_memory_{base_id * 10}"


class Managed:
    """One proxy and its history."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.name = spec["name"]
        self.proc: subprocess.Popen | None = None
        self.epoch = 0
        self.state = "pending"
        self.restarts = 0
        self.failures = 0  # consecutive exits without becoming ready in between
        self.next_start: float | None = time.monotonic()
        self.restart_delay: float | None = None
        self.started_at = self.ready_at = None
        self.last_exit: dict | None = None
        self.expect_exit: set[int] = set()  # pids we stopped on purpose
        self.draining: list[subprocess.Popen] = []  # parents of a hot restart
        self.config = spec["config"]  # what the next process starts with (an upgrade may change it)
        self.next_poll = 0.0  # when to ask a starting proxy again whether it is ready
        self.upgrading = False  # an upgrade owns the proxy: an exit is its failure, not a crash to restart
        # Envoy refuses any hot restart after one failed (its shared memory still says a child
        # is initializing) until a cold start: why, or None
        self.hot_restart_blocked: str | None = None

    def argv(self, envoy: str, epoch: int) -> list[str]:
        s = self.spec
        drop = ["setpriv", f"--reuid={s['uid']}", f"--regid={s['uid']}", "--clear-groups"]
        if s.get("net_admin"):  # node proxies mark their final hop (SO_MARK needs CAP_NET_ADMIN)
            drop += ["--inh-caps=+net_admin", "--ambient-caps=+net_admin"]
        return drop + [envoy, "-c", self.config, "--base-id", str(s["base_id"]), "--restart-epoch", str(epoch),
                       "--concurrency", str(s.get("concurrency", 1)), "--log-level", "warn",
                       "--drain-time-s", "1", "--parent-shutdown-time-s", "3",
                       "--file-flush-interval-msec", "1000",  # the tunnel log (stdout) within a second
                       "--service-node", self.name, "--service-cluster", s["role"]]

    def status(self) -> dict:
        return {"pid": self.proc.pid if self.proc else None, "state": self.state, "epoch": self.epoch,
                "restarts": self.restarts, "started_at": self.started_at, "ready_at": self.ready_at,
                "last_exit": self.last_exit, "restart_delay": self.restart_delay, "config": self.config,
                "upgrading": self.upgrading, "hot_restart_blocked": self.hot_restart_blocked,
                "draining": sum(p.poll() is None for p in self.draining)}


class Supervisor:
    def __init__(self, manifest: dict):
        self.manifest = manifest
        self.envoy = manifest["envoy"]
        self.proxies = {p["name"]: Managed(p) for p in manifest["proxies"]}
        self.lock = threading.RLock()
        self.stopping = False
        self.dirty = True  # something the status file shows changed since it was written
        self._written_at = self._checked_at = -STATUS_EVERY
        self._last_written: dict | None = None
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.max_starting = max_starting()
        self.children: dict[int, subprocess.Popen] = {}  # every Envoy started and not yet reaped, by pid

    # ---------------------------------------------------------------- processes
    def _start(self, m: Managed, epoch: int) -> None:
        if epoch == 0:  # a fresh start: the shared memory of a dead epoch would be refused
            try:
                os.unlink(shm_path(m.spec["base_id"]))
            except FileNotFoundError:
                pass
            m.hot_restart_blocked = None
        m.proc = procs.spawn(m.argv(self.envoy, epoch), m.spec["netns"], m.spec["cgroup"], log=m.spec["log"])
        self.children[m.proc.pid] = m.proc
        m.epoch = epoch
        m.state = "starting"
        self.dirty = True
        m.started_at, m.ready_at, m.next_start = time.time(), None, None
        m.next_poll = time.monotonic() + FIRST_POLL

    def _backoff(self, m: Managed) -> float:
        if m.restart_delay is not None:
            return m.restart_delay
        return min(BACKOFF_FIRST * (2 ** max(m.failures - 1, 0)), BACKOFF_MAX)

    def tick(self) -> None:
        while not self.jobs.empty():
            self.jobs.get()()
        now = time.monotonic()
        with self.lock:
            self._reap()
            starting = sum(1 for m in self.proxies.values() if m.state == "starting")
            for m in self.proxies.values():
                alive = [p for p in m.draining if p.returncode is None]
                if len(alive) != len(m.draining):  # an old epoch finished draining
                    m.draining, self.dirty = alive, True
                if m.proc is not None and m.proc.returncode is not None:
                    pid, rc = m.proc.pid, m.proc.returncode
                    m.proc, self.dirty = None, True
                    m.last_exit = {"pid": pid, "code": rc, "at": time.time(), "expected": pid in m.expect_exit}
                    if pid in m.expect_exit:
                        m.expect_exit.discard(pid)
                    elif m.upgrading:  # the new version did not make it: the upgrade rolls back
                        m.state, m.next_start = "failed", None
                    elif not self.stopping:
                        m.failures += 1
                        m.state = "crashed"
                        m.next_start = now + self._backoff(m)
                if m.proc is None and m.next_start is not None and now >= m.next_start and not self.stopping \
                        and starting < self.max_starting and (m.state != "pending" or self._config_ready(m)):
                    if m.state == "crashed":
                        m.restarts += 1
                    self._start(m, 0)
                    starting += 1
                if m.state == "starting" and m.proc is not None and now >= m.next_poll:
                    if self._ready(m):
                        m.state, m.ready_at, m.failures = "ready", time.time(), 0
                        self.dirty = True
                        starting -= 1
                        self._register_captured(m)
                    else:
                        m.next_poll = now + self._poll_interval(starting)
            self._write_status()

    def _reap(self) -> None:
        """Collect the children that exited since the last tick: one waitpid for each of
        them, where polling every proxy every tick was thousands of system calls a second
        (4% of a CPU with 200 proxies doing nothing). Popen.wait/poll elsewhere still work:
        a child reaped here has its return code set."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.children.pop(pid, None)
            if proc is not None and proc.returncode is None:
                proc.returncode = os.waitstatus_to_exitcode(status)

    @staticmethod
    def _poll_interval(starting: int) -> float:
        """Every tick while a few proxies per CPU start (a restart is seen at once: a node
        proxy's captured listeners are registered when it is ready; a small cluster is up
        when its last proxy is seen ready), less often when many more share the CPUs and
        each takes longer: with 8 starting per CPU, asking each every tick was ~5 ms of the
        supervisor's CPU per proxy started."""
        return min(POLL_MAX, TICK * max(1.0, starting / (4 * (os.cpu_count() or 1))))

    @staticmethod
    def _config_ready(m: Managed) -> bool:
        """A first start waits for the proxy's config: the mesh stage writes the configs
        while the supervisor already starts the proxies whose config is there."""
        return os.path.exists(m.spec["config"])

    @staticmethod
    def _ready(m: Managed) -> bool:
        """LIVE. A fresh start (epoch 0) has no parent that could answer on its admin port:
        the short /ready will do; a hot restart's new epoch must say it is the one answering."""
        return admin.ready(m.spec["netns"], m.spec["admin_port"], m.epoch if m.epoch else None)

    def _register_captured(self, m: Managed) -> None:
        """eBPF capture: hand the (new) captured listeners (inbound, a ztunnel's HBONE) to the
        capture map. Before the redirect stage has pinned the map (first start), it registers
        the listeners itself."""
        capture = m.spec.get("capture")
        if not capture or not os.path.exists(f"{capture['pins']}/tb_inbound_socks"):
            return
        from ..redirect.ebpf import register_listener

        for slot, port in capture["listeners"]:
            try:
                register_listener(capture["pins"], slot, port, m.proc.pid)
            except (OSError, LookupError) as exc:
                print(f"{m.name}: could not register the listener on port {port}: {exc}", file=sys.stderr,
                      flush=True)

    def _write_status(self) -> None:
        """The status file, when something in it changed (`dirty`), at most every
        STATUS_EVERY seconds (while hundreds of proxies start it changes on nearly every
        tick), compact (JSON's C encoder; indenting takes the pure-Python one, milliseconds
        for 800 proxies)."""
        now = time.monotonic()
        if now - self._written_at < STATUS_EVERY:
            return
        if not self.dirty:
            # a change no code path flagged still shows within STATUS_CHECK seconds
            if now - self._checked_at < STATUS_CHECK:
                return
            self._checked_at = now
            status = {name: m.status() for name, m in self.proxies.items()}
            if status == self._last_written:
                return
        else:
            status = {name: m.status() for name, m in self.proxies.items()}
        path = Path(self.manifest["status_file"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"supervisor": os.getpid(), "proxies": status}))
        tmp.replace(path)
        self.dirty, self._written_at, self._last_written = False, now, status

    # ---------------------------------------------------------------- commands
    def in_main_loop(self, fn):
        """Run fn on the sync loop's thread and return its result. Processes must be started
        there: a child may ask for a parent-death signal, which fires when the *thread* that
        forked it ends (a control connection's thread ends with the connection)."""
        done, box = threading.Event(), {}

        def job():
            try:
                box["result"] = fn()
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                box["error"] = exc
            done.set()

        self.jobs.put(job)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def upgrade(self, name: str, strategy: str, config: str | None = None,
                ready_timeout: float = UPGRADE_READY_TIMEOUT) -> dict:
        """Replace the proxy (with `config`, if given); roll back when the new process exits or
        is not ready within `ready_timeout`."""
        if strategy not in (HOT_RESTART, RESTART, REPLACE):
            raise ValueError(f"unknown strategy {strategy!r} ({HOT_RESTART}, {RESTART} or {REPLACE})")
        m = self.proxies[name]
        t0 = time.monotonic()
        while strategy == HOT_RESTART and any(p.returncode is None for p in m.draining):  # reaped by the loop
            time.sleep(TICK)  # Envoy keeps two epochs at most: let the previous parent finish draining
        with self.lock:
            fallback = m.hot_restart_blocked if strategy == HOT_RESTART else None
            if fallback:
                strategy = RESTART
            before = {"proc": m.proc, "epoch": m.epoch, "config": m.config}
        try:
            self.in_main_loop(lambda: self._replace(m, strategy, config))
        except Exception:
            with self.lock:  # nothing was started: the proxy is the supervisor's again
                m.upgrading, m.config, self.dirty = False, before["config"], True
            raise
        deadline = time.monotonic() + ready_timeout
        failure = None
        while failure is None:
            with self.lock:
                if m.state == "ready":
                    m.upgrading, self.dirty = False, True
                    return {"proxy": name, "strategy": strategy, "outcome": READY, "pid": m.proc.pid,
                            "epoch": m.epoch, "seconds": round(time.monotonic() - t0, 3), "fallback": fallback}
                if m.state == "failed":
                    failure = f"the new process exited (code {(m.last_exit or {}).get('code')})"
            if failure is None and time.monotonic() >= deadline:
                failure = f"the new process was not ready within {ready_timeout:g}s"
            if failure is None:
                time.sleep(TICK)
        detected = time.monotonic() - t0
        self.in_main_loop(lambda: self._rollback(m, strategy, before))
        until = time.monotonic() + READY_TIMEOUT
        while m.state != "ready":
            if time.monotonic() >= until:
                raise TimeoutError(f"{name} did not come back after the rollback of a failed {strategy}")
            time.sleep(TICK)
        kept = strategy == HOT_RESTART and m.proc is before["proc"]
        return {"proxy": name, "strategy": strategy, "outcome": ROLLED_BACK, "reason": failure,
                "envoy_said": _said(m.spec["log"]), "pid": m.proc.pid, "epoch": m.epoch,
                "detected_s": round(detected, 3), "seconds": round(time.monotonic() - t0, 3),
                "rollback": "old process kept" if kept else "old config restarted", "fallback": fallback,
                "hot_restart_blocked": m.hot_restart_blocked,
                "admin_answers": admin.ready(m.spec["netns"], m.spec["admin_port"])}

    def _replace(self, m: Managed, strategy: str, config: str | None = None) -> None:
        with self.lock:
            m.upgrading, self.dirty = True, True
            if config:
                m.config = config
            old = m.proc
            if strategy == HOT_RESTART and old is not None:
                m.draining.append(old)
                m.expect_exit.add(old.pid)
                self._start(m, m.epoch + 1)  # the new epoch takes the listeners over from the old
            else:
                # stop every epoch still alive (a draining parent holds the hot-restart socket)
                for p in [old, *m.draining]:
                    if p is None:
                        continue
                    m.expect_exit.add(p.pid)
                    if strategy == REPLACE:  # a broken Envoy (e.g. looping in Wasm) ignores SIGTERM
                        p.kill()
                    else:
                        p.terminate()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                    self.children.pop(p.pid, None)  # reaped here
                m.proc, m.draining = None, []
                self._start(m, 0)

    def _rollback(self, m: Managed, strategy: str, before: dict) -> None:
        """Back to the old version: after a hot restart the old process is still serving (its
        child never asked it to drain), so it simply stays; Envoy will refuse the next hot
        restart, which becomes a restart. After a restart, the old config starts again."""
        with self.lock:
            failed = m.proc
            if failed is not None and failed.poll() is None:
                failed.kill()
                failed.wait(5)
            m.proc, m.config = None, before["config"]
            old = before["proc"]
            if strategy == HOT_RESTART and old is not None and old.poll() is None:
                m.draining = [p for p in m.draining if p is not old]
                m.expect_exit.discard(old.pid)
                m.proc, m.epoch, m.state = old, before["epoch"], "ready"
                m.hot_restart_blocked = f"a hot restart failed at {time.strftime('%H:%M:%S')}"
            else:
                self._start(m, 0)
            m.upgrading, self.dirty = False, True

    def set_restart_delay(self, name: str, seconds) -> dict:
        with self.lock:
            self.proxies[name].restart_delay = None if seconds is None else float(seconds)
            self.dirty = True
            return {"proxy": name, "restart_delay": self.proxies[name].restart_delay}

    def handle(self, req: dict) -> dict:
        op = req.get("op")
        if op == "status":
            with self.lock:
                return {name: m.status() for name, m in self.proxies.items()}
        if op == "upgrade":
            return self.upgrade(req["proxy"], req.get("strategy", HOT_RESTART), req.get("config"),
                                float(req.get("ready_timeout", UPGRADE_READY_TIMEOUT)))
        if op == "restart-delay":
            return self.set_restart_delay(req["proxy"], req.get("seconds"))
        raise ValueError(f"unknown op {op!r}")

    def shutdown(self) -> None:
        with self.lock:
            self.stopping = True
            for m in self.proxies.values():
                for p in [m.proc, *m.draining]:
                    if p is not None and p.poll() is None:
                        p.terminate()
            for m in self.proxies.values():
                for p in [m.proc, *m.draining]:
                    if p is not None:
                        try:
                            p.wait(5)
                        except subprocess.TimeoutExpired:
                            p.kill()
                try:
                    os.unlink(shm_path(m.spec["base_id"]))
                except FileNotFoundError:
                    pass


def _said(log: str) -> str | None:
    """Why Envoy refused to start, from the proxy's log: its last critical line."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    critical = [line for line in lines if "[critical]" in line and "backtrace" not in line]
    return critical[-1].split("] ", 4)[-1][:500] if critical else None


def _control_server(sup: Supervisor, path: str):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                try:
                    resp = {"ok": True, "result": sup.handle(json.loads(line))}
                except Exception as exc:  # noqa: BLE001 - answer every request
                    resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                self.wfile.write(json.dumps(resp).encode() + b"\n")
                self.wfile.flush()

    class Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = Server(path, Handler)
    os.chmod(path, 0o600)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="mesh-testbed proxy supervisor")
    ap.add_argument("--run", required=True, help="run id (a tag, so clean-up can find this process)")
    ap.add_argument("--manifest", required=True)
    args = ap.parse_args(argv)
    manifest = json.loads(Path(args.manifest).read_text())
    sup = Supervisor(manifest)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _control_server(sup, manifest["control"])
    while not stop.is_set():
        sup.tick()
        stop.wait(TICK)
    sup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
