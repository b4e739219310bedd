"""`testbed calibrate`: the model's parameters fitted from the journals of real runs, each
with its fit quality and the data points it came from (docs/simulation.md says where each
comes from). A prior calibration (by default the one shipped with the testbed) fills in
what these journals do not inform: a run without a sweep cannot tell a cluster's memory
from a route's, one without faults says nothing of restarts. Every entry says its
`source`: `fit` (these journals), `prior` or `assumed`.

`memory_from` narrows the fit of a proxy's private memory and config bytes to some of the
journals (the others still inform everything else): one linear model in the config counts
holds for every role, and proxies it does not describe (HBONE's, whose filter chains weigh
more than their counts say) would bend it for all of them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from .. import journal as journal_mod
from ..atomic import write_text
from ..errors import TestbedError
from ..journal import VERSION as JOURNAL_VERSION
from ..journal.writer import environment
from . import effects, resources, restarts, sources
from .params import DEFAULT_PATH, FORMAT, KIND, ROLES, load_calibration


def _prior_section(prior: dict | None, *keys) -> dict | None:
    node = prior
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def _fill(fitted: dict, prior: dict | None) -> dict:
    """Entries the journals did not inform, from the prior (marked so)."""
    out = dict(fitted)
    for k, v in (prior or {}).items():
        if k not in out or (isinstance(out[k], dict) and out[k].get("value") is None and "value" in out[k]):
            out[k] = dict(v, source="prior", points=[]) if isinstance(v, dict) and "value" in v else v
    return out


def _narrowed(costs: list, paths: list[str | Path] | None) -> list:
    """The cost windows of the journals at `paths` (all of them when None)."""
    if paths is None:
        return costs
    wanted = {Path(journal_mod.load(p)["_path"]).resolve() for p in paths}
    mine = [c for c in costs if Path(c.journal).resolve() in wanted]
    if not mine:
        raise TestbedError("--memory-from: none of these journals is among those calibrated from, or none has a "
                           "cost window")
    return mine


def calibrate(paths: list[str | Path], prior_path: str | Path | None = DEFAULT_PATH, command: str = "",
              memory_from: list[str | Path] | None = None) -> dict:
    """The calibration document from the journals at `paths` (directories or files); the
    private memory and config bytes from those at `memory_from` only, when given."""
    journals, costs, faults = sources.read(paths)
    mem_costs = _narrowed(costs, memory_from)
    prior = None
    if prior_path is not None and Path(prior_path).exists():
        prior = load_calibration(prior_path).data["parameters"]
    if not costs and not faults:
        raise TestbedError("no cost window and no measured fault in these journals: nothing to calibrate from "
                           "(run experiments/calibration/*.yaml, or any experiment with `cost:` or faults)")
    p_mem = _prior_section(prior, "memory")
    shared = resources.shared_image(costs)
    if p_mem and (shared["value"] is None or p_mem["shared_kib"]["value"] < 0.95 * shared["value"]):
        # other Envoys on the machine only ever raise the image a window implies: when every
        # window implies more than the prior, they were running, and the prior's value stands
        note = "every window implied more than the prior: other Envoys were running" if shared["value"] else None
        shared = dict(p_mem["shared_kib"], source="prior", points=shared.get("points", []), note=note)
    memory = {"shared_kib": shared, **resources.memory(mem_costs, shared["value"] or 0.0, p_mem)} if costs else p_mem
    cpu = resources.cpu(costs)
    p_cpu = _prior_section(prior, "cpu") or {}
    cpu = {"per_krps": _fill(cpu["per_krps"], p_cpu.get("per_krps")),
           "idle_vcpu": _fill(cpu["idle_vcpu"], p_cpu.get("idle_vcpu")),
           "workloads_per_krps": cpu["workloads_per_krps"] if cpu["workloads_per_krps"]["value"] is not None
           else dict(p_cpu.get("workloads_per_krps", {}), source="prior")}
    lat = resources.latency(costs)
    p_lat = _prior_section(prior, "latency") or {}
    if all(v["value"] is None for v in lat["none_ms"].values()) and p_lat:
        lat["none_ms"] = {q: dict(v, source="prior") for q, v in p_lat["none_ms"].items()}
    for redirect, roles in (p_lat.get("per_hop_ms") or {}).items():
        mine = lat["per_hop_ms"].setdefault(redirect, {})
        for role, qs in roles.items():
            if role not in mine:
                mine[role] = {q: dict(v, source="prior", points=[]) for q, v in qs.items()}
    t = restarts.times(faults)
    p_t = _prior_section(prior, "times") or {}
    for k, v in t.items():
        if "value" in v:
            if v["value"] is None and k in p_t:
                t[k] = dict(p_t[k], source="prior", points=[])
        else:
            t[k] = _fill(v, p_t.get(k))
    parameters = {
        "memory": memory,
        "config_bytes": resources.config_bytes(mem_costs, _prior_section(prior, "config_bytes")) if costs
        else _prior_section(prior, "config_bytes"),
        "cpu": cpu, "latency": lat, "times": t,
        "effects": effects.effects(faults, _prior_section(prior, "effects")),
    }
    if any(v is None for v in parameters.values()):
        missing = ", ".join(k for k, v in parameters.items() if v is None)
        raise TestbedError(f"these journals do not inform {missing}, and there is no prior calibration to take it from")
    env = environment()
    return {"kind": KIND, "format": FORMAT, "journal_version": JOURNAL_VERSION,
            "made": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "command": command,
            "environment": env,
            "from": [{"journal": j["_path"], "experiment": j["experiment"], "started": j.get("started"),
                      "environment": j.get("environment"), "architectures": list(j["architectures"])}
                     for j in journals],
            "prior": _shown(prior_path) if prior is not None else None,
            # whose cost windows fit the private memory and config bytes (None: every journal's)
            "memory_from": None if memory_from is None else sorted({c.journal for c in mem_costs}),
            "counts": {"cost_windows": len(costs), "faults": len(faults)},
            "roles": list(ROLES), "parameters": parameters}


def _shown(path) -> str:
    """A path as the user would name it: the shipped calibration by its place in the repo."""
    return "testbed/sim/default-calibration.json (shipped)" if Path(path).resolve() == DEFAULT_PATH else str(path)


def write(doc: dict, out: str | Path) -> Path:
    out = Path(out)
    write_text(out, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return out
