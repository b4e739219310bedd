"""The faults as a Chaos Mesh Workflow. No package publishes Chaos Mesh's schema, so its
fields are checked here one by one, as Chaos Mesh v2.8.3 defines them: the CRDs
(config/crd/bases/chaos-mesh.org_{workflows,podchaos,networkchaos}.yaml) and the admission
webhook's rules (api/v1alpha1/workflow_webhook.go, podchaos_webhook.go,
networkchaos_webhook.go). Then: each fault kind, in each architecture, resolved to what it
should hit, or left out with its reason."""

from __future__ import annotations

import re

import pytest

from testbed.experiment import load_experiment
from testbed.export import bundle, chaos, engines

from ..conftest import FIXTURES, ROOT

UPSTREAM = "v2.8.3"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
NETEM_DURATION = re.compile(r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$")  # the CRD's pattern for latency, jitter
WORKFLOW_SPEC = {"required": {"entry", "templates"}, "fields": {"entry", "templates"}}
TEMPLATE_FIELDS = {"name", "templateType", "deadline", "children", "task", "conditionalBranches", "schedule",
                   "statusCheck", "abortWithStatusCheck", "podChaos", "networkChaos", "stressChaos", "ioChaos",
                   "timeChaos", "kernelChaos", "dnsChaos", "httpChaos", "jvmChaos", "awsChaos", "gcpChaos",
                   "azureChaos", "blockChaos", "physicalmachineChaos"}
TEMPLATE_TYPES = {"Task", "Serial", "Parallel", "Suspend", "StatusCheck", "Schedule", "AWSChaos", "AzureChaos",
                  "BlockChaos", "DNSChaos", "GCPChaos", "HTTPChaos", "IOChaos", "JVMChaos", "KernelChaos",
                  "NetworkChaos", "PhysicalMachineChaos", "PodChaos", "StressChaos", "TimeChaos"}
MODES = {"one", "all", "fixed", "fixed-percent", "random-max-percent"}
SELECTOR_FIELDS = {"annotationSelectors": dict, "expressionSelectors": list, "fieldSelectors": dict,
                   "labelSelectors": dict, "namespaces": list, "nodeSelectors": dict, "nodes": list,
                   "podPhaseSelectors": list, "pods": dict}
POD_CHAOS = {"required": {"action", "mode", "selector"},
             "fields": {"action", "containerNames", "duration", "gracePeriod", "mode", "remoteCluster", "selector",
                        "value"},
             "action": {"pod-kill", "pod-failure", "container-kill"}}
NETWORK_CHAOS = {"required": {"action", "mode", "selector"},
                 "fields": {"action", "bandwidth", "corrupt", "delay", "device", "direction", "duplicate", "duration",
                            "externalTargets", "loss", "mode", "rate", "remoteCluster", "selector", "target",
                            "targetDevice", "value"},
                 "action": {"netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"},
                 "direction": {"to", "from", "both"}}


def check_selector(sel: dict, where: str) -> list[str]:
    out = [f"{where}: unknown selector field {k}" for k in set(sel) - set(SELECTOR_FIELDS)]
    for k, v in sel.items():
        if k in SELECTOR_FIELDS and not isinstance(v, SELECTOR_FIELDS[k]):
            out.append(f"{where}.{k}: expected {SELECTOR_FIELDS[k].__name__}")
        if isinstance(v, dict) and k != "pods":
            out += [f"{where}.{k}.{kk}: values are strings" for kk, vv in v.items() if not isinstance(vv, str)]
    return out


def check_chaos(spec: dict, table: dict, where: str) -> list[str]:
    out = [f"{where}: missing {k}" for k in table["required"] - set(spec)]
    out += [f"{where}: unknown field {k}" for k in set(spec) - table["fields"]]
    if spec.get("action") not in table["action"]:
        out.append(f"{where}.action: {spec.get('action')!r}")
    if spec.get("mode") not in MODES:
        out.append(f"{where}.mode: {spec.get('mode')!r}")
    if "duration" in spec:
        out.append(f"{where}.duration: a workflow's chaos takes its deadline, never a duration (webhook)")
    out += check_selector(spec.get("selector", {}), f"{where}.selector")
    if spec.get("action") == "container-kill" and not spec.get("containerNames"):
        out.append(f"{where}.containerNames: required by container-kill (webhook)")
    if "gracePeriod" in spec and (not isinstance(spec["gracePeriod"], int) or spec["gracePeriod"] < 0):
        out.append(f"{where}.gracePeriod: a non-negative integer")
    if "direction" in spec:
        if spec["direction"] not in table.get("direction", ()):
            out.append(f"{where}.direction: {spec['direction']!r}")
        if spec["direction"] in ("from", "both") and "target" not in spec:
            out.append(f"{where}.direction: from/both need a target (webhook)")
    if "target" in spec:
        t = spec["target"]
        out += [f"{where}.target: missing {k}" for k in {"mode", "selector"} - set(t)]
        out += [f"{where}.target: unknown field {k}" for k in set(t) - {"mode", "selector", "value"}]
        out += check_selector(t.get("selector", {}), f"{where}.target.selector")
    if "delay" in spec:
        d = spec["delay"]
        out += [f"{where}.delay: unknown field {k}" for k in set(d) - {"latency", "correlation", "jitter", "reorder"}]
        out += [f"{where}.delay.{k}: {d[k]!r}" for k in ("latency", "jitter") if k in d
                and not NETEM_DURATION.match(d[k])]
        if "latency" not in d:
            out.append(f"{where}.delay: missing latency")
    if "loss" in spec:
        loss = spec["loss"]
        out += [f"{where}.loss: unknown field {k}" for k in set(loss) - {"loss", "correlation"}]
        for k in ("loss", "correlation"):
            try:
                float(loss.get(k, "0"))
            except ValueError:
                out.append(f"{where}.loss.{k}: a float in a string (FloatStr)")
    return out


def check_workflow(wf: dict) -> list[str]:
    out = []
    if wf["apiVersion"] != "chaos-mesh.org/v1alpha1" or wf["kind"] != "Workflow":
        out.append("not a chaos-mesh.org/v1alpha1 Workflow")
    spec = wf["spec"]
    out += [f"spec: missing {k}" for k in WORKFLOW_SPEC["required"] - set(spec)]
    out += [f"spec: unknown field {k}" for k in set(spec) - WORKFLOW_SPEC["fields"]]
    names = [t["name"] for t in spec["templates"]]
    if len(set(names)) != len(names):
        out.append("template names must not repeat (webhook)")
    if spec["entry"] not in names:
        out.append("the entry must be a template (webhook)")
    for i, t in enumerate(spec["templates"]):
        where = f"templates[{i}]({t.get('name')})"
        out += [f"{where}: unknown field {k}" for k in set(t) - TEMPLATE_FIELDS]
        if not DNS1123_SUBDOMAIN.match(t["name"]) or len(t["name"]) > 253:
            out.append(f"{where}: name must be a DNS-1123 subdomain (webhook)")
        kind = t.get("templateType")
        if kind not in TEMPLATE_TYPES:
            out.append(f"{where}: templateType {kind!r}")
        if "deadline" in t and not GO_DURATION.match(t["deadline"]):
            out.append(f"{where}: deadline {t['deadline']!r} is not a Go duration")
        if kind == "Suspend" and not t.get("deadline"):
            out.append(f"{where}: a Suspend needs a deadline (webhook)")
        if kind in ("Serial", "Parallel"):
            out += [f"{where}: child {c} is not a template" for c in t.get("children", []) if c not in names]
        elif t.get("children"):
            out.append(f"{where}: only Serial and Parallel have children (webhook)")
        embedded = {k for k in t if k.endswith("Chaos")}
        if kind == "PodChaos":
            out += check_chaos(t.get("podChaos", {}), POD_CHAOS, f"{where}.podChaos")
        elif kind == "NetworkChaos":
            out += check_chaos(t.get("networkChaos", {}), NETWORK_CHAOS, f"{where}.networkChaos")
        if embedded - {kind[0].lower() + kind[1:]}:
            out.append(f"{where}: embeds {sorted(embedded)} in a {kind} (webhook)")
    return out


def workflows(source) -> dict[str, dict]:
    b = bundle.build(source, [a for a in load_experiment(source).architectures if a in engines.ENGINES])
    return {arch: a.files["run/40-faults.yaml"][0] for arch, a in b.archs.items() if "run/40-faults.yaml" in a.files}


@pytest.mark.parametrize("source", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_workflow_has_chaos_meshs_fields(source):
    for arch, wf in workflows(source).items():
        assert check_workflow(wf) == [], arch


def test_the_field_checks_can_fail():
    wf = workflows(ROOT / "experiments" / "network.yaml")["sidecar"]
    t = next(t for t in wf["spec"]["templates"] if t["templateType"] == "NetworkChaos")
    t["networkChaos"]["direction"] = "sideways"
    t["networkChaos"]["loss"]["loss"] = "twenty"
    t["networkChaos"]["selector"]["nameSpaces"] = ["x"]
    t["deadline"] = "10 seconds"
    wf["spec"]["templates"].append({"name": "Wait", "templateType": "Suspend"})
    problems = check_workflow(wf)
    assert len(problems) == 6, problems
    assert any("direction: 'sideways'" in p for p in problems) and any("FloatStr" in p for p in problems)
    assert any("unknown selector field nameSpaces" in p for p in problems)
    assert any("not a Go duration" in p for p in problems) and any("DNS-1123" in p for p in problems)
    assert any("Suspend needs a deadline" in p for p in problems)


def test_every_fault_waits_for_its_time_then_lasts_its_duration():
    exp = load_experiment(ROOT / "experiments" / "network.yaml")
    wf = workflows(ROOT / "experiments" / "network.yaml")["node"]
    templates = {t["name"]: t for t in wf["spec"]["templates"]}
    assert templates["faults"]["templateType"] == "Parallel"
    for i in [int(c.split("-")[1]) for c in templates["faults"]["children"]]:
        wait, run = templates[f"fault-{i}"]["children"]
        assert templates[wait]["deadline"] == f"{exp.faults[i].at:g}s"
        chaos_nodes = templates[run]["children"] if templates[run]["templateType"] == "Parallel" else [run]
        assert {templates[n]["deadline"] for n in chaos_nodes} == {f"{exp.faults[i].duration:g}s"}


def exported_faults(source, arch):
    a = bundle.build(source, [arch]).archs[arch]
    chaos_specs = {t["name"]: t for t in a.files.get("run/40-faults.yaml", [{"spec": {"templates": []}}])[0]["spec"]
                   ["templates"]}
    return a.faults, chaos_specs


def test_sidecar_crash_kills_the_pods_istio_proxy():
    faults, t = exported_faults(ROOT / "experiments" / "proxy-crash.yaml", "sidecar")
    (f,) = faults.exported
    assert f["proxies"] == ["istio-proxy of cart-0"] and f["pods_served"] == ["cart-0"]
    serving, calling = (t[n]["podChaos"] for n in f["templates"])
    assert serving["action"] == calling["action"] == "container-kill"
    assert serving["containerNames"] == ["istio-proxy"]
    # cart-0 is the cart replica on cart-0's node, and the cart traffic pod of index 0
    assert serving["mode"] == "one" and serving["selector"]["nodeSelectors"] == {engines.NODE_LABEL: "n2"}
    assert serving["selector"]["labelSelectors"] == {engines.SERVICE_LABEL: "cart", engines.ROLE_LABEL: "workload"}
    assert calling["selector"]["labelSelectors"][engines.INDEX_LABEL] == "0"
    assert "restartDelay is the kubelet's" in f["notes"][0]


def test_node_proxies_die_on_the_targets_node():
    ambient = next(a for a, e in engines.ENGINES.items() if e == engines.ISTIO_AMBIENT)
    for arch, ns, labels, what in ((ambient, "istio-system", {"app": "ztunnel"}, "ztunnel"),
                                   ("node", "kube-system", {"k8s-app": "cilium-envoy"}, "cilium-envoy")):
        faults, t = exported_faults(ROOT / "experiments" / "proxy-crash.yaml", arch)
        (f,) = faults.exported
        (kill,) = (t[n]["podChaos"] for n in f["templates"])
        assert kill["action"] == "pod-kill" and kill["selector"] == {
            "namespaces": [ns], "labelSelectors": labels, "nodeSelectors": {engines.NODE_LABEL: "n2"}}
        assert f["proxies"] == [f"{what} on n2"]
        assert f["pods_served"] == ["frontend-1", "cart-0", "payments-1"]  # every pod on n2


def test_a_service_target_kills_the_proxy_on_each_of_its_nodes():
    exp = FIXTURES / "k8s" / "service-crash.yaml"
    faults, t = exported_faults(exp, "node")
    (f,) = faults.exported
    assert f["proxies"] == ["cilium-envoy on n1", "cilium-envoy on n2", "cilium-envoy on n3"]
    assert [t[n]["podChaos"]["selector"]["nodeSelectors"][engines.NODE_LABEL] for n in f["templates"]] == [
        "n1", "n2", "n3"]


def test_the_l7_proxy_is_the_accounts_waypoint():
    ambient = next(a for a, e in engines.ENGINES.items() if e == engines.ISTIO_AMBIENT)
    faults, t = exported_faults(FIXTURES / "k8s" / "l7-crash.yaml", ambient)
    (f,) = faults.exported
    assert f["proxies"] == ["waypoint-backend"] and f["pods_served"] == ["api-0", "api-1", "db-0"]
    (kill,) = (t[n]["podChaos"] for n in f["templates"])
    assert kill["selector"]["labelSelectors"] == {"gateway.networking.k8s.io/gateway-name": "waypoint-backend"}
    (audit,) = faults.omitted  # audit has l7: false
    assert "no waypoint serves them" in audit["reason"]
    sidecar_faults, _ = exported_faults(FIXTURES / "k8s" / "l7-crash.yaml", "sidecar")
    assert all("names a waypoint" in o["reason"] for o in sidecar_faults.omitted)


def test_network_faults_hold_both_ways():
    exp = load_experiment(ROOT / "experiments" / "network.yaml")
    faults, t = exported_faults(ROOT / "experiments" / "network.yaml", "sidecar")
    by_index = {f["index"]: f for f in faults.exported}
    drop = t[by_index[0]["templates"][0]]["networkChaos"]
    assert drop["action"] == "loss" and drop["loss"] == {"loss": "20", "correlation": "0"}
    assert drop["direction"] == "both" and drop["target"] == {
        "mode": "all", "selector": {"namespaces": ["tb-network-sidecar"]}}
    node_drop = t[by_index[1]["templates"][0]]["networkChaos"]
    assert node_drop["selector"] == {"namespaces": ["tb-network-sidecar"], "nodeSelectors": {engines.NODE_LABEL: "n3"}}
    assert "fabric" in by_index[1]["notes"][0]
    delay = t[by_index[4]["templates"][0]]["networkChaos"]
    assert delay["delay"] == {"latency": "40ms", "correlation": "0", "jitter": "10ms"}
    assert exp.faults[2].kind == "tcp-reset" and [o["index"] for o in faults.omitted] == [2]


@pytest.mark.parametrize("kind", sorted(chaos.LEFT_OUT))
def test_what_chaos_mesh_cannot_do_is_left_out_with_a_reason(kind):
    from testbed.chaos.kinds import KINDS as FAULT_FIELDS

    assert kind in FAULT_FIELDS
    assert len(chaos.LEFT_OUT[kind]) > 40


def test_no_proxy_no_proxy_fault():
    faults, t = exported_faults(FIXTURES / "k8s" / "service-crash.yaml", "none")
    assert faults.exported == [] and "no proxy" in faults.omitted[0]["reason"] and t == {}
