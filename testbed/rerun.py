"""Reproducing a run from its journal alone (`testbed rerun JOURNAL`).

A journal holds what made its result: the experiment's text, the cluster it ran on (a copy,
whatever path the experiment named it by), the seed (in the experiment), the redirection,
the backend, the architectures that ran, and the versions of everything. That is enough to
run it again on any machine with the testbed, with no other file: the experiment is rebuilt
with its cluster inlined, run in the same architectures on the same backend, and the new
journal says which journal it reran (`rerun_of`). Whether the two agree within noise is
report/compare.py's verdict; what differs in the environment (another commit, kernel or
Envoy) is listed, since it may explain a difference.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from . import yamlsrc
from .cluster.backend import DEFAULT_BACKEND
from .errors import TestbedError
from .experiment import Experiment, parse_experiment
from .journal import load
from .journal.writer import environment

ENV_KEYS = ("git", "kernel", "envoy", "python", "testbed", "cpus")


def experiment_of(journal: dict) -> tuple[Experiment, str, list[str], str]:
    """The experiment a journal ran (its cluster inlined from the journal's copy), its text,
    the architectures that ran, and the backend that built them. Pure."""
    source = journal.get("_path", "<journal>")
    engine = journal.get("engine", "namespaces")
    if engine != "namespaces":
        raise TestbedError(f"{source}: a {engine} journal{' (simulated)' if journal.get('simulated') else ''}: "
                           "rerun reproduces runs of this testbed; run its experiment with `testbed run` instead")
    spec_text, cluster_text = journal.get("spec"), journal.get("cluster")
    if not spec_text or not cluster_text:
        raise TestbedError(f"{source}: the journal does not hold its experiment and cluster (an older testbed wrote "
                           "it): rerun its experiment file with `testbed run`")
    data = yaml.safe_load(spec_text)
    data["cluster"] = yaml.safe_load(cluster_text)
    text = (f"# rerun of {source}: its experiment, with the cluster it ran on inlined\n"
            + yaml.safe_dump(data, sort_keys=False))
    where = f"{source} (its experiment)"
    problems: list[str] = []
    exp = parse_experiment(yamlsrc.loads(text, where, problems), where, Path("."), problems)
    ran = journal["architectures"]
    if journal.get("sweep"):
        steps = journal["sweep"].get("steps") or [{}]
        ran = steps[0].get("architectures") or {}
    archs = [a for a in ran if a in exp.runs]
    return exp, text, archs, journal.get("backend") or DEFAULT_BACKEND


def environment_changes(journal: dict, now: dict) -> list[str]:
    """What differs between the environment a journal recorded and this one."""
    then = journal.get("environment") or {}
    return [f"{k}: {then.get(k)} then, {now.get(k)} now" for k in ENV_KEYS if then.get(k) != now.get(k)]


def default_out(journal_path: str | Path) -> Path:
    """Beside the original: out/x/journal.json -> out/x-rerun."""
    path = Path(journal_path)
    base = path.parent if path.name == "journal.json" or path.is_file() else path
    return base.parent / f"{base.name}-rerun"


def rerun(journal_path: str | Path, out: str | Path | None = None, progress=lambda msg: None) -> dict:
    """Run the journal's experiment again into `out`; returns
    {"journal": the new journal, "original": the old one, "environment_changes": [...]}."""
    from .experiment_runner import run_experiment
    from .mesh import envoy
    from .runner import require_root

    original = load(journal_path)
    exp, text, archs, backend = experiment_of(original)  # a journal that cannot be rerun fails here
    require_root()
    out = Path(out) if out is not None else default_out(original["_path"])
    if out.resolve() == Path(original["_path"]).resolve().parent:
        raise TestbedError(f"{out} holds the journal being rerun: choose another --out")
    changes = environment_changes(original, environment(envoy.version()))
    for change in changes:
        progress(f"environment differs: {change}")
    journal = run_experiment(exp, text, archs or None, out, progress, backend=backend,
                             extra={"rerun_of": str(original["_path"])})
    journal["_path"] = str(out / "journal.json")
    return {"journal": journal, "original": original, "environment_changes": changes}
