"""`testbed`: the command line. Thin: it parses, calls the library, and talks to people
(progress on stderr, results on stdout, `--json` where scripts read the output)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import doctor as doctor_mod
from . import runner, spec
from .errors import NotRootError, SpecError, TestbedError
from .redirect import ebpf as ebpf_redirect
from .traffic import matrix

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "experiments" / "clusters" / "shop.yaml"


def _progress(msg: str) -> None:
    click.echo(f"  .. {msg}", err=True)


class Group(click.Group):
    """Turns the library's errors into one clear message and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NotRootError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except SpecError as exc:
            click.echo("error: the spec is not valid:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(1)
        except TestbedError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: everything this command had created was removed", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """A testbed for service-mesh data planes: a cluster of network namespaces, real Envoy in
    the chosen architecture, real eBPF or iptables redirection, faults and their blast radius.

    \b
    Typical session (as root):
      testbed doctor                       # can this machine run it?
      testbed up experiments/clusters/shop.yaml
      testbed status                       # pods, services, addresses
      testbed exec frontend-0 -- curl -s http://198.18.128.2:8080/
      testbed down
    """


run_option = click.option("--run", "run_id", metavar="ID",
                          help="The run to act on (may be left out when one run exists).")


@main.command()
def doctor():
    """Check that this machine can run the testbed: root, kernel features, bcc, Envoy, tools."""
    failed = 0
    for check in doctor_mod.run_checks():
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            failed += 1
            click.echo(f"       hint: {check.hint}")
    if failed:
        click.echo(f"{failed} check(s) failed", err=True)
        sys.exit(1)
    click.echo("all checks passed")


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
def validate(spec_file):
    """Check a cluster spec or an experiment without creating anything (no root needed)."""
    from . import experiment, yamlsrc

    data = yamlsrc.load(spec_file)
    if isinstance(data, dict) and ("faults" in data or "cluster" in data):
        exp = experiment.load_experiment(spec_file)
        n = len(exp.faults)
        click.echo(f"{spec_file}: valid experiment: {n} fault{'' if n == 1 else 's'} ("
                   f"{', '.join(sorted({f.kind for f in exp.faults}))}) in {len(exp.architectures)} "
                   f"architectures, {exp.duration:g}s of traffic at {exp.rate:g}/s per flow")
        return
    s = spec.load_cluster(spec_file)
    click.echo(f"{spec_file}: valid: {len(s.nodes)} nodes, {len(s.services)} services, "
               f"{len(s.pods)} pods, {len(s.calls)} calls")


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--arch", type=click.Choice(runner.ARCHITECTURES), default="none", show_default=True,
              help="Where the L7 proxies sit (none = no mesh, the baseline).")
@click.option("--redirect", type=click.Choice(runner.REDIRECTS), default=runner.DEFAULT_REDIRECT,
              show_default=True,
              help="How app traffic reaches its proxy (unused by --arch none).")
@click.option("--run-id", metavar="ID", help="Name the run (1-10 of a-z0-9); default: random.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's status as JSON.")
def up(spec_file, arch, redirect, run_id, as_json):
    """Build the cluster described by SPEC_FILE and leave it running."""
    st = runner.up(spec_file, arch, redirect, run_id, progress=_progress)
    if as_json:
        click.echo(json.dumps(st, indent=1))
    else:
        click.echo(f"run {st['run']} is up: {len(st['nodes'])} nodes, {len(st['pods'])} pods, "
                   f"{len(st['services'])} services in {st['timings'].get('up', 0):.2f}s")
        click.echo(f"  testbed status --run {st['run']}    testbed down --run {st['run']}")


@main.command()
@run_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(run_id, as_json):
    """Show a run: nodes, pods, services, proxies."""
    runner.require_root()
    st = runner.status(run_id)
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    click.echo(f"run {st['run']} ({st['status']}), architecture {st['architecture']}, "
               f"redirect {st['redirect']}, spec {st['spec']}")
    click.echo("nodes:")
    for n in st["nodes"]:
        click.echo(f"  {n['name']:<14} {n['ip']:<15} pods {n['podCIDR']:<16} netns {n['netns']}")
    click.echo("services:")
    for s in st["services"]:
        click.echo(f"  {s['name']:<14} {s['vip']}:{s['port']:<6} sa {s['serviceAccount']:<12} "
                   f"pods {', '.join(s['pods'])}")
    click.echo("pods:")
    for p in st["pods"]:
        click.echo(f"  {p['name']:<14} {p['ip']:<15} node {p['node']:<8} sa {p['serviceAccount']:<12} "
                   f"pid {p['pid']}")
    if st["proxies"]:
        click.echo("proxies:")
    for p in st["proxies"]:
        click.echo(f"  {p['name']:<24} {p['role']:<8} {p['state'] or '?':<9} pid {p['pid']!s:<8} "
                   f"restarts {p['restarts']!s:<3} keys {','.join(p['identities']):<16} "
                   f"serves {','.join(p['serves'])}")


@main.command(context_settings={"ignore_unknown_options": True})
@run_option
@click.argument("pod")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec(run_id, pod, command):  # noqa: A001 - the command's name
    """Run COMMAND inside POD's network namespace and cgroup; exits with COMMAND's code.

    \b
    Example: testbed exec frontend-0 -- curl -s http://198.18.128.2:8080/
    """
    runner.require_root()
    cluster = runner.cluster_of(run_id)
    try:
        cluster.plan.pod(pod)
    except KeyError as exc:
        raise TestbedError(exc.args[0]) from None
    try:
        code = cluster.exec(pod, list(command))
    except FileNotFoundError:
        raise TestbedError(f"command not found: {command[0]}") from None
    sys.exit(code)


@main.command(name="proxy-config")
@run_option
@click.argument("name")
def proxy_config(run_id, name):
    """Print the rendered Envoy config of the proxy serving pod NAME (or of proxy NAME)."""
    runner.require_root()
    mesh = runner.mesh_of(run_id)
    proxy = runner.proxy_for(mesh, name)
    click.echo(f"# {proxy.name} ({proxy.role}) in {proxy.netns}, serving {', '.join(proxy.serves)}", err=True)
    click.echo(mesh.config_path(proxy).read_text(), nl=False)


@main.command()
@run_option
@click.argument("name")
@click.option("--strategy", type=click.Choice(["hot-restart", "restart"]), default="hot-restart",
              show_default=True, help="Hand listeners over to the new process, or stop then start.")
def upgrade(run_id, name, strategy):
    """Replace the proxy serving pod NAME (or proxy NAME) in place; returns when it is ready."""
    r = runner.upgrade(run_id, name, strategy)
    click.echo(f"{r['proxy']}: {strategy} done in {r['seconds']:.2f}s (pid {r['pid']}, epoch {r['epoch']})")


@main.group()
def bpf():
    """The eBPF redirection's programs and counters."""


@bpf.command(name="stats")
@run_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bpf_stats(run_id, as_json):
    """Per-pod counters: connections redirected to a proxy or balanced to a pod, original
    destinations answered, inbound connections steered, bytes short-circuited."""
    runner.require_root()
    cluster = runner.cluster_of(run_id)
    st = ebpf_redirect.stats(cluster.plan)
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    cols = ["redirected", "balanced", "orig_dst", "inbound_steered", "inbound_dropped", "sc_sockets", "sc_msgs",
            "sc_bytes"]
    click.echo(f"{'pod':<14} " + " ".join(f"{c:>15}" for c in cols))
    for name, row in st["pods"].items():
        click.echo(f"{name:<14} " + " ".join(f"{row.get(c, 0):>15}" for c in cols))
    for name, row in st["nodes"].items():
        click.echo(f"{'node ' + name:<14} " + " ".join(f"{row.get(c, 0):>15}" for c in cols))


@main.command(name="run")
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@click.option("--arch", "archs", multiple=True, type=click.Choice(runner.ARCHITECTURES),
              help="Only these of the experiment's architectures (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where journal.json and the timelines go (default: out/<experiment>-<time>).")
@click.option("--json", "as_json", is_flag=True, help="Print the journal as JSON.")
def run_cmd(experiment_file, archs, out_dir, as_json):
    """Run a chaos experiment in each architecture: steady traffic, faults injected and
    reverted on schedule, the blast radius of each, side by side.

    \b
    Fault kinds: proxy-crash, proxy-hang, upgrade, identity-compromise, wasm,
    drop, tcp-reset, delay (docs/experiments.md). Ready-made: experiments/*.yaml.
    Check a file first with `testbed validate EXPERIMENT_FILE` (no root needed)."""
    from .chaos import run as chaos_run
    from .experiment import load_experiment

    exp = load_experiment(experiment_file)  # a bad experiment fails here, before anything exists
    runner.require_root()
    out_dir = out_dir or f"out/{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    journal = chaos_run.run_experiment(exp, Path(experiment_file).read_text(), list(archs) or None, out_dir,
                                       progress=_progress)
    if as_json:
        click.echo(json.dumps(journal, indent=1))
        return
    click.echo("\n".join(chaos_run.table(journal)))
    click.echo(f"\nwritten: {out_dir}/journal.json and timeline-<arch>.csv")


@main.group()
def bench():
    """Benchmarks that compare variants inside one run."""


@bench.command(name="redirect")
@click.argument("spec_file", type=click.Path(dir_okay=False),
                default=str(DEFAULT_SPEC.parent / "bench.yaml"))
@click.option("--arch", "archs", multiple=True, type=click.Choice(runner.ARCHITECTURES[1:]),
              help="Mesh architectures to include (repeatable; default: all). `none` is always measured.")
@click.option("--repeat", default=3, show_default=True, help="Repetitions of each variant (interleaved).")
@click.option("--seconds", default=5.0, show_default=True, help="Measured seconds per repetition.")
@click.option("--warmup", default=1.0, show_default=True, help="Seconds trimmed at the start of each.")
@click.option("--rate", default=200.0, show_default=True, help="Requests per second offered.")
@click.option("--keepalive/--no-keepalive", default=True, show_default=True,
              help="Reuse connections, or open one per request (where connect-time redirection costs show).")
@click.option("--seed", default=1, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for redirect.json and the plots (default: out/bench-redirect-<time>).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result.")
def bench_redirect(spec_file, archs, repeat, seconds, warmup, rate, keepalive, seed, out_dir, as_json):
    """eBPF against iptables redirection, for every architecture, in one run: latency
    percentiles and throughput with 95 % confidence intervals, and ebpf/iptables ratios."""
    from .bench import redirect as bench_mod

    runner.require_root()
    out_dir = out_dir or f"out/bench-redirect-{time.strftime('%Y%m%d-%H%M%S')}"
    result = bench_mod.run(spec_file, list(archs) or list(runner.ARCHITECTURES[1:]), list(runner.REDIRECTS),
                           repeat, seconds, rate, warmup, keepalive, seed, out_dir, progress=_progress)
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        click.echo("\n".join(bench_mod.table(result)))
        click.echo(f"\nwritten: {out_dir}/redirect.json, redirect-p50.svg, redirect-p99.svg")


@main.command(name="matrix")
@run_option
@click.option("--count", default=6, show_default=True, help="Calls per (pod, service).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def matrix_cmd(run_id, count, as_json):
    """Every pod calls every service it calls (by VIP); show which replica answered."""
    runner.require_root()
    cluster = runner.cluster_of(run_id)
    edges = matrix.probe(cluster, cluster.plan, count=count)
    _print_matrix(edges, as_json)
    if not all(e.ok for e in edges):
        sys.exit(1)


def _print_matrix(edges, as_json=False):
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in edges], indent=1))
        return
    click.echo(f"{'from':<14} {'to':<12} answered by")
    for e in edges:
        answers = ", ".join(f"{pod} x{n}" for pod, n in sorted(e.answers.items()))
        errors = ", ".join(f"{err} x{n}" for err, n in sorted(e.errors.items()))
        click.echo(f"{e.pod:<14} {e.service:<12} {answers}{'  FAILED: ' + errors if errors else ''}")


@main.command()
@run_option
def down(run_id):
    """Tear a run down: processes, namespaces, cgroups and its run directory."""
    removed = runner.down(run_id)
    click.echo(f"removed {len(removed)} objects")


@main.command()
@click.option("--run", "run_id", metavar="ID", help="Only this run's objects (default: every run's).")
@click.option("-v", "--verbose", is_flag=True, help="List every object removed.")
def clean(run_id, verbose):
    """Remove everything carrying the testbed's tag, even when a run's state is gone
    (e.g. after `testbed up` was killed)."""
    removed = runner.clean(run_id)
    for item in removed if verbose else []:
        click.echo(f"  removed {item}")
    click.echo(f"removed {len(removed)} objects" if removed else "nothing to remove")


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False), default=str(DEFAULT_SPEC))
@click.option("--count", default=6, show_default=True, help="Calls per (pod, service).")
@click.option("--arch", "archs", multiple=True, type=click.Choice(runner.ARCHITECTURES),
              help="Architectures to compare (repeatable; default: all five).")
def demo(spec_file, count, archs):
    """Build the cluster in each architecture, one after the other: show who answered whom,
    then compare what each mesh costs (proxies, memory as PSS, keys per proxy, set-up time)
    and whether every call still works. Everything is torn down."""
    from .measure.memory import pss_kib

    rows = []
    for arch in archs or runner.ARCHITECTURES:
        st = runner.up(spec_file, arch, progress=_progress)
        try:
            cluster = runner.cluster_of(st["run"])
            edges = matrix.probe(cluster, cluster.plan, count=count)
            if arch == "none":
                click.echo(f"run {st['run']}: {len(st['nodes'])} nodes, {len(st['pods'])} pods, "
                           f"{len(st['services'])} services, no mesh\n")
                _print_matrix(edges)
                click.echo("")
            pss = sum(pss_kib(p["pid"]) for p in st["proxies"]) / 1024
            keys = max((len(p["identities"]) for p in st["proxies"]), default=0)
            rows.append((arch, len(st["proxies"]), pss, keys, st["timings"]["up"],
                         sum(e.ok for e in edges), len(edges)))
        finally:
            runner.down(st["run"])
            _progress(f"run {st['run']} torn down")
    click.echo(f"{'architecture':<13} {'proxies':>7} {'PSS MiB':>8} {'max keys/proxy':>15} {'up s':>6} {'calls ok':>9}")
    for arch, n, pss, keys, up_s, ok, total in rows:
        click.echo(f"{arch:<13} {n:>7} {pss:>8.1f} {keys:>15} {up_s:>6.2f} {f'{ok}/{total}':>9}")
    click.echo("\nnext: `testbed run experiments/blast-radius.yaml` for faults and their blast radius")
    if any(ok != total for *_, ok, total in rows):
        sys.exit(1)


from .export.cli import collect_cmd, export_group  # noqa: E402 - registered last, beside the other commands

main.add_command(export_group)
main.add_command(collect_cmd)


if __name__ == "__main__":
    main()
