"""The experiment spec (docs/experiments.md): a cluster, the architectures to compare, steady
traffic and faults aimed at workloads. Pure data: loading touches nothing, and every
problem is reported with file, line and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import yamlsrc
from .errors import SpecError
from .mesh.topology import ARCHITECTURES
from .spec import ClusterSpec, _Checker, _kind, parse_cluster, parse_duration
from .yamlsrc import YList, YMap

MESH_ARCHS = [a for a in ARCHITECTURES if a != "none"]
REDIRECTS = ("ebpf", "iptables")
# kind -> its own fields (besides kind, target, at, duration)
FAULT_FIELDS = {
    "proxy-crash": {"restartDelay"},
    "proxy-hang": set(),
    "identity-compromise": set(),
    "upgrade": {"strategy"},
    "wasm": {"behavior", "failurePolicy"},
    "drop": {"percent"},
    "tcp-reset": set(),
    "delay": {"latency", "jitter"},
}
DEFAULT_LATENCY = 0.05  # seconds, a delay fault's default
MAX_DELAY = 5.0  # seconds: beyond this every connection times out, which is a drop, not a delay
WASM_BEHAVIORS = ("trap", "loop", "memory", "deny-all")
WASM_POLICIES = ("closed", "open", "reload")
TARGET_KEYS = ("pod", "service", "node")


@dataclass(frozen=True)
class Target:
    kind: str  # pod | service | node
    name: str
    proxy: str | None = None  # ambient: micro | l7

    def describe(self) -> str:
        return f"{self.kind} {self.name}" + (f" ({self.proxy} proxy)" if self.proxy else "")


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    target: Target
    at: float
    duration: float
    options: dict = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Experiment:
    name: str
    cluster: ClusterSpec
    cluster_text: str
    architectures: tuple[str, ...]
    redirect: str
    rate: float  # requests per second per flow
    duration: float
    seed: int
    faults: tuple[FaultSpec, ...]
    error_points: float = 5.0  # a flow is affected when its error rate rises this many points...
    latency_factor: float = 3.0  # ... or its p99 exceeds this multiple of its baseline p99
    source: str = "<experiment>"

    @property
    def baseline_end(self) -> float:
        return min((f.at for f in self.faults), default=self.duration)


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    data = yamlsrc.load(path)
    return parse_experiment(data, str(path), path.parent)


def parse_experiment(data, source: str, base_dir: Path) -> Experiment:
    ck = _Checker(source)
    top = ck.mapping(data, getattr(data, "line", 1), "", {"name", "cluster", "traffic"},
                     {"architectures", "redirect", "seed", "faults", "affected"})
    if top is None:
        raise SpecError(ck.problems)
    name = ck.name(top.get("name"), top.line_of("name"), "name", 64, "experiment") if "name" in top else None

    cluster, cluster_text = None, ""
    if "cluster" in top:
        cluster, cluster_text = _cluster(ck, top["cluster"], top.line_of("cluster"), base_dir)

    archs = list(MESH_ARCHS)
    if "architectures" in top:
        raw = ck.sequence(top["architectures"], top.line_of("architectures"), "architectures")
        archs = []
        for i, a in enumerate(raw or []):
            if a not in ARCHITECTURES:
                ck.fail(raw.line_of(i), f"architectures[{i}]", f"unknown architecture {a!r} "
                        f"(choose from {', '.join(ARCHITECTURES)})")
            elif a in archs:
                ck.fail(raw.line_of(i), f"architectures[{i}]", f"duplicate architecture {a!r}")
            else:
                archs.append(a)
        if raw is not None and not raw:
            ck.fail(top.line_of("architectures"), "architectures", "at least one architecture is needed")

    redirect = top.get("redirect", "ebpf")
    if redirect not in REDIRECTS:
        ck.fail(top.line_of("redirect"), "redirect", f"{redirect!r} is not a redirect ({', '.join(REDIRECTS)})")

    rate = duration = None
    if "traffic" in top:
        t = ck.mapping(top["traffic"], top.line_of("traffic"), "traffic", {"duration"}, {"rate"})
        if t is not None:
            rate = t.get("rate", 10)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 500:
                ck.fail(t.line_of("rate"), "traffic.rate", f"expected requests per second per flow in (0, 500], "
                        f"got {_kind(rate)}")
                rate = None
            if "duration" in t:
                duration = parse_duration(t["duration"])
                if not duration:
                    ck.fail(t.line_of("duration"), "traffic.duration", f"expected a duration like 40s, "
                            f"got {_kind(t['duration'])}")

    seed = top.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        ck.fail(top.line_of("seed"), "seed", f"expected a whole number, got {_kind(seed)}")

    error_points, latency_factor = 5.0, 3.0
    if "affected" in top:
        a = ck.mapping(top["affected"], top.line_of("affected"), "affected", set(), {"errorPoints", "latencyFactor"})
        if a is not None:
            error_points = a.get("errorPoints", error_points)
            latency_factor = a.get("latencyFactor", latency_factor)
            for key, v in (("errorPoints", error_points), ("latencyFactor", latency_factor)):
                if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                    ck.fail(a.line_of(key), f"affected.{key}", f"expected a positive number, got {_kind(v)}")

    faults = []
    if "faults" in top and top["faults"] is not None:
        raw = ck.sequence(top["faults"], top.line_of("faults"), "faults")
        for i, item in enumerate(raw or []):
            f = _fault(ck, item, raw.line_of(i), f"faults[{i}]", cluster, archs, duration)
            if f is not None:
                faults.append(f)

    if ck.problems:
        raise SpecError(ck.problems)
    return Experiment(name, cluster, cluster_text, tuple(archs), redirect, float(rate), duration, seed,
                      tuple(faults), float(error_points), float(latency_factor), source)


def _cluster(ck: _Checker, value, line: int, base_dir: Path):
    if isinstance(value, str):
        path = (base_dir / value).resolve()
        try:
            text = path.read_text()
        except OSError as exc:
            ck.fail(line, "cluster", f"cannot read {value!r} ({path}): {exc.strerror}")
            return None, ""
        try:
            return parse_cluster(yamlsrc.loads(text, str(path)), str(path)), text
        except SpecError as exc:
            ck.problems.extend(exc.problems)
            return None, ""
    if isinstance(value, YMap):
        import yaml

        try:
            return parse_cluster(value, ck.source), yaml.safe_dump(_plain(value), sort_keys=False)
        except SpecError as exc:
            ck.problems.extend(exc.problems)
            return None, ""
    ck.fail(line, "cluster", f"expected a path to a cluster spec or the cluster itself, got {_kind(value)}")
    return None, ""


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _fault(ck: _Checker, item, line: int, where: str, cluster: ClusterSpec | None, archs: list[str],
           duration: float | None) -> FaultSpec | None:
    if not isinstance(item, YMap) or "kind" not in item:
        ck.mapping(item, line, where, {"kind"}, set())
        return None
    kind = item["kind"]
    if kind not in FAULT_FIELDS:
        ck.fail(item.line_of("kind"), f"{where}.kind", f"unknown fault kind {kind!r} "
                f"(kinds: {', '.join(FAULT_FIELDS)})")
        return None
    m = ck.mapping(item, line, where, {"kind", "target", "at"}, {"duration"} | FAULT_FIELDS[kind])
    if m is None:
        return None
    ok = True
    at = parse_duration(m.get("at")) if "at" in m else None
    if "at" in m and at is None:
        ck.fail(m.line_of("at"), f"{where}.at", f"expected a time like 10s, got {_kind(m['at'])}")
        ok = False
    length = parse_duration(m.get("duration", 0))
    if length is None:
        ck.fail(m.line_of("duration"), f"{where}.duration", f"expected a duration like 15s, got {_kind(m['duration'])}")
        ok = False
    if ok and at is not None and duration and at + (length or 0) > duration:
        ck.fail(m.line_of("at"), f"{where}.at", f"the fault ends at {at + length:g}s, after the traffic "
                f"({duration:g}s)")
        ok = False
    if ok and at is not None and at < 1:
        ck.fail(m.line_of("at"), f"{where}.at", "leave at least 1s of baseline traffic before a fault")
        ok = False
    target = _target(ck, m.get("target"), m.line_of("target"), f"{where}.target", cluster, archs) \
        if "target" in m else None
    options = {}
    if "restartDelay" in m:
        options["restartDelay"] = parse_duration(m["restartDelay"])
        if options["restartDelay"] is None:
            ck.fail(m.line_of("restartDelay"), f"{where}.restartDelay", f"expected a duration, got "
                    f"{_kind(m['restartDelay'])}")
            ok = False
    for key, allowed in (("behavior", WASM_BEHAVIORS), ("failurePolicy", WASM_POLICIES)):
        if key in m:
            if m[key] not in allowed:
                ck.fail(m.line_of(key), f"{where}.{key}", f"{m[key]!r} is not one of {', '.join(allowed)}")
                ok = False
            options[key] = m[key]
    if "percent" in m:
        pct = m["percent"]
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 100:
            ck.fail(m.line_of("percent"), f"{where}.percent", f"expected a percentage in (0, 100], got {_kind(pct)}")
            ok = False
        options["percent"] = pct
    for key in ("latency", "jitter"):
        if key in m:
            value = parse_duration(m[key])
            if value is None or value > MAX_DELAY or (key == "latency" and value == 0):
                low = "above 0" if key == "latency" else "0 or more"
                ck.fail(m.line_of(key), f"{where}.{key}", f"expected a duration like 50ms, {low} and at most "
                        f"{MAX_DELAY:g}s, got {_kind(m[key])}")
                ok = False
            options[key] = value
    if ok and options.get("jitter", 0) > options.get("latency", DEFAULT_LATENCY):
        ck.fail(m.line_of("jitter"), f"{where}.jitter", f"the jitter ({options['jitter'] * 1000:g}ms) is larger than "
                f"the latency ({options.get('latency', DEFAULT_LATENCY) * 1000:g}ms)")
        ok = False
    if "strategy" in m:
        if m["strategy"] not in ("restart", "hot-restart"):
            ck.fail(m.line_of("strategy"), f"{where}.strategy", f"{m['strategy']!r} is not restart or hot-restart")
            ok = False
        options["strategy"] = m["strategy"]
    if not ok or target is None or at is None:
        return None
    return FaultSpec(kind, target, at, length, options, m.line)


def _target(ck: _Checker, value, line: int, where: str, cluster: ClusterSpec | None,
            archs: list[str]) -> Target | None:
    m = ck.mapping(value, line, where, set(), set(TARGET_KEYS) | {"proxy"})
    if m is None:
        return None
    keys = [k for k in TARGET_KEYS if k in m]
    if len(keys) != 1:
        ck.fail(m.line, where, "name exactly one of pod, service or node")
        return None
    kind, name = keys[0], m[keys[0]]
    if cluster is not None:
        known = {"pod": [p.name for p in cluster.pods], "service": [s.name for s in cluster.services],
                 "node": list(cluster.nodes)}[kind]
        if name not in known:
            ck.fail(m.line_of(kind), f"{where}.{kind}", f"unknown {kind} {name!r} (known: {', '.join(known)})")
            return None
    proxy = m.get("proxy")
    if proxy is not None:
        if proxy not in ("micro", "l7"):
            ck.fail(m.line_of("proxy"), f"{where}.proxy", f"{proxy!r} is not micro or l7 (ambient's proxies)")
            return None
        if "ambient" not in archs:
            ck.fail(m.line_of("proxy"), f"{where}.proxy", "picks an ambient proxy, but ambient is not among the "
                    "architectures")
            return None
    return Target(kind, str(name), proxy)


__all__ = ["Experiment", "FaultSpec", "Target", "load_experiment", "parse_experiment", "YList"]
