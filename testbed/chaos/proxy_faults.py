"""Faults on the proxy process: crash (SIGKILL, restarted by the supervisor after a delay),
hang (SIGSTOP, then SIGCONT), upgrade (roll the proxies one by one)."""

from __future__ import annotations

import os
import signal
import threading

from ..errors import TestbedError
from ..mesh import supervisorctl
from ..wait import wait_for
from .base import Fault


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
    """Replace every proxy in the target's scope, one after the other, in place."""

    kind = "upgrade"

    def inject(self) -> None:
        strategy = self.spec.options.get("strategy", "hot-restart")
        sock = self.ctx.mesh.run.supervisor_socket
        self.details["upgrades"] = []

        def roll():
            for p in self.proxies:
                self.details["upgrades"].append(supervisorctl.request(
                    sock, {"op": "upgrade", "proxy": p.name, "strategy": strategy}, timeout=120))

        self._thread = threading.Thread(target=roll, daemon=True)
        self._thread.start()

    def revert(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(120)
            if thread.is_alive():
                raise TestbedError("the upgrade roll did not finish")


