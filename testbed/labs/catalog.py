"""Where the labs are: `labs/<N>-<name>/` beside the package, each holding README.md,
cluster.yaml and check.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import TestbedError
from ..spec import load_cluster
from .checks import LabChecks, load_checks

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"
FOLDER = re.compile(r"^(\d+)-([a-z0-9-]+)$")


@dataclass(frozen=True)
class Lab:
    number: int
    dir: Path

    @property
    def readme(self) -> Path:
        return self.dir / "README.md"

    @property
    def cluster(self) -> Path:
        return self.dir / "cluster.yaml"

    @property
    def check_file(self) -> Path:
        return self.dir / "check.yaml"

    def title(self) -> str:
        first = self.readme.read_text().splitlines()[0]
        return first.lstrip("# ").split(": ", 1)[-1]

    def checks(self) -> LabChecks:
        """Its check.yaml, every pod and service it names checked against its cluster."""
        return load_checks(self.check_file, load_cluster(self.cluster))


def labs(root: Path = LABS_DIR) -> list[Lab]:
    found = [Lab(int(m.group(1)), d) for d in root.iterdir() if d.is_dir() and (m := FOLDER.match(d.name))] \
        if root.is_dir() else []
    return sorted(found, key=lambda lab: lab.number)


def lab(number: int, root: Path = LABS_DIR) -> Lab:
    for found in labs(root):
        if found.number == number:
            return found
    known = ", ".join(str(x.number) for x in labs(root)) or "none"
    raise TestbedError(f"no lab {number} (labs: {known}; `testbed lab list` shows them)")
