"""One entry point for any spec file a user hands the testbed: a cluster spec or an
experiment, told apart by their fields, loaded and validated. Pure: nothing is created."""

from __future__ import annotations

from pathlib import Path

from . import yamlsrc
from .experiment import Experiment, parse_experiment
from .spec import ClusterSpec, parse_cluster
from .yamlsrc import YMap


def load_any(path: str | Path) -> ClusterSpec | Experiment:
    """The cluster spec or experiment in `path`, or SpecError listing every problem as
    `FILE:LINE: FIELD: what is wrong`."""
    path = Path(path)
    problems: list[str] = []
    data = yamlsrc.load(path, problems)
    if isinstance(data, YMap) and ("cluster" in data or "faults" in data or "traffic" in data):
        return parse_experiment(data, str(path), path.parent, problems)
    return parse_cluster(data, str(path), problems)
