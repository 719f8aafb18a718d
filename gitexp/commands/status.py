"""`git exp status`: the runs in progress on this machine, and the runs that crashed."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitexp.listing import Run, list_runs


@dataclass
class ActiveRun:
    """A run in progress or crashed, with what `git exp status` shows of it."""

    id: str
    status: str
    pid: int | None
    host: str | None
    started_at: str | None
    elapsed_s: float | None
    command: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "host": self.host,
            "started_at": self.started_at,
            "elapsed_s": self.elapsed_s,
            "command": self.command,
        }


@dataclass
class StatusReport:
    """Runs running on `host`, and crashed runs (of any host), newest first."""

    host: str
    running: list[ActiveRun] = field(default_factory=list)
    crashed: list[ActiveRun] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "running": [run.as_json() for run in self.running],
            "crashed": [run.as_json() for run in self.crashed],
        }


def run_status(
    repo: pygit2.Repository, hostname: str | None = None, now: float | None = None
) -> StatusReport:
    """The runs whose record says `running` on this host, and the runs shown as crashed.

    Runs marked deleted are left out, as `git exp log` leaves them out.
    """
    hostname = hostname or socket.gethostname()
    now = time.time() if now is None else now
    report = StatusReport(host=hostname)
    for run in list_runs(repo, hostname):
        # Summaries first: reading every record of 100,000 runs would cost seconds.
        if run.deleted or run.status not in ("running", "crashed"):
            continue
        record = run.record or {}
        if run.status == "running" and _host(record).get("hostname") == hostname:
            report.running.append(_active(run, now))
        elif run.status == "crashed":
            report.crashed.append(_active(run, now))
    return report


def _active(run: Run, now: float) -> ActiveRun:
    record = run.record or {}
    host = _host(record)
    pid = host.get("pid")
    command = record.get("command")
    started_at = record.get("started_at")
    return ActiveRun(
        id=run.id,
        status=run.status,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        host=host.get("hostname") if isinstance(host.get("hostname"), str) else None,
        started_at=started_at if isinstance(started_at, str) else None,
        elapsed_s=round(now - run.started, 3) if run.started > 0 else None,
        command=[str(part) for part in command] if isinstance(command, list) else [],
    )


def _host(record: dict[str, Any]) -> dict[str, Any]:
    host = record.get("host")
    return host if isinstance(host, dict) else {}
