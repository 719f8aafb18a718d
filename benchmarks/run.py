"""Benchmark gitexp against the floor (plain git on the same repository) and its peers.

    python benchmarks/run.py            # the full suite (several minutes)
    python benchmarks/run.py --quick    # smaller repositories and volumes

Builds its own repositories in a temporary directory, prints one table (every number a
ratio against a baseline measured in the same run, medians of interleaved repetitions) and
writes it into docs/performance.md with the machine and versions. Peers (dvc, MLflow) are
measured when the interpreter given by --peer-python can run them, else skipped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from measures import (
    Context,
    Row,
    clean_env,
    measure_dvc,
    measure_log,
    measure_log_api,
    measure_passthrough,
    measure_run_large,
    measure_run_small,
    measure_startup,
)
from report import generated_section, table, write_report
from timing import BenchmarkError

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
PROFILES = {
    # files, MB, run counts, gitexp.log points, MLflow points, output MB, repetitions, warmup
    "full": (20_000, 200, [1_000, 10_000, 100_000], 1_000_000, 2_000, 1024, 5, 1),
    "quick": (2_000, 20, [1_000, 10_000, 100_000], 1_000_000, 1_000, 100, 5, 1),
    "tiny": (40, 1, [30], 2_000, 20, 1, 1, 0),
}


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--quick", action="store_true", help="2,000 files / 20 MB, 100 MB out")
    profile.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    parser.add_argument("--sizes", help="run counts for `git exp log`, e.g. 1000,10000,100000")
    parser.add_argument("--files", type=int, help="files in the large repository")
    parser.add_argument("--megabytes", type=int, help="size of the large repository")
    parser.add_argument("--points", type=int, help="points for the gitexp.log throughput")
    parser.add_argument("--output-mb", type=int, help="megabytes written through git exp run")
    parser.add_argument("--repetitions", type=int, help="timed repetitions per measure")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=Path("/tmp/benchvenv/bin/python"),
        help="an interpreter with dvc and mlflow installed (pip install '.[bench]')",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip dvc and MLflow")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="build in a new directory under this one (default: the system temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "performance.md", help="report file"
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    return parser.parse_args(argv)


def make_context(args: argparse.Namespace, workdir: Path) -> tuple[Context, str]:
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    files, megabytes, counts, points, mlflow_points, output_mb, reps, warmup = PROFILES[name]
    files = args.files or files
    megabytes = args.megabytes or megabytes
    counts = [int(size) for size in args.sizes.split(",")] if args.sizes else counts
    output_mb = args.output_mb or output_mb
    reps = args.repetitions or reps
    peer = None if args.no_peers or not args.peer_python.exists() else args.peer_python
    home = workdir / "home"
    home.mkdir()
    context = Context(
        workdir=workdir,
        repetitions=reps,
        warmup=warmup,
        large_files=files,
        large_bytes=megabytes * MB,
        run_counts=counts,
        points=args.points or points,
        mlflow_points=mlflow_points,
        output_bytes=output_mb * MB,
        peer_python=peer,
        env=clean_env(home),
    )
    settings = (
        f"profile {name}: large repo {files:,} files / {megabytes} MB, "
        f"log at {', '.join(f'{c:,}' for c in counts)} runs, {context.points:,} points, "
        f"{output_mb:,} MB of output, median of {reps} interleaved repetitions"
    )
    return context, settings


def run_all(context: Context) -> list[Row]:
    rows = measure_run_small(context)
    rows += measure_run_large(context)
    for count in context.run_counts:
        rows += measure_log(context, count, largest=count == max(context.run_counts))
    rows += measure_startup(context)
    rows += measure_log_api(context)
    rows += measure_passthrough(context)
    rows += measure_dvc(context)
    return rows


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    # Always a fresh directory of our own: it is deleted at the end.
    workdir = Path(tempfile.mkdtemp(prefix="gitexp-bench-", dir=args.workdir)).resolve()
    started = time.monotonic()
    try:
        context, settings = make_context(args, workdir)
        rows = run_all(context)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows))
    if not args.no_write:
        section = generated_section(
            rows, settings, workdir, context.peer_python, time.monotonic() - started
        )
        write_report(args.output, section)
        print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
