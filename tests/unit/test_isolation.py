"""The isolation faults without root: their fields and ranges, where a per-workload setting
lands in each architecture's config (and that Envoy takes it, or refuses what it must), who
counts as the target's flow or a neighbour, and how a bypass attempt is judged."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from testbed import identity, spec
from testbed.chaos.bypass import verdict
from testbed.chaos.kinds import BYPASS_WAYS
from testbed.cluster.plan import make_plan
from testbed.errors import SpecError
from testbed.experiment import load_experiment
from testbed.measure import neighbours
from testbed.mesh import envoy, render
from testbed.mesh.topology import crossed, make_topology

from ..conftest import FIXTURES, ROOT

MESH = spec.load_cluster(FIXTURES / "mesh.yaml")


def _exp(tmp_path, fault: str, traffic: str = "{rate: 10, duration: 20s}"):
    p = tmp_path / "e.yaml"
    p.write_text(f"name: e\ncluster: {FIXTURES}/mesh.yaml\ntraffic: {traffic}\nfaults:\n  - {fault}\n")
    return load_experiment(p)


def test_the_new_kinds_take_their_fields(tmp_path):
    f = _exp(tmp_path, "{kind: config, target: {pod: api-0}, at: 5s, duration: 2s, "
                       "setting: {maxConnections: 1, timeout: 20ms, retries: 10, rateLimit: 5/s}}").faults[0]
    assert f.options["setting"] == {"maxConnections": 1, "timeout": 0.02, "retries": 10,
                                    "rateLimit": {"tokens": 5, "seconds": 1.0}}
    assert _exp(tmp_path, "{kind: config, target: {pod: api-0}, at: 5s, setting: {rateLimit: 300/m}}") \
        .faults[0].options["setting"]["rateLimit"] == {"tokens": 300, "seconds": 60.0}
    assert _exp(tmp_path, "{kind: config-reject, target: {pod: api-0}, at: 5s, reason: conflict}") \
        .faults[0].options == {"reason": "conflict"}
    assert _exp(tmp_path, "{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, duration: 3s, factor: 20}") \
        .faults[0].options == {"factor": 20.0}
    assert _exp(tmp_path, "{kind: upgrade, target: {service: api}, at: 5s, strategy: canary, outcome: fails}") \
        .faults[0].options == {"strategy": "canary", "outcome": "fails"}
    assert _exp(tmp_path, "{kind: bypass, target: {pod: web-0}, at: 5s, ways: [on-link, detached]}") \
        .faults[0].options == {"ways": ["on-link", "detached"]}


@pytest.mark.parametrize("fault, field, words", [
    ("{kind: config, target: {pod: api-0}, at: 5s, setting: {}}", "faults[0].setting", "name at least one"),
    ("{kind: config, target: {pod: api-0}, at: 5s, setting: {maxConnections: 0}}",
     "faults[0].setting.maxConnections", "out of range (1-100000)"),
    ("{kind: config, target: {pod: api-0}, at: 5s, setting: {timeout: 0ms}}", "faults[0].setting.timeout",
     "at least 1ms"),
    ("{kind: config, target: {pod: api-0}, at: 5s, setting: {retries: 101}}", "faults[0].setting.retries",
     "out of range (0-100)"),
    ("{kind: config, target: {pod: api-0}, at: 5s, setting: {rateLimit: 5/h}}", "faults[0].setting.rateLimit",
     "like 5/s or 300/m"),
    ("{kind: config, target: {pod: api-0}, at: 5s, setting: {buffer: 1}}", "faults[0].setting.buffer",
     "unknown field"),
    ("{kind: config-reject, target: {pod: api-0}, at: 5s, reason: typo}", "faults[0].reason",
     "is not a reason Envoy refuses a config for (invalid, conflict)"),
    ("{kind: upgrade, target: {pod: api-0}, at: 5s, outcome: maybe}", "faults[0].outcome", "(succeeds, fails)"),
    ("{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, factor: 1}", "faults[0].factor", "in (1, 100]"),
    ("{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, factor: 2, rate: 30}", "faults[0].rate",
     "not both"),
    ("{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, duration: 2s, factor: 100}", "faults[0].factor",
     "more than 2000"),
    ("{kind: noisy-neighbour, target: {pod: db-0}, at: 5s, duration: 2s, factor: 2}", "faults[0].target",
     "pod db-0 calls no service"),
    ("{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, duration: 2s, rate: 30}", "faults[0].rate",
     "not above the traffic's rate (30/s per flow)"),
    ("{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, factor: 2}", "faults[0].duration",
     "needs a duration"),

    ("{kind: bypass, target: {pod: web-0}, at: 5s, ways: [tunnel]}", "faults[0].ways[0]",
     "is not a way around the proxy"),
    ("{kind: bypass, target: {pod: web-0}, at: 5s, ways: []}", "faults[0].ways", "name at least one way"),
])
def test_bad_fields_of_the_new_kinds_name_file_line_and_field(tmp_path, fault, field, words):
    with pytest.raises(SpecError) as err:
        _exp(tmp_path, fault, "{rate: 30, duration: 20s}")
    assert any(f"e.yaml:5: {field}" in p and words in p for p in err.value.problems), err.value.problems


def test_the_default_noise_factor_counts_against_the_limit(tmp_path):
    with pytest.raises(SpecError, match=r"e.yaml:5: faults\[0\].rate: 10 x traffic.rate \(300/s\) .*defaults"):
        _exp(tmp_path, "{kind: noisy-neighbour, target: {pod: api-0}, at: 5s, duration: 2s}",
             "{rate: 300, duration: 20s}")


def test_faults_that_rewrite_a_proxy_may_not_overlap_on_it(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text(f"name: e\ncluster: {FIXTURES}/mesh.yaml\ntraffic: {{duration: 20s}}\nfaults:\n"
                 "  - {kind: config, target: {pod: api-0}, at: 5s, duration: 4s, setting: {retries: 3}}\n"
                 "  - {kind: upgrade, target: {service: api}, at: 6s, duration: 2s}\n"
                 "  - {kind: noisy-neighbour, target: {pod: api-0}, at: 5s, duration: 4s}\n"
                 "  - {kind: noisy-neighbour, target: {pod: api-0}, at: 6s, duration: 4s}\n")
    with pytest.raises(SpecError) as err:
        load_experiment(p)
    assert [q.split(": ", 2)[1] for q in err.value.problems] == ["faults[1].at"]  # noise may pile up


def test_the_shipped_isolation_experiment_runs_every_new_kind():
    exp = load_experiment(ROOT / "experiments" / "isolation.yaml")
    kinds = {f.kind for f in exp.faults}
    assert {"config", "config-reject", "noisy-neighbour", "upgrade", "bypass"} <= kinds
    assert any(f.options.get("outcome") == "fails" and f.options.get("strategy") == "canary" for f in exp.faults)
    assert set(exp.architectures) == {"sidecar", "node", "node-sa", "ambient"}


SETTING = {"maxConnections": 1, "timeout": 0.02, "retries": 10, "rateLimit": {"tokens": 5, "seconds": 1.0}}


def _proxy(arch: str, pod: str = "api-0"):
    plan = make_plan(MESH, "v1", proxy_node=arch == "ambient")
    topo = make_topology(plan, arch)
    proxy = topo.l7_for(MESH.pod(pod).service_account) if arch == "ambient" else topo.serving(pod)
    return plan, topo, proxy


@pytest.mark.parametrize("arch, clusters", [
    ("sidecar", ["out|web", "out|api", "out|db", "out|audit", "in|api"]),  # all of api-0's own
    ("node", ["out|backend|web", "out|backend|api", "out|backend|db", "out|backend|audit", "in|final"]),
    ("node-sa", ["out|backend|web", "out|backend|api", "out|backend|db", "out|backend|audit", "in|final"]),
    ("ambient", ["l7|api"]),  # the service's listener at its account's L7 proxy
])
def test_a_setting_lands_on_what_carries_the_workloads_traffic(arch, clusters):
    """In a shared proxy the final hop (`in|final`) carries every local pod's inbound: a pool
    limit for api-0 there is one for db-0 too."""
    plan, topo, proxy = _proxy(arch)
    ctx = render.context(plan, topo, proxy, "/certs", tuning={"api-0": SETTING})
    assert ctx["touched"]["clusters"] == clusters
    cfg = yaml.safe_load(render.render(plan, topo, proxy, "/certs", tuning={"api-0": SETTING}))
    limited = [c["name"] for c in cfg["static_resources"]["clusters"] if "circuit_breakers" in c]
    assert limited == clusters
    if arch == "node":  # db's inbound chain is untouched: only the shared cluster carries the limit
        inbound = next(x for x in cfg["static_resources"]["listeners"] if x["name"] == "inbound")
        db = next(c for c in inbound["filter_chains"] if c["name"] == "in|db")
        route = db["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        assert route["timeout"] == "5s" and "retry_policy" not in route


def _validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([envoy.envoy_path(), "--mode", "validate", "-c", str(path), "-l", "critical"],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("arch", ["sidecar", "node", "ambient"])
def test_envoy_takes_every_setting_and_refuses_each_rejected_update(arch, tmp_path):
    plan, topo, proxy = _proxy(arch)
    certs = tmp_path / "certs"
    identity.issue(certs, MESH.mesh.trust_domain, topo.identities())
    cases = {"setting": ({"api-0": SETTING}, 0, None),
             "invalid": ({"api-0": {"generation": 1, "reject": "invalid"}}, 1, "missing ]"),
             "conflict": ({"api-0": {"generation": 1, "reject": "conflict"}}, 1, "duplicate address")}
    for name, (tuning, rc, words) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(render.render(plan, topo, proxy, str(certs), tuning=tuning))
        r = _validate(path)
        assert r.returncode == rc and (words is None or words in r.stdout + r.stderr), (name, r.stderr[-500:])


def test_the_failing_upgrades_bootstrap_is_refused(tmp_path):
    from testbed.chaos.proxy_faults import failing_bootstrap

    plan, topo, proxy = _proxy("sidecar")
    path = tmp_path / "new.json"
    path.write_text(failing_bootstrap(render.render(plan, topo, proxy, "/certs")))
    r = _validate(path)
    assert r.returncode == 1 and "new_version_field" in r.stdout + r.stderr


def _flow(affected: bool, b99=2.0, w99=2.0, b_err=0.0, w_err=0.0) -> dict:
    return {"affected": affected, "baseline": {"p99_ms": b99, "error_rate": b_err},
            "fault": {"p99_ms": w99, "error_rate": w_err}}


def test_flows_beyond_the_target_and_the_neighbours_groups():
    service_of = {p.name: p.service for p in MESH.pods}
    flows = {"web-0->api": _flow(True, w99=30), "api-0->db": _flow(True), "api-1->db": _flow(True, w99=40),
             "web-0->audit": _flow(False, w99=3), "web-1->audit": _flow(False, w99=2.2)}
    # web-0->api goes to api-0's service: the target's; api-1->db neither leaves from nor goes to it
    assert neighbours.beyond_target(flows, {"api-0"}, service_of) == ["api-1->db"]
    g = neighbours.groups(flows, ["web-0->api", "api-1->db"], ["web-0->audit", "web-1->audit"])
    assert g["sharing"]["p99_ratio_median"] == 17.5 and g["apart"]["p99_ratio_median"] == 1.3
    assert g["sharing_over_apart"] == round(17.5 / 1.3, 3) and g["sharing"]["affected"] == ["api-1->db", "web-0->api"]


@pytest.mark.parametrize("arch, proxies", [
    ("sidecar", {"sidecar-api-0", "sidecar-db-0"}), ("node", {"node-n1"}),
    ("node-sa", {"node-n1.backend"}), ("ambient", {"micro-api-0", "l7-backend", "micro-db-0"})])
def test_the_proxies_a_flow_crosses(arch, proxies):
    plan = make_plan(MESH, "v1", proxy_node=arch == "ambient")
    assert crossed(plan, make_topology(plan, arch), "api-0", "db") == proxies


@pytest.mark.parametrize("result, expected", [
    ({"status": 200, "peer": "198.19.1.2:4242"}, "plaintext"),  # the app saw the prober itself
    ({"status": 200, "peer": "127.0.0.1:4242"}, "proxied"),  # its sidecar delivered it
    ({"status": 200, "peer": "198.19.1.1:4242"}, "proxied"),  # the node proxy's final hop
    ({"status": 403, "peer": None}, "denied"),
    ({"status": 503, "peer": None}, "proxy-error"),
    ({"status": None, "peer": None}, "blocked"),
    ({"status": 200, "pod": "web-0", "peer": "198.19.1.1:4242"}, "self"),  # a service sent it home (hairpin)
])
def test_a_bypass_attempt_is_judged_by_the_peer_the_app_saw(result, expected):
    assert verdict(result, "198.19.1.2", "web-0") == expected


def test_every_bypass_way_has_a_method():
    from testbed.chaos.bypass import Bypass

    assert all(hasattr(Bypass, "_" + w.replace("-", "_")) for w in BYPASS_WAYS)


def test_failures_are_split_at_the_revert():
    from testbed.measure.blast import Window
    from testbed.measure.outcome import failed_split

    records = [{"t": t, "status": s} for t, s in ((4.9, 503), (5.0, 503), (6.0, 200), (7.5, 503), (8.0, 503),
                                                  (9.0, 503))]
    assert failed_split(records, Window(5.0, 9.0), 7.5) == {"until_revert": 1, "from_revert": 2}
