"""Faults from the network, aimed at a workload's interface rather than at a proxy (the
node's end of each target pod's veth; for a node: its fabric port):
`drop` attaches a tc-bpf program (bpf/tc_drop.c) that drops a percentage of the packets in
both directions; `tcp-reset` injects RSTs into the live connections with scapy."""

from __future__ import annotations

import json
from pathlib import Path

from ..cluster import links
from .base import FAULTS, Fault

BPF_FILE = Path(__file__).resolve().parents[2] / "bpf" / "tc_drop.c"
INGRESS, EGRESS = "ffff:fff2", "ffff:fff3"


class Drop(Fault):
    kind = "drop"

    def interfaces(self) -> list[tuple[str, str]]:
        """(netns, interface) pairs carrying the target's packets."""
        plan, t = self.ctx.plan, self.spec.target
        if t.kind == "node":
            return [(plan.fabric_netns, plan.node(t.name).fabric_if)]
        pods = [t.name] if t.kind == "pod" else list(plan.service(t.name).pods)
        return [(plan.node(plan.pod(p).node).netns, plan.pod(p).host_if) for p in pods]

    def facts(self) -> dict:
        return dict(super().facts(), interfaces=[f"{ns}/{i}" for ns, i in self.interfaces()])

    def inject(self) -> None:
        from bcc import BPF

        percent = float(self.spec.options.get("percent", 10))
        self._bpf = BPF(src_file=str(BPF_FILE).encode(), cflags=[f"-DTB_DROP_PER_MILLE={round(percent * 10)}"])
        fn = self._bpf.load_func(b"tb_tc_drop", BPF.SCHED_CLS)
        self._attached = []
        for ns, ifname in self.interfaces():
            with links.netlink(ns) as ipr:
                idx = ipr.link_lookup(ifname=ifname)[0]
                ipr.tc("add", "clsact", idx)
                self._attached.append((ns, ifname))
                for parent in (INGRESS, EGRESS):
                    ipr.tc("add-filter", "bpf", idx, ":1", fd=fn.fd, name=fn.name, parent=parent, classid=1,
                           direct_action=True)
        self.details["percent"] = percent

    def revert(self) -> None:
        for ns, ifname in getattr(self, "_attached", []):
            try:
                with links.netlink(ns) as ipr:
                    ipr.tc("del", "clsact", ipr.link_lookup(ifname=ifname)[0])
            except Exception:  # noqa: BLE001 - the namespace may be gone already
                pass
        self._attached = []
        bpf = getattr(self, "_bpf", None)
        if bpf is not None:
            counts = bpf["tb_drop_counts"]
            self.details["passed"], self.details["dropped"] = counts[0].value, counts[1].value
            bpf.cleanup()
            self._bpf = None


FAULTS[Drop.kind] = Drop


class TcpReset(Fault):
    """scapy, in the target's node, injects RSTs into every live connection crossing the
    target's interface (the pod's veth, or the node's fabric port) for the fault's duration."""

    kind = "tcp-reset"
    interfaces = Drop.interfaces

    def facts(self) -> dict:
        return dict(super().facts(), interfaces=[f"{ns}/{i}" for ns, i in self.interfaces()])

    def inject(self) -> None:
        import sys

        from ..cluster import procs
        from ..wait import wait_for

        run = self.ctx.cluster.run
        self._workers = []
        for k, (ns, ifname) in enumerate(self.interfaces()):
            out = str(run.dir / f"tcp-reset-{self.spec.at:g}-{k}.json")
            proc = procs.spawn([sys.executable, "-m", "testbed.chaos.rst_injector", "--iface", ifname, "--out", out,
                                "--run", self.ctx.plan.run_id], ns, None, log=out + ".log",
                               cwd=str(Path(__file__).resolve().parents[2]))
            self._workers.append((proc, out))
            wait_for(lambda out=out, proc=proc: Path(out + ".ready").exists() or proc.poll() is not None, 30,
                     f"the RST injector on {ifname} to start")

    def revert(self) -> None:
        totals = {"rsts_sent": 0, "connections_reset": 0}
        for proc, out in getattr(self, "_workers", []):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
            try:
                for k, v in json.loads(Path(out).read_text()).items():
                    totals[k] += v
            except (OSError, ValueError):
                pass
        if getattr(self, "_workers", None):
            self.details.update(totals)
        self._workers = []


FAULTS[TcpReset.kind] = TcpReset
