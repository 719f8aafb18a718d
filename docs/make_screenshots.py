"""Regenerate the dashboard screenshots in docs/screenshots/ (referenced from docs/ui.md).

    python docs/make_screenshots.py [--chromium /usr/bin/chromium] [--keep]

Builds a demo repository from examples/ in a temporary directory (a small learning-rate sweep,
a failing run, a shell program), serves it with `git exp ui`'s server, and saves PNGs of the
runs table, a run page and the compare view with the same headless Chromium the tests drive
(Playwright with Debian's chromium; no browser download). Needs `pip install playwright`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OUT = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAX_BYTES = 300 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--keep", action="store_true", help="keep the demo repository")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-screenshots."))
    try:
        repo = build_demo(scratch)
        shoot(repo, options.chromium)
    finally:
        if options.keep:
            print(f"demo repository: {scratch / 'demo'}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def build_demo(scratch: Path) -> Path:
    """A repository with a handful of recorded runs, made by `git exp` itself."""
    repo = scratch / "demo"
    repo.mkdir()
    env = dict(os.environ, HOME=str(scratch), GIT_CONFIG_NOSYSTEM="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])

    def run(*args: str, check: bool = True) -> None:
        subprocess.run(args, cwd=repo, env=env, check=check, capture_output=True)

    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.name", "Ada Lovelace")
    run("git", "config", "user.email", "ada@example.com")
    for name in ("train_logreg.py", "crash_midway.py", "train.sh"):
        shutil.copy2(EXAMPLES / name, repo / name)
    (repo / ".gitignore").write_text("checkpoints/\n")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "Add training scripts")
    for rate in ("0.05", "0.2", "0.5", "1.0"):
        run("git", "exp", "run", "-t", "sweep", "train_logreg.py", "--lr", rate, "--epochs", "12")
    run("git", "exp", "run", "crash_midway.py", "--fail-at", "3", check=False)
    run("git", "exp", "run", "train.sh", "6")
    run("git", "exp", "tag", "@~3", "best")
    run("git", "exp", "note", "@~3", "lr 0.5 converges fastest; keep this one")
    return repo


def shoot(repo: Path, chromium: str) -> None:
    """Serve `repo` and save the three screenshots."""
    from playwright.sync_api import sync_playwright

    from gitexp.web.server import DashboardServer

    server = DashboardServer(repo, "127.0.0.1", 0, dict(os.environ))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 640})
            page.goto(server.login_url)  # as a user does: the one-time URL, then a cookie
            page.wait_for_selector("tr.run-row")
            save(page, "runs.png")

            page.click('tr.run-row:has(.tag:text("best")) a.run-link')
            page.wait_for_selector('figure.chart[data-metric="val_acc"] path')
            page.set_viewport_size({"width": 1360, "height": 1100})
            save(page, "run.png")

            page.goto(server.url)
            page.wait_for_selector("tr.run-row")
            page.set_viewport_size({"width": 1360, "height": 900})
            for row in page.locator('tr.run-row:has(.tag:text("sweep")) input.select').all():
                row.check()
            page.click("#compare-button")
            page.wait_for_selector('figure.chart[data-metric="val_loss"] path')
            save(page, "compare.png")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def save(page: object, name: str) -> None:
    path = OUT / name
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    size = path.stat().st_size
    print(f"{path.relative_to(ROOT)}: {size // 1024} KB")
    if size > MAX_BYTES:
        raise SystemExit(f"{name} is over {MAX_BYTES // 1024} KB: make the viewport smaller")


if __name__ == "__main__":
    main()
