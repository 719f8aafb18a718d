"""`git exp ui` driven for real: Debian's Chromium, headless, through Playwright.

Skipped (with the reason) where /usr/bin/chromium or the playwright package is missing; CI
installs both (.ci/run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pygit2
import pytest
from conftest import git
from helpers_e2e import git_exp, note, run_refs, start_git_exp, wait_for, write_program
from helpers_ui import browser_fixture, expect, make_runs, missing_browser, page_fixture, serve  # noqa: F401 (fixtures)

from gitexp.commands.note import set_message

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))


def row_ids(page: Any) -> list[str]:
    return [str(row.get_attribute("data-id")) for row in page.locator("tr.run-row").all()]


def commit_of(repo_dir: Path, run_id: str) -> str:
    return run_refs(repo_dir)[f"refs/experiments/{run_id}"]


def notes_show(repo_dir: Path, commit: str) -> str:
    return git(repo_dir, "notes", "--ref", "experiments", "show", commit)


def test_table_sorts_filters_and_shows_deleted(repo_dir: Path, page: Any) -> None:
    ids = make_runs(repo_dir)
    with serve(repo_dir) as server:
        page.goto(server.login_url)
        expect(page.locator("tr.run-row")).to_have_count(3)
        assert row_ids(page) == ids[::-1]

        page.click('th[data-key="params.lr"]')
        expect(page.locator("tr.run-row").first).to_have_attribute("data-id", ids[0])
        assert row_ids(page) == ids
        page.click('th[data-key="params.lr"]')
        expect(page.locator("tr.run-row").first).to_have_attribute("data-id", ids[2])

        page.fill("#filter", "params.lr >= 0.3")
        page.press("#filter", "Enter")
        expect(page.locator("tr.run-row")).to_have_count(2)
        expect(page.locator("#page-info")).to_have_text("page 1 of 1 · 2 runs")

        page.fill("#filter", "metrics.loss <")
        page.click("#filter-apply")
        expect(page.locator("#filter-error")).to_contain_text(
            "invalid --where expression: expected a value"
        )
        expect(page.locator("tr.run-row")).to_have_count(2)  # the last good table stays

        assert git_exp(repo_dir, "rm", ids[0]).returncode == 0
        page.fill("#filter", "")
        page.press("#filter", "Enter")
        expect(page.locator("#filter-error")).to_have_text("")
        expect(page.locator("tr.run-row")).to_have_count(2)
        page.check("#show-deleted")
        expect(page.locator("tr.run-row")).to_have_count(3)
        expect(page.locator("tr.run-row.deleted")).to_have_attribute("data-id", ids[0])


def test_run_page_curves_output_and_edits(repo_dir: Path, page: Any) -> None:
    ids = make_runs(repo_dir, rates=(0.1, 0.3))
    commit = commit_of(repo_dir, ids[1])
    with serve(repo_dir) as server:
        page.goto(server.login_url)
        page.click(f'tr[data-id="{ids[1]}"] a.run-link')
        expect(page.locator("h1")).to_contain_text(ids[1])
        expect(page.locator("h1 .status")).to_have_text("succeeded")
        expect(page.locator("#output")).to_have_text("trained with lr 0.3\n")
        expect(page.locator('figure.chart[data-metric="loss"] path')).to_have_count(1)
        expect(page.locator('figure.chart[data-metric="acc"] path')).to_have_count(1)
        expect(page.locator("table.kv")).to_contain_text(["lr"])

        page.fill("#tag-input", "best")
        page.click("#tag-add")
        expect(page.locator('.tag-chip[data-tag="best"]')).to_have_count(1)
        assert '"best"' in notes_show(repo_dir, commit)
        assert note(repo_dir, commit)["tags"] == ["best"]

        page.fill("#tag-input", "not valid!")
        page.press("#tag-input", "Enter")
        expect(page.locator("#tag-error")).not_to_have_text("")
        assert note(repo_dir, commit)["tags"] == ["best"]

        page.click('.tag-chip[data-tag="best"] button.remove')
        expect(page.locator(".tag-chip")).to_have_count(0)
        assert note(repo_dir, commit)["tags"] == []

        page.fill("#message-input", "the good one")
        page.click("#message-save")
        expect(page.locator("#message-status")).to_have_text("saved")
        assert note(repo_dir, commit)["message"] == "the good one"
        assert note(repo_dir, commit_of(repo_dir, ids[0]))["message"] is None


def test_compare_view_overlays_curves(repo_dir: Path, page: Any) -> None:
    ids = make_runs(repo_dir, rates=(0.1, 0.3, 0.5))
    with serve(repo_dir) as server:
        page.goto(server.login_url)
        page.check(f'tr[data-id="{ids[0]}"] input.select')
        page.check(f'tr[data-id="{ids[2]}"] input.select')
        page.click("#compare-button")
        expect(page.locator("#compare-table tbody tr")).to_have_count(2)
        expect(page.locator("#compare-table thead")).to_contain_text("params.lr")
        expect(page.locator('figure.chart[data-metric="loss"] path')).to_have_count(2)
        expect(page.locator('figure.chart[data-metric="loss"] .legend')).to_contain_text(ids[2])


def test_record_text_is_shown_as_text(repo_dir: Path, page: Any) -> None:
    [run_id] = make_runs(repo_dir, rates=(0.2,))
    hostile = "<img src=x onerror=\"document.title='owned'\"><script>alert(1)</script>"
    set_message(pygit2.Repository(str(repo_dir)), run_id, hostile, os.environ)
    with serve(repo_dir) as server:
        page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
        page.goto(server.login_url)
        expect(page.locator("tr.run-row")).to_have_count(1)
        expect(page.locator("tr.run-row")).to_contain_text("<img src=x")
        page.click("a.run-link")
        expect(page.locator("#message-input")).to_have_value(hostile)
        expect(page.locator("pre.json")).to_contain_text("<script>alert(1)</script>")
        assert page.locator("main img, main script").count() == 0
        assert page.title() == "git exp ui"


def test_output_of_a_running_run_follows(repo_dir: Path, page: Any) -> None:
    write_program(
        repo_dir / "slow.py",
        """
        import os, time
        print("started", flush=True)
        while not os.path.exists("go"):
            time.sleep(0.02)
        with open(os.environ["GITEXP_METRICS"], "a") as metrics:
            metrics.write('{"step": 1, "loss": 0.5}\\n{"step": 2, "loss": 0.25}\\n')
        print("finished", flush=True)
        """,
    )
    (repo_dir / ".gitignore").write_text("go\n")
    process = start_git_exp(repo_dir, "run", "slow.py")
    try:
        wait_for(lambda: run_refs(repo_dir))
        with serve(repo_dir) as server:
            page.goto(server.login_url)
            expect(page.locator("tr.run-row .status")).to_have_text("running")
            page.click("a.run-link")
            expect(page.locator("#output")).to_have_text("started\n")
            (repo_dir / "go").write_text("")
            expect(page.locator("#output")).to_have_text("started\nfinished\n")
            assert process.wait(timeout=30) == 0
            # The curves drawn once the run is over (and every few seconds while it runs).
            expect(page.locator('figure.chart[data-metric="loss"] path')).to_have_count(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
