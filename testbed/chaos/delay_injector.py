"""The delay fault's worker, run inside the target's namespace: hold every packet that
iptables queues to NFQUEUE `--queue` for `--latency` seconds (plus or minus a uniform
`--jitter`), then let it go. netem is absent on our kernels; this is the same idea in user
space. `python -m testbed.chaos.delay_injector --queue N --latency S --out FILE --run ID`;
stops on SIGTERM, releases what it still holds and writes what it did to FILE."""

from __future__ import annotations

import argparse
import heapq
import json
import random
import select
import signal
import time
from pathlib import Path

from .nfqueue import NfQueue


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queue", type=int, required=True)
    ap.add_argument("--latency", type=float, required=True, help="seconds each packet is held")
    ap.add_argument("--jitter", type=float, default=0.0, help="seconds, uniform either side of the latency")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--run", default="", help="run id (a tag, so clean-up can find this process)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    queue = NfQueue(args.queue)
    held: list[tuple[float, int, float]] = []  # (release time, packet id, arrival time)
    count, deepest, held_total = 0, 0, 0.0
    ready = Path(args.out + ".ready")
    ready.touch()
    try:
        while not stop:
            now = time.monotonic()
            timeout = min(max(held[0][0] - now, 0.0), 0.1) if held else 0.1
            if select.select([queue], [], [], timeout)[0]:
                arrived = time.monotonic()
                for pid in queue.read():
                    hold = max(args.latency + rng.uniform(-args.jitter, args.jitter), 0.0)
                    heapq.heappush(held, (arrived + hold, pid, arrived))
                    count += 1
                deepest = max(deepest, len(held))
            now, due = time.monotonic(), []
            while held and held[0][0] <= now:
                _, pid, arrived = heapq.heappop(held)
                due.append(pid)
                held_total += now - arrived
            queue.verdict(due)
    finally:
        queue.verdict([pid for _, pid, _ in held])
        queue.close()
        Path(args.out).write_text(json.dumps({"packets_delayed": count, "max_held": deepest,
                                              "mean_hold_ms": round(held_total / max(count - len(held), 1) * 1000, 3)}))
        ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
