"""Shared by the dashboard tests: runs to show, the server in a thread or as `git-exp ui`,
logging in as the printed URL does, and the headless browser."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers_e2e import BIN_DIR, run_core, user_env, write_program

from gitexp.web.server import DashboardServer

TRAIN = """
    import json, os, sys
    lr = float(sys.argv[sys.argv.index("--lr") + 1])
    with open(os.environ["GITEXP_METRICS"], "a") as out:
        for step in range(1, 21):
            point = {"step": step, "loss": 1.0 / (1 + lr * step), "acc": lr * step / 10}
            out.write(json.dumps(point) + "\\n")
    print("trained with lr", lr)
"""


def make_runs(repo_dir: Path, rates: tuple[float, ...] = (0.1, 0.3, 0.5)) -> list[str]:
    """One run of a small training program per learning rate; their ids, oldest first."""
    write_program(repo_dir / "train.py", TRAIN)
    ids = []
    for rate in rates:
        result, _ = run_core(repo_dir, sys.executable, "train.py", "--lr", str(rate))
        ids.append(result.run_id)
    return ids


@contextmanager
def serve(repo_dir: Path, host: str = "127.0.0.1") -> Iterator[DashboardServer]:
    """The dashboard for `repo_dir` on a free port, served from a thread."""
    server = DashboardServer(repo_dir, host, 0, dict(os.environ))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


SESSIONS: weakref.WeakKeyDictionary[DashboardServer, str] = weakref.WeakKeyDictionary()


def open_login_url(url: str) -> http.client.HTTPResponse:
    """GET the login URL `git exp ui` prints, without following its redirect."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request("GET", f"{parts.path}?{parts.query}")
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def session_cookie(response: http.client.HTTPResponse) -> str:
    """The `name=value` of the session cookie a login answer sets."""
    header = response.getheader("Set-Cookie")
    assert header is not None, f"no cookie set: {response.status}"
    return header.split(";")[0]


def logged_in(server: DashboardServer) -> str:
    """The session cookie of `server`, logging in through its one-time URL the first time."""
    if server not in SESSIONS:
        SESSIONS[server] = session_cookie(open_login_url(server.login_url))
    return SESSIONS[server]


def login_opener(login_url: str) -> urllib.request.OpenerDirector:
    """A urllib opener logged in through `login_url` (it keeps the session cookie)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(login_url, timeout=30) as response:
        assert response.status == 200
    return opener


def request(
    server: DashboardServer,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    cookie: bool = True,
) -> tuple[int, Any]:
    """GET (or POST `body` as JSON from the page's origin) with the session cookie, and return
    the status and the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    sent = dict(headers or {})
    if cookie:
        sent.setdefault("Cookie", logged_in(server))
    if body is not None:
        sent.setdefault("Content-Type", "application/json")
        sent.setdefault("Origin", server.url.rstrip("/"))
    req = urllib.request.Request(server.url.rstrip("/") + path, data=data, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def make_many_runs(repo_dir: Path, count: int) -> None:
    """`count` recorded runs written at once with `git fast-import` (refs and notes)."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = []
    notes = []
    for index in range(count):
        run_id = f"20260101.{index // 1000 + 1:03d}.{index % 1000:04d}"
        ref = f"refs/experiments/sweep/{run_id}"
        mark = index + 1
        lines += [
            f"commit {ref}",
            f"mark :{mark}",
            "committer Test User <test@example.com> 1767225600 +0000",
            f"data {len(run_id)}",
            run_id,
            f"from {head}",
            "",
        ]
        record = {
            "schema": 1,
            "id": f"sweep/{run_id}",
            "name": "sweep",
            "ref": ref,
            "status": "succeeded",
            "started_at": f"2026-01-01T00:{index // 600 % 60:02d}:{index // 10 % 60:02d}+00:00",
            "duration_s": 1.0,
            "params": {"lr": index / count, "seed": index % 7},
            "metrics": {"loss": {"last": 1 - index / count, "min": 0.0, "max": 1.0, "count": 1}},
            "tags": ["even"] if index % 2 == 0 else [],
            "message": f"run number {index}",
            "deleted": False,
        }
        notes.append((mark, json.dumps(record)))
    lines += [
        "commit refs/notes/experiments",
        "committer Test User <test@example.com> 1767225600 +0000",
        "data 5",
        "notes",
    ]
    stream = "\n".join(lines) + "\n"
    parts = [stream.encode()]
    for mark, text in notes:
        payload = text.encode()
        parts.append(f"N inline :{mark}\ndata {len(payload)}\n".encode() + payload + b"\n")
    parts.append(b"\n")
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=repo_dir, input=b"".join(parts), check=True
    )


URL_LINE = re.compile(rb"Dashboard at (http://\S+)")


def start_ui(cwd: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`git-exp ui` itself (not through git, whose own handler would relay a signal sent to
    it alone: a terminal's Ctrl-C reaches every process of the group at once), and the login
    URL it printed."""
    process = subprocess.Popen(
        [str(BIN_DIR / "git-exp"), "ui", "--no-browser", *args],
        cwd=cwd,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    for _ in range(5):
        match = URL_LINE.search(process.stdout.readline())
        if match:
            return process, match.group(1).decode()
    process.kill()
    raise AssertionError(f"no URL printed: {process.communicate()}")


CHROMIUM = Path(os.environ.get("GITEXP_TEST_CHROMIUM", "/usr/bin/chromium"))
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
API_ERROR_RESPONSE = "Failed to load resource: the server responded with a status of 4"


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(name="page")
def page_fixture(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any script error or console error (CSP included)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda message: problems.extend(console_error(message)))
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
    assert problems == []


def console_error(message: Any) -> list[str]:
    # An API answering 400 or 404 is expected (the page shows its error line); the browser
    # logs each such response to the console.
    if message.type != "error" or message.text.startswith(API_ERROR_RESPONSE):
        return []
    return [message.text]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)
