"""A lab README's steps, read back so that a test can run them, the way documentation that
tests itself does. Pure.

A step is a fenced block whose info string is `sh lab-step` (a step of the lab) or
`sh lab-cleanup` (clean-up, run last), optionally followed by `exit=N` (the exit code it
must end with, default 0) and `timeout=SECONDS`. The block's text runs as one bash script.
The next ```` ```text expect ```` block, before any other step, is what the student should see:
every line must appear in one line of the output (spaces collapsed; `...` stands for
anything), and a line starting with `! ` must not appear anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STEP, CLEANUP, EXPECT = "lab-step", "lab-cleanup", "expect"


@dataclass
class Step:
    script: str
    line: int  # where the block starts in the README
    cleanup: bool = False
    exit: int = 0
    timeout: float = 120.0
    expect: list[str] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)


def blocks(text: str) -> list[tuple[str, str, int]]:
    """Every fenced block: (info string, body, line of its opening fence)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(.*)$", lines[i])
        if m is None:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        out.append((m.group(1).strip(), "\n".join(body), start))
        i += 1
    return out


def extract(text: str) -> list[Step]:
    steps: list[Step] = []
    for info, body, line in blocks(text):
        words = info.split()
        if len(words) >= 2 and words[0] == "sh" and words[1] in (STEP, CLEANUP):
            opts = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            steps.append(Step(body, line, words[1] == CLEANUP, int(opts.get("exit", 0)),
                              float(opts.get("timeout", 120))))
        elif words[:2] == ["text", EXPECT] and steps:
            for want in body.splitlines():
                if want.startswith("! "):
                    steps[-1].refuse.append(want[2:])
                elif want.strip():
                    steps[-1].expect.append(want)
    return steps


def _squeeze(s: str) -> str:
    return " ".join(s.split())


def found(want: str, output: str) -> bool:
    """Whether `want` (spaces collapsed, `...` for anything) is in one line of `output`."""
    pattern = ".*".join(re.escape(part.strip()) for part in _squeeze(want).split("..."))
    return any(re.search(pattern, _squeeze(line)) for line in output.splitlines())


def problems(step: Step, code: int, output: str) -> list[str]:
    """What in a step's result differs from what its README says."""
    out = [] if code == step.exit else [f"exit code {code}, the README says {step.exit}"]
    out += [f"missing: {want!r}" for want in step.expect if not found(want, output)]
    out += [f"present, and should not be: {bad!r}" for bad in step.refuse if _squeeze(bad) in _squeeze(output)]
    return out
