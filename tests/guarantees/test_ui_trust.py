"""The dashboard trusts no one: every request needs the session that the printed one-time URL
opens, a --where regular expression cannot pin a CPU, and record keys are values in the page.

Real servers on 127.0.0.1 (in a thread, or `git-exp ui` itself), real HTTP, real Chromium.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pygit2
import pytest
from conftest import git
from helpers_e2e import (
    BIN_DIR,
    assert_one_error_line,
    note,
    run_core,
    run_refs,
    user_env,
    wait_for,
    write_program,
)
from helpers_ui import (  # noqa: F401 (fixtures)
    browser_fixture,
    expect,
    login_opener,
    make_runs,
    missing_browser,
    open_login_url,
    page_fixture,
    serve,
    session_cookie,
    start_ui,
)

from gitexp.commands.note import set_message
from gitexp.web.server import DashboardServer

# Python's backtracking `re` needs about 2**N steps for this pattern on N `a`s and a `!`.
CATASTROPHIC = 'message =~ "(a+)+$"'
SLOW_SUBJECT = "a" * 5000 + "!"
NOTEBOOK_QUERY = "import gitexp, sys; print(len(gitexp.runs(where=sys.argv[1])))"
GENEROUS = 120  # seconds: RE2 answers in milliseconds, backtracking would take years
READS = [
    "/",
    "/index.html",
    "/static/app.js",
    "/static/style.css",
    "/api/runs",
    "/api/run?id={id}",
    "/api/output?id={id}",
    "/api/metrics?id={id}",
    "/api/compare?id={id}",
]


def http_get(server: DashboardServer, path: str, cookie: str | None = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def http_post(server: DashboardServer, path: str, body: Any, headers: dict[str, str]) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Content-Type": "application/json", **headers}
    connection.request("POST", path, body=json.dumps(body).encode(), headers=sent)
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def notes_ref(repo_dir: Path) -> str:
    return git(repo_dir, "rev-parse", "refs/notes/experiments").strip()


def test_every_request_needs_the_session_of_the_printed_url(repo_dir: Path) -> None:
    [run_id] = make_runs(repo_dir, rates=(0.2,))
    quoted = urllib.parse.quote(run_id, safe="")
    with serve(repo_dir) as server:
        guessed = f"gitexp-ui-{server.port}=guessed"
        for path in (read.format(id=quoted) for read in READS):
            for cookie in (None, guessed):
                refused = http_get(server, path, cookie)
                assert refused.status == 403, path
                assert b"open the URL that git exp ui printed" in refused.body, path
                assert b"trained with lr" not in refused.body and b"0.2" not in refused.body

        login = open_login_url(server.login_url)
        assert (login.status, login.getheader("Location")) == (303, "/")
        cookie = session_cookie(login)
        attributes = {part.strip() for part in login.getheader("Set-Cookie", "").split(";")}
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= attributes
        for path in (read.format(id=quoted) for read in READS):
            assert http_get(server, path, cookie).status == 200, path
        output = http_get(server, f"/api/output?id={quoted}", cookie)
        assert json.loads(output.body)["text"] == "trained with lr 0.2\n"
        page = http_get(server, "/", cookie).body.decode()
        assert "token" not in page.lower()  # nothing in the page lets a reader edit


def test_the_login_url_works_once(repo_dir: Path) -> None:
    with serve(repo_dir) as server:
        wrong = server.login_url[:-4] + "xxxx"
        assert open_login_url(wrong).status == 403
        first = open_login_url(server.login_url)
        assert first.status == 303
        again = open_login_url(server.login_url)
        assert (again.status, again.getheader("Set-Cookie")) == (403, None)
        # The same browser opening it again (it has the cookie) just lands on the page.
        login_path = server.login_url.removeprefix(server.url.rstrip("/"))
        visit = http_get(server, login_path, session_cookie(first))
        assert (visit.status, visit.getheader("Location")) == (303, "/")


def test_edits_need_the_session_and_the_pages_own_origin(repo_dir: Path) -> None:
    [run_id] = make_runs(repo_dir, rates=(0.2,))
    commit = run_refs(repo_dir)[f"refs/experiments/{run_id}"]
    with serve(repo_dir) as server:
        own = server.url.rstrip("/")
        edit = {"id": run_id, "add": ["edited"]}
        before = notes_ref(repo_dir)
        assert http_post(server, "/api/tags", edit, {"Origin": own}).status == 403
        cookie = session_cookie(open_login_url(server.login_url))
        for origin in ("http://127.0.0.1:1", "null", ""):
            refused = http_post(server, "/api/tags", edit, {"Cookie": cookie, "Origin": origin})
            assert json.loads(refused.body) == {"error": "edits come from the dashboard's own page"}
            assert refused.status == 403
        assert notes_ref(repo_dir) == before
        accepted = http_post(server, "/api/tags", edit, {"Cookie": cookie, "Origin": own})
        assert accepted.status == 200
        assert note(repo_dir, commit)["tags"] == ["edited"]


ANOTHER_ACCOUNT = """
import json, re, sys, urllib.error, urllib.request
base, run_id = sys.argv[1], sys.argv[2]
def status(request):
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
page = status(base)
token = re.search(r'content="([^"]+)"', page[1])
headers = {"Content-Type": "application/json", "Origin": base.rstrip("/")}
if token:
    headers["X-GitExp-Token"] = token.group(1)
edit = urllib.request.Request(base + "api/tags", json.dumps({"id": run_id, "add": ["pwned"]})
                              .encode(), headers)
output = status(base + "api/output?id=" + run_id)
print(json.dumps([page[0], output[0], "trained" in output[1], status(edit)[0]]))
"""


# The other account runs the system's Python: this virtualenv's may be private to this user.
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another account")
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason=f"no {SYSTEM_PYTHON}")
def test_another_local_account_cannot_read_outputs_or_edit_runs(repo_dir: Path) -> None:
    [run_id] = make_runs(repo_dir, rates=(0.2,))
    with serve(repo_dir) as server:
        before = notes_ref(repo_dir)
        attack = subprocess.run(
            [str(SYSTEM_PYTHON), "-I", "-c", ANOTHER_ACCOUNT, server.url, run_id],
            user=65534,  # nobody
            group=65534,
            extra_groups=[],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=GENEROUS,
            check=True,
        )
        assert json.loads(attack.stdout) == [403, 403, False, 403]
        assert notes_ref(repo_dir) == before


def test_every_interface_says_what_is_protected(repo_dir: Path) -> None:
    process, url = start_ui(repo_dir, "--host", "0.0.0.0", "--port", "0")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=GENEROUS)
    warning = stderr.decode().splitlines()[0]
    assert warning.startswith("warning: listening on 0.0.0.0: plain HTTP, no TLS")
    for claim in ("works once", "read and edit your runs", "watch the network"):
        assert claim in warning
    assert "?token=" in url


RECORDING_BROWSER = """#!/bin/sh
printf '%s\\n' "$@" > "$0.args"
cat "${1#file://}" > "$0.page"
"""


def test_the_browser_is_opened_without_the_token_on_its_command_line(
    repo_dir: Path, tmp_path: Path
) -> None:
    browser = tmp_path / "browser"
    browser.write_text(RECORDING_BROWSER)
    browser.chmod(0o755)
    page = Path(f"{browser}.page")
    process = subprocess.Popen(
        [str(BIN_DIR / "git-exp"), "ui", "--port", "0"],
        cwd=repo_dir,
        env=user_env({"BROWSER": str(browser)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        login_url = process.stdout.readline().decode().split()[2]
        wait_for(lambda: page.exists() and page.stat().st_size)
        [opened] = Path(f"{browser}.args").read_text().splitlines()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=GENEROUS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    token = login_url.split("?token=")[1]
    assert token not in opened  # `ps` shows only a file name
    opener = Path(opened.removeprefix("file://"))
    assert opener.name.startswith("gitexp-ui-")
    assert login_url in page.read_text()
    assert not opener.exists()  # removed when the server stops


def slow_record_repo(repo_dir: Path) -> str:
    [run_id] = make_runs(repo_dir, rates=(0.2,))
    set_message(pygit2.Repository(str(repo_dir)), run_id, SLOW_SUBJECT, os.environ)
    return run_id


def test_where_regex_is_linear_in_the_cli_and_the_notebook(repo_dir: Path) -> None:
    slow_record_repo(repo_dir)
    listed = subprocess.run(
        [str(BIN_DIR / "git-exp"), "log", "--json", "--where", CATASTROPHIC],
        cwd=repo_dir,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=GENEROUS,
    )
    assert (listed.returncode, json.loads(listed.stdout)) == (0, [])
    matched = subprocess.run(
        [str(BIN_DIR / "git-exp"), "log", "--json", "--where", 'message =~ "^(a+)+!$"'],
        cwd=repo_dir,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=GENEROUS,
    )
    assert len(json.loads(matched.stdout)) == 1
    notebook = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_QUERY, CATASTROPHIC],
        cwd=repo_dir,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=GENEROUS,
    )
    assert (notebook.returncode, notebook.stdout) == (0, "0\n")


def test_a_backtracking_only_pattern_is_one_error_line(repo_dir: Path) -> None:
    slow_record_repo(repo_dir)
    for pattern in (r'message =~ "(a)\\1"', 'message =~ "a(?=!)"'):
        refused = subprocess.run(
            [str(BIN_DIR / "git-exp"), "log", "--where", pattern],
            cwd=repo_dir,
            env=user_env(),
            capture_output=True,
            text=True,
            timeout=GENEROUS,
        )
        assert refused.returncode == 2  # a usage error
        assert refused.stderr.startswith(
            "error: invalid --where expression: bad regular expression: "
        )
        assert_one_error_line(refused.stderr)


def test_the_server_answers_others_during_a_slow_request_and_stops_on_sigterm(
    repo_dir: Path,
) -> None:
    slow_record_repo(repo_dir)
    process, url = start_ui(repo_dir, "--port", "0")
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    base = url.split("?")[0]
    try:
        opener = login_opener(url)
        # A client that sends half a request and goes quiet holds one thread, not the server.
        quiet = socket.create_connection(("127.0.0.1", port), timeout=GENEROUS)
        quiet.sendall(f"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        where = urllib.parse.quote(CATASTROPHIC, safe="")
        with opener.open(f"{base}api/runs?where={where}", timeout=GENEROUS) as response:
            assert json.loads(response.read())["total"] == 0
        with opener.open(f"{base}api/runs", timeout=GENEROUS) as response:
            assert json.loads(response.read())["total"] == 1
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=GENEROUS)
        quiet.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, stderr.decode()) == (0, "stopped\n")
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
    again.bind(("127.0.0.1", port))  # the port is free again
    again.close()


# Params, metrics and curves named like the machinery of a JavaScript object.
PROTOTYPE_NAMES = ["constructor", "__proto__", "toString", "hasOwnProperty"]
# metrics.jsonl keys starting with "_" are gitexp's own (`_rank`): __proto__ is a param only.
METRIC_NAMES = [name for name in PROTOTYPE_NAMES if not name.startswith("_")]
LOG_NAMED_METRICS = """
    import json, os, sys
    names = [arg[2:] for arg in sys.argv[1::2]]
    with open(os.environ["GITEXP_METRICS"], "a") as out:
        for step in (1, 2):
            out.write(json.dumps({"step": step, **{name: 0.5 for name in names}}) + "\\n")
"""


@pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))
def test_missing_values_named_like_object_internals_are_empty_cells(
    repo_dir: Path, page: Any
) -> None:
    write_program(repo_dir / "named.py", LOG_NAMED_METRICS)
    named = [arg for name in PROTOTYPE_NAMES for arg in (f"--{name}", "7")]
    full, _ = run_core(repo_dir, sys.executable, "named.py", *named, "--lr", "0.1")
    empty, _ = run_core(repo_dir, sys.executable, "named.py", "--lr", "0.2")
    with serve(repo_dir) as server:
        page.goto(server.login_url)
        expect(page.locator("tr.run-row")).to_have_count(2)
        headers = page.locator("#runs-table th").all_inner_texts()
        full_row = page.locator(f'tr.run-row[data-id="{full.run_id}"] td').all_inner_texts()
        empty_row = page.locator(f'tr.run-row[data-id="{empty.run_id}"] td').all_inner_texts()
        for name in PROTOTYPE_NAMES:
            # A metric column (first), a params column.
            columns = [index for index, text in enumerate(headers) if text.strip() == name]
            shown = ["0.5", "7"] if name in METRIC_NAMES else ["7"]
            assert [full_row[i] for i in columns] == shown, (name, headers)
            assert [empty_row[i] for i in columns] == [""] * len(shown), name

        # The compare view draws a curve per metric: the run without it has no line there.
        page.check(f'tr[data-id="{full.run_id}"] input.select')
        page.check(f'tr[data-id="{empty.run_id}"] input.select')
        page.click("#compare-button")
        expect(page.locator("#compare-table tbody tr")).to_have_count(2)
        for name in METRIC_NAMES:
            expect(page.locator(f'figure.chart[data-metric="{name}"] path')).to_have_count(1)
        text = page.locator("main").inner_text()
        assert "native code" not in text and "[object Object]" not in text
