"""The report in a real browser: headless Chromium (Debian's ``chromium``; these tests are
skipped where it is not installed, and ``.ci/run`` installs it) loads the page from a file
with every host name unresolvable, runs its script, and paints its charts."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from bulkprov import cli

from .pngread import read_png
from .reportkit import FinishedRun, Page, finished_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")
WIDTH, HEIGHT = 1280, 2000
BOUND = (0x1F, 0x5F, 0xBF)  # the quota line's colour (--bound in the page's CSS)
BOX = (0xDF, 0xE7, 0xF3)  # a step's box (.box)
DONE = (0x2E, 0x7D, 0x32)  # done: the race line, the bars and the card


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    return finished_run(tmp_path_factory.mktemp("browser"), n_aws=16)


@pytest.fixture(scope="module")
def page(run: FinishedRun) -> Path:
    out = run.ledger.parent / "report.html"
    assert cli.main(["report", str(run.ledger), "--out", str(out)]) == 0
    return out


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp / 'profile'}",
            "--hide-scrollbars",
            *args,
        ],
        capture_output=True,
        timeout=90,
        check=False,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc


def test_the_script_runs_sorts_and_filters(run: FinishedRun, page: Path, tmp_path: Path) -> None:
    """After load the page's script has run without error, applied the view the address
    asks for (sorted by instance, descending, failed ones only), and the charts are there."""
    url = page.as_uri() + "#sort=instance:desc&kind=failed"
    dom = chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", url).stdout.decode()
    root = re.search(r"<html[^>]*>", dom)
    assert root and 'data-script="ok"' in root.group(0), root
    assert 'data-sorted="instance:desc"' in dom
    assert f'data-shown="{len(run.failed)}"' in dom
    parsed = Page(dom)
    keys = [cells[parsed.headers.index("instance")].split(" ")[0] for _, cells in parsed.rows]
    assert keys == sorted(run.failed | run.quarantined, reverse=True)
    hidden = {
        a.get("data-kind"): "hidden" in a
        for t, a in parsed.tags
        if t == "tr" and a.get("data-kind")
    }
    assert hidden == {"failed": False, "quarantined": True}
    charts = [a.get("class") for t, a in parsed.tags if t == "svg"]
    assert "chart race" in charts and "chart steps" in charts
    assert f"{len(run.failed)} of {len(run.failed) + len(run.quarantined)} shown" in dom


def test_the_screenshot_shows_the_charts(page: Path, tmp_path: Path) -> None:
    """A screenshot of the page is a PNG of the window's size, not blank, with the quota
    line, the steps' boxes and the done colour painted."""
    shot = tmp_path / "report.png"
    chromium(
        tmp_path,
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=3000",
        page.as_uri(),
    )
    image = read_png(shot.read_bytes())
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    colours: Counter[tuple[int, ...]] = Counter()
    for row in image.rows[::2]:  # every other row: plenty for counts, half the time
        c = image.channels
        colours.update(zip(row[0::c], row[1::c], row[2::c], strict=True))
    _background, most = colours.most_common(1)[0]
    assert most < 0.9 * sum(colours.values())  # far from one colour: the page is painted
    assert len(colours) > 200
    assert colours[BOUND] >= 20 and colours[BOX] >= 100 and colours[DONE] >= 100, (
        colours[BOUND],
        colours[BOX],
        colours[DONE],
    )
