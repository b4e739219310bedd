"""Faults on the proxy process: crash (SIGKILL, restarted by the supervisor after a delay),
hang (SIGSTOP, then SIGCONT), upgrade (roll the proxies one by one; the new version may fail
to become ready, and the supervisor rolls it back)."""

from __future__ import annotations

import json
import os
import signal
import threading

from ..errors import TestbedError
from ..mesh import supervisorctl, upgrades
from ..wait import wait_for
from .base import Fault


# The testbed has one Envoy build. A new version that does not become ready is played by
# that build started on a bootstrap it rejects: a field it does not know, which is what an
# Envoy does with a bootstrap written for a later version.
def failing_bootstrap(text: str) -> str:
    """The new version's bootstrap: the proxy's own, with a field this build does not know."""
    return json.dumps({**json.loads(text), "new_version_field": True})


def _pids(fault: Fault) -> list[int]:
    status = fault.ctx.mesh.proxy_status()
    return [status[p.name]["pid"] for p in fault.proxies if status.get(p.name, {}).get("pid")]


class ProxyCrash(Fault):
    kind = "proxy-crash"

    @property
    def restart_delay(self) -> float:
        return self.spec.options.get("restartDelay") or 0.0

    @property
    def revert_at(self) -> float:
        return self.spec.at + min(self.restart_delay, self.spec.duration or self.restart_delay)

    def inject(self) -> None:
        sock = self.ctx.mesh.run.supervisor_socket
        for p in self.proxies:  # the kubelet's back-off, as the experiment asks
            supervisorctl.request(sock, {"op": "restart-delay", "proxy": p.name, "seconds": self.restart_delay})
        self.details["killed"] = _pids(self)
        for pid in self.details["killed"]:
            os.kill(pid, signal.SIGKILL)

    def revert(self) -> None:
        """The supervisor restarts the proxies; wait until they are ready again."""
        mesh, killed = self.ctx.mesh, set(self.details.get("killed", []))

        def back():
            st = mesh.proxy_status()
            return all(st[p.name]["state"] == "ready" and st[p.name]["pid"] not in killed for p in self.proxies)

        wait_for(back, self.restart_delay + 30, f"{', '.join(p.name for p in self.proxies)} to be restarted")
        st = mesh.proxy_status()
        self.details["restarted_at"] = max((st[p.name]["ready_at"] or 0 for p in self.proxies), default=None)
        for p in self.proxies:
            supervisorctl.request(mesh.run.supervisor_socket, {"op": "restart-delay", "proxy": p.name,
                                                               "seconds": None})


    def ended_at(self) -> float | None:
        return self.details.get("restarted_at") or self.reverted_at


class ProxyHang(Fault):
    kind = "proxy-hang"

    def inject(self) -> None:
        self.details["stopped"] = _pids(self)
        for pid in self.details["stopped"]:
            os.kill(pid, signal.SIGSTOP)

    def revert(self) -> None:
        for pid in self.details.get("stopped", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


class Upgrade(Fault):
    """Replace every proxy in the target's scope, one after the other, in place. With
    `outcome: fails` each new process is refused its bootstrap and the supervisor rolls it
    back; `strategy: canary` restarts the first proxy alone and halts the roll if it failed."""

    kind = "upgrade"

    def inject(self) -> None:
        from .config_faults import write_candidate

        strategy = self.spec.options.get("strategy", upgrades.HOT_RESTART)
        fails = self.spec.options.get("outcome", upgrades.SUCCEEDS) == upgrades.FAILS
        sock = self.ctx.mesh.run.supervisor_socket
        method = upgrades.METHOD[strategy]
        self.details.update(upgrades=[], strategy=strategy, method=method, halted=False, not_tried=[])
        configs = {}
        if fails:
            for p in self.proxies:
                text = failing_bootstrap(self.ctx.mesh.config_path(p).read_text())
                configs[p.name] = str(write_candidate(self, p, text))

        def roll():
            for i, p in enumerate(self.proxies):
                request = {"op": "upgrade", "proxy": p.name, "strategy": method}
                if p.name in configs:
                    request["config"] = configs[p.name]
                answer = supervisorctl.request(sock, request, timeout=120)
                self.details["upgrades"].append(answer)
                if answer.get("outcome") == upgrades.ROLLED_BACK and strategy in upgrades.HALTS_ON_FAILURE:
                    self.details["halted"] = True
                    self.details["not_tried"] = [q.name for q in self.proxies[i + 1:]]
                    return

        self._thread = threading.Thread(target=roll, daemon=True)
        self._thread.start()

    def revert(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(120)
            if thread.is_alive():
                raise TestbedError("the upgrade roll did not finish")
        done = self.details.get("upgrades", [])
        back = [u for u in done if u.get("outcome") == upgrades.ROLLED_BACK]
        self.details["rolled_back"] = [u["proxy"] for u in back]
        self.details["rollback_s_max"] = max((u["seconds"] for u in back), default=None)
        self.details["detect_s_max"] = max((u["detected_s"] for u in back), default=None)
        tried = {u["proxy"] for u in done}
        self.details["pods_exposed"] = sorted({pod for p in self.proxies if p.name in tried for pod in p.serves})
