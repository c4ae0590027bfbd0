"""The demo's ``reports/report.html`` in a real browser (headless Chromium): every image loads
and no table is wider than the page. A script injected into a copy of the page writes what it
finds into the DOM, which ``--dump-dom`` prints; no browser-driving dependency is needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from aes_ensemble.demo import run_demo
from aes_ensemble.workspace import Workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (install the distribution's chromium package; .ci/run does)",
)

PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map((img, i) => ({
    i, alt: img.alt, loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth,
    shown: img.getBoundingClientRect().width, box: img.parentElement.clientWidth}));
  const tables = [...document.querySelectorAll("table")].map((t, i) => ({
    i, head: (t.rows[0] ? t.rows[0].innerText : "").slice(0, 60),
    width: t.scrollWidth, box: t.parentElement.clientWidth}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, tables, viewport: window.innerWidth,
    page: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = Workspace.at(tmp_path_factory.mktemp("demo"))
    return run_demo(ws).report


def _probe(report: Path, tmp_path: Path, width: int) -> dict[str, object]:
    page = tmp_path / "probed.html"
    html = report.read_text(encoding="utf-8")
    assert html.count("</body>") == 1
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"chromium printed no findings (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("width", [1280, 1024])
def test_report_in_chromium_loads_every_image_and_no_table_overflows(
    report: Path, tmp_path: Path, width: int
) -> None:
    found = _probe(report, tmp_path, width)
    images, tables = found["images"], found["tables"]
    assert isinstance(images, list) and isinstance(tables, list)
    # confusion, correlation, cut points, per prompt, score distributions, DSM per group
    assert len(images) == 6
    for image in images:
        assert image["loaded"], f"image {image['alt']!r} did not load"
        assert image["shown"] <= image["box"], f"image {image['alt']!r} is wider than the page"
    assert len(tables) >= 3
    for table in tables:
        assert table["width"] <= table["box"], f"table {table['head']!r} overflows: {table}"
    assert found["page"] <= found["viewport"], "the page scrolls sideways"
