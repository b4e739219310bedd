"""YAML loading that remembers where every value came from (file and line).

`load(path)` returns plain dicts, lists and scalars, but mappings and sequences are
`Node`-aware subclasses that know their own line and the line of each key or item, so that
validation can say "shop.yaml:7: services[1].port: ...". Duplicate keys are an error
(PyYAML would silently keep the last one)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import SpecError


class YMap(dict):
    """A mapping with `line` (its own) and `key_lines[key]` (where each key was written)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class YList(list):
    """A sequence with `line` (its own) and `item_lines[i]`."""

    line: int = 0
    item_lines: list

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _convert(node: yaml.Node, source: str):
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = YMap()
        out.line, out.key_lines = line, {}
        for key_node, value_node in node.value:
            key = _convert(key_node, source)
            if not isinstance(key, str | int | float | bool) or key is None:
                line = key_node.start_mark.line + 1
                raise SpecError([f"{source}:{line}: a mapping key must be a plain value"])
            if key in out:
                raise SpecError(
                    [f"{source}:{key_node.start_mark.line + 1}: {key}: duplicate key "
                     f"(first at line {out.key_lines[key]})"]
                )
            out.key_lines[key] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = YList(_convert(n, source) for n in node.value)
        out.line, out.item_lines = line, [n.start_mark.line + 1 for n in node.value]
        return out
    # scalars: the safe constructor resolves ints, bools, nulls, ... as PyYAML would
    return yaml.SafeLoader("").construct_object(node, deep=True)


def loads(text: str, source: str = "<string>"):
    """Parse YAML text; `source` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{where}: not valid YAML: {problem}"]) from None
    if node is None:
        raise SpecError([f"{source}:1: the file is empty"])
    return _convert(node, source)


def load(path: str | Path):
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError([f"{path}: cannot read: {exc.strerror}"]) from None
    return loads(text, str(path))
