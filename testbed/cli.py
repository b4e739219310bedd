"""`testbed`: the command line. Thin: it parses, calls the library, and talks to people
(progress on stderr, results on stdout, `--json` where scripts read the output)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import doctor as doctor_mod
from . import runner, signals
from .chaos.kinds import KINDS
from .errors import NotRootError, SpecError, TestbedError
from .mesh.upgrades import PROXY_STRATEGIES
from .redirect import ebpf as ebpf_redirect
from .redirect.kinds import DEFAULT_REDIRECT, REDIRECTS
from .traffic import matrix

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "experiments" / "clusters" / "shop.yaml"


def _progress(msg: str) -> None:
    click.echo(f"  .. {msg}", err=True)


class Group(click.Group):
    """Turns the library's errors into one clear message and an exit code."""

    def invoke(self, ctx):
        try:
            with signals.handled():
                return super().invoke(ctx)
        except signals.Interrupted as exc:
            signals.ignore_from_now()
            click.echo(f"interrupted ({exc.args[0].split()[-1]}): what this command had made was removed and what it "
                       f"had measured was written", err=True)
            sys.exit(exc.exit_code)
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
            click.echo("interrupted: what this command had made was removed", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """A testbed for service-mesh data planes: a cluster of network namespaces, real Envoy in
    the chosen architecture, real eBPF or iptables redirection, faults and their blast radius.

    \b
    Typical session (as root; prefix each command with sudo otherwise):
      testbed doctor                       # can this machine run it?
      testbed up experiments/clusters/shop.yaml --arch sidecar
      testbed status                       # pods, services, proxies
      testbed exec frontend-0 -- curl -s http://198.18.128.2:8080/
      testbed down
      testbed run experiments/blast-radius.yaml   # faults, blast radius, a journal

    \b
    Exit codes: 0 done, 1 failed (a clear message says why), 2 usage or not root,
    130/143/129 stopped by SIGINT/SIGTERM/SIGHUP after undoing what it had made.
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
    from .experiment import Experiment
    from .specfile import load_any

    loaded = load_any(spec_file)
    if isinstance(loaded, Experiment):
        exp = loaded
        n = len(exp.faults)
        what = [f"{n} fault{'' if n == 1 else 's'} ({', '.join(sorted({f.kind for f in exp.faults}))})"] if n else []
        if exp.cost:
            what.append(f"cost at {exp.cost.total_rate:g} requests/s (with the none baseline)")
        if exp.sweep:
            what.append(f"a sweep of {exp.sweep.parameter} over {', '.join(map(str, exp.sweep.values))}")
        click.echo(f"{spec_file}: valid experiment: {'; '.join(what) or 'traffic only'}, in "
                   f"{len(exp.runs)} architectures ({', '.join(exp.runs)}), {exp.duration:g}s of traffic at "
                   f"{exp.rate:g}/s per flow")
        return
    s = loaded
    click.echo(f"{spec_file}: valid: {len(s.nodes)} nodes, {len(s.services)} services, "
               f"{len(s.pods)} pods, {len(s.calls)} calls")


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--arch", type=click.Choice(runner.ARCHITECTURES), default="none", show_default=True,
              help="Where the L7 proxies sit (none = no mesh, the baseline).")
@click.option("--redirect", type=click.Choice(REDIRECTS), default=DEFAULT_REDIRECT, show_default=True,
              help="How app traffic reaches its proxy, and how service addresses are translated (with --arch "
                   "none too: eBPF balances at the socket, iptables DNATs in the nodes).")
@click.option("--run-id", metavar="ID", help="Name the run (1-10 of a-z0-9); default: random.")
@click.option("--backend", type=click.Choice(runner.BACKENDS), default=runner.DEFAULT_BACKEND, show_default=True,
              help="What builds the nodes and pods: network namespaces made directly, or Mininet hosts and "
                   "switches (then `testbed cli` opens Mininet's CLI on them). Everything else is the same.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's status as JSON.")
def up(spec_file, arch, redirect, run_id, backend, as_json):
    """Build the cluster described by SPEC_FILE and leave it running."""
    st = runner.up(spec_file, arch, redirect, run_id, progress=_progress, backend=backend)
    if as_json:
        click.echo(json.dumps(st, indent=1))
    else:
        click.echo(f"run {st['run']} is up: {len(st['nodes'])} nodes, {len(st['pods'])} pods, "
                   f"{len(st['services'])} services in {st['timings'].get('up', 0):.2f}s")
        click.echo(f"  testbed status --run {st['run']}    testbed down --run {st['run']}")
        if backend == "mininet":
            click.echo(f"  testbed cli --run {st['run']}       (Mininet's CLI: nodes, net, pingall, <pod> ip addr)")


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
               f"redirect {st['redirect']}, backend {st['backend']}, spec {st['spec']}")
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


@main.command(name="cli")
@run_option
def mininet_cli(run_id):
    """Open Mininet's CLI on a running cluster: nodes and pods are its hosts, the fabric and
    each node's pod bridge its switches. A command given to a pod runs in the pod's
    namespace and cgroup, like `testbed exec`. `exit` (or Ctrl-D) leaves the cluster running.

    \b
    mininet> nodes                      # every host and switch
    mininet> net                        # the links
    mininet> pingall                    # every host pings every other
    mininet> frontend-0 ip addr
    mininet> frontend-0 curl -s http://198.18.128.2:8080/
    Scripted: printf 'pingall\\n' | testbed cli --run ID
    """
    from .cluster.mininet_cli import run_cli

    runner.require_root()
    cluster = runner.cluster_of(run_id)
    plan = cluster.plan
    click.echo(f"Mininet's CLI on run {plan.run_id} (built by the {runner.backend_of(cluster.run)} backend): "
               f"{len(plan.nodes)} nodes and {len(plan.pods)} pods as hosts, {len(plan.nodes) + 1} bridges as "
               "switches. `exit` leaves the cluster running.", err=True)
    run_cli(plan)


@main.command(name="proxy-config")
@run_option
@click.argument("name")
def proxy_config(run_id, name):
    """Print the rendered Envoy config of the proxy serving pod NAME (or of proxy NAME)."""
    runner.require_root()
    mesh = runner.mesh_of(run_id)
    proxy = runner.proxy_for(mesh, name)
    click.echo(f"# {proxy.name} ({proxy.role}) in {proxy.netns}, serving {', '.join(proxy.serves)}", err=True)
    click.echo(json.dumps(json.loads(mesh.config_path(proxy).read_text()), indent=2))  # the file is compact JSON


@main.command()
@run_option
@click.argument("name")
@click.option("--strategy", type=click.Choice(PROXY_STRATEGIES), default=PROXY_STRATEGIES[0],
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


@bpf.command(name="cache")
@click.option("--clear", is_flag=True, help="Remove every compiled program (the next run compiles again).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bpf_cache_cmd(clear, as_json):
    """The compile cache: bcc compiles each program of bpf/ once per content (sources,
    headers, constants, bcc and kernel versions), later runs load it without compiling.
    TESTBED_BPF_CACHE=DIR moves it, TESTBED_BPF_CACHE=off compiles on every run."""
    from .redirect import bpf_cache

    if clear:
        runner.require_root()
        removed = bpf_cache.clear()
        click.echo(json.dumps({"removed": removed}) if as_json else
                   f"removed {len(removed)} cache entries from {bpf_cache.root()}")
        return
    entries = bpf_cache.entries()
    if as_json:
        click.echo(json.dumps({"dir": str(bpf_cache.root()) if bpf_cache.root() else None, "entries": entries},
                              indent=1))
        return
    if bpf_cache.root() is None:
        click.echo("the compile cache is switched off (TESTBED_BPF_CACHE=off)")
        return
    click.echo(f"{bpf_cache.root()}: {len(entries)} entries")
    for e in entries:
        click.echo(f"  {e['key']}  {len(e['programs'])} programs  {e['bytes']} bytes  ({', '.join(e['programs'])})")


def _kinds_help() -> str:
    return ", ".join(KINDS)


@main.command(name="run")
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@click.option("--arch", "archs", multiple=True, type=click.Choice(runner.ARCHITECTURES),
              help="Only these of the experiment's architectures (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where journal.json and the record files go (default: out/<experiment>-<time>).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 50),
              help="Run the whole experiment N times (OUT/rep-1 ... rep-N), for medians and ranges in the report.")
@click.option("--backend", type=click.Choice(runner.BACKENDS), default=runner.DEFAULT_BACKEND, show_default=True,
              help="What builds each architecture's cluster (see `testbed up --help`); the journal records it.")
@click.option("--json", "as_json", is_flag=True, help="Print the journal as JSON.")
def run_cmd(experiment_file, archs, out_dir, repeat, backend, as_json):
    """Run a chaos experiment in each architecture: steady traffic, faults injected and
    reverted on schedule, the blast radius of each, side by side; with a `cost:` section,
    what each architecture costs (CPU, memory, config, latency against `none`). The journal
    is written after every architecture; a signal stops the run cleanly and the journal
    says so. Then `testbed report OUT` draws it.

    \b
    Fault kinds: {kinds} (docs/experiments.md).
    Ready-made: experiments/*.yaml. Check a file first with `testbed validate EXPERIMENT_FILE`
    (no root needed). Exit code 1 when an architecture failed."""
    from .experiment import load_experiment
    from .experiment_runner import run_experiment
    from .report.table import cost_table, fault_table

    exp = load_experiment(experiment_file)  # a bad experiment fails here, before anything exists
    runner.require_root()
    out_dir = Path(out_dir or f"out/{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    text = Path(experiment_file).read_text()
    failed = False
    for i in range(repeat):
        target = out_dir / f"rep-{i + 1}" if repeat > 1 else out_dir
        if repeat > 1:
            _progress(f"repetition {i + 1} of {repeat}")
        journal = run_experiment(exp, text, list(archs) or None, target, progress=_progress, repeat=(i, repeat),
                                 backend=backend)
        failed = failed or journal["status"] != "completed"
    if as_json:
        click.echo(json.dumps(journal, indent=1))
    else:
        click.echo("\n".join(cost_table(journal) + [""] + fault_table(journal)))
        written = ["journal.json", "experiment.yaml", "cluster.yaml"] + [
            name for a in journal["architectures"].values() for name in (a.get("files") or {}).values()]
        where = f"{out_dir}/rep-1 ... rep-{repeat}" if repeat > 1 else str(out_dir)
        click.echo(f"\nwritten in {where}: {', '.join(written)}")
        dirs = " ".join(str(out_dir / f"rep-{k + 1}") for k in range(repeat)) if repeat > 1 else str(out_dir)
        click.echo(f"next: testbed report {dirs}")
    if failed:
        sys.exit(1)


run_cmd.help = run_cmd.help.replace("{kinds}", _kinds_help())


@main.command(name="rerun")
@click.argument("journal", type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where the new journal and record files go (default: beside the original, <its directory>-rerun).")
@click.option("--json", "as_json", is_flag=True, help="Print the new journal's comparison with the original as JSON.")
def rerun_cmd(journal, out_dir, as_json):
    """Reproduce a run from its journal alone (JOURNAL: a journal.json or the directory
    holding it): the same experiment, from the journal's own copy with the cluster it ran on,
    in the same architectures, with the same seed, redirection and backend. Then say whether
    the two runs agree within noise (`testbed report A B` shows the detail). Exit code 1 when
    an architecture failed."""
    from .report.compare import compare
    from .report.table import fault_table
    from .rerun import rerun

    result = rerun(journal, out_dir, progress=_progress)
    new, old = result["journal"], result["original"]
    cmp = compare(old, new)
    if as_json:
        click.echo(json.dumps({"original": old["_path"], "rerun": new["_path"], "agree": cmp["agree"],
                               "verdict": cmp["verdict"], "environment_changes": result["environment_changes"],
                               "comparison": cmp}, indent=1, default=str))
    else:
        click.echo("\n".join(fault_table(new)))
        click.echo(f"\nwritten in {Path(new['_path']).parent}")
        for change in result["environment_changes"]:
            click.echo(f"environment differs: {change}")
        click.echo(f"verdict: {cmp['verdict']}")
        click.echo(f"next: testbed report {Path(old['_path']).parent} {Path(new['_path']).parent}")
    if new["status"] != "completed":
        sys.exit(1)


@main.group()
def lab():
    """Teaching labs (labs/): `testbed lab list`, then each lab's README, then
    `testbed lab check N` to verify your cluster."""


@lab.command(name="list")
def lab_list():
    """The labs, with their READMEs."""
    from .labs.catalog import labs

    for found in labs():
        click.echo(f"{found.number}  {found.title():<52} {found.readme.relative_to(found.dir.parent.parent)}")


@lab.command(name="check")
@click.argument("number", type=int)
@click.option("--run", "run_id", metavar="ID", help="The run to check (default: the one the lab's README builds).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lab_check(number, run_id, as_json):
    """Verify your running cluster against lab NUMBER's check.yaml: a summary line per item,
    and for each failed one what is missing and a hint. Exit code 0 only when everything
    holds."""
    from .labs.catalog import lab as find_lab
    from .labs.verify import verify

    checks = find_lab(number).checks()
    runner.require_root()
    results = verify(checks, run_id)
    good = sum(r.ok for r in results)
    if as_json:
        click.echo(json.dumps({"lab": number, "run": run_id or checks.run, "ok": good == len(results),
                               "results": [vars(r) for r in results]}, indent=1))
    else:
        click.echo(f"lab {number}: {checks.title} (run {run_id or checks.run})")
        for r in results:
            click.echo(f"  {'ok  ' if r.ok else 'FAIL'}  {r.what}: {r.detail}")
            if r.hint:
                click.echo(f"        hint: {r.hint}")
        click.echo(f"all {len(results)} checks hold" if good == len(results) else
                   f"{good} of {len(results)} checks hold; {len(results) - good} failed")
    if good != len(results):
        sys.exit(1)


@main.group()
def bench():
    """Benchmarks that compare variants inside one run."""


@bench.command(name="redirect")
@click.argument("spec_file", type=click.Path(dir_okay=False),
                default=str(DEFAULT_SPEC.parent / "bench.yaml"))
@click.option("--arch", "archs", multiple=True, type=click.Choice(runner.ARCHITECTURES[1:]),
              help="Mesh architectures to include (repeatable; default: all). `none` is always measured.")
@click.option("--repeat", default=6, show_default=True, type=click.IntRange(1, 100),
              help="Repetitions of each variant (interleaved). 6 is the fewest whose median interval reaches 95 %; "
                   "fewer are reported with the coverage they reach.")
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(1, 600),
              help="Measured seconds per repetition.")
@click.option("--warmup", default=1.0, show_default=True, type=click.FloatRange(0, 60),
              help="Seconds trimmed at the start of each.")
@click.option("--rate", default=200.0, show_default=True, type=click.FloatRange(1, 20000),
              help="Requests per second offered.")
@click.option("--keepalive/--no-keepalive", default=True, show_default=True,
              help="Reuse connections, or open one per request (where connect-time redirection costs show).")
@click.option("--seed", default=1, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for redirect.json and the plots (default: out/bench-redirect-<time>).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result.")
def bench_redirect(spec_file, archs, repeat, seconds, warmup, rate, keepalive, seed, out_dir, as_json):
    """eBPF against iptables redirection, for every architecture, in one run: latency
    percentiles and throughput (medians with exact order-statistic intervals), and paired
    ebpf/iptables ratios (a difference shows only where the interval excludes 1)."""
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
@click.option("--count", default=6, show_default=True, type=click.IntRange(1, 1000), help="Calls per (pod, service).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def matrix_cmd(run_id, count, as_json):
    """Every pod calls every service it calls (by VIP); show which replica answered."""
    runner.require_root()
    cluster = runner.cluster_of(run_id)
    edges = matrix.probe(cluster, cluster.plan, count=count, progress=_progress)
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
    """Tear a run down: processes, namespaces, cgroups, BPF pins and its run directory."""
    removed = runner.down(run_id)
    click.echo(f"removed {len(removed)} objects")


@main.command()
@click.option("--run", "run_id", metavar="ID", help="Only this run's objects (recommended; default: every run's).")
@click.option("--force", is_flag=True, help="Also remove runs whose owning process is still alive (another user's "
                                            "experiment in progress, an `up` still building).")
@click.option("-v", "--verbose", is_flag=True, help="List every object removed.")
def clean(run_id, force, verbose):
    """Remove everything carrying the testbed's tag, even when a run's state is gone
    (e.g. after `testbed up` or `testbed run` was killed). Runs still driven by a live
    process are listed and left alone unless --force. Prefer `clean --run ID`."""
    result = runner.clean(run_id, force)
    total = 0
    for rid, items in result["removed"].items():
        total += len(items)
        if items:
            click.echo(f"run {rid}: removed {len(items)} objects" if rid != "-" else
                       f"removed {len(items)} objects left by runs already gone")
        for item in items if verbose else []:
            click.echo(f"  removed {item}")
    for rid, why in result["skipped"].items():
        click.echo(f"run {rid}: left alone, {why}")
    if not total and not result["skipped"]:
        click.echo("nothing to remove")


@main.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where report.html and report.md go (default: the first DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print the scorecard (and the comparison) as JSON.")
def report(dirs, out_dir, as_json):
    """Draw the report of one or more runs from their journals only (no root, no testbed
    state): report.html (one self-contained page, plots inside) and report.md, with the
    scorecard of the trade-offs, the costs, every fault side by side, and how to rerun each
    result. Give two runs of one experiment to see what changed beyond the noise, and a
    one-line verdict: whether they agree within noise (`testbed rerun` should); give the
    rep-* directories of `run --repeat` for medians and ranges."""
    from dataclasses import asdict

    from .report import html
    from .report.model import build
    from .report.scorecard import terminal

    html_path, md_path = html.write(list(dirs), out_dir or dirs[0])
    model = build(list(dirs))
    if as_json:
        verdict = {k: model.comparison[k] for k in ("agree", "verdict")} if model.comparison else None
        click.echo(json.dumps({"scorecard": [asdict(r) for r in model.scorecard], "comparison": model.comparison,
                               "verdict": verdict}, indent=1, default=str))
        return
    click.echo("\n".join(terminal(model.scorecard)))
    if model.comparison:
        moved = model.comparison["beyond_noise"]
        click.echo(f"\n{len(moved)} change(s) beyond the noise" + (":" if moved else ""))
        for c in moved:
            click.echo(f"  {c['arch']}: {c['what']}: {c['a']} -> {c['b']} ({c['rule']})")
        click.echo(f"verdict: {model.comparison['verdict']}")
    click.echo(f"\nwritten: {html_path} and {md_path}")


DEMO = DEFAULT_SPEC.parent.parent / "demo.yaml"
DEMO_QUICK = DEFAULT_SPEC.parent.parent / "demo-quick.yaml"


@main.command()
@click.option("--quick", is_flag=True, help="The classroom version: shorter windows, under 3 minutes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/demo", show_default=True,
              help="Where the journal and report.html go.")
def demo(quick, out_dir):
    """The full comparison on the default cluster (experiments/demo.yaml): every
    architecture, a proxy crash, a bad Wasm extension, a stolen identity and an upgrade,
    and what each costs (the `none` baseline too); then the scorecard, and the report in
    OUT/report.html. About 5 minutes on 2 cores (--quick: under 3)."""
    from .experiment import load_experiment
    from .experiment_runner import run_experiment
    from .report import html
    from .report.model import build
    from .report.scorecard import terminal

    path = DEMO_QUICK if quick else DEMO
    exp = load_experiment(path)
    runner.require_root()
    t0 = time.monotonic()
    journal = run_experiment(exp, path.read_text(), None, out_dir, progress=_progress)
    html_path, _ = html.write([out_dir], out_dir)
    click.echo("\n".join(terminal(build([out_dir]).scorecard)))
    click.echo(f"\n{len(journal['architectures'])} architectures in {time.monotonic() - t0:.0f}s; "
               f"the report: {html_path}")
    if journal["status"] != "completed":
        sys.exit(1)


from .export.cli import collect_cmd, export_group  # noqa: E402 - registered last, beside the other commands
from .sim import cli as _sim  # noqa: E402 - the simulation's commands, registered last

main.add_command(export_group)
main.add_command(collect_cmd)
main.add_command(_sim.calibrate)
main.add_command(_sim.simulate)

if __name__ == "__main__":
    main()
