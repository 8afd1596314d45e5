"""report.html opened in a real headless Chromium (Debian's package), and the run's words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import DEMO, TINY, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _open_in_chromium(page_path: Path, screenshot: Path) -> tuple[list[str], str]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.resolve().as_uri())
        page.wait_for_load_state("load")
        text = page.inner_text("body")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    outside = [u for u in requests if not u.startswith("file://")]
    errors += [f"network request: {u}" for u in outside]
    return errors, text


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_demo_report_renders_without_errors(tmp_path):
    run = run_cli("solve", DEMO, out=tmp_path / "run")
    assert run.code == 0, run.stderr
    errors, text = _open_in_chromium(tmp_path / "run" / "report.html", tmp_path / "shot.png")
    assert errors == []
    for heading in ("Coverage by site and service", "Budget use", "Bottlenecks",
                    "Shadow prices", "Price ladders"):
        assert heading in text
    assert (tmp_path / "shot.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "shot.png", Path(__file__).parent / "report-screenshot.png") \
        if Path("/tmp/keep-report-shot").exists() else None


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_hostile_labels_are_escaped(tmp_path):
    case = tmp_path / "case"
    shutil.copytree(TINY.parent, case)
    hostile = "<img src=x onerror=alert(1)>"
    for name in ("sites", "staff", "targets"):
        path = case / f"{name}.csv"
        path.write_text(path.read_text().replace("A,", f'"{hostile}",').replace(
            ",A\n", f',"{hostile}"\n'))
    budgets = case / "budgets.csv"
    budgets.write_text('budget_id,scope,amount\n"=HYPERLINK(""x"")",all,1000\n')
    run = run_cli("solve", case / "scenario.toml", out=tmp_path / "run")
    assert run.code == 0, run.stderr
    html = (tmp_path / "run" / "report.html").read_text()
    assert hostile not in html and "&lt;img" in html
    errors, _ = _open_in_chromium(tmp_path / "run" / "report.html", tmp_path / "shot.png")
    assert errors == []
    md = (tmp_path / "run" / "bottlenecks.md").read_text()
    assert "<img" not in md
    # CSV cells that would run as spreadsheet formulas are neutralized.
    assert "'=HYPERLINK" in (tmp_path / "run" / "budgets.csv").read_text()


@pytest.mark.slow
def test_explain_tells_the_bottlenecks(tmp_path):
    run = run_cli("solve", DEMO, out=tmp_path / "run")
    assert run.code == 0
    explained = run_cli("explain", tmp_path / "run")
    assert explained.code == 0
    assert "Service stage" in explained.stdout and "budget" in explained.stdout
    missing = run_cli("explain", tmp_path / "nothing")
    assert missing.code == 2
