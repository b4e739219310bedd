"""The model's parameters: a calibration file made by `testbed calibrate` from the journals of
real runs (calibrate.py), read back here and refused with a clear error when it is not one,
is of another format, or was made from journals of another version than this testbed writes.

Every parameter in the file is `{"value", "unit", "source", "fit", "points", ...}`: `source`
says whether it was fitted (`fit`), carried over from the calibration given as a prior
(`prior`), or is the model's stated assumption for lack of data (`assumed`); `fit` holds
its quality, `points` the data it came from. The model reads the values only (`Params`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import TestbedError
from ..journal import VERSION as JOURNAL_VERSION

KIND = "testbed-calibration"
FORMAT = 1
DEFAULT_PATH = Path(__file__).resolve().parent / "default-calibration.json"
TIMEOUT = 2.0  # seconds: the workload agent's request timeout (cluster/agent.py)
COUNTS = ("listeners", "clusters", "endpoints", "routes", "secrets")
ROLES = ("sidecar", "node", "node-sa", "micro", "ztunnel", "l7")
CAUSES = ("crash", "hang", "restart", "wasm-loop", "wasm-fail")
POSITIONS = ("source", "l7", "destination")


class CalibrationError(TestbedError):
    pass


@dataclass(frozen=True)
class Effect:
    """What an outage of a proxy does to a request that crosses it (docs/simulation.md):
    from `onset` seconds after the outage starts until it ends, a share `fail` of them fail
    at once; the others wait for the proxy and are answered `resume` seconds after it is back
    (a wait longer than the client's timeout fails), unless the outage ends by killing the
    process (`served` 0: they fail then). For `after` seconds once it is back, requests are
    still slowed, by `resume` at first, fading to nothing."""

    onset: float = 0.0
    fail: float = 1.0
    served: float = 1.0
    resume: float = 0.0
    after: float = 0.0
    source: str = "assumed"


# the model's assumptions where no journal informs an effect (docs/simulation.md says why)
ASSUMED = {
    "crash": Effect(fail=1.0),
    "restart": Effect(fail=1.0),
    "hang": Effect(fail=0.0, served=1.0),
    "wasm-loop": Effect(fail=0.0, served=0.0),
    "wasm-fail": Effect(fail=1.0),
    "drain": Effect(fail=0.0),  # a hot restart: nothing lost (flows.outcome skips it)
}


ALIKE = {"restart": ("crash",), "crash": ("restart",), "wasm-fail": ()}

# Where a calibration has no runs of a role, whose figures it takes, by what it shares with
# it (docs/simulation.md): ztunnel renders the micro-proxy's template (L4 only: mTLS and
# HBONE, no HTTP parsing), so its work per request and its latency per hop are a
# micro-proxy's; it sits at the node, captured as a node proxy is and configured per pod
# and account of the node, so its restart times and what its outage does to a flow are a
# node proxy's (then a micro-proxy's). Sidecars, micro-proxies and waypoints stand in for
# each other's latency as they did before ztunnel.
STAND_IN = {
    "cpu": {"ztunnel": ("micro",)},
    "latency": {"ztunnel": ("micro",), "node-sa": ("node",), "node": ("node-sa",), "micro": ("sidecar",),
                "l7": ("sidecar",)},
    "times": {"ztunnel": ("node",)},
    "effects": {"ztunnel": ("node", "micro")},
}


def value(entry, default=None):
    """The value of a parameter entry (or a bare number)."""
    if isinstance(entry, dict):
        return entry.get("value", default)
    return default if entry is None else entry


class Params:
    """The values the model uses, from a calibration's `parameters`."""

    def __init__(self, data: dict, source: str = "<calibration>"):
        self.data, self.source = data, source
        self._effect_cache: dict[tuple, tuple[Effect, str]] = {}
        p = data["parameters"]
        mem = p["memory"]
        self.shared_kib = value(mem["shared_kib"], 0.0)
        self.base_kib = value(mem["base_kib"], 0.0)
        self.per_kib = {k: value(mem[f"per_{k[:-1]}_kib"], 0.0) for k in COUNTS}
        cfg = p["config_bytes"]
        self.bytes_base = value(cfg["base"], 0.0)
        self.bytes_per = {k: value(cfg[f"per_{k[:-1]}"], 0.0) for k in COUNTS}
        self.stand_ins: dict[str, str] = {}  # "<parameter>.<role>" -> the role whose figure it took
        cpu = p["cpu"]
        self.cpu_per_krps = self._stand_in("cpu.per_krps", {r: value(cpu["per_krps"].get(r)) for r in ROLES}, "cpu")
        self.cpu_idle = self._stand_in("cpu.idle_vcpu", {r: value(cpu["idle_vcpu"].get(r)) for r in ROLES}, "cpu")
        self.workloads_per_krps = value(cpu.get("workloads_per_krps"), 0.0)
        lat = p["latency"]
        self.latency_none = {q: value(lat["none_ms"][q], 0.0) for q in ("p50", "p90", "p99")}
        self.per_hop = {redirect: {role: {q: value(v.get(q), 0.0) for q in ("p50", "p90", "p99")}
                                   for role, v in roles.items()} for redirect, roles in lat["per_hop_ms"].items()}
        for redirect, roles in self.per_hop.items():
            for role, others in STAND_IN["latency"].items():
                other = next((o for o in others if o in roles), None) if role not in roles else None
                if other is not None:
                    self.stand_ins[f"latency.per_hop_ms.{redirect}.{role}"] = other
        t = p["times"]
        self.crash_restart_s, self.restart_s, self.hot_restart_s = (
            self._stand_in(f"times.{k}", {r: value(t[k].get(r)) for r in ROLES}, "times")
            for k in ("crash_restart_s", "restart_s", "hot_restart_s"))
        self.per_host_envoy = value(t.get("per_host_envoy_s"), 0.0) or 0.0
        self.per_concurrent_restart = value(t.get("per_concurrent_restart_s"), 0.0) or 0.0
        self.inject_lag = value(t["inject_lag_s"], 0.0)
        self.revert_lag = value(t["revert_lag_s"], 0.0)
        self.ready_poll = value(t["ready_poll_s"], 0.0)
        self.effects = {k: Effect(**{f: value(e.get(f), getattr(Effect(), f)) for f in
                                     ("onset", "fail", "served", "resume", "after")}, source=e.get("source", "fit"))
                        for k, e in p["effects"].items()}

    def _stand_in(self, name: str, table: dict, family: str) -> dict:
        """`table` (role -> value or None) with each missing role's value taken from its
        stand-in (STAND_IN), noted in `stand_ins`."""
        out = dict(table)
        for role, others in STAND_IN[family].items():
            if out.get(role) is None:
                other = next((o for o in others if table.get(o) is not None), None)
                if other is not None:
                    out[role] = table[other]
                    self.stand_ins[f"{name}.{role}"] = other
        return out

    def time(self, table: dict, role: str, host_envoys: int = 1, concurrent: int = 1) -> float:
        """A per-role time (the median of the other roles' when this one has no data), on a
        host shared with `host_envoys` Envoys, `concurrent` of them restarting at once."""
        base = table.get(role)
        if base is None:
            known = sorted(v for v in table.values() if v is not None)
            base = known[len(known) // 2] if known else 0.1
        load = self.per_host_envoy * (host_envoys - 1)
        if table is self.crash_restart_s:
            load += self.per_concurrent_restart * (concurrent - 1)
        return base + load

    def effect(self, cause: str, role: str, position: str) -> tuple[Effect, str]:
        key = (cause, role, position)
        if key not in self._effect_cache:
            self._effect_cache[key] = self._effect(cause, role, position)
        return self._effect_cache[key]

    def _effect(self, cause: str, role: str, position: str) -> tuple[Effect, str]:
        """The effect and where it came from: this cause, role and position; else a cause
        that acts alike on the same role and position (a restart is a short crash: the
        process and its listeners are gone); else the same cause and position on another
        role (its stand-ins first, then the first calibrated in ROLES order); else the model's
        assumption."""
        if cause == "drain":
            return ASSUMED[cause], "drain"
        for c in (cause, *ALIKE.get(cause, ())):
            if f"{c}/{role}/{position}" in self.effects:
                return self.effects[f"{c}/{role}/{position}"], f"{c}/{role}/{position}"
        for other in (*STAND_IN["effects"].get(role, ()), *ROLES):
            k = f"{cause}/{other}/{position}"
            if k in self.effects:
                return self.effects[k], k
        return ASSUMED[cause], f"{cause} (assumed)"

    def hop_ms(self, redirect: str, role: str, q: str = "p50") -> float:
        table = self.per_hop.get(redirect) or next(iter(self.per_hop.values()), {})
        if role in table:
            return table[role][q]
        same = next((o for o in STAND_IN["latency"].get(role, ()) if o in table), None)
        return table.get(same, {}).get(q, 0.0)


def load_calibration(path: str | Path | None = None) -> Params:
    """The calibration at `path` (default: the one shipped with the testbed), checked."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise CalibrationError(f"{path}: not a calibration file (not JSON); make one with `testbed calibrate "
                               "DIR...`") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        what = "a journal" if isinstance(data, dict) and "journal" in data else "not a calibration file"
        raise CalibrationError(f"{path}: {what}, not a calibration (no \"kind\": \"{KIND}\"); make one with "
                               "`testbed calibrate DIR...` from the journals of real runs")
    if data.get("format") != FORMAT:
        raise CalibrationError(f"{path}: calibration format {data.get('format')!r}, this testbed reads {FORMAT}: "
                               "calibrate again with this testbed")
    if data.get("journal_version") != JOURNAL_VERSION:
        raise CalibrationError(f"{path}: made from journals of version {data.get('journal_version')!r}, this "
                               f"testbed writes version {JOURNAL_VERSION}: its figures may not mean the same; "
                               "calibrate again from runs of this testbed")
    shown = "testbed/sim/default-calibration.json (shipped)" if path.resolve() == DEFAULT_PATH else str(path)
    try:
        return Params(data, shown)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CalibrationError(f"{path}: a calibration missing a parameter ({exc}): calibrate again") from None
