"""What crosses a wire: capture packets on an interface inside one of the run's namespaces
(scapy, in a helper process in that namespace) and look at the TCP payloads: plaintext
HTTP, or TLS records."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..cluster import procs
from ..wait import wait_for

HTTP_MARKERS = (b"GET /", b"POST /", b"HTTP/1.1 ", b"HTTP/1.0 ")
TLS_CONTENT_TYPES = {0x14, 0x15, 0x16, 0x17}  # change_cipher_spec, alert, handshake, application_data


class Capture:
    """`with Capture(netns, iface, path) as cap: ...traffic...` then `cap.summary()`."""

    def __init__(self, netns: str, iface: str, pcap: str | Path, run_id: str = "", timeout: float = 120):
        self.netns, self.iface, self.pcap = netns, iface, str(pcap)
        self.run_id, self.timeout = run_id, timeout
        self.proc = None

    def __enter__(self) -> Capture:
        self.proc = procs.spawn([sys.executable, "-m", "testbed.measure.sniff", "--iface", self.iface,
                                 "--out", self.pcap, "--duration", str(self.timeout), "--run", self.run_id],
                                self.netns, None, log=self.pcap + ".log",
                                cwd=str(Path(__file__).resolve().parents[2]))
        wait_for(lambda: os.path.exists(self.pcap + ".ready") or self.proc.poll() is not None, 30,
                 f"the packet capture on {self.iface} in {self.netns} to start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"capture failed: {Path(self.pcap + '.log').read_text()[-500:]}")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    def summary(self) -> WireSummary:
        return summarize(self.pcap)


@dataclass
class WireSummary:
    packets: int
    payload_packets: int
    tls_packets: int
    plaintext_http: list[bytes]  # the first bytes of each payload that looks like HTTP
    # TCP connections that carried TLS, by server ("ip:port"): how many connections app
    # traffic really cost on the wire (HBONE multiplexes many app connections into one)
    tls_connections: dict[str, int] = field(default_factory=dict)


def _is_tls(payload: bytes) -> bool:
    return payload[0] in TLS_CONTENT_TYPES and payload[1:3] in (b"\x03\x01", b"\x03\x03")


def summarize(pcap: str) -> WireSummary:
    from scapy.all import IP, TCP, rdpcap

    packets = rdpcap(pcap)
    segments = [p for p in packets if TCP in p and IP in p and len(p[TCP].payload)]
    payloads = [bytes(p[TCP].payload) for p in segments]
    plain = [pl[:80] for pl in payloads if any(m in pl for m in HTTP_MARKERS)]
    tls = [pl for pl in payloads if _is_tls(pl)]
    servers: dict[frozenset, str] = {}
    for p in segments:
        ends = {(p[IP].src, p[TCP].sport), (p[IP].dst, p[TCP].dport)}
        if frozenset(ends) not in servers and _is_tls(bytes(p[TCP].payload)):
            ip, port = min(ends, key=lambda end: end[1])  # clients' ports are ephemeral (32768 up)
            servers[frozenset(ends)] = f"{ip}:{port}"
    by_server: dict[str, int] = {}
    for server in servers.values():
        by_server[server] = by_server.get(server, 0) + 1
    return WireSummary(len(packets), len(payloads), len(tls), plain, by_server)
