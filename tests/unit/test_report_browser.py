"""The report as a reader sees it: headless Chromium (Debian's, installed by `make setup`)
renders the page; the screenshot is not blank and the scorecard is in the page's DOM."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from testbed.report import html
from testbed.report.scorecard import scorecard

from .test_report import journal

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.fixture
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make setup` installs it (Debian's chromium package)")
    return path


def test_the_page_renders_with_its_scorecard(tmp_path, chromium):
    from PIL import Image

    page, _ = html.write([journal(tmp_path / "run")], tmp_path / "out")
    shot = tmp_path / "shot.png"
    base = [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(base + ["--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 1600)
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100, "the screenshot is (nearly) blank"
    white = max(colors)[0] / (img.size[0] * img.size[1])
    assert white < 0.95, f"{white:.0%} of the screenshot is one colour"
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    table = dom[dom.index('<table id="scorecard">'):]
    table = table[:table.index("</table>")]
    rows = len(scorecard([]))  # every row, with data or saying what to run
    assert table.count("<tr>") == 1 + rows and "Failure isolation" in table and "#1" in table
