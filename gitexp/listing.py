"""Reading runs back: list every run in one pass (runspec.py resolves what users type)."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import orjson
import pygit2

from gitexp import store
from gitexp.display import format_duration, format_size, metrics_line
from gitexp.ids import REF_PREFIX, RUN_ID_PATTERN, parse_run_ref, printable
from gitexp.record import effective_status, load_record
from gitexp.repository import DEFAULT_MAX_RECORD_SIZE, max_record_size

# A ref whose note is not written yet is a run starting right now, unless it is older than this.
UNRECORDED_GRACE_SECONDS = 60


# What the cache keeps of each note: enough to list, filter and print `git exp log` without
# parsing the record; the record itself is read only when asked for. Bump SUMMARY_VERSION
# whenever the shape or meaning of a summary changes (older caches are then rebuilt).
SUMMARY_VERSION = 3


class NoteSummary(NamedTuple):
    """A note's summary, as the listing cache keeps it (a JSON list in this field order)."""

    status: str  # as stored; "unreadable" for a note that is not a JSON object
    started: float  # Unix time; the commit's time when the record has none
    deleted: bool
    tags: list[str]
    message: str  # its first line
    duration: float | None
    host: Any  # a running record's host (for the liveness check), else None
    problem: str | None
    # The note's bytes are exactly what `--json` prints for the run ref they name.
    exact: bool
    # The parts of the run's `git exp log` line that come from its note, control characters
    # escaped (so the display functions they use are part of the summary's meaning too).
    log_middle: str
    log_label: str


JSON_OPTIONS = orjson.OPT_INDENT_2

# What `git exp log` shows of a run: (id, effective status, start time, deleted, middle,
# label, commit, host); middle is the duration, the snapshot and the metrics (or the
# problem), label the tags and message, both with control characters escaped; host is a
# running record's. The listing cache keeps the same rows with the stored status (None for
# a run without a record) and hands them out as they are: at 100,000 runs an object per run
# costs what the rest of a listing does.
LogEntry = Sequence[Any]
L_ID, L_STATUS, L_STARTED, L_DELETED, L_MIDDLE, L_LABEL, L_COMMIT, L_HOST = range(8)


class Run:
    """One run: its ref, its snapshot commit, and its record (None when unreadable).

    The record is parsed on first use: listing 100,000 runs needs only their summaries.
    """

    __slots__ = (
        "_load",
        "_record",
        "blob",
        "commit",
        "deleted",
        "fetched",
        "id",
        "name",
        "problem",
        "ref",
        "run_id",
        "started",
        "status",
        "summary",
    )

    def __init__(
        self,
        ref: str,
        name: str,
        run_id: str,
        commit: str,
        record: dict[str, Any] | None,
        status: str,
        problem: str | None = None,
        started: float = 0.0,
        summary: NoteSummary | None = None,
        load: tuple[pygit2.Repository, str] | None = None,
        fetched: bool = False,
    ) -> None:
        self.ref, self.name, self.run_id, self.commit = ref, name, run_id, commit
        self.id = f"{name}/{run_id}"  # the run's full name, `<name>/<id>`
        self.status, self.problem, self.started = status, problem, started
        self.summary = summary
        # Marked deleted by `git exp rm` (hidden from listings unless asked for).
        self.deleted = bool(summary.deleted) if summary else False
        self._record, self._load = record, load
        # The note's blob id, while the record is still to be read from it.
        self.blob: str | None = load[1] if load is not None else None
        # The record is a remote's, as fetched (not merged here yet: see FetchedRecords).
        self.fetched = fetched

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, commit={self.commit[:12]!r})"

    @property
    def record(self) -> dict[str, Any] | None:
        """The parsed record (None when the run has no readable note)."""
        if self._load is not None:
            self._record, self._load = _read_record(*self._load), None
        return self._record

    @record.setter
    def record(self, value: dict[str, Any] | None) -> None:
        self._record, self._load = value, None

    @property
    def tags(self) -> list[str]:
        return list(self.summary.tags) if self.summary else []

    @property
    def message(self) -> str:
        """The first line of the run's message ("" when none)."""
        return str(self.summary.message) if self.summary else ""

    @property
    def duration_s(self) -> float | None:
        return self.summary.duration if self.summary else None

    def log_entry(self) -> LogEntry:
        """What `git exp log` shows of this run."""
        entry = self._row(self.summary)
        entry[L_STATUS] = self.status
        return entry

    def _cache_row(self) -> list[Any]:
        # The cache follows our notes only: a fetched record is looked up again each time.
        return self._row(None if self.fetched else self.summary)

    def _row(self, summary: NoteSummary | None) -> list[Any]:
        if summary is None:
            middle = _log_middle(self.duration_s, self.commit, "", self.problem)
            return [self.id, None, self.started, self.deleted, middle, "", self.commit, None]
        return [
            self.id,
            summary.status,
            self.started,
            self.deleted,
            summary.log_middle,
            summary.log_label,
            self.commit,
            summary.host,
        ]

    def as_json(self) -> dict[str, Any]:
        """The record as `--json` prints it: with its ref, commit and effective status."""
        data: dict[str, Any] = dict(self.record or {})
        data.update(id=self.id, name=self.name, ref=self.ref, commit=self.commit)
        data["status"] = self.status
        if self.problem:
            data["problem"] = self.problem
        return data

    def json_bytes(self, repo: pygit2.Repository) -> bytes:
        """`as_json()` as indented JSON: the stored note itself when that is what it would be.

        Copying the note's bytes instead of parsing and re-serialising it is what lets
        `log --json` keep pace with `git cat-file`.
        """
        summary = self.summary
        if (
            summary is not None
            and self.blob is not None
            and summary.exact
            and summary.status == self.status
        ):
            with contextlib.suppress(KeyError, ValueError, pygit2.GitError):
                note = store.read_blob(repo, self.blob)
                # An exact note has unique keys and no raw newline inside a string: this
                # line is its top-level "ref", and says whether it names this run.
                if f'\n  "ref": "{self.ref}",\n'.encode() in note:
                    return note.rstrip(b"\n")
        return orjson.dumps(self.as_json(), option=JSON_OPTIONS)


def list_runs(repo: pygit2.Repository, hostname: str | None = None) -> list[Run]:
    """Every run, newest first, read in one pass over the refs and the notes tree.

    Note summaries, and the run refs in listing order, come from the listing cache
    (gitexp/cache.py) when it is current; the effective status (a running run whose
    supervisor died is crashed) is always computed now.
    """
    hostname = hostname or socket.gethostname()
    with _no_cyclic_gc():
        runs = _listed_runs(repo, _notes_index(repo), hostname)
        if _settled(repo, [run.commit for run in runs if run.status == "crashed"]):
            runs = _listed_runs(repo, _notes_index(repo), hostname)
        return runs


def log_entries(repo: pygit2.Repository, hostname: str | None = None) -> list[LogEntry]:
    """What `git exp log` shows of every run (see LogEntry), in the order of `list_runs`.

    From a current listing cache these come straight from its rows, without making a Run
    for each: at 100,000 runs that is most of the time of a `git exp log`.
    """
    hostname = hostname or socket.gethostname()
    with _no_cyclic_gc():
        index = _notes_index(repo)
        if index.runs is not None:
            entries = _entries_from_cache(repo, index, hostname)
            crashed = [row[L_COMMIT] for row in entries or () if row[L_STATUS] == "crashed"]
            if entries is not None and not _settled(repo, crashed):
                return entries
            if crashed:
                index = _notes_index(repo)
        return [run.log_entry() for run in _listed_runs(repo, index, hostname)]


def deleted_records(repo: pygit2.Repository) -> set[str]:
    """The commits whose record is marked deleted (from the summaries: no record is parsed).

    Those without a run ref here are runs `git exp gc` collected (it keeps their records,
    marked, for the remote and the other clones).
    """
    with _no_cyclic_gc():
        entries = _notes_index(repo).entries
        # entries hold the summaries as JSON lists: field 2 is NoteSummary.deleted
        deleted = NoteSummary._fields.index("deleted")
        return {commit for commit, (_, summary) in entries.items() if summary[deleted]}


def _settled(repo: pygit2.Repository, crashed: list[str]) -> bool:
    """Write the final records the crashed runs left in their exit.json; True if any."""
    if not crashed:
        return False
    from gitexp import settle  # only with crashed runs about: rare

    return settle.settle_runs(repo, crashed)


def _notes_index(repo: pygit2.Repository) -> Any:
    from gitexp import cache

    limit = max_record_size(repo)
    return cache.notes_index(
        repo, lambda hex_id, data: summarize(repo, hex_id, data, limit), _summary_version(limit)
    )


def _summary_version(limit: int) -> int:
    # A note over exp.maxRecordSize is summarized as too large: a cache made under another
    # limit is rebuilt.
    return SUMMARY_VERSION if limit == DEFAULT_MAX_RECORD_SIZE else SUMMARY_VERSION + limit * 1000


def _listed_runs(repo: pygit2.Repository, index: Any, hostname: str) -> list[Run]:
    from gitexp import cache

    runs = _runs_from_cache(repo, index, hostname) if index.runs is not None else None
    if runs is None:
        index.runs = None
        runs = _runs_from_refs(repo, index, hostname)
    if index.outdated():
        cache.save(
            repo, _summary_version(max_record_size(repo)), index, [run._cache_row() for run in runs]
        )
    return runs


def _entries_from_cache(
    repo: pygit2.Repository, index: Any, hostname: str
) -> list[LogEntry] | None:
    """The cached rows with effective statuses; None if a row is malformed."""
    now = time.time()
    rows = index.runs
    fetched = FetchedRecords(repo)
    for row in rows:
        if type(row) is not list or len(row) != 8 or not isinstance(row[L_STARTED], float | int):
            return None
        status = row[L_STATUS]
        if status is None:  # a ref without a note
            if fetched.note(row[L_COMMIT]) is not None:
                return None  # shown from the fetched record: rows are not enough
            row[L_STATUS] = _unrecorded_status(row[L_STARTED], now)
        elif status == "running":
            row[L_STATUS] = _live_status(status, row[L_HOST], hostname)
        elif type(status) is not str:
            return None
    return rows


def _runs_from_refs(repo: pygit2.Repository, index: Any, hostname: str) -> list[Run]:
    entries, parsed_records = index.entries, index.parsed
    fetched = FetchedRecords(repo)
    runs = []
    for ref, commit in store.list_run_refs(repo):
        parsed = parse_run_ref(ref)
        if parsed is None:
            continue
        entry = entries.get(commit)
        if entry is None:
            runs.append(_unrecorded_run(repo, ref, parsed, commit, fetched, hostname))
        else:
            runs.append(_cached_run(repo, ref, *parsed, commit, entry, parsed_records, hostname))
    runs.sort(key=lambda run: (run.started, run.run_id), reverse=True)
    return runs


def _runs_from_cache(repo: pygit2.Repository, index: Any, hostname: str) -> list[Run] | None:
    """The runs of the cached listing (already in order); None if a row is malformed."""
    entries, parsed_records = index.entries, index.parsed
    fetched = FetchedRecords(repo)
    runs: list[Run] = []
    append = runs.append
    try:
        for row in index.runs:
            run_id, commit = row[L_ID], row[L_COMMIT]
            name, _, rest = run_id.partition("/")
            ref = f"{REF_PREFIX}{run_id}"
            entry = entries.get(commit)
            if entry is None:
                append(_unrecorded_run(repo, ref, (name, rest), commit, fetched, hostname))
            else:
                append(_cached_run(repo, ref, name, rest, commit, entry, parsed_records, hostname))
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        return None
    return runs


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    # Each of 100,000 new objects would otherwise trigger collections that rescan every one
    # made before: measured 4.7 s of 9 s at 100,000 runs. Nothing made here forms a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def summarize(
    repo: pygit2.Repository, commit: str, note: bytes, limit: int = DEFAULT_MAX_RECORD_SIZE
) -> tuple[NoteSummary, dict[str, Any] | None]:
    """(summary, parsed record or None) of the note on `commit`; see SUMMARY_VERSION.

    A note over `limit` bytes (exp.maxRecordSize) is never parsed: it may come from anyone's
    remote, and parsing multiplies its size in memory.
    """
    if len(note) > limit:
        size, most = format_size(len(note)), format_size(limit)
        problem = f"the record is too large to read: {size}, over exp.maxRecordSize ({most})"
        return _unreadable(repo, commit, problem), None
    try:
        record = load_record(note)
    except ValueError as exc:
        return _unreadable(repo, commit, f"the record is not valid JSON: {exc}"), None
    status = record.get("status")
    raw_tags = record.get("tags")
    tags = [tag for tag in raw_tags if isinstance(tag, str)] if isinstance(raw_tags, list) else []
    raw_message = record.get("message")
    message = raw_message.split("\n", 1)[0] if isinstance(raw_message, str) else ""
    raw_duration = record.get("duration_s")
    duration = raw_duration if isinstance(raw_duration, (int, float)) else None
    metrics = metrics_line(record.get("metrics"))
    label = " ".join([*(f"[{tag}]" for tag in tags), message]).strip()
    summary = NoteSummary(
        status=status if isinstance(status, str) else "unknown",
        started=_started(record) or _commit_time(repo, commit),
        deleted=bool(record.get("deleted")),
        tags=tags,
        message=message,
        duration=duration,
        host=record.get("host") if status == "running" else None,
        problem=None,
        exact=_is_exact(record, commit, note),
        log_middle=_log_middle(duration, commit, metrics, None),
        log_label=_shown(label),
    )
    return summary, record


def _unreadable(repo: pygit2.Repository, commit: str, problem: str) -> NoteSummary:
    middle = _log_middle(None, commit, "", problem)
    started = _commit_time(repo, commit)
    return NoteSummary("unreadable", started, False, [], "", None, None, problem, False, middle, "")


def _log_middle(duration: Any, commit: str, metrics: str, problem: str | None) -> str:
    middle = f"{format_duration(duration):>7}  {commit[:7]}"
    shown = metrics or problem
    return f"{middle}  {_shown(shown)}" if shown else middle


def _shown(text: str) -> str:
    return text if text.isprintable() else printable(text)


def _is_exact(record: dict[str, Any], commit: str, note: bytes) -> bool:
    """Whether `note` is byte for byte what `Run.as_json` prints for the run ref it names."""
    ref, name = record.get("ref"), record.get("name")
    parsed = parse_run_ref(ref) if isinstance(ref, str) else None
    if (
        parsed is None
        or name != parsed[0]
        or record.get("id") != f"{parsed[0]}/{parsed[1]}"
        or record.get("commit") != commit
        or not isinstance(record.get("status"), str)
    ):
        return False
    try:
        return orjson.dumps(record, option=JSON_OPTIONS) + b"\n" == note
    except TypeError:
        return False


class FetchedRecords:
    """The remotes' records as last fetched, for runs that have no record here yet.

    `git exp fetch` brings a teammate's runs and puts their records in
    refs/notes/remotes/<remote>/experiments without merging them: until a pull, a run is
    shown from there, not as one whose record was never written.
    """

    def __init__(self, repo: pygit2.Repository) -> None:
        self._repo = repo
        self._tips: list[pygit2.Commit] | None = None  # listed on first use: rarely needed

    def note(self, commit: str) -> bytes | None:
        if self._tips is None:
            self._tips = store.tracking_notes_tips(self._repo)
        for tip in self._tips:
            data = store.note_in(self._repo, tip, commit)
            if data is not None:
                return data
        return None


def _unrecorded_run(
    repo: pygit2.Repository,
    ref: str,
    parsed: tuple[str, str],
    commit: str,
    fetched: FetchedRecords,
    hostname: str,
) -> Run:
    name, run_id = parsed
    note = fetched.note(commit)
    if note is not None:
        summary, record = summarize(repo, commit, note)
        status = summary.status
        if status == "running":
            status = _live_status(status, summary.host, hostname)
        return Run(
            ref,
            name,
            run_id,
            commit,
            record,
            status,
            summary.problem,
            summary.started,
            summary,
            fetched=True,
        )
    committed = _commit_time(repo, commit)
    return Run(
        ref=ref,
        name=name,
        run_id=run_id,
        commit=commit,
        record=None,
        status=_unrecorded_status(committed, time.time()),
        problem="no record was written for this run",
        started=committed,
    )


def _cached_run(
    repo: pygit2.Repository,
    ref: str,
    name: str,
    run_id: str,
    commit: str,
    entry: list[Any],
    parsed_records: dict[str, dict[str, Any]],
    hostname: str,
) -> Run:
    blob_hex, stored = entry
    summary = NoteSummary._make(stored)
    status = summary.status
    if status == "running":
        status = _live_status(status, summary.host, hostname)
    problem = summary.problem
    record = parsed_records.get(commit)
    # Without a problem the note is a readable record: it is parsed when first asked for.
    load = (repo, blob_hex) if record is None and problem is None else None
    return Run(ref, name, run_id, commit, record, status, problem, summary.started, summary, load)


def _live_status(status: str, host: Any, hostname: str) -> str:
    """A `running` record's status now: crashed once its supervisor on this host is gone."""
    return effective_status({"status": status, "host": host}, hostname)


def _unrecorded_status(committed: float, now: float) -> str:
    """A run ref without a note: a run starting right now, or one that died before its record."""
    return "running" if now - committed < UNRECORDED_GRACE_SECONDS else "crashed"


def _read_record(repo: pygit2.Repository, blob_hex: str) -> dict[str, Any] | None:
    try:
        return load_record(store.read_blob(repo, blob_hex))
    except (ValueError, KeyError, pygit2.GitError):
        return None


def _started(record: dict[str, Any]) -> float | None:
    value = record.get("started_at")
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _commit_time(repo: pygit2.Repository, commit: str) -> float:
    # Refs under refs/experiments/ can be made by hand: a tag or a blob must not break a listing.
    try:
        return float(repo[commit].peel(pygit2.Commit).commit_time)
    except (KeyError, ValueError, pygit2.GitError):
        return 0.0


__all__ = ["RUN_ID_PATTERN", "Run", "list_runs"]
