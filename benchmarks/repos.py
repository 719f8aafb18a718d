"""Build the repositories the benchmark measures, fast, without going through gitexp.

Files are generated in Python (one random block sliced per file) and committed with git;
100,000 runs are made by writing their commits and notes in one `git fast-import` stream and
their refs as a packed-refs file, rather than by running `git exp run` 100,000 times.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from gitexp.ids import REF_PREFIX
from gitexp.record import dump_record, new_record
from gitexp.store import NOTES_COMMIT_MESSAGE, NOTES_REF

IDENTITY = {"user.name": "Bench Mark", "user.email": "bench@example.com"}
PAST = time.time() - 3600  # files older than the index are never "racily clean"
FILES_PER_DIR = 100
MODIFIED_FILES = 100
UNTRACKED_FILES = 50
RUN_NAMES = ("train", "eval", "sweep", "finetune", "ablation")
RUNS_PER_DAY = 480  # one run every 3 minutes
SCRATCH_REF = "refs/bench/scratch"


def git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run the real git binary in `repo`; its stdout."""
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def init_repo(path: Path) -> Path:
    """An empty repository with a pinned identity."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for key, value in IDENTITY.items():
        git(path, "config", key, value)
    return path


def _write_files(root: Path, count: int, total_bytes: int, block: bytes) -> list[Path]:
    size = max(1, total_bytes // max(1, count))
    paths = []
    for index in range(count):
        folder = root / f"d{index // (FILES_PER_DIR * 20):03d}" / f"m{index // FILES_PER_DIR:04d}"
        if index % FILES_PER_DIR == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"file{index:06d}.py"
        offset = (index * 7919) % max(1, len(block) - size)
        path.write_bytes(f"# file {index}\n".encode() + block[offset : offset + size])
        paths.append(path)
    return paths


def _commit_everything(repo: Path, message: str) -> None:
    for path in repo.rglob("*"):
        if ".git" not in path.relative_to(repo).parts:
            os.utime(path, (PAST, PAST), follow_symlinks=False)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def build_small(path: Path, files: int = 50, data_bytes: int = 1 << 20) -> Path:
    """About `files` source files and one data file of `data_bytes`; one file modified."""
    repo = init_repo(path)
    block = random.Random(1).randbytes(max(1 << 16, data_bytes))
    sources = _write_files(repo / "src", files, files * 1024, block)
    (repo / "data").mkdir()
    (repo / "data" / "train.bin").write_bytes(block[:data_bytes])
    (repo / ".gitignore").write_text("outputs/\n")
    _commit_everything(repo, "small repository")
    with sources[0].open("ab") as handle:
        handle.write(b"# edited\n")
    return repo


def build_large(path: Path, files: int, total_bytes: int) -> Path:
    """`files` files totalling `total_bytes`, then 100 modified, 50 untracked, outputs/ ignored."""
    repo = init_repo(path)
    block = random.Random(2).randbytes(4 << 20)
    sources = _write_files(repo / "src", files, total_bytes, block)
    (repo / ".gitignore").write_text("outputs/\n")
    _commit_everything(repo, "large repository")
    for source in sources[:: max(1, len(sources) // MODIFIED_FILES)][:MODIFIED_FILES]:
        with source.open("ab") as handle:
            handle.write(b"# edited\n")
    _write_files(repo / "new", UNTRACKED_FILES, UNTRACKED_FILES * 4096, block)
    _write_files(repo / "outputs", 20, max(1 << 20, total_bytes // 20), block)
    git(repo, "status", "--porcelain")  # refresh the index stat cache, as any user's git does
    return repo


def add_runs(path: Path, count: int) -> Path:
    """A repository with `count` finished runs: commits, notes (fanned out) and packed refs.

    Everything goes through one `git fast-import` stream, which writes a single pack: writing
    300,000 loose objects (with pygit2) and repacking them took minutes here, this seconds.
    The snapshot commits' ids, which the records must contain, are computed beforehand and
    checked against the marks fast-import exports.
    """
    repo_path = init_repo(path)
    (repo_path / "train.py").write_text("print('train')\n")
    _commit_everything(repo_path, "code")
    head = git(repo_path, "rev-parse", "HEAD").strip()
    tree = git(repo_path, "rev-parse", "HEAD^{tree}").strip()
    marks = repo_path / ".git" / "bench-marks"
    importer = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done", f"--export-marks={marks}"],
        cwd=repo_path,
        stdin=subprocess.PIPE,
    )
    assert importer.stdin is not None
    runs = _write_runs(importer.stdin, count, head, tree)
    importer.stdin.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")
    exported = dict(line.split(" ", 1) for line in marks.read_text().split("\n") if line)
    for mark, (commit, _) in enumerate(runs, start=1):
        if exported.get(f":{mark}", "").strip() != commit:
            raise RuntimeError("computed commit ids differ from git's")
    marks.unlink()
    git(repo_path, "update-ref", "-d", SCRATCH_REF)
    _write_packed_refs(repo_path, [f"{commit} {ref}" for commit, ref in runs])
    # fast-import deltifies each note against the previous one, 50 deep; reading 100,000
    # notes through such chains took 7x longer (for git and gitexp alike) than from a plain pack.
    git(repo_path, "repack", "-a", "-d", "-f", "-q", "--window=0")
    return repo_path


def _write_runs(stream: IO[bytes], count: int, head: str, tree: str) -> list[tuple[str, str]]:
    """Feed `count` snapshot commits and one notes commit to fast-import; (commit, ref) each."""
    rng = random.Random(3)
    start = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    person = f"{IDENTITY['user.name']} <{IDENTITY['user.email']}> {int(start.timestamp())} +0000"
    runs: list[tuple[str, str]] = []
    records: list[bytes] = []
    for index in range(count):
        name = RUN_NAMES[index % len(RUN_NAMES)]
        started = start + dt.timedelta(minutes=index * 3)
        count_that_day = (index % RUNS_PER_DAY) // len(RUN_NAMES) + 1
        run_id = f"{started:%Y%m%d}.{count_that_day:03d}.{_base36(index)}"
        message = f"exp: {name}/{run_id}\n\ntrain.py --lr {rng.random():.4f}\n".encode()
        body = (
            f"tree {tree}\nparent {head}\nauthor {person}\ncommitter {person}\n\n".encode()
            + message
        )
        commit = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
        stream.write(
            f"commit {SCRATCH_REF}\nmark :{index + 1}\nauthor {person}\ncommitter {person}\n"
            f"data {len(message)}\n".encode()
            + message
            + f"from {head}\n\n".encode()
        )
        records.append(dump_record(_record(name, run_id, commit, head, started, rng)))
        runs.append((commit, f"{REF_PREFIX}{name}/{run_id}"))
    notes_message = NOTES_COMMIT_MESSAGE.encode()
    stream.write(
        f"commit {NOTES_REF}\ncommitter {person}\ndata {len(notes_message)}\n".encode()
        + notes_message
    )
    for index, record in enumerate(records):
        stream.write(f"N inline :{index + 1}\ndata {len(record)}\n".encode() + record + b"\n")
    stream.write(b"\ndone\n")
    return runs


def _base36(number: int, width: int = 4) -> str:
    """`number` as `width` characters of [0-9a-z]: unique random parts for 1.6M runs."""
    digits = ""
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits


def _record(
    name: str,
    run_id: str,
    commit: str,
    head: str,
    started: dt.datetime,
    rng: random.Random,
) -> dict[str, object]:
    duration = rng.uniform(10, 5000)
    return new_record(
        id=f"{name}/{run_id}",
        name=name,
        ref=f"{REF_PREFIX}{name}/{run_id}",
        commit=commit,
        status="succeeded" if rng.random() > 0.1 else "failed",
        command=["train.py", "--lr", f"{rng.random():.4f}", "--epochs", "10"],
        cwd=".",
        run_dir=f"/home/user/project/.git/experiments/{name}/{run_id}",
        started_at=started.isoformat(timespec="milliseconds"),
        ended_at=(started + dt.timedelta(seconds=duration)).isoformat(timespec="milliseconds"),
        duration_s=round(duration, 3),
        exit_code=0,
        signal=None,
        host={"hostname": "bench-host", "user": "bench", "platform": "Linux-6.1-x86_64",
              "pid": 4242, "pid_started_at": 1.7e9, "cpu_count": 8, "memory_bytes": 1 << 35},
        python={"executable": "/usr/bin/python3", "version": "3.11.7",
                "implementation": "CPython"},
        packages={"numpy": "2.1.0", "torch": "2.5.1", "scikit-learn": "1.5.2"},
        git={"head": head, "branch": "main", "dirty": True, "untracked": ["notes.txt"],
             "untracked_count": 1, "skipped": []},
        params={"lr": rng.random(), "epochs": 10, "batch_size": 64, "model": "resnet18"},
        metrics={metric: {"last": rng.random(), "min": 0.01, "max": 2.5, "count": 1000,
                          "step": 999} for metric in ("loss", "accuracy", "val_loss")},
        resources={"peak_rss_bytes": 1 << 31, "cpu_seconds": duration * 1.7},
        message=None,
    )  # fmt: skip


def _write_packed_refs(repo: Path, lines: list[str]) -> None:
    git(repo, "pack-refs", "--all")
    packed = repo / ".git" / "packed-refs"
    existing = [
        line
        for line in (packed.read_text().splitlines() if packed.exists() else [])
        if line and not line.startswith(("#", "^"))
    ]
    entries = sorted(existing + lines, key=lambda line: line.split(" ", 1)[1])
    header = "# pack-refs with: peeled fully-peeled sorted \n"
    packed.write_text(header + "".join(f"{line}\n" for line in entries))
