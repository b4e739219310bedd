"""The experiment spec (docs/experiments.md): a cluster, the architectures to compare, steady
traffic and faults aimed at workloads. Pure data: loading touches nothing, and every
problem is reported with file, line and field. Every number has a finite, documented range,
and a cluster over an architecture's limits is refused here, before anything is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import yamlsrc
from .chaos.kinds import (
    BYPASS_WAYS,
    CONFIG_SETTINGS,
    DEFAULT_LATENCY,
    DEFAULT_NOISE_FACTOR,
    KINDS,
    MAX_CONNECTIONS,
    MAX_DELAY,
    MAX_NOISE_FACTOR,
    MAX_NOISE_RATE,
    MAX_RATE_LIMIT,
    MAX_RESTART_DELAY,
    MAX_RETRIES,
    MAX_TIMEOUT,
    RATE_UNITS,
    REJECT_REASONS,
    UPGRADE_OUTCOMES,
    UPGRADE_STRATEGIES,
    WASM_BEHAVIORS,
    WASM_POLICIES,
)
from .checker import Checker, kind, parse_duration
from .errors import SpecError
from .mesh.topology import ARCHITECTURES, SPLIT_ARCHITECTURES, TARGET_PROXIES, limits
from .redirect.kinds import REDIRECTS
from .spec import ClusterSpec, parse_cluster
from .yamlsrc import YMap

__all__ = ["Experiment", "FaultSpec", "Target", "load_experiment", "parse_experiment", "parse_duration",
           "DEFAULT_LATENCY", "TARGET_KEYS", "MESH_ARCHS"]

MESH_ARCHS = [a for a in ARCHITECTURES if a != "none"]
TARGET_KEYS = ("pod", "service", "node")
MAX_TRAFFIC = 3600.0  # seconds of traffic in one experiment
MAX_RATE = 500.0  # requests per second per flow
MAX_SEED = 2 ** 32 - 1
MAX_FAULTS = 50  # each fault may add a host of its own to the fabric (addressing.MAX_EXTRA_HOSTS)
CLUSTER_KEYS = {"nodes", "services", "calls", "mesh"}


@dataclass(frozen=True)
class Target:
    kind: str  # pod | service | node
    name: str
    proxy: str | None = None  # ambient, ztunnel: l4 | l7 (topology.TARGET_PROXIES)

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

    @property
    def active_until(self) -> float:
        """When it is over at the latest, as scheduled (a crash lasts until its restart)."""
        return self.at + max(self.duration, self.options.get("restartDelay") or 0.0)


@dataclass(frozen=True)
class CostSpec:
    """What each architecture costs, measured before any fault: `idle` seconds with no
    traffic, then `seconds` of steady traffic at `total_rate` requests/s across the cluster
    (spread evenly over the flows)."""

    total_rate: float = 300.0
    seconds: float = 8.0
    idle: float = 3.0


SWEEP_PARAMETERS = {"podsPerService": (1, 50), "services": (1, 500), "nodes": (1, 198)}


@dataclass(frozen=True)
class SweepSpec:
    """Measure the cost again at each value of one cluster parameter (sweep.py)."""

    parameter: str
    values: tuple[int, ...]


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
    cost: CostSpec | None = None
    sweep: SweepSpec | None = None

    @property
    def runs(self) -> tuple[str, ...]:
        """The architectures actually run: measuring cost adds the `none` baseline (first)."""
        if self.cost is not None and "none" not in self.architectures:
            return ("none", *self.architectures)
        return self.architectures

    @property
    def baseline_end(self) -> float:
        return min((f.at for f in self.faults), default=self.duration)


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    problems: list[str] = []
    data = yamlsrc.load(path, problems)
    return parse_experiment(data, str(path), path.parent, problems)


def parse_experiment(data, source: str, base_dir: Path, problems: list[str] | None = None) -> Experiment:
    ck = Checker(source, problems)
    if isinstance(data, YMap) and "cluster" not in data and CLUSTER_KEYS & set(data):
        ck.fail(data.line, "document", f"this is a cluster spec, not an experiment: build it with "
                                       f"`testbed up {source}`, or name it in an experiment's `cluster:` field")
        raise SpecError(ck.problems)
    top = ck.mapping(data, getattr(data, "line", 1), "", {"name", "cluster", "traffic"},
                     {"architectures", "redirect", "seed", "faults", "affected", "cost", "sweep"})
    if top is None:
        raise SpecError(ck.problems)
    name = ck.name(top.get("name"), top.line_of("name"), "name", 64, "experiment") if "name" in top else None

    cluster, cluster_text = None, ""
    if "cluster" in top:
        cluster, cluster_text = _cluster(ck, top["cluster"], top.line_of("cluster"), base_dir)

    archs = _architectures(ck, top, cluster)
    redirect = "ebpf"
    if "redirect" in top:
        redirect = ck.choice(top["redirect"], top.line_of("redirect"), "redirect", REDIRECTS, "a redirect")

    rate = duration = None
    if "traffic" in top:
        t = ck.mapping(top["traffic"], top.line_of("traffic"), "traffic", {"duration"}, {"rate"})
        if t is not None:
            rate = ck.number(t.get("rate", 10), t.line_of("rate"), "traffic.rate", 0, MAX_RATE,
                             "requests per second per flow", lo_open=True)
            if "duration" in t:
                duration = ck.duration(t["duration"], t.line_of("duration"), "traffic.duration", 2, MAX_TRAFFIC,
                                       "40s")

    seed = top.get("seed", 1)
    if "seed" in top:
        seed = ck.integer(seed, top.line_of("seed"), "seed", 0, MAX_SEED)

    error_points, latency_factor = 5.0, 3.0
    if "affected" in top:
        a = ck.mapping(top["affected"], top.line_of("affected"), "affected", set(), {"errorPoints", "latencyFactor"})
        if a is not None:
            if "errorPoints" in a:
                error_points = ck.number(a["errorPoints"], a.line_of("errorPoints"), "affected.errorPoints", 0, 100,
                                         "percentage points", lo_open=True)
            if "latencyFactor" in a:
                latency_factor = ck.number(a["latencyFactor"], a.line_of("latencyFactor"), "affected.latencyFactor",
                                           1, 1000, "a factor", lo_open=True)

    faults = []
    if "faults" in top and top["faults"] is not None:
        raw = ck.sequence(top["faults"], top.line_of("faults"), "faults")
        if raw is not None and len(raw) > MAX_FAULTS:
            ck.fail(top.line_of("faults"), "faults", f"{len(raw)} faults (at most {MAX_FAULTS} in one experiment)")
            raw = None
        for i, item in enumerate(raw or []):
            f = _fault(ck, item, raw.line_of(i), f"faults[{i}]", cluster, archs, duration, rate)
            if f is not None:
                faults.append((f"faults[{i}]", f))
    _overlaps(ck, faults, cluster)
    cost = _cost(ck, top["cost"], top.line_of("cost")) if "cost" in top else None
    sweep = None
    if "sweep" in top:
        sweep = _sweep(ck, top["sweep"], top.line_of("sweep"), cluster, archs)
        if cost is None:
            cost = CostSpec()  # a sweep measures cost
        if faults:
            ck.fail(top.line_of("faults"), "faults", "a sweep measures cost at each size: put the faults in an "
                    "experiment of their own")

    if ck.problems:
        raise SpecError(ck.problems)
    return Experiment(name, cluster, cluster_text, tuple(archs), redirect, float(rate), duration, seed,
                      tuple(f for _, f in faults), float(error_points), float(latency_factor), source, cost, sweep)


def _cost(ck: Checker, value, line: int) -> CostSpec | None:
    m = ck.mapping(value, line, "cost", set(), {"totalRate", "seconds", "idle"})
    if m is None:
        return None
    c = CostSpec()
    rate = ck.number(m.get("totalRate", c.total_rate), m.line_of("totalRate"), "cost.totalRate", 0, 5000,
                     "requests per second across the cluster", lo_open=True)
    seconds = ck.duration(m.get("seconds", c.seconds), m.line_of("seconds"), "cost.seconds", 2, 600, "8s")
    idle = ck.duration(m.get("idle", c.idle), m.line_of("idle"), "cost.idle", 1, 60, "3s")
    if None in (rate, seconds, idle):
        return None
    return CostSpec(rate, seconds, idle)


def _sweep(ck: Checker, value, line: int, cluster: ClusterSpec | None, archs: list[str]) -> SweepSpec | None:
    from .sweep import step_cluster

    m = ck.mapping(value, line, "sweep", set(), set(SWEEP_PARAMETERS))
    if m is None:
        return None
    if len(m) != 1:
        ck.fail(m.line, "sweep", f"name exactly one of {', '.join(SWEEP_PARAMETERS)}")
        return None
    (param, raw), = m.items()
    where = f"sweep.{param}"
    values = ck.sequence(raw, m.line_of(param), where)
    if values is None:
        return None
    if not 1 <= len(values) <= 10:
        ck.fail(m.line_of(param), where, f"give 1 to 10 values, not {len(values)}")
        return None
    lo, hi = SWEEP_PARAMETERS[param]
    good = []
    for i, v in enumerate(values):
        v = ck.integer(v, values.line_of(i), f"{where}[{i}]", lo, hi)
        if v is None:
            continue
        if cluster is not None:
            try:
                step = step_cluster(cluster, param, v)
            except SpecError as exc:
                ck.fail(values.line_of(i), f"{where}[{i}]", "; ".join(exc.problems))
                continue
            for a in archs:
                for problem in limits(step, a):
                    ck.fail(values.line_of(i), f"{where}[{i}]", problem)
        good.append(v)
    return SweepSpec(param, tuple(good))


def _architectures(ck: Checker, top: YMap, cluster: ClusterSpec | None) -> list[str]:
    archs = list(MESH_ARCHS)
    lines = {a: top.line_of("architectures") for a in archs}
    if "architectures" in top:
        raw = ck.sequence(top["architectures"], top.line_of("architectures"), "architectures")
        archs = []
        for i, a in enumerate(raw or []):
            if not isinstance(a, str) or a not in ARCHITECTURES:
                ck.fail(raw.line_of(i), f"architectures[{i}]", f"unknown architecture {kind(a)} "
                        f"(choose from {', '.join(ARCHITECTURES)})")
            elif a in archs:
                ck.fail(raw.line_of(i), f"architectures[{i}]", f"duplicate architecture {a!r}")
            else:
                archs.append(a)
                lines[a] = raw.line_of(i)
        if raw is not None and not raw:
            ck.fail(top.line_of("architectures"), "architectures", "at least one architecture is needed")
    if cluster is not None:
        for a in archs:
            for problem in limits(cluster, a):
                ck.fail(lines[a], "architectures", problem)
    return archs


def _cluster(ck: Checker, value, line: int, base_dir: Path):
    if isinstance(value, str):
        shown = value.replace("\0", "\\0")
        try:
            path = (base_dir / value).resolve()
        except (OSError, ValueError):
            ck.fail(line, "cluster", f"{kind(shown)} is not a usable path")
            return None, ""
        try:
            text = yamlsrc.read(path, "cluster")
            problems: list[str] = []
            data = yamlsrc.loads(text, str(path), problems)
            return parse_cluster(data, str(path), problems), text
        except SpecError as exc:
            ck.fail(line, "cluster", f"the cluster spec {kind(shown)} is not valid (below)")
            ck.problems.extend(exc.problems)
            return None, ""
    if isinstance(value, YMap):
        import yaml

        try:
            return parse_cluster(value, ck.source), yaml.safe_dump(yamlsrc.plain(value), sort_keys=False)
        except SpecError as exc:
            ck.problems.extend(exc.problems)
            return None, ""
    ck.fail(line, "cluster", f"expected a path to a cluster spec or the cluster itself, got {kind(value)}")
    return None, ""


def _fault(ck: Checker, item, line: int, where: str, cluster: ClusterSpec | None, archs: list[str],
           duration: float | None, rate: float | None = None) -> FaultSpec | None:
    if not isinstance(item, YMap) or "kind" not in item:
        ck.mapping(item, line, where, {"kind"}, set())
        return None
    fkind = item["kind"]
    if not isinstance(fkind, str) or fkind not in KINDS:
        ck.fail(item.line_of("kind"), f"{where}.kind", f"unknown fault kind {kind(fkind)} "
                f"(kinds: {', '.join(KINDS)})")
        return None
    spec_kind = KINDS[fkind]
    m = ck.mapping(item, line, where, {"kind", "target", "at"}, {"duration", *spec_kind.fields})
    if m is None:
        return None
    before = len(ck.problems)
    horizon = duration or MAX_TRAFFIC
    at = ck.duration(m["at"], m.line_of("at"), f"{where}.at", 1, horizon, "10s") if "at" in m else None
    length = 0.0
    if "duration" in m:
        length = ck.duration(m["duration"], m.line_of("duration"), f"{where}.duration", 0, horizon, "15s")
    target = _target(ck, m.get("target"), m.line_of("target"), f"{where}.target", cluster, archs) \
        if "target" in m else None
    options = _options(ck, m, where)
    if len(ck.problems) > before or target is None or at is None:
        return None
    if spec_kind.needs_proxy and all(a == "none" for a in archs):
        ck.fail(m.line_of("kind"), f"{where}.kind", f"{fkind} acts on proxies, and the only architecture is none "
                "(no proxy): add a mesh architecture")
        return None
    if fkind == "noisy-neighbour" and not _noise_ok(ck, m, where, cluster, target, options, rate, length):
        return None
    f = FaultSpec(fkind, target, at, length, options, m.line)
    if duration and f.active_until > duration:
        ck.fail(m.line_of("at"), f"{where}.at", f"the fault ends at {f.active_until:g}s, after the traffic "
                f"({duration:g}s)")
        return None
    return f


def _options(ck: Checker, m: YMap, where: str) -> dict:
    options: dict = {}
    if "restartDelay" in m:
        options["restartDelay"] = ck.duration(m["restartDelay"], m.line_of("restartDelay"), f"{where}.restartDelay",
                                              0, MAX_RESTART_DELAY, "5s")
    if "behavior" in m:
        options["behavior"] = ck.choice(m["behavior"], m.line_of("behavior"), f"{where}.behavior", WASM_BEHAVIORS,
                                        "a Wasm behaviour")
    if "failurePolicy" in m:
        options["failurePolicy"] = ck.choice(m["failurePolicy"], m.line_of("failurePolicy"), f"{where}.failurePolicy",
                                             WASM_POLICIES, "a failure policy")
    if "strategy" in m:
        options["strategy"] = ck.choice(m["strategy"], m.line_of("strategy"), f"{where}.strategy", UPGRADE_STRATEGIES,
                                        "an upgrade strategy")
    if "outcome" in m:
        options["outcome"] = ck.choice(m["outcome"], m.line_of("outcome"), f"{where}.outcome", UPGRADE_OUTCOMES,
                                       "an upgrade outcome")
    if "setting" in m:
        options["setting"] = _setting(ck, m["setting"], m.line_of("setting"), f"{where}.setting")
    if "reason" in m:
        options["reason"] = ck.choice(m["reason"], m.line_of("reason"), f"{where}.reason", REJECT_REASONS,
                                      "a reason Envoy refuses a config for")
    if "factor" in m and "rate" in m:
        ck.fail(m.line_of("rate"), f"{where}.rate", "give a factor or a rate, not both")
    if "factor" in m:
        options["factor"] = ck.number(m["factor"], m.line_of("factor"), f"{where}.factor", 1, MAX_NOISE_FACTOR,
                                      "a factor", lo_open=True)
    if "rate" in m:
        options["rate"] = ck.number(m["rate"], m.line_of("rate"), f"{where}.rate", 0, MAX_NOISE_RATE,
                                    "requests per second per flow", lo_open=True)
    if "ways" in m:
        options["ways"] = _ways(ck, m["ways"], m.line_of("ways"), f"{where}.ways")
    if "percent" in m:
        options["percent"] = ck.number(m["percent"], m.line_of("percent"), f"{where}.percent", 0, 100,
                                       "a percentage", lo_open=True)
    if "latency" in m:
        options["latency"] = ck.duration(m["latency"], m.line_of("latency"), f"{where}.latency", 0, MAX_DELAY, "50ms",
                                         lo_open=True)
    if "jitter" in m:
        options["jitter"] = ck.duration(m["jitter"], m.line_of("jitter"), f"{where}.jitter", 0, MAX_DELAY, "10ms")
        latency = options.get("latency", DEFAULT_LATENCY)
        if options["jitter"] is not None and latency is not None and options["jitter"] > latency:
            ck.fail(m.line_of("jitter"), f"{where}.jitter", f"the jitter ({options['jitter'] * 1000:g}ms) is larger "
                    f"than the latency ({latency * 1000:g}ms)")
    return options


def _setting(ck: Checker, value, line: int, where: str) -> dict | None:
    """config: one or more per-workload settings (kinds.CONFIG_SETTINGS), each in its range."""
    m = ck.mapping(value, line, where, set(), set(CONFIG_SETTINGS))
    if m is None:
        return None
    if not m:
        ck.fail(line, where, f"name at least one setting ({', '.join(CONFIG_SETTINGS)})")
        return None
    out: dict = {}
    if "maxConnections" in m:
        out["maxConnections"] = ck.integer(m["maxConnections"], m.line_of("maxConnections"),
                                           f"{where}.maxConnections", 1, MAX_CONNECTIONS)
    if "timeout" in m:
        out["timeout"] = ck.duration(m["timeout"], m.line_of("timeout"), f"{where}.timeout", 0.001, MAX_TIMEOUT,
                                     "20ms")
    if "retries" in m:
        out["retries"] = ck.integer(m["retries"], m.line_of("retries"), f"{where}.retries", 0, MAX_RETRIES)
    if "rateLimit" in m:
        out["rateLimit"] = _rate_limit(ck, m["rateLimit"], m.line_of("rateLimit"), f"{where}.rateLimit")
    return None if None in out.values() else out


def _rate_limit(ck: Checker, value, line: int, where: str) -> dict | None:
    """`5/s`, `300/m` or a whole number (per second): a token bucket of N tokens refilled
    every second or minute."""
    tokens, unit = value, "s"
    if isinstance(value, str) and value.count("/") == 1:
        tokens, unit = value.split("/")
        tokens = int(tokens) if tokens.strip().isdigit() else tokens
        unit = unit.strip()
    if isinstance(tokens, bool) or not isinstance(tokens, int) or unit not in RATE_UNITS or \
            not 1 <= tokens <= MAX_RATE_LIMIT:
        ck.fail(line, where, f"expected a rate like 5/s or 300/m (1 to {MAX_RATE_LIMIT} per s or m), got {kind(value)}")
        return None
    return {"tokens": tokens, "seconds": RATE_UNITS[unit]}


def _ways(ck: Checker, value, line: int, where: str) -> list[str] | None:
    raw = ck.sequence(value, line, where)
    if raw is None:
        return None
    if not raw:
        ck.fail(line, where, f"name at least one way ({', '.join(BYPASS_WAYS)})")
        return None
    ways = []
    for i, w in enumerate(raw):
        if ck.choice(w, raw.line_of(i), f"{where}[{i}]", BYPASS_WAYS, "a way around the proxy") is None:
            return None
        if w in ways:
            ck.fail(raw.line_of(i), f"{where}[{i}]", f"duplicate way {w!r}")
            return None
        ways.append(w)
    return ways


def _noise_ok(ck: Checker, m: YMap, where: str, cluster: ClusterSpec | None, target: Target, options: dict,
              rate: float | None, length: float) -> bool:
    """A noisy neighbour multiplies what its pods send, for a while: they must call something,
    the noise must add to the traffic, and stay within what one agent can send."""
    if not length:
        ck.fail(m.line, f"{where}.duration", "a noisy neighbour needs a duration (how long it sends more)")
        return False
    if "rate" in options and rate is not None and options["rate"] <= rate:
        ck.fail(m.line_of("rate"), f"{where}.rate", f"{options['rate']:g}/s is not above the traffic's rate "
                f"({rate:g}/s per flow): it would add nothing")
        return False
    if cluster is not None and not any(cluster.calls_from(cluster.pod(p).service)
                                       for p in target_pods(cluster, target)):
        ck.fail(m.line_of("target"), f"{where}.target", f"{target.describe()} calls no service: it has no "
                "request rate to multiply")
        return False
    factor = options.get("factor", DEFAULT_NOISE_FACTOR)
    if "rate" not in options and rate is not None and factor * rate > MAX_NOISE_RATE:
        field = "factor" if "factor" in options else "rate"
        ck.fail(m.line_of(field) if field in m else m.line, f"{where}.{field}", f"{factor:g} x traffic.rate "
                f"({rate:g}/s) is {factor * rate:g} requests/s per flow, more than {MAX_NOISE_RATE:g}"
                + ("" if "factor" in options else " (factor defaults to 10): give a smaller factor"))
        return False
    return True


def _target(ck: Checker, value, line: int, where: str, cluster: ClusterSpec | None,
            archs: list[str]) -> Target | None:
    m = ck.mapping(value, line, where, set(), set(TARGET_KEYS) | {"proxy"})
    if m is None:
        return None
    keys = [k for k in TARGET_KEYS if k in m]
    if len(keys) != 1:
        ck.fail(m.line, where, "name exactly one of pod, service or node")
        return None
    tkind, name = keys[0], m[keys[0]]
    if not isinstance(name, str):
        ck.fail(m.line_of(tkind), f"{where}.{tkind}", f"expected a {tkind} name, got {kind(name)}")
        return None
    if cluster is not None:
        known = {"pod": [p.name for p in cluster.pods], "service": [s.name for s in cluster.services],
                 "node": list(cluster.nodes)}[tkind]
        if name not in known:
            shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
            ck.fail(m.line_of(tkind), f"{where}.{tkind}", f"unknown {tkind} {kind(name)} (known: {shown})")
            return None
    proxy = m.get("proxy")
    if proxy is not None:
        if ck.choice(proxy, m.line_of("proxy"), f"{where}.proxy", TARGET_PROXIES,
                     "an L4 or L7 proxy of ambient or ztunnel") is None:
            return None
        if not set(archs) & set(SPLIT_ARCHITECTURES):
            ck.fail(m.line_of("proxy"), f"{where}.proxy", f"picks between L4 and L7 proxies, but none of "
                    f"{', '.join(SPLIT_ARCHITECTURES)} (the architectures that have both) is among the architectures")
            return None
    return Target(tkind, name, proxy)


def target_pods(cluster: ClusterSpec, target: Target) -> set[str]:
    """The pods a target names (a node: the pods on it)."""
    if target.kind == "pod":
        return {target.name}
    if target.kind == "service":
        return {p.name for p in cluster.pods_of(target.name)}
    return {p.name for p in cluster.pods_on(target.name)}


def _overlaps(ck: Checker, faults: list[tuple[str, FaultSpec]], cluster: ClusterSpec | None) -> None:
    """Two faults of one exclusive kind (or of one group of kinds) may not be active at once on
    intersecting targets: they would fight over one interface, one proxy or one config (and
    each one's blast radius would hold the other's)."""
    if cluster is None:
        return

    def clash(k: str) -> str:
        return KINDS[k].group or k

    for i, (where, f) in enumerate(faults):
        for other_where, g in faults[:i]:
            if clash(f.kind) != clash(g.kind) or not KINDS[f.kind].exclusive:
                continue
            if (g.at < f.active_until and f.at < g.active_until) or f.at == g.at:
                same_node = f.target.kind == g.target.kind == "node" and f.target.name == g.target.name
                if same_node or target_pods(cluster, f.target) & target_pods(cluster, g.target):
                    ck.fail(f.line, f"{where}.at", f"overlaps {other_where} (line {g.line}), another {g.kind} on "
                            f"an intersecting target from {g.at:g}s to {g.active_until:g}s: one at a time")
