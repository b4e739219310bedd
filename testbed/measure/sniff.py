"""Capture TCP packets on one interface into a pcap file, until SIGTERM or a duration ends.
Run inside a namespace by `wire.Capture` (python -m testbed.measure.sniff ...)."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

QUIET, DRAIN_MAX = 0.3, 5.0  # at SIGTERM: read on until the wire is quiet this long (at most DRAIN_MAX)
BUFFER = 8 << 20  # the capture socket's receive buffer (capped by net.core.rmem_max)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--run", default="", help="run id (a tag, so clean-up can find this process)")
    args = ap.parse_args(argv)
    from scapy.all import TCP, AsyncSniffer, conf, wrpcap

    conf.bufsize = BUFFER  # scapy's 64 KiB overflows in a burst of handshakes while this loop lags

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready = Path(args.out + ".ready")
    last = [time.monotonic()]

    def seen(_packet) -> None:
        last[0] = time.monotonic()

    sniffer = AsyncSniffer(iface=args.iface, lfilter=lambda p: TCP in p, prn=seen, store=True,
                           started_callback=ready.touch)
    sniffer.start()
    stop.wait(args.duration)
    # what the kernel queued before the stop is still to be read (this loop lags under load)
    deadline = time.monotonic() + DRAIN_MAX
    while time.monotonic() - last[0] < QUIET and time.monotonic() < deadline:
        time.sleep(0.05)
    packets = sniffer.stop() or []
    wrpcap(args.out, packets)
    ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
