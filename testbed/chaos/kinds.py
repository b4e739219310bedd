"""The closed set of fault kinds, with the fields each one takes: the one definition that
the experiment parser, the CLI's help, the docs test and the fault registry all read. Pure
(no fault code is imported here: validating a spec touches nothing)."""

from __future__ import annotations

from dataclasses import dataclass

from ..mesh.upgrades import OUTCOMES as UPGRADE_OUTCOMES
from ..mesh.upgrades import STRATEGIES as UPGRADE_STRATEGIES

__all__ = ["KINDS", "Kind", "UPGRADE_STRATEGIES", "UPGRADE_OUTCOMES", "WASM_BEHAVIORS", "WASM_POLICIES",
           "DEFAULT_LATENCY", "MAX_DELAY", "MAX_RESTART_DELAY", "CONFIG_SETTINGS", "REJECT_REASONS", "BYPASS_WAYS",
           "MAX_CONNECTIONS", "MAX_RETRIES", "MAX_TIMEOUT", "MAX_RATE_LIMIT", "RATE_UNITS", "DEFAULT_NOISE_FACTOR",
           "MAX_NOISE_FACTOR", "MAX_NOISE_RATE"]

DEFAULT_LATENCY = 0.05  # seconds, a delay fault's default
MAX_DELAY = 5.0  # seconds: beyond this every connection times out, which is a drop, not a delay
MAX_RESTART_DELAY = 300.0  # seconds
# wasm: behaviour -> the config string the filter (chaos/wasm/misbehave.wat) reads; policy -> Envoy's
WASM_BEHAVIORS = {"trap": "t", "loop": "l", "memory": "m", "deny-all": "d"}
WASM_POLICIES = {"closed": "FAIL_CLOSED", "open": "FAIL_OPEN", "reload": "FAIL_RELOAD"}

# config: a per-workload setting, valid but harmful, and what it becomes in Envoy
CONFIG_SETTINGS = {
    "maxConnections": "the circuit breaker of every cluster carrying the workload's traffic: at most N "
                      "connections, N requests in flight and N waiting (beyond: 503 at once)",
    "timeout": "the route timeout of the workload's routes (a slower answer: 504)",
    "retries": "the retry policy of the workload's routes: N retries on 5xx, reset and connect failure",
    "rateLimit": "a local rate limit (token bucket, N per second or minute) on the workload's routes (429)",
}
MAX_CONNECTIONS = 100_000
MAX_RETRIES = 100
MAX_TIMEOUT = 300.0  # seconds
MAX_RATE_LIMIT = 100_000  # tokens per unit
RATE_UNITS = {"s": 1.0, "m": 60.0}
# config-reject: what makes Envoy refuse the target workload's part of the update
REJECT_REASONS = {
    "invalid": "a route whose regex does not compile",
    "conflict": "a listener on an address another listener of that proxy already holds",
}
# noisy-neighbour: the target pod's extra requests, as a multiple of the traffic's rate or a rate
DEFAULT_NOISE_FACTOR = 10.0
MAX_NOISE_FACTOR = 100.0
MAX_NOISE_RATE = 2000.0  # requests per second per flow
# bypass: the ways a workload tries to reach other pods without its proxy
BYPASS_WAYS = {
    "pod-address": "the app, in its pod's cgroup, calls each pod's address and port directly",
    "outside-cgroup": "a process in the pod's namespace but outside its cgroup calls each service address "
                      "and each pod address",
    "detached": "the redirect of the pod's own cgroup and namespace is taken away (what a workload holding "
                "CAP_NET_ADMIN, or the BPF rights on its cgroup, could do), then the app calls every service "
                "and pod address",
    "on-link": "a route straight to each pod over the node's pod bridge (CAP_NET_ADMIN in the pod's own "
               "namespace), skipping the node's routing",
}


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    fields: tuple[str, ...] = ()  # its own fields, besides kind, target, at and duration
    needs_proxy: bool = True  # does nothing where no proxy serves the target (architecture none)
    # where two faults of this kind may not be active at once: on intersecting targets
    # (they would fight over one interface, one proxy, one config)
    exclusive: bool = True
    # kinds of one group are exclusive with each other too (they all rewrite and restart
    # the proxies serving the target)
    group: str | None = None


PROXY_CONFIG = "proxy-config"
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("proxy-crash", "SIGKILL the proxies serving the target; restarted after restartDelay", ("restartDelay",)),
    Kind("proxy-hang", "SIGSTOP the proxies serving the target, SIGCONT at the end"),
    Kind("upgrade", "replace the proxies serving the target in place, one by one; the new version may fail",
         ("strategy", "outcome"), group=PROXY_CONFIG),
    Kind("identity-compromise", "steal the keys of the proxies serving the target and try every service"),
    Kind("wasm", "a misbehaving Wasm extension on the target's traffic at its proxy", ("behavior", "failurePolicy"),
         group=PROXY_CONFIG),
    Kind("config", "a valid but harmful per-workload setting at the proxy serving the target", ("setting",),
         group=PROXY_CONFIG),
    Kind("config-reject", "an update the proxy refuses, in the target workload's part of its config", ("reason",),
         group=PROXY_CONFIG),
    Kind("noisy-neighbour", "the target pod multiplies its request rate, through its proxy", ("factor", "rate"),
         needs_proxy=False, exclusive=False),
    Kind("bypass", "a process in the target pod tries to reach the other pods without its proxy", ("ways",),
         needs_proxy=False),
    Kind("drop", "drop a share of the packets on the target's interface", ("percent",), needs_proxy=False),
    Kind("tcp-reset", "reset every live TCP connection across the target's interface", needs_proxy=False),
    Kind("delay", "hold every packet across the target's interface", ("latency", "jitter"), needs_proxy=False),
)}
