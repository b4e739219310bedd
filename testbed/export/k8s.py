"""The workloads, as the Kubernetes Python client's models: a Namespace, a ServiceAccount per
account, the workload agent in a ConfigMap, a Deployment and a Service per service. The same
agent as on one machine answers with its pod's name; a stock Python image runs it, so a
cluster needs nothing built or pushed.

Placement follows the spec: nodes carry the label `testbed.io/node=<spec node>`, and each
service's replicas spread evenly over its own nodes (required node affinity plus a topology
spread of skew 1), as the testbed's round-robin does; which replica lands where may differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client as k

from ..cluster import agent
from . import engines
from .engines import Site

AGENT_CONFIGMAP = "testbed-agent"
AGENT_DIR = "/opt/testbed"
TRAFFIC_CLIENT = Path(__file__).resolve().parent / "traffic_client.py"
UNPRIVILEGED = 65534  # nobody: the agent needs no privilege


@dataclass(frozen=True)
class MeshHooks:
    """What a data plane adds to the plain workloads: namespace labels (enrolment), pod
    annotations per role, and labels on each Service."""

    namespace_labels: dict = field(default_factory=dict)
    workload_annotations: dict = field(default_factory=dict)
    traffic_annotations: dict = field(default_factory=dict)
    service_labels: dict = field(default_factory=dict)  # service -> extra labels


def to_dict(model) -> dict:
    return k.ApiClient().sanitize_for_serialization(model)


def meta(site: Site, name: str, labels: dict | None = None, annotations: dict | None = None,
         namespaced: bool = True) -> k.V1ObjectMeta:
    base = {engines.EXPERIMENT_LABEL: engines.dns_label(site.name), engines.ARCH_LABEL: site.arch}
    return k.V1ObjectMeta(name=name, namespace=site.namespace if namespaced else None,
                          labels={**base, **(labels or {})}, annotations=annotations or None)


def placement(site: Site, service: str, labels: dict) -> tuple[k.V1Affinity, list]:
    """Pods of `service` (selected by `labels`) on the service's own nodes, evenly spread."""
    svc = site.spec.service(service)
    nodes = list(svc.nodes or site.spec.nodes)
    term = k.V1NodeSelectorTerm(match_expressions=[
        k.V1NodeSelectorRequirement(key=engines.NODE_LABEL, operator="In", values=nodes)])
    affinity = k.V1Affinity(node_affinity=k.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k.V1NodeSelector(node_selector_terms=[term])))
    spread = [k.V1TopologySpreadConstraint(max_skew=1, topology_key=engines.NODE_LABEL,
                                           when_unsatisfiable="DoNotSchedule",
                                           label_selector=k.V1LabelSelector(match_labels=labels))]
    return affinity, spread


def pod_security(port: int | None = None) -> k.V1PodSecurityContext:
    """Unprivileged; a port below 1024 is opened by the namespaced sysctl, not by root."""
    sysctls = [k.V1Sysctl(name="net.ipv4.ip_unprivileged_port_start", value=str(port))] \
        if port is not None and port < 1024 else None
    return k.V1PodSecurityContext(run_as_non_root=True, run_as_user=UNPRIVILEGED, run_as_group=UNPRIVILEGED,
                                  sysctls=sysctls, seccomp_profile=k.V1SeccompProfile(type="RuntimeDefault"))


def container_security() -> k.V1SecurityContext:
    return k.V1SecurityContext(allow_privilege_escalation=False, read_only_root_filesystem=True,
                               capabilities=k.V1Capabilities(drop=["ALL"]))


def agent_volumes() -> tuple[list, list]:
    """The ConfigMap with the scripts, and a writable /tmp (the agent's control socket)."""
    volumes = [k.V1Volume(name="testbed", config_map=k.V1ConfigMapVolumeSource(name=AGENT_CONFIGMAP)),
               k.V1Volume(name="tmp", empty_dir=k.V1EmptyDirVolumeSource())]
    mounts = [k.V1VolumeMount(name="testbed", mount_path=AGENT_DIR, read_only=True),
              k.V1VolumeMount(name="tmp", mount_path="/tmp")]
    return volumes, mounts


def _field_env(name: str, path: str) -> k.V1EnvVar:
    return k.V1EnvVar(name=name, value_from=k.V1EnvVarSource(field_ref=k.V1ObjectFieldSelector(field_path=path)))


def deployment(site: Site, service: str, hooks: MeshHooks) -> k.V1Deployment:
    svc = site.spec.service(service)
    labels = engines.workload_labels(service)
    affinity, spread = placement(site, service, engines.selector_labels(service))
    volumes, mounts = agent_volumes()
    container = k.V1Container(
        name="agent", image=site.image, image_pull_policy="IfNotPresent",
        command=["python", "-I", "-S", f"{AGENT_DIR}/agent.py", "--run", "k8s", "--pod", "$(POD_NAME)",
                 "--service", service, "--node", "$(NODE_NAME)", "--port", str(svc.port),
                 "--control", "/tmp/agent.sock"],
        env=[_field_env("POD_NAME", "metadata.name"), _field_env("NODE_NAME", "spec.nodeName")],
        ports=[k.V1ContainerPort(name="http", container_port=svc.port, protocol="TCP")],
        readiness_probe=k.V1Probe(http_get=k.V1HTTPGetAction(path="/", port=svc.port), period_seconds=2),
        resources=k.V1ResourceRequirements(requests={"cpu": "10m", "memory": "32Mi"}),
        security_context=container_security(), volume_mounts=mounts)
    template = k.V1PodTemplateSpec(
        metadata=k.V1ObjectMeta(labels={**labels, engines.EXPERIMENT_LABEL: engines.dns_label(site.name)},
                                annotations=dict(hooks.workload_annotations) or None),
        spec=k.V1PodSpec(service_account_name=svc.service_account, automount_service_account_token=False,
                         affinity=affinity, topology_spread_constraints=spread, containers=[container],
                         security_context=pod_security(svc.port), volumes=volumes))
    return k.V1Deployment(api_version="apps/v1", kind="Deployment", metadata=meta(site, service, labels),
                          spec=k.V1DeploymentSpec(replicas=svc.replicas, template=template,
                                                  selector=k.V1LabelSelector(
                                                      match_labels=engines.selector_labels(service))))


def service_object(site: Site, service: str, hooks: MeshHooks) -> k.V1Service:
    svc = site.spec.service(service)
    labels = {**engines.workload_labels(service), **hooks.service_labels.get(service, {})}
    return k.V1Service(api_version="v1", kind="Service", metadata=meta(site, service, labels),
                       spec=k.V1ServiceSpec(selector=engines.selector_labels(service), ports=[
                           k.V1ServicePort(name="http", port=svc.port, target_port=svc.port, protocol="TCP",
                                           app_protocol="http")]))


def namespace(site: Site, hooks: MeshHooks) -> dict:
    return to_dict(k.V1Namespace(api_version="v1", kind="Namespace",
                                 metadata=meta(site, site.namespace, hooks.namespace_labels, namespaced=False)))


def workloads(site: Site, hooks: MeshHooks) -> list[dict]:
    """Everything but the namespace: accounts, the agent's ConfigMap, Deployments, Services."""
    out = [k.V1ServiceAccount(api_version="v1", kind="ServiceAccount", metadata=meta(site, sa),
                              automount_service_account_token=False)
           for sa in site.spec.service_accounts()]
    out.append(k.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=meta(site, AGENT_CONFIGMAP), data={
        "agent.py": Path(agent.__file__).read_text(), "traffic.py": TRAFFIC_CLIENT.read_text()}))
    for svc in site.spec.services:
        out += [deployment(site, svc.name, hooks), service_object(site, svc.name, hooks)]
    return [to_dict(o) for o in out]
