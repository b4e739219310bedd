"""Faults in a proxy's config, aimed at one workload's part of it (the design's per-workload
tuning and "configs of several applications conflicting"):

- `config`: a valid but harmful setting (a one-connection pool, a 20 ms timeout, ten
  retries, 5 requests/s) on the routes and clusters carrying the target's traffic at the
  proxy serving it (mesh/tuning.py says which those are). In a sidecar they are the target's
  own; in a shared proxy some are shared, and the setting reaches whoever shares them.
- `config-reject`: an update of every workload the proxy serves, in which the target's part
  is refused by Envoy (a route regex that does not compile, or a listener on an address the
  proxy already holds). The whole new config is refused: everyone that proxy serves is left
  without their update, and the old config serves on.

Both reach the proxy as a real config change does in this testbed: a new config file and a
hot restart onto it (mesh/supervisor.py), which the supervisor rolls back when the new
process does not become ready. In ambient both go to the L7 proxy (micro-proxies have no
routes). Revert pushes the proxy's own config again (after a refused hot restart, Envoy
takes no other until a cold start: the supervisor restarts it, and the journal says so)."""

from __future__ import annotations

import os
from pathlib import Path

from ..experiment import FaultSpec
from ..mesh import render, supervisorctl
from ..mesh.stage import private_file
from ..mesh.topology import Proxy
from ..mesh.upgrades import HOT_RESTART, READY
from ..wait import wait_for
from .base import ChaosContext, Fault, at_l7, target_pods

PUSH_TIMEOUT = 120.0  # seconds for one proxy's hot restart (or its rollback) to be answered
DRAIN_TIMEOUT = 30.0  # seconds for an old epoch to be gone (Envoy's --parent-shutdown-time-s is 3)


def write_candidate(fault: Fault, proxy: Proxy, text: str) -> Path:
    """The fault's config for a proxy, beside its own and readable only by its uid."""
    path = fault.ctx.mesh.proxy_dir(proxy) / f"envoy.fault{fault.index}.json"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    private_file(path, text.encode(), proxy.uid)
    return path


def push(fault: Fault, proxy: Proxy, config: Path, strategy: str = HOT_RESTART) -> dict:
    """The supervisor replaces the proxy with this config (or rolls it back); its answer."""
    return supervisorctl.request(fault.ctx.mesh.run.supervisor_socket, {
        "op": "upgrade", "proxy": proxy.name, "strategy": strategy, "config": str(config)}, timeout=PUSH_TIMEOUT)


class Reconfigure(Fault):
    """A new config for each proxy serving the target, rendered with per-workload settings
    (`tuning`); revert goes back to the proxy's own config."""

    def __init__(self, spec: FaultSpec, ctx: ChaosContext, index: int = 0):
        super().__init__(at_l7(spec, ctx), ctx, index)
        self._pushed: list[Proxy] = []

    def tuning(self, proxy: Proxy) -> dict[str, dict]:
        """pod -> its settings, for the pods this proxy serves."""
        raise NotImplementedError

    def inject(self) -> None:
        mesh, plan = self.ctx.mesh, self.ctx.plan
        self.details["proxies"] = []
        for p in self.proxies:
            certs, tuning = str(mesh.proxy_dir(p) / "certs"), self.tuning(p)
            config = write_candidate(self, p, render.render(plan, mesh.topo, p, certs, mesh.redirect, tuning=tuning))
            touched = render.context(plan, mesh.topo, p, certs, mesh.redirect, tuning=tuning)["touched"]
            self._pushed.append(p)
            answer = push(self, p, config)
            self.details["proxies"].append({"proxy": p.name, "serves": list(p.serves), "touched": touched,
                                            "accepted": answer["outcome"] == READY, **_brief(answer)})

    def revert(self) -> None:
        """Back to the proxy's own config, and over only once no process runs the fault's: after
        a hot restart the old epoch serves the connections it holds (a peer proxy's pooled
        ones) until they drain."""
        mesh = self.ctx.mesh
        self.details["reverted"] = []
        pushed, self._pushed = self._pushed, []
        for p in pushed:
            self.details["reverted"].append({"proxy": p.name, **_brief(push(self, p, mesh.config_path(p)))})
        names = [p.name for p in pushed]
        wait_for(lambda: all(not mesh.proxy_status().get(n, {}).get("draining") for n in names), DRAIN_TIMEOUT,
                 f"the old epochs of {', '.join(names)} to drain")


def _brief(answer: dict) -> dict:
    keep = ("outcome", "strategy", "fallback", "seconds", "detected_s", "reason", "envoy_said", "rollback",
            "hot_restart_blocked", "admin_answers")
    return {k: answer[k] for k in keep if k in answer}


class ConfigSetting(Reconfigure):
    kind = "config"

    def tuning(self, proxy: Proxy) -> dict[str, dict]:
        return {pod: dict(self.spec.options["setting"]) for pod in target_pods(self.ctx, self.spec)
                if pod in proxy.serves}

    def inject(self) -> None:
        self.details["setting"] = self.spec.options["setting"]
        super().inject()


class ConfigReject(Reconfigure):
    """Every workload the proxy serves gets an update (a response header naming the update,
    `x-testbed-config`); the target's part of it is one Envoy refuses."""

    kind = "config-reject"

    @property
    def generation(self) -> int:
        return self.index + 1

    def tuning(self, proxy: Proxy) -> dict[str, dict]:
        reason = self.spec.options.get("reason", "invalid")
        targets = set(target_pods(self.ctx, self.spec))
        return {pod: {"generation": self.generation, **({"reject": reason} if pod in targets else {})}
                for pod in proxy.serves}

    def inject(self) -> None:
        self.details["reason"] = self.spec.options.get("reason", "invalid")
        try:
            super().inject()
        finally:
            done = self.details.get("proxies", [])
            refused = {pod for d in done if not d["accepted"] for pod in d["serves"]}
            self.details["left_without_update"] = sorted(refused)
            self.details["updated"] = sorted({pod for d in done if d["accepted"] for pod in d["serves"]})
