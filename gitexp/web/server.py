"""The dashboard's HTTP server: static page, JSON API, and the checks that keep it local.

Built on the standard library's ThreadingHTTPServer: the page is three static files and the
API a handful of JSON endpoints, which does not earn a web framework. Each request opens its
own pygit2 repository (a repository object is not shared between threads).

Security: records may come from other people's remotes, so the page renders them with
textContent only. Every request needs the session cookie that the one-time login URL (printed
by `git exp ui`) sets, as Jupyter does: another account on the machine can reach the port but
has neither. Requests whose Host header is not the address the server is bound to are refused
(DNS rebinding); a POST must also come from the page's own origin (the cookie is SameSite=Strict,
but a page on another port of the same host is the same site).
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from gitexp.errors import GitExpError, UnknownRunError

LOGIN_PARAMETER = "token"
LOGIN_REFUSED = (
    "not logged in: open the URL that git exp ui printed (it logs this browser in, once); "
    "after a restart, use the new one"
)
MAX_BODY_BYTES = 1024 * 1024
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NOT_FOUND_ERRORS = (UnknownRunError,)


class DashboardServer(ThreadingHTTPServer):
    """The dashboard for one repository, bound to `host`:`port` (0 picks a free port)."""

    daemon_threads = True

    def __init__(self, repo_path: Path, host: str, port: int, environ: Mapping[str, str]) -> None:
        from gitexp.repository import open_repository

        repo = open_repository(repo_path)
        self.repo_path = Path(repo.path)
        self.env_logdir = environ.get("GITEXP_LOGDIR")
        self.environ = dict(environ)
        self.login_token: str | None = secrets.token_urlsafe(32)
        # The one browser session the token opened (it works once, so there is at most one).
        self.session: str | None = None
        self.login_lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), DashboardHandler)
        self.host = host
        self.port = int(self.server_address[1])
        self.allowed_hosts = allowed_host_headers(host, self.port)
        self.login_url = f"{self.url}?{LOGIN_PARAMETER}={self.login_token}"
        # Cookies are shared by every port of a host: one name per port keeps two dashboards
        # from logging each other out.
        self.cookie_name = f"gitexp-ui-{self.port}"

    @property
    def url(self) -> str:
        """The dashboard's address (it needs a login first: see `login_url`)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if is_unspecified(self.host):
            shown = "127.0.0.1"
        return f"http://{shown}:{self.port}/"

    def log_in(self, token: str) -> str | None:
        """A new session id for the one-time login token, which is then spent; else None."""
        with self.login_lock:
            expected = self.login_token
            if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
                return None
            self.login_token = None
            self.session = secrets.token_urlsafe(32)
            return self.session

    def has_session(self, session: str) -> bool:
        """Whether `session` is the session id this server handed out."""
        expected = self.session
        return expected is not None and hmac.compare_digest(session.encode(), expected.encode())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line on stderr, never a traceback; a browser that went away is not an error."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return
        print(f"gitexp ui: {type(error).__name__}: {error}", file=sys.stderr)

    def open_repo(self) -> Any:
        import pygit2

        return pygit2.Repository(str(self.repo_path))


def allowed_host_headers(host: str, port: int) -> set[str] | None:
    """The Host headers a request may carry; None (any) when bound to every interface."""
    if is_unspecified(host):
        return None
    names = {f"[{host}]" if ":" in host else host}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    return {f"{name}:{port}" for name in names}


def is_unspecified(host: str) -> bool:
    """Whether `host` means every interface (0.0.0.0, ::, or empty)."""
    if host in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardHandler(BaseHTTPRequestHandler):
    """Routes GET and POST requests to the page, the static files and the JSON API."""

    server: DashboardServer
    server_version = "gitexp-ui"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if not self._host_allowed():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/" and LOGIN_PARAMETER in query:
            self._log_in(_one(query, LOGIN_PARAMETER))
            return
        if not self._logged_in(url.path):
            return
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, _static("index.html"), "text/html; charset=utf-8")
        elif url.path.startswith("/static/") and url.path[8:] in STATIC_FILES:
            name = url.path[8:]
            self._send(HTTPStatus.OK, _static(name), STATIC_FILES[name])
        elif url.path in GET_ROUTES:
            self._answer(lambda repo: GET_ROUTES[url.path](self.server, repo, query))
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")

    def do_POST(self) -> None:
        # Answering without reading the body would leave it to be parsed as the next request.
        self.close_connection = True
        if not self._host_allowed():
            return
        url = urlsplit(self.path)
        if not self._logged_in(url.path):
            return
        if self.headers.get("Origin", "") not in self._own_origins():
            self._send_error(HTTPStatus.FORBIDDEN, "edits come from the dashboard's own page")
            return
        if url.path not in POST_ROUTES:
            self._send_error(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}")
            return
        body = self._read_json_body()
        if body is not None:
            self._answer(lambda repo: POST_ROUTES[url.path](self.server, repo, body))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the URL and errors, not every request."""

    def _host_allowed(self) -> bool:
        allowed = self.server.allowed_hosts
        if allowed is None or self.headers.get("Host", "") in allowed:
            return True
        self._send_error(HTTPStatus.MISDIRECTED_REQUEST, "unexpected Host header")
        return False

    def _log_in(self, token: str) -> None:
        """Spend the one-time token on a session cookie and go to the clean URL."""
        session = self.server.log_in(token)
        if session is None and not self._has_session_cookie():
            self._send_refusal("/")
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        if session is not None:
            self.send_header(
                "Set-Cookie",
                f"{self.server.cookie_name}={session}; Path=/; HttpOnly; SameSite=Strict",
            )
        self.send_header("Content-Length", "0")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def _logged_in(self, path: str) -> bool:
        if self._has_session_cookie():
            return True
        self._send_refusal(path)
        return False

    def _has_session_cookie(self) -> bool:
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except CookieError:
            return False
        morsel = cookies.get(self.server.cookie_name)
        return morsel is not None and self.server.has_session(morsel.value)

    def _own_origins(self) -> set[str]:
        allowed = self.server.allowed_hosts
        hosts = {self.headers.get("Host", "")} if allowed is None else allowed
        return {f"http://{host}" for host in hosts}

    def _send_refusal(self, path: str) -> None:
        """403 for want of a session: JSON for the API, a short page for a browser."""
        if path.startswith("/api/"):
            self._send_error(HTTPStatus.FORBIDDEN, LOGIN_REFUSED)
            return
        page = (
            "<!doctype html><meta charset=utf-8><title>git exp ui: not logged in</title>"
            f"<p>{html.escape(LOGIN_REFUSED)}.</p>"
        )
        self._send(HTTPStatus.FORBIDDEN, page.encode(), "text/html; charset=utf-8")

    def _read_json_body(self) -> dict[str, Any] | None:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        length = int(self.headers.get("Content-Length") or 0)
        if content_type != "application/json":
            self._send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            return None
        if not 0 < length <= MAX_BODY_BYTES:
            self._send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body missing or too large")
            return None
        try:
            body = orjson.loads(self.rfile.read(length))
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self._send_error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return None
        return body

    def _answer(self, compute: Callable[[Any], Any]) -> None:
        try:
            result = compute(self.server.open_repo())
        except NOT_FOUND_ERRORS as exc:
            self._send_error(HTTPStatus.NOT_FOUND, str(exc))
        except GitExpError as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:
            print(f"gitexp ui: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._send_error(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"internal error (a bug in gitexp): {type(exc).__name__}: {exc}",
            )
        else:
            self._send(HTTPStatus.OK, orjson.dumps(result), "application/json")

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, orjson.dumps({"error": message}), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _static(name: str) -> bytes:
    return resources.files("gitexp.web").joinpath("static").joinpath(name).read_bytes()


Query = dict[str, list[str]]


def _one(query: Query, name: str, default: str = "") -> str:
    values = query.get(name)
    return values[0] if values else default


def _integer(query: Query, name: str, default: int | None) -> int | None:
    text = _one(query, name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise GitExpError(f"invalid {name} '{text[:40]}': not an integer") from None


def _get_runs(server: DashboardServer, repo: Any, query: Query) -> Any:
    from gitexp.web.api import DEFAULT_PAGE_SIZE, RunsQuery, runs_page

    return runs_page(
        repo,
        RunsQuery(
            where=_one(query, "where").strip() or None,
            sort=_one(query, "sort").strip() or None,
            descending=_one(query, "order") == "desc",
            include_deleted=_one(query, "deleted") in ("1", "true"),
            page=_integer(query, "page", 0) or 0,
            page_size=_integer(query, "size", DEFAULT_PAGE_SIZE) or DEFAULT_PAGE_SIZE,
        ),
    )


def _get_run(server: DashboardServer, repo: Any, query: Query) -> Any:
    from gitexp.web.api import run_details

    return run_details(repo, _one(query, "id"), server.env_logdir)


def _get_output(server: DashboardServer, repo: Any, query: Query) -> Any:
    from gitexp.web.api import DEFAULT_TAIL_BYTES, output_tail

    return output_tail(
        repo,
        _one(query, "id"),
        server.env_logdir,
        offset=_integer(query, "offset", None),
        max_bytes=_integer(query, "max", DEFAULT_TAIL_BYTES) or DEFAULT_TAIL_BYTES,
    )


def _get_metrics(server: DashboardServer, repo: Any, query: Query) -> Any:
    from gitexp.web.api import metric_curves

    return metric_curves(repo, query.get("id", []), server.env_logdir)


def _get_compare(server: DashboardServer, repo: Any, query: Query) -> Any:
    from gitexp.web.api import compare_view

    return compare_view(repo, query.get("id", []))


def _post_tags(server: DashboardServer, repo: Any, body: dict[str, Any]) -> Any:
    from gitexp.web.api import change_run_tags

    return change_run_tags(
        repo, _text(body, "id"), _texts(body, "add"), _texts(body, "remove"), server.environ
    )


def _post_message(server: DashboardServer, repo: Any, body: dict[str, Any]) -> Any:
    from gitexp.web.api import change_run_message

    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise GitExpError("'message' must be a string or null")
    return change_run_message(repo, _text(body, "id"), message, server.environ)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise GitExpError(f"'{name}' must be a string")
    return value


def _texts(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise GitExpError(f"'{name}' must be a list of strings")
    return value


GET_ROUTES: dict[str, Callable[[DashboardServer, Any, Query], Any]] = {
    "/api/runs": _get_runs,
    "/api/run": _get_run,
    "/api/output": _get_output,
    "/api/metrics": _get_metrics,
    "/api/compare": _get_compare,
}
POST_ROUTES: dict[str, Callable[[DashboardServer, Any, dict[str, Any]], Any]] = {
    "/api/tags": _post_tags,
    "/api/message": _post_message,
}
