"""`testbed export k8s`: everything one experiment (or cluster) becomes on Kubernetes, one
directory per architecture, built in memory and checked before anything is written:

    DIR/export.json            what `testbed collect` needs (the spec, flows, faults, namespaces)
    DIR/kind.yaml              a kind cluster with one labelled worker per spec node
    DIR/<arch>/00-namespace.yaml, 10-workloads.yaml, 20-mesh.yaml     `kubectl apply -f DIR/<arch>`
    DIR/<arch>/run/30-traffic.yaml, 40-faults.yaml                    `kubectl apply -f DIR/<arch>/run`

The run is a subdirectory so that it starts only when asked, after the workloads are ready."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import spec as spec_mod
from .. import yamlsrc
from ..errors import TestbedError
from ..experiment import Experiment, load_experiment
from ..experiment_runner import CLEAN_WINDOW
from ..journal.writer import git_sha
from ..traffic.driver import STREAM_INTERVAL
from . import authz, chaos, cilium, engines, istio, k8s, traffic
from .engines import CILIUM, ISTIO_AMBIENT, ISTIO_SIDECAR, Site

EXPORT_VERSION = 1
META = "export.json"


@dataclass
class ArchExport:
    site: Site
    files: dict[str, list[dict]]  # relative path -> documents
    faults: chaos.Faults | None = None
    jobs: list[str] = field(default_factory=list)


@dataclass
class Bundle:
    source: str
    name: str
    spec: spec_mod.ClusterSpec
    spec_text: str
    experiment: Experiment | None
    archs: dict[str, ArchExport]
    left_out: dict[str, str]  # architecture -> why it was not exported

    def meta(self) -> dict:
        exp = self.experiment
        out = {"testbedExport": EXPORT_VERSION, "name": self.name, "source": self.source,
               "experiment": exp.name if exp else None, "git": _git(), "spec": self.spec_text,
               "cluster": exp.cluster_text if exp else self.spec_text, "leftOut": self.left_out,
               "architectures": {}}
        if exp:
            out |= {"seed": exp.seed,
                    "affected": {"errorPoints": exp.error_points, "latencyFactor": exp.latency_factor},
                    "traffic": {"rate": exp.rate, "duration": exp.duration, "longLivedInterval": STREAM_INTERVAL,
                                "clean": CLEAN_WINDOW}}
        for arch, a in self.archs.items():
            out["architectures"][arch] = {
                "engine": a.site.engine, "namespace": a.site.namespace, "dir": arch, "jobs": a.jobs,
                "flows": [list(f) for f in traffic.flows(a.site)],
                "workflow": chaos.WORKFLOW if a.faults and a.faults.exported else None,
                "faults": a.faults.exported if a.faults else [], "omitted": a.faults.omitted if a.faults else []}
        return out


def _git() -> str | None:
    try:
        return git_sha()
    except OSError:  # no git here (an unpacked release): the journal says so with null
        return None


def load_source(path: str | Path) -> tuple[spec_mod.ClusterSpec, Experiment | None, str]:
    """A cluster spec or an experiment (told apart as `testbed validate` does), and its text."""
    data = yamlsrc.load(path)
    text = Path(path).read_text()
    if isinstance(data, dict) and ("faults" in data or "cluster" in data):
        exp = load_experiment(path)
        return exp.cluster, exp, text
    return spec_mod.load_cluster(path), None, text


def choose_archs(requested: list[str], exp: Experiment | None) -> tuple[list[str], dict[str, str]]:
    """The architectures to export, and those left out with the reason. Asking for one that
    cannot be exported is an error; the experiment's own list just skips those."""
    for arch in requested:
        engines.engine_of(arch)  # raises with the reason
        if exp and arch not in exp.architectures:
            raise TestbedError(f"architecture {arch!r} is not in the experiment ({', '.join(exp.architectures)})")
    wanted = requested or (list(exp.architectures) if exp else list(engines.EXPORTABLE))
    left_out = {a: engines.REFUSED.get(a, "no data plane") for a in wanted if a not in engines.ENGINES}
    return [a for a in wanted if a in engines.ENGINES], left_out


def build_arch(site: Site, exp: Experiment | None) -> ArchExport:
    if site.engine in (ISTIO_SIDECAR, ISTIO_AMBIENT):
        hooks, mesh = istio.hooks(site), istio.policies(site)
    elif site.engine == CILIUM:
        hooks, mesh = cilium.hooks(site), cilium.policies(site)
    else:
        hooks, mesh = k8s.MeshHooks(), []
    files = {"00-namespace.yaml": [k8s.namespace(site, hooks)], "10-workloads.yaml": k8s.workloads(site, hooks)}
    if mesh:
        files["20-mesh.yaml"] = mesh
    out = ArchExport(site, files)
    if mesh:
        wrong = authz.differences(files["00-namespace.yaml"] + files["10-workloads.yaml"] + mesh, site.engine,
                                  site.spec)
        if wrong:  # a bug here, never the user's: refuse rather than export a different policy
            raise TestbedError(f"the {site.arch} export's authorization differs from the testbed's: "
                               + "; ".join(wrong))
    if exp is not None:
        out.files["run/30-traffic.yaml"] = traffic.jobs(site, exp, hooks)
        out.jobs = [traffic.job_name(s) for s in traffic.callers(site)]
        out.faults = chaos.faults(site, exp)
        workflow = out.faults.workflow(site)
        if workflow:
            out.files["run/40-faults.yaml"] = [workflow]
    return out


def build(source: str | Path, archs: list[str] = (), namespace: str | None = None,
          image: str = engines.DEFAULT_IMAGE) -> Bundle:
    spec, exp, text = load_source(source)
    chosen, left_out = choose_archs(list(archs), exp)
    if namespace and len(chosen) > 1:
        raise TestbedError("--namespace names one namespace: export one architecture with it (--arch)")
    name = exp.name if exp else spec.name
    built = {a: build_arch(engines.make_site(spec, name, a, namespace, image), exp) for a in chosen}
    return Bundle(str(source), name, spec, text, exp, built, left_out)


def kind_config(spec: spec_mod.ClusterSpec, cilium_cni: bool) -> dict:
    """A kind cluster: a control plane and one worker per spec node, labelled with it."""
    nodes = [{"role": "control-plane"}] + [{"role": "worker", "labels": {engines.NODE_LABEL: n}} for n in spec.nodes]
    out = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": nodes}
    if cilium_cni:
        out["networking"] = {"disableDefaultCNI": True, "kubeProxyMode": "none"}
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # every object written out in full: no &anchors for people to decode
        return True


def _dump(docs: list[dict], header: str) -> str:
    return f"# {header}\n" + yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                           width=120)


def write(bundle: Bundle, out: str | Path, force: bool = False) -> Path:
    """Write the bundle into `out`, all at once: into a fresh directory renamed into place, so
    a failure leaves nothing half-written. An existing non-empty `out` is replaced only with
    `force`, and only when it holds a previous export."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise TestbedError(f"{out} exists and is not empty (--force replaces a previous export)")
        if not (out / META).exists():
            raise TestbedError(f"{out} does not hold a previous export ({META} is missing): not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for arch, a in bundle.archs.items():
            for rel, docs in a.files.items():
                path = tmp / arch / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_dump(docs, f"testbed export k8s {bundle.source} --arch {arch}: {rel}"))
        engines_used = {a.site.engine for a in bundle.archs.values()}
        (tmp / "kind.yaml").write_text(_dump([kind_config(bundle.spec, False)], "kind create cluster --config"))
        if CILIUM in engines_used:
            (tmp / "kind-cilium.yaml").write_text(_dump([kind_config(bundle.spec, True)], "for Cilium: no default CNI"))
        (tmp / META).write_text(json.dumps(bundle.meta(), indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
