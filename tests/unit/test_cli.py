"""The CLI without root: help, validation, the not-root path."""

from __future__ import annotations

from click.testing import CliRunner

from testbed.cli import main

from ..conftest import FIXTURES


def test_help_lists_every_command():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for cmd in ("doctor", "up", "status", "exec", "down", "clean", "demo", "validate", "matrix"):
        assert f"  {cmd} " in r.output


def test_validate_good_spec():
    r = CliRunner().invoke(main, ["validate", str(FIXTURES / "uneven.yaml")])
    assert r.exit_code == 0 and "8 pods" in r.output and "4 calls" in r.output


def test_validate_bad_spec_lists_every_problem():
    bad = FIXTURES / "bad" / "unknown_call.yaml"
    r = CliRunner().invoke(main, ["validate", str(bad)])
    assert r.exit_code == 1
    assert f"{bad}:6: calls[0].to: unknown service 'cart'" in r.output


def test_validate_checks_experiments_too():
    r = CliRunner().invoke(main, ["validate", str(FIXTURES.parent.parent / "experiments" / "network.yaml")])
    assert r.exit_code == 0 and "valid experiment: 5 faults (delay, drop, tcp-reset), in 5 architectures" in r.output
    bad = FIXTURES / "experiments" / "bad_kind.yaml"
    r = CliRunner().invoke(main, ["validate", str(bad)])
    assert r.exit_code == 1 and f"{bad}:5: faults[0].kind: unknown fault kind 'proxy-explode'" in r.output


def test_up_with_unknown_architecture_is_refused():
    r = CliRunner().invoke(main, ["up", str(FIXTURES / "uneven.yaml"), "--arch", "mesh9"])
    assert r.exit_code == 2 and "Invalid value for '--arch'" in r.output


def test_run_help_names_every_fault_kind():
    from testbed.chaos.kinds import KINDS

    r = CliRunner().invoke(main, ["run", "--help"])
    assert r.exit_code == 0
    assert [k for k in KINDS if k not in r.output] == []
