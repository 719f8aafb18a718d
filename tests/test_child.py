"""The child-side API: ``gitexp.log``, ``flush``, ``params`` and ``current_run``."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gitexp
from gitexp import child

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_child_state() -> Iterator[None]:
    """Make every test re-read the environment its own monkeypatching set up."""
    child._reset_for_tests()
    yield
    child._reset_for_tests()


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set the variables ``git exp run`` gives a program; return the run directory."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("GITEXP_RUN", "train/20260101.001.abcd")
    monkeypatch.setenv("GITEXP_RUN_DIR", str(run_dir))
    monkeypatch.setenv("GITEXP_METRICS", str(run_dir / "metrics.jsonl"))
    return run_dir


def read_points(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_python(source: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_outside_a_run_everything_is_a_no_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    gitexp.log(step=1, loss=0.5)
    gitexp.log({"loss": 0.5})
    gitexp.params({"lr": 0.1})
    gitexp.flush()
    assert gitexp.current_run() is None
    assert list(tmp_path.iterdir()) == []


def test_public_api() -> None:
    assert set(gitexp.__all__) == {
        "__version__",
        "artifact",
        "current_run",
        "flush",
        "log",
        "params",
        "runs",  # reading runs back (gitexp.notebook), imported on the first call
    }
    assert isinstance(gitexp.__version__, str)
    with pytest.raises(AttributeError):
        _ = gitexp.no_such_name  # type: ignore[attr-defined]


def test_import_stays_light() -> None:
    result = run_python(
        """
        import sys
        import gitexp
        heavy = {"pygit2", "click", "psutil", "orjson"} & set(sys.modules)
        print(sorted(heavy))
        """,
        {},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_current_run(run_env: Path) -> None:
    assert gitexp.current_run() == "train/20260101.001.abcd"


def test_log_accepts_a_dict_keywords_or_both(run_env: Path) -> None:
    gitexp.log(step=0, loss=1.5)
    gitexp.log({"loss": 1.25, "acc": 0.5}, step=1)
    gitexp.log({"loss": 1.0}, step=2, acc=0.75)
    gitexp.log({"step": 3, "loss": 0.5})
    gitexp.log({"step": 99, "loss": 0.25}, step=4)
    gitexp.log(loss=0.125)
    gitexp.flush()
    lines = (run_env / "metrics.jsonl").read_text().splitlines()
    assert lines[0] == '{"step":0,"loss":1.5}'
    assert [json.loads(line) for line in lines[1:]] == [
        {"step": 1, "loss": 1.25, "acc": 0.5},
        {"step": 2, "loss": 1.0, "acc": 0.75},
        {"step": 3, "loss": 0.5},
        {"step": 4, "loss": 0.25},
        {"loss": 0.125},
    ]


class Scalar:
    """A 0-d tensor stand-in: a number behind ``.item()``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


class Floaty:
    def __float__(self) -> float:
        return 2.5


class Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_log_converts_number_like_values(run_env: Path) -> None:
    gitexp.log(
        step=1,
        tensor=Scalar(0.5),
        floaty=Floaty(),
        flag=True,
        count=3,
        note="warmup",
        nan=math.nan,
        inf=math.inf,
        opaque=Opaque(),
        huge=2**70,
    )
    gitexp.flush()
    (point,) = read_points(run_env / "metrics.jsonl")
    assert point == {
        "step": 1,
        "tensor": 0.5,
        "floaty": 2.5,
        "flag": True,
        "count": 3,
        "note": "warmup",
        "nan": None,
        "inf": None,
        "opaque": "opaque",
        "huge": float(2**70),
    }


def test_log_converts_non_string_keys(run_env: Path) -> None:
    gitexp.log({1: 0.5, "loss": 0.25}, step=0)  # type: ignore[dict-item]
    gitexp.flush()
    assert read_points(run_env / "metrics.jsonl") == [{"step": 0, "1": 0.5, "loss": 0.25}]


def test_log_writes_numpy_scalars(run_env: Path) -> None:
    np = pytest.importorskip("numpy")
    gitexp.log(step=np.int64(3), loss=np.float32(0.5), acc=np.float64(0.25))
    gitexp.flush()
    assert read_points(run_env / "metrics.jsonl") == [{"step": 3, "loss": 0.5, "acc": 0.25}]


def test_points_stay_buffered_until_a_flush(run_env: Path) -> None:
    metrics = run_env / "metrics.jsonl"
    gitexp.log(step=0, loss=0.5)
    assert not metrics.exists() or metrics.stat().st_size == 0
    gitexp.flush()
    assert read_points(metrics) == [{"step": 0, "loss": 0.5}]


def test_a_full_buffer_is_written_without_flush(run_env: Path) -> None:
    metrics = run_env / "metrics.jsonl"
    written = 0
    step = 0
    while written < child.FLUSH_BYTES:
        gitexp.log(step=step, loss=0.5)
        written += len(f'{{"step":{step},"loss":0.5}}\n')
        step += 1
    assert read_points(metrics) == [{"step": i, "loss": 0.5} for i in range(step)]


def test_an_old_buffer_is_written_on_the_next_log(
    run_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(child, "FLUSH_SECONDS", 0.05)
    gitexp.log(step=0, loss=0.5)
    time.sleep(0.1)
    gitexp.log(step=1, loss=0.25)
    assert read_points(run_env / "metrics.jsonl") == [
        {"step": 0, "loss": 0.5},
        {"step": 1, "loss": 0.25},
    ]


def run_in_threads(worker: Callable[[int], None], count: int) -> None:
    """Run `worker(0)` ... `worker(count - 1)` on as many threads at once; wait for all."""
    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_threads_write_whole_lines(run_env: Path) -> None:
    def worker(index: int) -> None:
        for step in range(5_000):
            gitexp.log(step=step, worker=index)

    run_in_threads(worker, 8)
    gitexp.flush()
    points = read_points(run_env / "metrics.jsonl")
    assert len(points) == 40_000
    for index in range(8):
        steps = [point["step"] for point in points if point["worker"] == index]
        assert steps == list(range(5_000))


def test_an_unwritable_metrics_file_warns_once_and_drops_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITEXP_METRICS", str(tmp_path / "missing-dir" / "metrics.jsonl"))
    gitexp.log(step=0, loss=0.5)
    gitexp.flush()
    gitexp.log(step=1, loss=0.5)
    gitexp.flush()
    err = capsys.readouterr().err
    assert err.count("gitexp: cannot write metrics to") == 1
    assert not (tmp_path / "missing-dir").exists()


def test_points_are_flushed_at_exit(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    result = run_python(
        """
        import gitexp
        for step in range(10_000):
            gitexp.log(step=step, loss=1.0 / (step + 1))
        """,
        {"GITEXP_METRICS": str(metrics)},
    )
    assert result.returncode == 0, result.stderr
    points = read_points(metrics)
    assert [point["step"] for point in points] == list(range(10_000))


def test_flushed_points_survive_a_hard_exit(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    result = run_python(
        """
        import os
        import gitexp
        for step in range(100):
            gitexp.log(step=step, loss=0.5)
        gitexp.flush()
        gitexp.log(step=100, loss=0.5)
        os._exit(3)
        """,
        {"GITEXP_METRICS": str(metrics)},
    )
    assert result.returncode == 3, result.stderr
    assert [point["step"] for point in read_points(metrics)] == list(range(100))


def test_a_forked_child_does_not_rewrite_the_parents_buffer(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    result = run_python(
        """
        import os
        import sys
        import gitexp
        for step in range(5):
            gitexp.log(step=step, who="parent")
        pid = os.fork()
        if pid == 0:
            gitexp.log(step=0, who="child")
            sys.exit(0)  # a normal exit: atexit flushes the child's own buffer
        os.waitpid(pid, 0)
        """,
        {"GITEXP_METRICS": str(metrics)},
    )
    assert result.returncode == 0, result.stderr
    points = read_points(metrics)
    assert sorted((point["who"], point["step"]) for point in points) == [
        ("child", 0),
        *[("parent", step) for step in range(5)],
    ]


def test_params_merge_into_params_json(run_env: Path) -> None:
    gitexp.params({"lr": 0.1, "epochs": 3})
    gitexp.params({"lr": 0.01, "model": {"layers": [64, 64]}})
    saved = json.loads((run_env / "params.json").read_text())
    assert saved == {"lr": 0.01, "epochs": 3, "model": {"layers": [64, 64]}}
    assert [path.name for path in run_env.iterdir()] == ["params.json"]


def test_params_accepts_an_argparse_namespace(run_env: Path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--data", type=Path, default=Path("data/train.csv"))
    parser.add_argument("--tags", nargs="*", default=["a", "b"])
    gitexp.params(parser.parse_args(["--lr", "0.5"]))
    saved = json.loads((run_env / "params.json").read_text())
    assert saved == {"lr": 0.5, "data": "data/train.csv", "tags": ["a", "b"]}


def test_params_stores_other_values_as_strings(run_env: Path) -> None:
    gitexp.params({"opaque": Opaque(), "huge": 2**70, "nested": {1: Opaque()}})
    saved = json.loads((run_env / "params.json").read_text())
    assert saved == {"opaque": "opaque", "huge": str(2**70), "nested": {"1": "opaque"}}


def test_params_replaces_an_unreadable_params_file(run_env: Path) -> None:
    (run_env / "params.json").write_text("[1, 2")
    gitexp.params({"lr": 0.1})
    assert json.loads((run_env / "params.json").read_text()) == {"lr": 0.1}


def run_child(tmp_path: Path, env: dict[str, str], code: str) -> Path:
    """Run `code` in a fresh interpreter inside a fake run; return the metrics file."""
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    metrics = run_dir / "metrics.jsonl"
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in ("RANK", "SLURM_PROCID")},
        "GITEXP_RUN": "t/20260101.001.abcd",
        "GITEXP_RUN_DIR": str(run_dir),
        "GITEXP_METRICS": str(metrics),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        **env,
    }
    subprocess.run([sys.executable, "-c", code], env=full_env, check=True)
    return metrics


LOG_AND_PARAMS = "import gitexp; gitexp.log(step=1, loss=0.5); gitexp.params({'lr': 1})"


@pytest.mark.parametrize("variable", ["RANK", "SLURM_PROCID"])
def test_only_rank_zero_records_by_default(tmp_path: Path, variable: str) -> None:
    metrics = run_child(tmp_path, {variable: "1"}, LOG_AND_PARAMS)
    assert not metrics.exists()
    assert not (tmp_path / "run" / "params.json").exists()
    metrics = run_child(tmp_path, {variable: "0"}, LOG_AND_PARAMS)
    assert metrics.read_text() == '{"step":1,"loss":0.5}\n'
    assert (tmp_path / "run" / "params.json").exists()


def test_all_ranks_when_asked_mark_their_points(tmp_path: Path) -> None:
    metrics = run_child(tmp_path, {"RANK": "3", "GITEXP_ALL_RANKS": "1"}, LOG_AND_PARAMS)
    assert metrics.read_text() == '{"step":1,"loss":0.5,"_rank":3}\n'
    assert not (tmp_path / "run" / "params.json").exists()  # params stay rank 0's
    from gitexp.metrics import summarize_metrics

    assert list(summarize_metrics(metrics).metrics) == ["loss"]


def test_sigterm_flushes_buffered_points_and_still_kills(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = run_dir / "metrics.jsonl"
    env = {
        **os.environ,
        "GITEXP_RUN": "t/20260101.001.abcd",
        "GITEXP_RUN_DIR": str(run_dir),
        "GITEXP_METRICS": str(metrics),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    code = (
        "import gitexp, sys, time\n"
        "gitexp.log(step=1, loss=0.5)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    assert not metrics.exists()  # still buffered
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.returncode == -signal.SIGTERM  # it still dies of SIGTERM
    assert metrics.read_text() == '{"step":1,"loss":0.5}\n'


def test_step_is_written_first_however_it_is_passed(run_env: Path) -> None:
    gitexp.log(step=0, loss=0.5)
    gitexp.log(loss=0.5, step=1)
    gitexp.log(loss=0.5, step=2, acc=0.25)
    gitexp.log(**{"loss": 0.5, "st" + "ep": 3})
    gitexp.log(step=None, loss=0.5)
    gitexp.log(loss=0.5, step=None)
    gitexp.log(step=4)
    gitexp.log()
    gitexp.log(data=1)  # `data` is positional-only: as a keyword it is a metric
    gitexp.flush()
    assert (run_env / "metrics.jsonl").read_text().splitlines() == [
        '{"step":0,"loss":0.5}',
        '{"step":1,"loss":0.5}',
        '{"step":2,"loss":0.5,"acc":0.25}',
        '{"step":3,"loss":0.5}',
        '{"loss":0.5}',
        '{"loss":0.5}',
        '{"step":4}',
        "{}",
        '{"data":1}',
    ]


def test_threads_logging_while_others_write_the_buffer_lose_nothing(
    run_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(child, "FLUSH_BYTES", 512)  # a write every few points

    def worker(index: int) -> None:
        for step in range(3_000):
            gitexp.log(step=step, worker=index)
            if step % 500 == 0:
                gitexp.flush()

    run_in_threads(worker, 6)
    gitexp.flush()
    points = read_points(run_env / "metrics.jsonl")
    for index in range(6):
        assert [point["step"] for point in points if point["worker"] == index] == list(range(3_000))
    assert len(points) == 18_000


def test_a_signal_handler_that_logs_loses_and_repeats_nothing(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    result = run_python(
        """
        import itertools
        import signal
        import gitexp
        from gitexp import child

        child.FLUSH_BYTES = 256  # many writes for the handler to interrupt
        calls = itertools.count()  # handlers may interrupt handlers: one atomic counter

        def handler(signum, frame):
            n = next(calls)
            gitexp.log(source="handler", n=n)
            if n % 3 == 0:
                gitexp.flush()

        gitexp.flush()  # reads the environment before any handler can run
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        for step in range(100_000):
            gitexp.log(step=step, source="main")
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        gitexp.flush()
        print(next(calls))
        """,
        {"GITEXP_METRICS": str(metrics)},
    )
    assert result.returncode == 0, result.stderr
    handled = int(result.stdout)
    assert handled > 0
    points = read_points(metrics)
    assert [p["step"] for p in points if p["source"] == "main"] == list(range(100_000))
    assert sorted(p["n"] for p in points if p["source"] == "handler") == list(range(handled))


def test_sigterm_while_the_buffer_is_being_written_keeps_every_point(tmp_path: Path) -> None:
    import signal

    # A FIFO nobody reads yet: the write of the buffer blocks, so SIGTERM lands inside it.
    fifo = tmp_path / "metrics.jsonl"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        code = """
            import gitexp
            from gitexp import child

            child.FLUSH_BYTES = 1 << 30
            for step in range(20_000):  # about 500 KB, several times a pipe's capacity
                gitexp.log(step=step, loss=0.5)
            print("ready", flush=True)
            gitexp.flush()
            """
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env={**os.environ, "GITEXP_METRICS": str(fifo), "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        time.sleep(0.3)  # let flush() fill the pipe and block
        process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        os.set_blocking(reader, True)
        received = bytearray()
        while chunk := os.read(reader, 1 << 16):
            received.extend(chunk)
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        os.close(reader)
    lines = received.decode().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(20_000))
