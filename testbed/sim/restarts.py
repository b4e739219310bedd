"""Calibrating how long proxies take to come back, from the faults of real runs:

- a crashed proxy is ready `crash_restart_s` after its restart delay: a base per role, plus
  `per_host_envoy_s` for every other Envoy sharing the host's CPUs and
  `per_concurrent_restart_s` for every other proxy restarting at once on that host. Seen on
  2 cores: 0.16 s for one sidecar among 6 Envoys, 2.8 s among 100, 9.8 s for 30 at once
  among 100. Fitted jointly (a base per role, the two slopes shared), least squares;
- a restart and a hot restart (upgrades, the Wasm fault's reload and replace): the
  supervisor's own timings, per role, less the same load slope (applied back in the model);
- the schedule's lags: from `at` to the injection, from the end of a revert to
  `reverted_at`, and from a crashed proxy's readiness to the end of its revert."""

from __future__ import annotations

from . import fit
from .params import ROLES
from .placement import SimCluster
from .sources import FaultRun
from .topology import SimTopology


def _spread(values, unit, what) -> dict:
    s = fit.spread(values)
    return {"value": s["value"], "unit": unit, "source": "fit" if s["n"] else "assumed", "what": what,
            "fit": {"n": s["n"], "low": s["low"], "high": s["high"]}, "points": [round(v, 4) for v in values]}


def _crash_model(points: list[dict]) -> tuple[dict, dict, dict]:
    roles = sorted({p["role"] for p in points}, key=ROLES.index)
    if not points:
        return {}, {"value": None}, {"value": None}
    rows = [[float(p["role"] == r) for r in roles] + [p["host_envoys"] - 1, p["concurrent"] - 1] for p in points]
    names = roles + ["per_host_envoy_s", "per_concurrent_restart_s"]
    varied = [len({row[k] for row in rows}) > 1 for k in range(len(names))]
    keep = [k for k in range(len(names)) if k < len(roles) or varied[k]]
    got = fit.linear([[row[k] for k in keep] for row in rows], [p["seconds"] for p in points],
                     [names[k] for k in keep], nonneg=tuple(names))
    quality = got.pop("quality")
    base = {r: {"value": round(got[r]["value"], 4), "unit": "s", "source": "fit",
                "what": "ready after the restart delay, one proxy alone on an idle host",
                "fit": dict(quality, stderr=round(got[r]["stderr"], 4)),
                "points": [p for p in points if p["role"] == r]} for r in roles}

    def slope(name, what):
        if name not in got:
            return {"value": None, "unit": "s", "source": "assumed", "what": what, "fit": None, "points": []}
        return {"value": round(got[name]["value"], 5), "unit": "s", "source": "fit", "what": what,
                "fit": dict(quality, stderr=round(got[name]["stderr"], 5)), "points": []}

    return (base, slope("per_host_envoy_s", "added per other Envoy on the host"),
            slope("per_concurrent_restart_s", "added per other proxy restarting at once on the host"))


def times(faults: list[FaultRun]) -> dict:
    crash, restart, hot, inject, revert, ready = [], {}, {}, [], [], []
    for f in faults:
        e = f.entry
        inject.append(e["injected_at"] - e["at"])
        topo = SimTopology(SimCluster(f.cluster), f.arch)
        roles = {p.name: p.role for p in topo.proxies}
        envoys = len(topo.proxies)  # a real run holds every proxy on one machine
        if e["kind"] == "proxy-crash" and e.get("proxies") and e.get("ended_at") is not None:
            took = (e["ended_at"] - e["injected_at"]) - (f.options.get("restartDelay") or 0.0)
            crash.append({"role": roles[e["proxies"][0]], "host_envoys": envoys, "concurrent": len(e["proxies"]),
                          "seconds": round(took, 4), "journal": f.journal, "arch": f.arch, "fault": f.index})
            if e.get("reverted_at") is not None:
                ready.append(e["reverted_at"] - e["ended_at"])
        elif e["kind"] in ("proxy-hang", "identity-compromise") and e.get("reverted_at") is not None:
            revert.append(e["reverted_at"] - (e["at"] + e["duration"]))
        for u in (e.get("details") or {}).get("upgrades", []) + (e.get("details") or {}).get("loaded", []):
            table = restart if u["strategy"] == "restart" else hot
            if u["proxy"] in roles:
                table.setdefault(roles[u["proxy"]], []).append((u["seconds"], envoys))
    base, per_envoy, concurrent = _crash_model(crash)
    b = per_envoy["value"] or 0.0

    def per_role(table, what):  # at least 0: the load slope may explain a whole light-load time
        return {r: _spread([max(s - b * (n - 1), 0.0) for s, n in v], "s", what) for r, v in table.items()}

    return {"crash_restart_s": base, "per_host_envoy_s": per_envoy, "per_concurrent_restart_s": concurrent,
            "restart_s": per_role(restart, "supervisor's stop-and-start time, one proxy alone on the host"),
            "hot_restart_s": per_role(hot, "supervisor's hot-restart time, one proxy alone on the host"),
            "inject_lag_s": _spread(inject, "s", "injected_at - at"),
            "revert_lag_s": _spread(revert, "s", "reverted_at - (at + duration), hang and identity"),
            "ready_poll_s": _spread(ready, "s", "a crash's reverted_at - ended_at (waiting for ready)")}
