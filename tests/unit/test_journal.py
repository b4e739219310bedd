"""The journal package: written whole (never half), strict JSON (no NaN), read back only
through a reader that refuses what is not a journal, with the file and what is wrong."""

from __future__ import annotations

import json
import math

import pytest

from testbed import journal
from testbed.atomic import write_json
from testbed.journal import JournalError, JournalWriter


def minimal(**over) -> dict:
    j = {"journal": 2, "experiment": "e", "started": "2026-01-01T00:00:00+00:00", "architectures": {
        "sidecar": {"status": "completed", "faults": [{"kind": "proxy-crash", "target": {"kind": "pod", "name": "a"},
                                                        "at": 3.0}]}}}
    j.update(over)
    return j


def test_the_writer_replaces_the_file_whole_and_writes_null_for_nan(tmp_path):
    w = JournalWriter(tmp_path / "journal.json", {"experiment": "e", "value": math.nan})
    w.architecture("sidecar", {"status": "completed", "faults": [], "p99": math.inf})
    text = (tmp_path / "journal.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["value"] is None and data["architectures"]["sidecar"]["p99"] is None
    assert data["status"] == "running"
    w.finish("completed")
    assert journal.load(tmp_path)["status"] == "completed"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]  # no temporary file left


def test_a_failed_write_leaves_the_previous_journal(tmp_path, monkeypatch):
    path = tmp_path / "journal.json"
    write_json(path, minimal())
    import os

    def boom(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_json(path, minimal(experiment="other"))
    assert journal.load(path)["experiment"] == "e"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]


@pytest.mark.parametrize("text, words", [
    ('{"journal": 2, "experiment": "e", "sta', "not valid JSON"),
    ('[1, 2]', "not a testbed journal"),
    ('{"benchmark": "redirect"}', "not a testbed journal"),
    ('{"journal": 9, "experiment": "e"}', "journal version 9 is newer than this testbed reads"),
    ('{"journal": "2"}', "expected a version number"),
    ('{"journal": 2, "experiment": "e", "started": "x"}', "architectures: missing"),
    ('{"journal": 2, "experiment": "e", "started": "x", "architectures": {"a": {"status": "completed"}}}',
     "architectures.a.faults: missing"),
    ('{"journal": 2, "experiment": 5, "started": "x", "architectures": {}}', "experiment: expected str, got int"),
])
def test_the_reader_refuses_broken_and_foreign_files_naming_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "journal.json"
    path.write_text(text)
    with pytest.raises(JournalError) as err:
        journal.load(path)
    assert str(err.value).startswith(str(path)) and words in str(err.value), err.value


def test_a_version_1_journal_is_read_as_version_2():
    v1 = minimal(journal=1, git="abc", kernel="6.1", envoy="1.40.0", seconds=12.0)
    v1["architectures"]["sidecar"].pop("status")
    j = journal.loads(json.dumps(v1).replace("12.0", "NaN", 0))
    assert j["journal"] == 2 and j["engine"] == "namespaces" and j["simulated"] is False
    assert j["status"] == "completed" and j["architectures"]["sidecar"]["status"] == "completed"
    assert j["environment"] == {"git": "abc", "kernel": "6.1", "envoy": "1.40.0"}


def test_a_bare_nan_from_an_old_writer_reads_as_null():
    j = journal.loads(json.dumps(minimal()).replace('"at": 3.0', '"at": 3.0, "p99_ms": NaN'))
    assert j["architectures"]["sidecar"]["faults"][0]["p99_ms"] is None
