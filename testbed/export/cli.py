"""The `export` group and the `collect` command (registered in testbed/cli.py). Thin: the
library builds, checks and writes; this talks to people. Nothing here needs root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from . import engines

ARCH_HELP = (f"An architecture to export (repeatable): {', '.join(engines.EXPORTABLE)}. Default: the "
             "experiment's own (those with no production data plane are skipped, and said so), or all for "
             "a cluster spec.")


def _progress(msg: str) -> None:
    click.echo(f"  .. {msg}", err=True)


@click.group(name="export")
def export_group():
    """Carry an experiment to a real cluster: `testbed export k8s EXPERIMENT`."""


@export_group.command(name="k8s")
@click.argument("source", metavar="SPEC|EXPERIMENT", type=click.Path(dir_okay=False))
@click.option("--arch", "archs", multiple=True, metavar="ARCH", help=ARCH_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="The directory to write (default: out/k8s-<name>); one subdirectory per architecture.")
@click.option("--namespace", metavar="NAME", default=None, help="The namespace to run in (default: tb-<name>-<arch>); "
              "with one --arch only.")
@click.option("--image", metavar="IMAGE", default=engines.DEFAULT_IMAGE, show_default=True,
              help="The image that runs the workload agent (any with python3; the agent comes in a ConfigMap).")
@click.option("--force", is_flag=True, help="Replace a previous export in the --out directory.")
@click.option("--json", "as_json", is_flag=True, help="Print export.json (what `testbed collect` reads).")
def export_k8s(source, archs, out_dir, namespace, image, force, as_json):
    """Write SPEC|EXPERIMENT as plain Kubernetes manifests, one directory per architecture,
    ready for `kubectl apply -f`: the workloads (the testbed's own agent), the mesh's
    policy from `calls`, the traffic as Jobs and the faults as a Chaos Mesh Workflow.

    \b
      sidecar -> Istio sidecars: STRICT mTLS, an AuthorizationPolicy per service
      ztunnel -> Istio ambient: ztunnel, a waypoint per service account
      node    -> Cilium's per-node Envoy: L7 CiliumNetworkPolicy, mutual authentication
      none    -> the workloads alone
    node-sa, and ambient's per-workload micro-proxy, have no production
    data plane: refused.

    Every manifest is checked before anything is written: its authorization must be the
    testbed's relation (docs/kubernetes.md). Run it, then `testbed collect DIR`."""
    from .bundle import build, write

    bundle = build(source, list(archs), namespace, image)
    out = write(bundle, out_dir or f"out/k8s-{bundle.name}", force)
    if as_json:
        click.echo((out / "export.json").read_text(), nl=False)
        return
    for arch, reason in bundle.left_out.items():
        click.echo(f"{arch}: not exported: {reason}")
    for arch, a in bundle.archs.items():
        counts = {}
        for docs in a.files.values():
            for d in docs:
                counts[d["kind"]] = counts.get(d["kind"], 0) + 1
        click.echo(f"{out}/{arch}: {a.site.engine} in namespace {a.site.namespace}: "
                   + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
        for f in a.faults.exported if a.faults else []:
            click.echo(f"  fault {f['index']} at {f['at']:g}s: {f['description']} ({f['chaos']})")
            for note in f["notes"]:
                click.echo(f"    note: {note}")
        for f in a.faults.omitted if a.faults else []:
            click.echo(f"  fault {f['index']} left out ({f['kind']} on {f['target']['kind']} "
                       f"{f['target']['name']}): {f['reason']}")
    first = next(iter(bundle.archs.values()), None)
    if first:
        d, ns = f"{out}/{first.site.arch}", first.site.namespace
        steps = [f"kubectl apply -f {d}", f"kubectl -n {ns} wait --for=condition=Available deployment --all"]
        if bundle.experiment:
            steps += [f"kubectl apply -f {d}/run", f"kubectl -n {ns} wait --for=condition=Complete job --all "
                      f"--timeout={int(bundle.experiment.duration) + 600}s", f"testbed collect {out}"]
        click.echo(f"\nnext: nodes labelled {engines.NODE_LABEL}=<spec node> (kind create cluster --config "
                   f"{out}/kind.yaml), the mesh and Chaos Mesh installed (docs/kubernetes.md), then:\n  "
                   + "\n  ".join(steps))


@click.command(name="collect")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--arch", "archs", multiple=True, metavar="ARCH",
              help="Only this exported architecture (repeatable; default: every one that ran).")
@click.option("--context", metavar="NAME", default=None,
              help="The kubectl context of the cluster (default: the current one).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Where the journal goes (default: DIR/journal.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the journal as JSON.")
def collect_cmd(directory, archs, context, out_file, as_json):
    """Read the run of an exported experiment (DIR, from `testbed export k8s`) back from the
    cluster with kubectl: the traffic Jobs' records and Chaos Mesh's timeline, into a
    journal in the testbed's format, marked `"engine": "kubernetes"`."""
    from .collect import collect, kubectl_runner

    journal = collect(directory, list(archs), kubectl_runner(context), progress=_progress)
    path = Path(out_file or Path(directory) / "journal.json")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(journal, indent=1) + "\n")
    os.replace(tmp, path)
    if as_json:
        click.echo(json.dumps(journal, indent=1))
        return
    for arch, a in journal["architectures"].items():
        t = a["traffic"]
        click.echo(f"{arch} ({a['dataplane']}): {a['requests']} requests of {t['expected_requests']} expected, "
                   f"{t['pods']} traffic pods started within {t['skew_s']:g}s; clean window "
                   f"{a['clean_after']['failed']}/{a['clean_after']['requests']} failed")
        for f in a["faults"]:
            label = f"{f['kind']} {f['target']['kind']}={f['target']['name']}"
            if f.get("omitted"):
                click.echo(f"  {label:<34} left out")
                continue
            ttr = f["time_to_recover"]
            click.echo(f"  {label:<34} at {f['at']:g}s ({f['details']['timing']}): {f['flows_affected']}/"
                       f"{f['flows_total']} flows, {f['requests_failed']} requests failed, recovered "
                       + (f"after {ttr:g}s" if ttr is not None else "-"))
        for w in t["warnings"]:
            click.echo(f"  warning: {w}")
    click.echo(f"\nwritten: {path}")
