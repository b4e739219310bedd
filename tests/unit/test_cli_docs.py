"""docs/cli.md cannot drift from the CLI: its reference is generated from the commands
themselves, and this fails when someone changed an option and not the page."""

from __future__ import annotations

import click

from testbed import clidoc
from testbed.cli import main

from ..conftest import ROOT


def test_the_reference_in_docs_cli_md_is_what_the_cli_says():
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert clidoc.splice(doc, clidoc.reference(main)) == doc, \
        "docs/cli.md is stale: run `python -m testbed.clidoc --write docs/cli.md`"


def test_every_command_and_option_is_in_the_reference():
    text = clidoc.reference(main)
    for path, cmd in clidoc._commands(main, "testbed", click.Context(main)):
        assert f"### `{path}`" in text
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in text, (path, opt)
