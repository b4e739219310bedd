"""The experiment's traffic as Kubernetes Jobs: one per calling service, Indexed, one pod per
replica, each the testbed pod `<service>-<index>` calling every service it calls at the
experiment's rate for its duration (traffic_client.py). The pods run as the caller's
service account, so the mesh sees the identity the policy names, and spread over the
caller's nodes like its replicas."""

from __future__ import annotations

from kubernetes import client as k

from ..cluster.plan import make_plan
from ..experiment import Experiment
from ..experiment_runner import CLEAN_WINDOW
from ..traffic.driver import STREAM_INTERVAL
from ..traffic.driver import flows as plan_flows
from . import engines
from .engines import Site
from .k8s import AGENT_DIR, MeshHooks, agent_volumes, container_security, meta, placement, pod_security, to_dict

READY_WAIT = 120.0  # seconds a Job waits for its targets before it starts anyway


def job_name(service: str) -> str:
    return engines.dns_label("traffic", service)


def job(site: Site, exp: Experiment, service: str, hooks: MeshHooks) -> k.V1Job:
    svc = site.spec.service(service)
    labels = engines.traffic_labels(service)
    args = ["python", "-I", "-S", f"{AGENT_DIR}/traffic.py", "--service", service,
            "--rate", f"{exp.rate:g}", "--duration", f"{exp.duration:g}", "--interval", f"{STREAM_INTERVAL:g}",
            "--clean", f"{CLEAN_WINDOW:g}", "--wait", f"{READY_WAIT:g}"]
    for target in site.spec.calls_from(service):
        args += ["--target", f"{target}=http://{target}:{site.spec.service(target).port}/"]
    affinity, spread = placement(site, service, labels)
    volumes, mounts = agent_volumes()
    container = k.V1Container(name="client", image=site.image, image_pull_policy="IfNotPresent", command=args,
                              resources=k.V1ResourceRequirements(requests={"cpu": "50m", "memory": "64Mi"}),
                              security_context=container_security(), volume_mounts=mounts)
    template = k.V1PodTemplateSpec(
        metadata=k.V1ObjectMeta(labels={**labels, engines.EXPERIMENT_LABEL: engines.dns_label(site.name)},
                                annotations=dict(hooks.traffic_annotations) or None),
        spec=k.V1PodSpec(service_account_name=svc.service_account, automount_service_account_token=False,
                         restart_policy="Never", affinity=affinity, topology_spread_constraints=spread,
                         containers=[container], security_context=pod_security(), volumes=volumes))
    deadline = int(READY_WAIT + exp.duration + CLEAN_WINDOW + 120)
    return k.V1Job(api_version="batch/v1", kind="Job", metadata=meta(site, job_name(service), labels),
                   spec=k.V1JobSpec(completion_mode="Indexed", completions=svc.replicas, parallelism=svc.replicas,
                                    backoff_limit=0, active_deadline_seconds=deadline, template=template))


def callers(site: Site) -> list[str]:
    return [s.name for s in site.spec.services if site.spec.calls_from(s.name)]


def jobs(site: Site, exp: Experiment, hooks: MeshHooks) -> list[dict]:
    return [to_dict(job(site, exp, service, hooks)) for service in callers(site)]


def flows(site: Site) -> list[tuple[str, str]]:
    """(source pod, destination service): every pair the Jobs drive, the same as on one machine."""
    return plan_flows(make_plan(site.spec, "k8s"))
