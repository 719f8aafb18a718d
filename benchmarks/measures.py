"""The measures: each builds what it needs, times gitexp and its baseline side by side, and
returns table rows. Every ratio is gitexp ÷ baseline, both measured in the same run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from repos import add_runs, build_large, build_small, git
from timing import BenchmarkError, Command, interleaved, peak_rss_while

BIN_DIR = Path(sys.executable).parent
MB = 1 << 20
PLAIN_GIT_SNAPSHOT = (
    'cp -p .git/index "$BENCH_INDEX" && export GIT_INDEX_FILE="$BENCH_INDEX" && git add -A'
    " && tree=$(git write-tree) && commit=$(git commit-tree -p HEAD -m snapshot $tree)"
    ' && git update-ref refs/bench/snapshot $commit && rm -f "$BENCH_INDEX"'
)
PLUMBING_FLOOR = (
    "git for-each-ref --format='%(objectname) %(refname)' refs/experiments"
    " && git ls-tree -r refs/notes/experiments | awk '{print $3}' | git cat-file --batch"
)
LOG_POINTS = """
import sys, time, gitexp
count = int(sys.argv[1])
start = time.perf_counter()
for step in range(count):
    gitexp.log(step=step, loss=1.0 / (step + 1))
gitexp.flush()
print(time.perf_counter() - start)
"""
ORJSON_POINTS = """
import os, sys, time, orjson
count = int(sys.argv[1])
start = time.perf_counter()
with open(os.environ["GITEXP_METRICS"], "ab") as out:
    for step in range(count):
        out.write(orjson.dumps({"step": step, "loss": 1.0 / (step + 1)},
                               option=orjson.OPT_APPEND_NEWLINE))
print(time.perf_counter() - start)
"""
MLFLOW_POINTS = """
import sys, time, warnings
warnings.filterwarnings("ignore")
from mlflow.tracking import MlflowClient
count, store = int(sys.argv[1]), sys.argv[2]
client = MlflowClient(tracking_uri="file:" + store)
run = client.create_run(client.create_experiment("bench-%d" % time.time_ns()))
start = time.perf_counter()
for step in range(count):
    client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
print(time.perf_counter() - start)
"""
WRITER = """
import sys
remaining = int(sys.argv[1])
chunk = (b"epoch 1 step 100 loss 0.1234 " * 2200)[:65535] + b"\\n"
out = sys.stdout.buffer
while remaining > 0:
    out.write(chunk[:remaining])
    remaining -= len(chunk)
out.flush()
"""


@dataclass
class Row:
    """One line of the table."""

    measure: str
    gitexp: str
    baseline: str
    ratio: float | None = None
    target: str = "—"
    met: str = "—"


@dataclass
class Context:
    """Sizes, repetitions and the environment every measure runs with."""

    workdir: Path
    repetitions: int
    warmup: int
    large_files: int
    large_bytes: int
    run_counts: list[int]
    points: int
    mlflow_points: int
    output_bytes: int
    peer_python: Path | None
    env: dict[str, str] = field(default_factory=dict)
    small: Path | None = None

    def progress(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def command(
        self,
        argv: list[str],
        cwd: Path,
        stdout_path: Path | None = None,
        before: Callable[[], None] | None = None,
    ) -> Command:
        return Command(argv, cwd, self.env, stdout_path, before)

    def shell(self, script: str, cwd: Path, **extra_env: str) -> Command:
        return Command(["sh", "-c", script], cwd, {**self.env, **extra_env})

    def small_repo(self) -> Path:
        if self.small is None:
            self.small = build_small(self.workdir / "small")
        return self.small


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a user of this virtualenv, with no git or gitexp overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITEXP_"))}
    env.pop("PYTHONPATH", None)
    # Users' installs have bytecode caches; without them every `git exp` compiles its modules.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = os.pathsep.join([str(BIN_DIR), env.get("PATH", os.defpath)])
    env["HOME"] = str(home)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    env["MLFLOW_TRACKING_URI"] = ""
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses its file store otherwise
    return env


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def rate(value: float, unit: str) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M {unit}"
    return f"{value / 1e3:.1f}k {unit}" if value >= 1e4 else f"{value:.0f} {unit}"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def git_exp(*args: str) -> list[str]:
    return ["git", "exp", *args]


def measure_run_small(ctx: Context) -> list[Row]:
    """`git exp run -- true` on the small repository against `true` alone."""
    small = ctx.small_repo()
    ctx.progress("run overhead, small repository")
    samples = interleaved(
        {
            "gitexp": ctx.command(git_exp("run", "--", "true"), small).run,
            "true": ctx.command(["true"], small).run,
        },
        ctx.repetitions,
        ctx.warmup,
    )
    run, true = samples["gitexp"].median, samples["true"].median
    return [
        Row(
            "`git exp run -- true`, small repo, whole process",
            seconds(run),
            f"{seconds(true)} (`true`)",
            run / true,
            "≤ 0.25 s",
            verdict(run <= 0.25),
        )
    ]


def measure_run_large(ctx: Context) -> list[Row]:
    """The snapshot on the large repository against `git status` and a plain-git snapshot."""
    small = ctx.small_repo()
    ctx.progress(f"building the large repository ({ctx.large_files:,} files)")
    large = build_large(ctx.workdir / "large", ctx.large_files, ctx.large_bytes)
    ctx.progress("snapshot, large repository")
    samples = interleaved(
        {
            "run_large": ctx.command(git_exp("run", "--", "true"), large).run,
            "run_small": ctx.command(git_exp("run", "--", "true"), small).run,
            "status_large": ctx.command(["git", "status", "--porcelain"], large).run,
            "status_small": ctx.command(["git", "status", "--porcelain"], small).run,
            "plain": ctx.shell(
                PLAIN_GIT_SNAPSHOT, large, BENCH_INDEX=str(ctx.workdir / "bench.index")
            ).run,
        },
        ctx.repetitions,
        ctx.warmup,
    )
    median = {name: sample.median for name, sample in samples.items()}
    snapshot = max(median["run_large"] - median["run_small"], 0.0)
    status = max(median["status_large"] - median["status_small"], 1e-4)
    size = f"{ctx.large_files:,} files, {ctx.large_bytes // MB} MB"
    return [
        Row(
            f"snapshot beyond start-up, large repo ({size})",
            seconds(snapshot),
            f"{seconds(status)} (`git status --porcelain`)",
            snapshot / status,
            "≤ 1.5×",
            verdict(snapshot <= 1.5 * status),
        ),
        Row(
            "`git exp run -- true`, large repo, whole process",
            seconds(median["run_large"]),
            f"{seconds(median['plain'])} (plain-git snapshot)",
            median["run_large"] / median["plain"],
            "≤ 1.5×",
            verdict(median["run_large"] <= 1.5 * median["plain"]),
        ),
        Row(
            "`git exp run -- true`, large repo, whole process",
            seconds(median["run_large"]),
            f"{seconds(median['status_large'])} (`git status --porcelain`)",
            median["run_large"] / median["status_large"],
        ),
    ]


def _new_files(root: Path, before: set[Path]) -> list[Path]:
    return sorted(_state_files(root) - before)


def _state_files(root: Path) -> set[Path]:
    """Files under the git dir that are neither objects nor refs: where a cache would be."""
    found: set[Path] = set()
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d not in ("objects", "refs", "logs")]
        found.update(Path(folder) / name for name in files)
    return found


def measure_log(ctx: Context, count: int, largest: bool) -> list[Row]:
    """`git exp log --json` at `count` runs against the plumbing floor; cold and warm."""
    ctx.progress(f"building {count:,} runs")
    repo = add_runs(ctx.workdir / f"runs-{count}", count)
    git_dir = repo / ".git"
    before = _state_files(git_dir)
    ctx.progress(f"git exp log at {count:,} runs")
    first = ctx.command(git_exp("log", "--json"), repo).run()
    cache = _new_files(git_dir, before)

    def drop_cache() -> None:
        for path in cache:
            path.unlink(missing_ok=True)

    subjects: dict[str, Callable[[], float]] = {
        "warm": ctx.command(git_exp("log", "--json"), repo).run,
        "floor": ctx.shell(PLUMBING_FLOOR, repo).run,
    }
    if cache:
        subjects["cold"] = ctx.command(git_exp("log", "--json"), repo, before=drop_cache).run
    if largest:
        subjects["plain"] = ctx.command(git_exp("log"), repo).run
        subjects["head"] = ctx.command(git_exp("log", "-n", "20"), repo).run
    samples = interleaved(subjects, ctx.repetitions, warmup=0)
    floor = samples["floor"].median
    floor_text = f"{seconds(floor)} (plumbing floor)"
    warm = samples["warm"].median
    ten_thousand = count == 10_000
    label = "second call" if cache else "repeated call"
    rows = [
        Row(
            f"`git exp log --json`, {count:,} runs, {label}",
            seconds(warm),
            floor_text,
            warm / floor,
            "≤ 1.3×" if ten_thousand else "—",
            verdict(warm <= 1.3 * floor) if ten_thousand else "—",
        )
    ]
    if cache:
        cold = samples["cold"].median
        rows.append(
            Row(f"`git exp log --json`, {count:,} runs, no cache", seconds(cold), floor_text,
                cold / floor)
        )  # fmt: skip
    else:
        rows.append(
            Row(f"`git exp log --json`, {count:,} runs, first call", seconds(first), floor_text,
                first / floor)
        )  # fmt: skip
    if largest:
        plain = samples["plain"].median
        rows.append(
            Row(
                f"`git exp log`, {count:,} runs, {label}",
                seconds(plain),
                floor_text,
                plain / floor,
                "≤ 0.5 s",
                verdict(plain <= 0.5),
            )
        )
        head = samples["head"].median
        rows.append(
            Row(f"`git exp log -n 20`, {count:,} runs, {label}", seconds(head), floor_text,
                head / floor)
        )  # fmt: skip
    return rows


def measure_startup(ctx: Context) -> list[Row]:
    """`git exp -h` and `git exp log` against a bare interpreter and one importing click."""
    small = ctx.small_repo()
    ctx.progress("start-up")
    python = sys.executable
    samples = interleaved(
        {
            "help": ctx.command(git_exp("-h"), small).run,
            "log": ctx.command(git_exp("log"), small).run,
            "pass": ctx.command([python, "-c", "pass"], small).run,
            "click": ctx.command([python, "-c", "import click"], small).run,
        },
        ctx.repetitions,
        ctx.warmup,
    )
    median = {name: sample.median for name, sample in samples.items()}
    return [
        Row(
            "`git exp -h` (same as `git-exp --help`) start-up",
            seconds(median["help"]),
            f'{seconds(median["click"])} (`python -c "import click"`)',
            median["help"] / median["click"],
            "≤ 2×",
            verdict(median["help"] <= 2 * median["click"]),
        ),
        Row(
            "`git exp -h` start-up",
            seconds(median["help"]),
            f"{seconds(median['pass'])} (`python -c pass`)",
            median["help"] / median["pass"],
        ),
        Row(
            "`git exp log` start-up, small repo",
            seconds(median["log"]),
            f"{seconds(median['pass'])} (`python -c pass`)",
            median["log"] / median["pass"],
        ),
    ]


def _timed_script(
    ctx: Context, python: Path | str, source: str, *args: str, env: dict[str, str] | None = None
) -> Callable[[], float]:
    """A measure running `source` in `python`; the script prints the seconds it timed itself."""

    def measure() -> float:
        result = subprocess.run(
            [str(python), "-c", textwrap.dedent(source), *args],
            cwd=ctx.workdir,
            env={**ctx.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BenchmarkError(f"benchmark script failed: {result.stderr.strip()[-500:]}")
        return float(result.stdout.strip().splitlines()[-1])

    return measure


def measure_log_api(ctx: Context) -> list[Row]:
    """`gitexp.log` points per second against a bare orjson loop and MLflow's file store."""
    ctx.progress(f"gitexp.log throughput ({ctx.points:,} points)")
    metrics = ctx.workdir / "metrics"
    metrics.mkdir(exist_ok=True)
    run_env = {
        "GITEXP_METRICS": str(metrics / "metrics.jsonl"),
        "GITEXP_RUN_DIR": str(metrics),
        "GITEXP_RUN": "bench/20260101.001.abcd",
    }
    samples = interleaved(
        {
            "gitexp": _timed_script(ctx, sys.executable, LOG_POINTS, str(ctx.points), env=run_env),
            "orjson": _timed_script(
                ctx, sys.executable, ORJSON_POINTS, str(ctx.points), env=run_env
            ),
        },
        ctx.repetitions,
        warmup=0,
    )
    gitexp_rate = ctx.points / samples["gitexp"].median
    orjson_rate = ctx.points / samples["orjson"].median
    rows = [
        Row(
            f"`gitexp.log` throughput, {ctx.points:,} points",
            rate(gitexp_rate, "points/s"),
            f"{rate(orjson_rate, 'points/s')} (bare orjson loop)",
            gitexp_rate / orjson_rate,
            "≥ 0.5×",
            verdict(gitexp_rate >= 0.5 * orjson_rate),
        )
    ]
    mlflow_label = "`gitexp.log` against MLflow `log_metric`, file store"
    python = ctx.peer_python
    if python is None or not _imports(ctx, python, "mlflow"):
        return [*rows, Row(mlflow_label, rate(gitexp_rate, "points/s"), "skipped: not installed")]
    ctx.progress(f"MLflow log_metric ({ctx.mlflow_points:,} points)")
    store = ctx.workdir / "mlruns"
    mlflow = _timed_script(ctx, python, MLFLOW_POINTS, str(ctx.mlflow_points), str(store))
    mlflow_rate = ctx.mlflow_points / interleaved({"m": mlflow}, ctx.repetitions, 0)["m"].median
    ratio = gitexp_rate / mlflow_rate
    return [
        *rows,
        Row(
            mlflow_label,
            rate(gitexp_rate, "points/s"),
            f"{rate(mlflow_rate, 'points/s')} (MLflow {ctx.mlflow_points:,} points)",
            ratio,
            "≥ 500×",
            verdict(ratio >= 500),
        ),
    ]


def _imports(ctx: Context, python: Path, module: str) -> bool:
    result = subprocess.run(
        [str(python), "-c", f"import {module}"], env=ctx.env, capture_output=True, check=False
    )
    return result.returncode == 0


def measure_passthrough(ctx: Context) -> list[Row]:
    """A program's stdout through `git exp run` against the same program writing to a file."""
    small = ctx.small_repo()
    writer = ctx.workdir / "writer.py"
    writer.write_text(textwrap.dedent(WRITER))
    volume = ctx.output_bytes
    ctx.progress(f"output pass-through ({volume // MB:,} MB)")
    run_dirs = small / ".git" / "experiments" / "writer"
    peaks: list[int] = []

    def through_gitexp(size: int) -> float:
        shutil.rmtree(run_dirs, ignore_errors=True)  # gigabytes of output.log add up
        argv = [str(BIN_DIR / "git-exp"), "run", "--", sys.executable, str(writer), str(size)]
        with open(os.devnull, "wb") as devnull:
            start = time.perf_counter()
            process = subprocess.Popen(
                argv, cwd=small, env=ctx.env, stdout=devnull, stderr=subprocess.DEVNULL
            )
            peak = peak_rss_while(process)
            code = process.wait()
            elapsed = time.perf_counter() - start
        if code != 0:
            raise BenchmarkError(f"git-exp run of the writer exited {code}")
        peaks.append(peak())
        return elapsed

    to_file = ctx.command(
        [sys.executable, str(writer), str(volume)], small, stdout_path=ctx.workdir / "out.bin"
    )
    samples = interleaved(
        {"gitexp": lambda: through_gitexp(volume), "file": to_file.run},
        ctx.repetitions,
        warmup=0,
    )
    big_peak = max(peaks)
    peaks.clear()
    through_gitexp(MB)
    small_peak = peaks[0]
    shutil.rmtree(run_dirs, ignore_errors=True)
    (ctx.workdir / "out.bin").unlink(missing_ok=True)
    gitexp_rate = volume / samples["gitexp"].median
    file_rate = volume / samples["file"].median
    return [
        Row(
            f"output pass-through, {volume // MB:,} MB to stdout",
            f"{gitexp_rate / MB:,.0f} MB/s",
            f"{file_rate / MB:,.0f} MB/s (same program to a file)",
            gitexp_rate / file_rate,
            "≥ 0.5×",
            verdict(gitexp_rate >= 0.5 * file_rate),
        ),
        Row(
            f"supervisor peak RSS, {volume // MB:,} MB of output",
            f"{big_peak / MB:.1f} MB",
            f"{small_peak / MB:.1f} MB (1 MB of output)",
            big_peak / small_peak,
            "≤ 60 MB",
            verdict(big_peak <= 60 * MB),
        ),
    ]


DVC_PIPELINE = """\
stages:
  train:
    cmd: "true"
    always_changed: true
"""


def measure_dvc(ctx: Context) -> list[Row]:
    """`dvc exp run` / `dvc exp show` against `git exp run` / `git exp log` on the small repo."""
    run_label = "run overhead (beyond `true`) against `dvc exp run`, small repo"
    show_label = "`git exp log --json` against `dvc exp show --json`, small repo"
    dvc = _dvc_path(ctx)
    if dvc is None:
        return [
            Row(run_label, "—", "skipped: not installed"),
            Row(show_label, "—", "skipped: not installed"),
        ]
    ctx.progress("dvc exp run / dvc exp show")
    repo = ctx.workdir / "dvc-small"
    shutil.copytree(ctx.small_repo(), repo, symlinks=True)
    subprocess.run([str(dvc), "init", "-q"], cwd=repo, env=ctx.env, check=True)
    (repo / "dvc.yaml").write_text(DVC_PIPELINE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc pipeline")
    samples = interleaved(
        {
            "gitexp": ctx.command(git_exp("run", "--", "true"), repo).run,
            "dvc": ctx.command([str(dvc), "exp", "run", "-q"], repo).run,
            "true": ctx.command(["true"], repo).run,
        },
        ctx.repetitions,
        ctx.warmup,
    )
    shows = interleaved(
        {
            "log": ctx.command(git_exp("log", "--json"), repo).run,
            "show": ctx.command([str(dvc), "exp", "show", "--json"], repo).run,
        },
        ctx.repetitions,
        ctx.warmup,
    )
    true = samples["true"].median
    gitexp_overhead = samples["gitexp"].median - true
    dvc_overhead = samples["dvc"].median - true
    ratio = gitexp_overhead / dvc_overhead
    runs = ctx.repetitions + ctx.warmup
    return [
        Row(
            run_label,
            seconds(gitexp_overhead),
            f"{seconds(dvc_overhead)} (`dvc exp run`)",
            ratio,
            "≤ 0.2× (5× less)",
            verdict(ratio <= 0.2),
        ),
        Row(
            f"{show_label}, {runs} run{'' if runs == 1 else 's'} each",
            seconds(shows["log"].median),
            f"{seconds(shows['show'].median)} (`dvc exp show --json`)",
            shows["log"].median / shows["show"].median,
        ),
    ]


def _dvc_path(ctx: Context) -> Path | None:
    if ctx.peer_python is not None and (ctx.peer_python.parent / "dvc").exists():
        return ctx.peer_python.parent / "dvc"
    found = shutil.which("dvc", path=ctx.env.get("PATH"))
    return Path(found) if found else None
