"""`testbed calibrate` and `testbed simulate`: thin commands over calibrate.py and
simulate.py (docs/simulation.md). Neither needs root: calibration reads journals, the
simulation runs nothing on the machine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..mesh.topology import ARCHITECTURES


def _progress(msg: str) -> None:
    click.echo(f"  .. {msg}", err=True)


@click.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default="calibration.json", show_default=True,
              help="Where the calibration goes.")
@click.option("--prior", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A calibration to take what these journals do not inform from (default: the one shipped).")
@click.option("--no-prior", is_flag=True, help="Take nothing from another calibration.")
@click.option("--memory-from", "memory_from", multiple=True, type=click.Path(exists=True),
              help="Fit the proxies' private memory and config bytes from these runs only (repeatable; each among "
                   "DIRS; default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate(dirs, out_file, prior, no_prior, memory_from, as_json):
    """Fit the simulation's parameters from the journals of real runs (DIRS: run directories
    or journal files): proxy memory (a base plus a cost per listener, cluster, endpoint,
    route and secret, and the shared Envoy image), config bytes, CPU per 1,000 requests/s
    by role, latency per proxy crossed by role and redirection, restart and hot-restart
    times, and what each fault kind does to the flows through a proxy. Each parameter comes
    with its fit quality and its data points; what these journals do not inform comes from
    the prior, and says so.

    \b
    Ready-made calibration runs: experiments/calibration/*.yaml (docs/simulation.md)."""
    from .calibrate import calibrate as fit
    from .calibrate import write
    from .params import DEFAULT_PATH
    from .summary import calibration_lines

    doc = fit(list(dirs), None if no_prior else (prior or DEFAULT_PATH), command=_command(),
              memory_from=list(memory_from) or None)
    path = write(doc, out_file)
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo("\n".join(calibration_lines(doc)))
    click.echo(f"\nwritten: {path}\nnext: testbed simulate EXPERIMENT --calibration {path}")


def _command() -> str:
    import sys

    return " ".join(["testbed", *sys.argv[1:]])


@click.command()
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@click.option("--nodes", type=click.IntRange(1, 100000), help="Nodes of the simulated cluster (default: the spec's).")
@click.option("--pods-per-node", type=click.IntRange(1, 10000),
              help="Pods on every node, spread over the services (default: the spec's replicas).")
@click.option("--services", type=click.IntRange(1, 100000),
              help="Services: the spec's, then copies of the whole application (default: the spec's).")
@click.option("--accounts", type=click.IntRange(1, 100000),
              help="Service accounts spread over the services (default: as the spec, one set per copy).")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="A calibration from `testbed calibrate` (default: the one shipped with the testbed).")
@click.option("--arch", "archs", multiple=True, type=click.Choice(ARCHITECTURES),
              help="Only these of the experiment's architectures (repeatable).")
@click.option("--hosts", type=click.Choice(["machine", "node"]), default=None,
              help="What shares one Envoy image in memory: one machine (the testbed; default unscaled) or each "
                   "node (a real cluster; default when scaled).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where journal.json goes (default: out/<experiment>-sim-<time>).")
@click.option("--json", "as_json", is_flag=True, help="Print the journal as JSON.")
def simulate(experiment_file, nodes, pods_per_node, services, accounts, calibration, archs, hosts, out_dir, as_json):
    """Run an experiment (faults, traffic, architectures, cost) as a discrete-event simulation
    calibrated by real runs, on its own cluster or one scaled up beyond what a machine holds
    (--nodes, --pods-per-node, --services, --accounts). Writes a journal like a real run's,
    marked simulated, with the same blast-radius and cost sections: `testbed report OUT`
    draws it and labels it simulated. No root needed.

    \b
    At scale: testbed simulate experiments/at-scale.yaml --nodes 500 --pods-per-node 30 --services 200"""
    from ..experiment import load_experiment
    from ..report.table import cost_table, fault_table
    from .params import load_calibration
    from .placement import Scale
    from .simulate import simulate as run
    from .summary import simulation_lines

    exp = load_experiment(experiment_file)
    params = load_calibration(calibration)
    scale = Scale(nodes, pods_per_node, services, accounts)
    out_dir = Path(out_dir or f"out/{exp.name}-sim-{time.strftime('%Y%m%d-%H%M%S')}")
    journal = run(exp, Path(experiment_file).read_text(), params, scale, hosts, list(archs) or None, out_dir,
                  progress=_progress)
    if as_json:
        click.echo(json.dumps(journal, indent=1))
        return
    click.echo("\n".join(simulation_lines(journal) + [""] + cost_table(journal) + [""] + fault_table(journal)))
    click.echo(f"\nwritten in {out_dir}: journal.json\nnext: testbed report {out_dir}")
