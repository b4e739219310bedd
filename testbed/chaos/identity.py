"""Identity compromise: an attacker takes every key held by the proxy serving the target,
then, from a host of its own on the fabric, tries every service with every stolen identity
over real mTLS (through HBONE tunnels where the mesh uses them), by every door: the front
one and, behind a waypoint, around it to a pod's L4 proxy. What it reached is the blast
radius of a compromised proxy."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..cluster import netns, procs
from ..identity import spiffe_id
from ..mesh.entry import dial, doors
from .base import Fault

ATTACKER = "attacker"


class IdentityCompromise(Fault):
    kind = "identity-compromise"

    def inject(self) -> None:
        ctx = self.ctx
        plan, mesh = ctx.plan, ctx.mesh
        td = plan.spec.mesh.trust_domain
        loot = Path(tempfile.mkdtemp(prefix=f"tb-{plan.run_id}-loot-"))
        self._loot = loot
        stolen = sorted({sa for p in self.proxies for sa in p.identities})
        for p in self.proxies:  # what is on the compromised proxy's disk
            for f in (mesh.run.proxies_dir / p.name / "certs").iterdir():
                shutil.copyfile(f, loot / f.name)
        ns, ip = ctx.cluster.add_host(f"{ATTACKER}{self.index}", self.index)
        self._netns = ns
        reached = []
        tries = [(svc.name, door) for svc in plan.services for door in doors(plan, mesh.topo, svc.name)]
        for sa in stolen:
            answers = dial(ns, loot / f"{sa}.crt", loot / f"{sa}.key", [door for _, door in tries])
            for service in dict.fromkeys(s for (s, _), status in zip(tries, answers, strict=True) if status == "200"):
                reached.append([spiffe_id(td, sa), service])
        self.details = {"attacker": ip, "identities_exposed": [spiffe_id(td, sa) for sa in stolen],
                        "reachable_pairs": reached}

    def revert(self) -> None:
        ns = getattr(self, "_netns", None)
        if ns and netns.exists(ns):
            for pid in procs.in_netns({netns.inode(ns)}):
                procs.kill([pid])
            netns.delete(ns)
        loot = getattr(self, "_loot", None)
        if loot:
            shutil.rmtree(loot, ignore_errors=True)

