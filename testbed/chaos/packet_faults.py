"""Faults from the network, aimed at a workload's interface rather than at a proxy (the
node's end of each target pod's veth; for a node: its fabric port):
`drop` attaches a tc-bpf program (bpf/tc_drop.c) that drops a percentage of the packets in
both directions; `tcp-reset` injects RSTs into the live connections with scapy; `delay`
holds every packet in and out of the target's interface for a while (NFQUEUE and a user
space loop, as netem is absent on our kernels)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cluster import links, procs
from ..cluster.plan import NODE_IF
from ..errors import TestbedError
from ..wait import wait_for
from .base import Fault
from .kinds import DEFAULT_LATENCY

BPF_FILE = Path(__file__).resolve().parents[2] / "bpf" / "tc_drop.c"
INGRESS, EGRESS = "ffff:fff2", "ffff:fff3"


def start_worker(module: str, args: list[str], ns: str, out: str, run_id: str):
    """`python -m testbed.chaos.<module> ... --out OUT --run ID` inside the namespace; returns
    once it has touched OUT.ready (a worker that died instead is an error naming its log)."""
    proc = procs.spawn([sys.executable, "-m", f"testbed.chaos.{module}", *args, "--out", out, "--run", run_id], ns,
                       None, log=out + ".log", cwd=str(Path(__file__).resolve().parents[2]))
    wait_for(lambda: Path(out + ".ready").exists() or proc.poll() is not None, 30, f"{module} in {ns} to start")
    if proc.poll() is not None:
        raise TestbedError(f"{module} in {ns} failed: {_tail(out + '.log')}")
    return proc


def stop_worker(proc, out: str) -> dict | None:
    """SIGTERM, wait, and what the worker wrote to OUT (None if it wrote nothing)."""
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)
    try:
        return json.loads(Path(out).read_text())
    except (OSError, ValueError):
        return None


class NetworkFault(Fault):
    """A fault on the wire: it names interfaces, not proxies (the proxies it lists are the
    ones serving the target, whose traffic crosses those interfaces)."""

    def interfaces(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def describe(self) -> str:
        where = ", ".join(f"{ns.split('-', 2)[-1]}/{i}" for ns, i in self.interfaces())
        return f"{self.kind} on the interface of {self.spec.target.describe()} ({where})"

    def facts(self) -> dict:
        return dict(super().facts(), interfaces=[f"{ns}/{i}" for ns, i in self.interfaces()])


class Drop(NetworkFault):
    kind = "drop"

    def interfaces(self) -> list[tuple[str, str]]:
        """(netns, interface) pairs carrying the target's packets."""
        plan, t = self.ctx.plan, self.spec.target
        if t.kind == "node":
            return [(plan.fabric_netns, plan.node(t.name).fabric_if)]
        pods = [t.name] if t.kind == "pod" else list(plan.service(t.name).pods)
        return [(plan.node(plan.pod(p).node).netns, plan.pod(p).host_if) for p in pods]

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



class TcpReset(NetworkFault):
    """scapy, in the target's node, injects RSTs into every live connection crossing the
    target's interface (the pod's veth, or the node's fabric port) for the fault's duration."""

    kind = "tcp-reset"
    interfaces = Drop.interfaces

    def inject(self) -> None:
        self._workers = []
        for k, (ns, ifname) in enumerate(self.interfaces()):
            out = str(self.ctx.cluster.run.dir / f"tcp-reset-{self.index}-{k}.json")
            self._workers.append((start_worker("rst_injector", ["--iface", ifname], ns, out, self.ctx.plan.run_id),
                                  out))

    def revert(self) -> None:
        totals = {"rsts_sent": 0, "connections_reset": 0}
        for proc, out in getattr(self, "_workers", []):
            for k, v in (stop_worker(proc, out) or {}).items():
                totals[k] += v
        if getattr(self, "_workers", None):
            self.details.update(totals)
        self._workers = []



class Delay(NetworkFault):
    """iptables queues every packet crossing the target's own interface (a pod's eth0, a
    node's fabric eth0; both directions) to NFQUEUE; `delay_injector`, in that namespace,
    holds each one `latency` (+- `jitter`) before letting it go. A round trip across the
    interface grows by twice the latency. `--queue-bypass`: if the worker dies, packets pass."""

    kind = "delay"

    @property
    def queue(self) -> int:
        return 100 + self.index  # one queue per fault: faults may overlap in time

    def interfaces(self) -> list[tuple[str, str]]:
        plan, t = self.ctx.plan, self.spec.target
        if t.kind == "node":
            return [(plan.node(t.name).netns, NODE_IF)]
        pods = [t.name] if t.kind == "pod" else list(plan.service(t.name).pods)
        return [(plan.pod(p).netns, NODE_IF) for p in pods]

    def rules(self, ns: str, ifname: str) -> list[list[str]]:
        node = any(n.netns == ns for n in self.ctx.plan.nodes)
        chains = [("INPUT", "-i"), ("OUTPUT", "-o")] + ([("FORWARD", "-i"), ("FORWARD", "-o")] if node else [])
        return [[chain, flag, ifname, "-m", "comment", "--comment", f"tb-{self.ctx.plan.run_id}-delay", "-j",
                 "NFQUEUE", "--queue-num", str(self.queue), "--queue-bypass"] for chain, flag in chains]

    def inject(self) -> None:
        latency = self.spec.options.get("latency", DEFAULT_LATENCY)
        jitter = self.spec.options.get("jitter", 0.0)
        run = self.ctx.cluster.run
        self._workers, self._rules = [], []
        for k, (ns, ifname) in enumerate(self.interfaces()):
            out = str(run.dir / f"delay-{self.queue}-{k}.json")
            args = ["--queue", str(self.queue), "--latency", str(latency), "--jitter", str(jitter),
                    "--seed", str(k + 1)]
            self._workers.append((start_worker("delay_injector", args, ns, out, self.ctx.plan.run_id), out))
            had_table = procs.run(["nft", "list", "table", "ip", "filter"], ns).returncode == 0
            self._rules.append((ns, had_table, []))
            for rule in self.rules(ns, ifname):
                r = procs.run(["iptables", "-w", "5", "-I", *rule[:1], "1", *rule[1:]], ns)
                if r.returncode:
                    raise TestbedError(f"iptables in {ns} refused the delay rule: {r.stderr.strip()}")
                self._rules[-1][2].append(rule)
        self.details.update(latency_ms=round(latency * 1000, 3), jitter_ms=round(jitter * 1000, 3))

    def revert(self) -> None:
        for ns, had_table, rules in getattr(self, "_rules", []):
            try:
                for rule in rules:
                    procs.run(["iptables", "-w", "5", "-D", *rule], ns)
                left = procs.run(["iptables", "-w", "5", "-S"], ns).stdout
                if not had_table and "\n-A " not in "\n" + left:  # as it was: no empty filter table behind
                    procs.run(["nft", "delete", "table", "ip", "filter"], ns)
            except OSError:  # the namespace may be gone already
                pass
        self._rules = []
        totals = {"packets_delayed": 0, "max_held": 0}
        holds = []
        for proc, out in getattr(self, "_workers", []):
            got = stop_worker(proc, out)
            if got is None:
                continue
            totals["packets_delayed"] += got["packets_delayed"]
            totals["max_held"] = max(totals["max_held"], got["max_held"])
            holds.append((got["mean_hold_ms"], got["packets_delayed"]))
        if getattr(self, "_workers", None):
            n = sum(c for _, c in holds)
            totals["mean_hold_ms"] = round(sum(m * c for m, c in holds) / n, 3) if n else None
            self.details.update(totals)
        self._workers = []


def _tail(path: str, lines: int = 5) -> str:
    try:
        return " | ".join(Path(path).read_text().strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"

