"""YAML loading that remembers where every value came from (file and line), and that holds
up against any bytes a user (or an attacker) hands it.

`load(path)` returns plain dicts, lists and scalars, but mappings and sequences are
subclasses that know their own line and the line of each key or item, so that validation
can say "shop.yaml:7: services[1].port: ...".

What a spec may not do, because each has hung or crashed a YAML loader:
- be anything but a regular file of at most MAX_BYTES (a FIFO blocks a reader for ever);
- be anything but UTF-8;
- use tags (`!!python/object`, `!foo`, `!!int abc`) or anchors and aliases (`&a [*a]`, and
  the "billion laughs" bombs that re-expand an alias a billion times);
- nest deeper than MAX_DEPTH.
These are refused before the document is composed. Scalars are resolved by one shared
constructor, never re-built per value; a scalar that cannot be what it looks like (a
5,000-digit integer, the date 2024-13-45) stays the text it was, and validation then says
which field expected what. Duplicate keys are problems (PyYAML would keep the last one), all
reported together with the rest. Every message reads `FILE:LINE: FIELD: what is wrong`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from .errors import SpecError

MAX_BYTES = 512 * 1024
MAX_DEPTH = 32
MAX_TOKENS = 30_000  # the largest spec the limits allow (500 services, 198 nodes) is a tenth of this

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = SafeConstructor()  # stateless for scalars: one for every value
_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
         yaml.FlowSequenceStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
_REFUSED = {yaml.TagToken: "YAML tags ({}) are not allowed in a spec",
            yaml.AnchorToken: "YAML anchors (&) and aliases (*) are not allowed in a spec",
            yaml.AliasToken: "YAML anchors (&) and aliases (*) are not allowed in a spec"}


class YMap(dict):
    """A mapping with `line` (its own) and `key_lines[key]` (where each key was written)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class YList(list):
    """A sequence with `line` (its own) and `item_lines[i]`."""

    line: int = 0
    item_lines: list

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if index < len(lines) else self.line


def plain(value):
    """A loaded document as plain dicts and lists (YMap and YList carry line numbers)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def short(value, limit: int = 40) -> str:
    """A value as a message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _scalar(node: yaml.ScalarNode):
    tag = node.tag.rsplit(":", 1)[-1]
    try:
        if tag == "int":
            return _SCALARS.construct_yaml_int(node)
        if tag == "float":
            return _SCALARS.construct_yaml_float(node)
        if tag == "bool":
            return _SCALARS.construct_yaml_bool(node)
        if tag == "null":
            return None
    except (ValueError, OverflowError):  # e.g. more digits than Python converts
        pass
    return node.value  # str, and dates kept as text: no field of ours is a date


def _convert(node: yaml.Node, source: str, problems: list[str]):
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = YMap()
        out.line, out.key_lines = line, {}
        for key_node, value_node in node.value:
            kline = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(f"{source}:{kline}: key: a mapping key must be a plain value, not a "
                                f"{'mapping' if isinstance(key_node, yaml.MappingNode) else 'list'}")
                continue
            key = _scalar(key_node)
            if key is None:
                key = "null"
            if key in out:
                problems.append(f"{source}:{kline}: {field_name(key)}: duplicate key (first at line "
                                f"{out.key_lines[key]})")
                continue
            out.key_lines[key] = kline
            out[key] = _convert(value_node, source, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = YList(_convert(n, source, problems) for n in node.value)
        out.line, out.item_lines = line, [n.start_mark.line + 1 for n in node.value]
        return out
    return _scalar(node)


def field_name(key, parent: str = "") -> str:
    """How a key is named in messages: `parent.key`, or the parent alone when the key
    itself would not read as one word (spaces, odd characters, a very long key)."""
    text = str(key)
    plain = 0 < len(text) <= 64 and all(c.isalnum() or c in "_-." for c in text) and text.isascii()
    if not plain:
        return parent or "document"
    return f"{parent}.{text}" if parent else text


def _prescan(text: str, source: str) -> None:
    """Refuse tags, anchors, aliases and deep nesting before anything is built."""
    depth = 0
    try:
        for count, token in enumerate(yaml.scan(text, Loader=_Loader)):
            line = token.start_mark.line + 1
            if count > MAX_TOKENS:
                raise SpecError([f"{source}:{line}: yaml: more than {MAX_TOKENS} YAML tokens: larger than any spec "
                                 "the limits allow"])
            for kind, message in _REFUSED.items():
                if isinstance(token, kind):
                    shown = "".join(token.value) if isinstance(token, yaml.TagToken) else ""
                    raise SpecError([f"{source}:{line}: yaml: {message.format(short(shown, 30))}"])
            if isinstance(token, _OPEN):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError([f"{source}:{line}: yaml: nested deeper than {MAX_DEPTH} levels"])
            elif isinstance(token, _CLOSE):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def _yaml_error(exc: yaml.YAMLError, source: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return SpecError([f"{source}:{line}: yaml: not valid YAML: {problem}"])


def loads(text: str, source: str = "<string>", problems: list[str] | None = None):
    """Parse YAML text; `source` names it in errors. Problems that leave a usable document
    (duplicate keys) go to `problems` when given, so validation can report them with its
    own; otherwise they are raised at once."""
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        raise SpecError([f"{source}:{line}: yaml: a NUL character is not allowed"])
    _prescan(text, source)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise SpecError([f"{source}:1: yaml: nested too deeply"]) from None
    if node is None:
        raise SpecError([f"{source}:1: document: the file is empty"])
    found: list[str] = []
    data = _convert(node, source, found)
    if problems is None and found:
        raise SpecError(found)
    if problems is not None:
        problems.extend(found)
    return data


def read(path: str | Path, what: str = "file") -> str:
    """The text of a spec file: a regular file of at most MAX_BYTES, in UTF-8. `what` names
    the field that pointed here (e.g. `cluster`) for the error messages."""
    shown = str(path).replace("\0", "\\0")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError([f"{shown}:1: {what}: cannot read: {reason}"]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) \
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file"
            raise SpecError([f"{shown}:1: {what}: not a regular file ({kind})"])
        if st.st_size > MAX_BYTES:
            raise SpecError([f"{shown}:1: {what}: {st.st_size} bytes is too large for a spec "
                             f"(at most {MAX_BYTES // 1024} KiB)"])
        data = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise SpecError([f"{shown}:1: {what}: too large for a spec (at most {MAX_BYTES // 1024} KiB)"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecError([f"{shown}:{line}: encoding: not UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start})"]) from None


def load(path: str | Path, problems: list[str] | None = None):
    return loads(read(path), str(path), problems)
