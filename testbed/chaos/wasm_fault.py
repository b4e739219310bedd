"""A bad Wasm extension: a proxy-wasm filter that traps, loops, eats memory or denies
everything, attached to the target service's traffic at the proxy that serves it (the
inbound of a sidecar or node proxy, the waypoint in ambient and ztunnel; their L4 proxies
run no extensions). The module is built from WAT in the repository at run time. Whom else it hurts
is the isolation question of shared proxies."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import TestbedError
from ..experiment import FaultSpec
from ..mesh import render, supervisorctl
from .base import ChaosContext, Fault, at_l7
from .kinds import WASM_BEHAVIORS, WASM_POLICIES

WAT = Path(__file__).resolve().parent / "wasm" / "misbehave.wat"


def build(out_dir: Path) -> Path:
    """Assemble the filter with wat2wasm (wabt)."""
    out = out_dir / "misbehave.wasm"
    if not out.exists():
        r = subprocess.run(["wat2wasm", str(WAT), "-o", str(out)], capture_output=True, text=True)
        if r.returncode != 0:
            raise TestbedError(f"wat2wasm {WAT} failed: {r.stderr.strip()} (is wabt installed? as root: make setup)")
    return out


class WasmExtension(Fault):
    kind = "wasm"

    def __init__(self, spec: FaultSpec, ctx: ChaosContext, index: int = 0):
        super().__init__(at_l7(spec, ctx), ctx, index)  # only waypoints (L7) run extensions
        self._original: dict[str, str] = {}

    def _services(self) -> set[str]:
        plan, t = self.ctx.plan, self.spec.target
        if t.kind == "service":
            return {t.name}
        if t.kind == "pod":
            return {plan.pod(t.name).service}
        return {p.service for p in plan.pods_on(t.name)}

    def inject(self) -> None:
        mesh = self.ctx.mesh
        wasm = build(mesh.run.dir)
        behavior = self.spec.options.get("behavior", "loop")
        policy = WASM_POLICIES[self.spec.options.get("failurePolicy", "closed")]
        for p in self.proxies:
            path = mesh.config_path(p)
            target = mesh.proxy_dir(p) / "extension.wasm"
            shutil.copyfile(wasm, target)
            os.chown(target, p.uid, p.uid)
            self._original[p.name] = path.read_text()
            ext = {"file": str(target), "config": WASM_BEHAVIORS[behavior], "policy": policy}
            config = render.render(self.ctx.plan, mesh.topo, p, str(mesh.proxy_dir(p) / "certs"), mesh.redirect,
                                   wasm={s: dict(ext, vm_id=f"tb-{s}") for s in self._services()})
            path.write_text(config)
            self.details.setdefault("loaded", []).append(supervisorctl.request(
                mesh.run.supervisor_socket, {"op": "upgrade", "proxy": p.name, "strategy": "hot-restart"},
                timeout=90))

    def revert(self) -> None:
        """Back to the config without the extension, on a fresh process: a looping Envoy does
        not stop on SIGTERM, so every epoch of it is killed."""
        mesh = self.ctx.mesh
        for p in self.proxies:
            if p.name not in self._original:
                continue
            mesh.config_path(p).write_text(self._original.pop(p.name))
            supervisorctl.request(mesh.run.supervisor_socket, {"op": "upgrade", "proxy": p.name,
                                                               "strategy": "replace"}, timeout=90)

