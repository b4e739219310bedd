"""Validation helpers shared by the cluster spec and the experiment spec: a checker that
collects every problem as `FILE:LINE: FIELD: what is wrong`, and parsers for names, whole
numbers, finite numbers and durations, each with a range. Pure."""

from __future__ import annotations

import math
import re

from .yamlsrc import YList, YMap, field_name, short

NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
DURATION_RE = re.compile(r"^(\d{1,12}(?:\.\d{1,9})?)(ms|s|m)?$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0}


def kind(value) -> str:
    """What a value is, as an error message names it."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return short(value)


def parse_duration(value) -> float | None:
    """Seconds from `250ms`, `10s`, `1.5m` or a plain number; None when it is not one, or
    not a finite, non-negative number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if 0 <= value <= 10 ** 12 else None
    if isinstance(value, float):
        return value if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        m = DURATION_RE.match(value.strip())
        if m:
            return float(m.group(1)) * DURATION_UNITS[m.group(2)]
    return None


def show_seconds(seconds: float) -> str:
    return "0" if seconds == 0 else f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


class Checker:
    """Collects every problem with file, line and field, so one run shows them all."""

    def __init__(self, source: str, problems: list[str] | None = None):
        self.source = source
        self.problems: list[str] = list(problems or [])

    def fail(self, line: int, where: str, message: str) -> None:
        self.problems.append(f"{self.source}:{line}: {where or 'document'}: {message}")

    def mapping(self, value, line: int, where: str, required: set, optional: set) -> YMap | None:
        if not isinstance(value, YMap):
            self.fail(line, where, f"expected a mapping, got {kind(value)}")
            return None
        known = required | optional
        for key in value:
            if not isinstance(key, str) or key not in known:
                fname = field_name(key, where)
                plain = fname == (f"{where}.{key}" if where else str(key))
                named = "" if plain else f" {short(key)}"
                self.fail(value.line_of(key), fname,
                          f"unknown field{named} (known fields: {', '.join(sorted(known))})")
        for key in sorted(required - set(value)):
            self.fail(value.line, f"{where}.{key}" if where else key, "required field is missing")
        return value

    def name(self, value, line: int, where: str, max_len: int, what: str) -> str | None:
        if not isinstance(value, str):
            self.fail(line, where, f"expected a name, got {kind(value)}")
            return None
        if not NAME_RE.match(value):
            self.fail(line, where, f"{short(value)} is not a valid {what} name "
                                   "(lower-case letters, digits and '-', starting with a letter)")
            return None
        if len(value) > max_len:
            self.fail(line, where, f"{short(value)} is longer than {max_len} characters")
            return None
        return value

    def integer(self, value, line: int, where: str, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(line, where, f"expected a whole number, got {kind(value)}")
            return None
        if not lo <= value <= hi:
            self.fail(line, where, f"{short(value)} is out of range ({lo}-{hi})")
            return None
        return value

    def number(self, value, line: int, where: str, lo: float, hi: float, what: str = "a number",
               lo_open: bool = False) -> float | None:
        """A finite number in [lo, hi] (or (lo, hi] with `lo_open`)."""
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and \
            (lo < value if lo_open else lo <= value) and value <= hi
        if not ok:
            low = "(" if lo_open else "["
            self.fail(line, where, f"expected {what} in {low}{lo:g}, {hi:g}], got {kind(value)}")
            return None
        return float(value)

    def duration(self, value, line: int, where: str, lo: float, hi: float, example: str = "10s",
                 lo_open: bool = False) -> float | None:
        """A duration in [lo, hi] seconds (or (lo, hi] with `lo_open`)."""
        seconds = parse_duration(value)
        if seconds is None or not (lo < seconds if lo_open else lo <= seconds) or seconds > hi:
            low = f"above {show_seconds(lo)}" if lo_open else f"at least {show_seconds(lo)}"
            self.fail(line, where, f"expected a duration like {example}, {low} and at most {show_seconds(hi)}, "
                                   f"got {kind(value)}")
            return None
        return seconds

    def sequence(self, value, line: int, where: str) -> YList | None:
        if not isinstance(value, YList):
            self.fail(line, where, f"expected a list, got {kind(value)}")
            return None
        return value

    def choice(self, value, line: int, where: str, allowed, what: str) -> str | None:
        if not isinstance(value, str) or value not in allowed:
            self.fail(line, where, f"{kind(value)} is not {what} ({', '.join(allowed)})")
            return None
        return value
