"""The BPF compile cache without a kernel: what makes a new key, how map references are
found and patched, and which records are refused."""

from __future__ import annotations

import base64
import json
import shutil
import struct

import pytest

from testbed.redirect import bpf_cache, bpf_load


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


def ld_map(fd: int, dst: int = 1) -> bytes:
    return insn(0x18, dst, 1, imm=fd) + insn(0, imm=0)


EXIT = insn(0x95)


@pytest.fixture
def bpf_dir(tmp_path, monkeypatch):
    copy = tmp_path / "bpf"
    shutil.copytree(bpf_cache.BPF_DIR, copy)
    monkeypatch.setattr(bpf_cache, "BPF_DIR", copy)
    return copy


def test_the_key_follows_sources_headers_constants_and_toolchain(bpf_dir):
    base = bpf_cache.key(["-DA=1"], "bcc 1")
    assert bpf_cache.key(["-DA=1"], "bcc 1") == base
    assert bpf_cache.key(["-DA=2"], "bcc 1") != base
    assert bpf_cache.key(["-DA=1"], "bcc 2") != base
    (bpf_dir / "include" / "tb_maps.h").write_text((bpf_dir / "include" / "tb_maps.h").read_text() + "\n")
    changed = bpf_cache.key(["-DA=1"], "bcc 1")
    assert changed != base
    (bpf_dir / "connect4.c").write_text((bpf_dir / "connect4.c").read_text() + "/* */\n")
    assert bpf_cache.key(["-DA=1"], "bcc 1") not in (base, changed)


def test_map_references_are_found_and_patched():
    code = insn(0xb7, 0, imm=7) + ld_map(11) + insn(0x85, imm=1) + ld_map(12, dst=2) + insn(0x18, 3) + \
        insn(0, imm=5) + EXIT
    assert bpf_cache.map_refs(code) == [(1, 11), (4, 12)]
    out = bpf_load.patched(code, [[1, "a"], [4, "b"]], {"a": 100, "b": 200})
    assert bpf_cache.map_refs(out) == [(1, 100), (4, 200)]
    assert out[:8] == code[:8] and out[-24:] == code[-24:]  # nothing else touched


@pytest.mark.parametrize("code", [insn(0x18, 1, 2, imm=3) + insn(0) + EXIT,  # a map value address
                                  insn(0x85, 0, 1, imm=4) + EXIT])  # a call into another BPF function
def test_what_cannot_be_recorded_is_refused(code):
    with pytest.raises(ValueError):
        bpf_cache.map_refs(code)


def _record(**changes) -> dict:
    r = {"program": "p", "license": "GPL", "insns": base64.b64encode(ld_map(3) + EXIT).decode(),
         "refs": [[0, "m"]], "maps": {"m": {"type": 1, "key_size": 4, "value_size": 4, "max_entries": 1,
                                            "flags": 0}}}
    r.update(changes)
    return r


@pytest.mark.parametrize("changes", [{}, {"program": "q"}, {"refs": [[0, "n"]]}, {"refs": [[9, "m"]]},
                                     {"insns": base64.b64encode(b"1234567").decode()}, {"insns": "!"}])
def test_only_sound_records_are_read(tmp_path, changes):
    (tmp_path / "p.json").write_text(json.dumps(_record(**changes)))
    got = bpf_cache.read(tmp_path, "p")
    assert (got is not None) == (changes == {})


def test_a_record_is_written_whole(tmp_path):
    bpf_cache.write(tmp_path, _record())
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    assert bpf_cache.read(tmp_path, "p")["code"] == ld_map(3) + EXIT


def test_two_definitions_of_one_map_are_a_stale_cache():
    from testbed.errors import TestbedError

    a = _record()
    b = _record(program="q", maps={"m": {**a["maps"]["m"], "max_entries": 2}})
    with pytest.raises(TestbedError, match="defined two ways"):
        bpf_load._maps({"p": a, "q": b})


def test_the_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("TESTBED_BPF_CACHE", "off")
    assert bpf_cache.root() is None
    monkeypatch.delenv("TESTBED_BPF_CACHE")
    assert str(bpf_cache.root()) == bpf_cache.DEFAULT_ROOT


def test_only_a_root_only_directory_is_trusted(tmp_path):
    tmp_path.chmod(0o777)
    assert not bpf_cache.usable(tmp_path)
    tmp_path.chmod(0o700)
    import os

    assert bpf_cache.usable(tmp_path) == (os.geteuid() == 0)
