"""The tcp-reset fault's worker, run inside a node's namespace: watch one interface and,
for every TCP segment carrying data, reset both ends in-window: its receiver with an RST as
if from the sender (seq = the segment's seq + length, what the receiver expects next), its
sender with one as if from the receiver (seq = the segment's ack). Every live connection
across the interface dies while this runs. `python -m testbed.chaos.rst_injector --iface IF --out FILE --run ID`;
stops on SIGTERM and writes how many connections it reset."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--run", default="", help="run id (a tag, so clean-up can find this process)")
    args = ap.parse_args(argv)
    from scapy.all import IP, TCP, AsyncSniffer, conf, send

    conf.verb = 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reset: set[tuple] = set()
    sent = 0

    def strike(p):
        nonlocal sent
        if TCP not in p or IP not in p or not len(p[TCP].payload) or p[TCP].flags & 0x04:
            return
        ip, tcp = p[IP], p[TCP]
        send([IP(src=ip.src, dst=ip.dst) / TCP(sport=tcp.sport, dport=tcp.dport, flags="R",
                                               seq=tcp.seq + len(tcp.payload)),
              IP(src=ip.dst, dst=ip.src) / TCP(sport=tcp.dport, dport=tcp.sport, flags="R", seq=tcp.ack)])
        sent += 2
        reset.add((p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport))

    ready = Path(args.out + ".ready")
    sniffer = AsyncSniffer(iface=args.iface, store=False, prn=strike, started_callback=ready.touch)
    sniffer.start()
    stop.wait()
    sniffer.stop()
    Path(args.out).write_text(json.dumps({"rsts_sent": sent, "connections_reset": len(reset)}))
    ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
