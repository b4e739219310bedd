"""The fault schedule of one experiment in one architecture: each fault injected at its `at`
and reverted at `at + duration` (seconds after the traffic start), in time order, with the
times they actually happened kept for the measurements (an inject or a revert may take a
while: an upgrade roll, a restart)."""

from __future__ import annotations

import time

from .base import Fault


def sleep_until(t: float) -> None:
    """Wait for a moment of the schedule (the condition waited on is the clock itself; a
    signal still interrupts the sleep)."""
    time.sleep(max(t - time.time(), 0.0))


def events(faults: list[Fault]) -> list[tuple[float, int, str, int]]:
    """(at, order, "inject" | "revert", fault index), in the order they happen. At one
    moment, what ends goes before what begins (they may share an interface), except a fault
    of no duration, whose revert follows its own injection."""
    out = [(f.spec.at, 1, "inject", i) for i, f in enumerate(faults)]
    out += [(f.spec.at + f.spec.duration, 0 if f.spec.duration else 2, "revert", i) for i, f in enumerate(faults)]
    return sorted(out)


def run(faults: list[Fault], start: float, progress=lambda msg: None) -> None:
    """Carry the schedule out from the traffic's `start` (epoch)."""
    for at, _, what, i in events(faults):
        sleep_until(start + at)
        fault = faults[i]
        progress(f"t={at:g}s {what} {fault.describe()}")
        (fault.start if what == "inject" else fault.stop)()


def times(fault: Fault, start: float) -> dict:
    """When the fault was injected, reverted, and stopped acting, in seconds since `start`
    (null when it never happened)."""
    def rel(t):
        return None if t is None else round(t - start, 3)

    return {"injected_at": rel(fault.injected_at), "reverted_at": rel(fault.reverted_at),
            "ended_at": rel(fault.ended_at())}
