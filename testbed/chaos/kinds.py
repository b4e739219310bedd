"""The closed set of fault kinds, with the fields each one takes: the one definition that
the experiment parser, the CLI's help, the docs test and the fault registry all read. Pure
(no fault code is imported here: validating a spec touches nothing)."""

from __future__ import annotations

from dataclasses import dataclass

from ..mesh.upgrades import STRATEGIES as UPGRADE_STRATEGIES

__all__ = ["KINDS", "Kind", "UPGRADE_STRATEGIES", "WASM_BEHAVIORS", "WASM_POLICIES", "DEFAULT_LATENCY", "MAX_DELAY",
           "MAX_RESTART_DELAY"]

DEFAULT_LATENCY = 0.05  # seconds, a delay fault's default
MAX_DELAY = 5.0  # seconds: beyond this every connection times out, which is a drop, not a delay
MAX_RESTART_DELAY = 300.0  # seconds
# wasm: behaviour -> the config string the filter (chaos/wasm/misbehave.wat) reads; policy -> Envoy's
WASM_BEHAVIORS = {"trap": "t", "loop": "l", "memory": "m", "deny-all": "d"}
WASM_POLICIES = {"closed": "FAIL_CLOSED", "open": "FAIL_OPEN", "reload": "FAIL_RELOAD"}


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    fields: tuple[str, ...] = ()  # its own fields, besides kind, target, at and duration
    needs_proxy: bool = True  # does nothing where no proxy serves the target (architecture none)
    # where two faults of this kind may not be active at once: on intersecting targets
    # (they would fight over one interface, one proxy, one config)
    exclusive: bool = True


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("proxy-crash", "SIGKILL the proxies serving the target; restarted after restartDelay", ("restartDelay",)),
    Kind("proxy-hang", "SIGSTOP the proxies serving the target, SIGCONT at the end"),
    Kind("upgrade", "replace the proxies serving the target in place, one by one", ("strategy",)),
    Kind("identity-compromise", "steal the keys of the proxies serving the target and try every service"),
    Kind("wasm", "a misbehaving Wasm extension on the target's traffic at its proxy", ("behavior", "failurePolicy")),
    Kind("drop", "drop a share of the packets on the target's interface", ("percent",), needs_proxy=False),
    Kind("tcp-reset", "reset every live TCP connection across the target's interface", needs_proxy=False),
    Kind("delay", "hold every packet across the target's interface", ("latency", "jitter"), needs_proxy=False),
)}
