"""Summaries of metrics.jsonl files."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gitexp
from gitexp import child
from gitexp.metrics import MetricsSummary, read_metric_points, summarize_metrics


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_summary_per_metric_in_order_of_first_appearance(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "metrics.jsonl",
        '{"step": 0, "loss": 2.0}',
        '{"step": 1, "loss": 1.0, "acc": 0.5}',
        '{"step": 2, "loss": 1.5}',
        '{"step": 10, "acc": 0.75, "epoch": 1}',
    )
    summary = summarize_metrics(path)
    assert summary == MetricsSummary(
        metrics={
            "loss": {"last": 1.5, "min": 1.0, "max": 2.0, "count": 3, "step": 2},
            "acc": {"last": 0.75, "min": 0.5, "max": 0.75, "count": 2, "step": 10},
            "epoch": {"last": 1, "min": 1, "max": 1, "count": 1, "step": 10},
        },
        bad_lines=0,
    )
    assert list(summary.metrics) == ["loss", "acc", "epoch"]


def test_missing_file_gives_an_empty_summary(tmp_path: Path) -> None:
    assert summarize_metrics(tmp_path / "nope.jsonl") == MetricsSummary(metrics={}, bad_lines=0)
    assert list(read_metric_points(tmp_path / "nope.jsonl")) == []


def test_bad_and_torn_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"step": 0, "loss": 1.0}\n'
        b"not json\n"
        b"[1, 2]\n"
        b'"a string"\n'
        b"\n"
        b"   \n"
        b'{"step": 1, "loss": 0.5}\n'
        b'{"step": 2, "lo'  # torn by a program killed mid-write
    )
    summary = summarize_metrics(path)
    assert summary.bad_lines == 4
    assert summary.metrics == {"loss": {"last": 0.5, "min": 0.5, "max": 1.0, "count": 2, "step": 1}}
    assert list(read_metric_points(path)) == [
        (0, {"step": 0, "loss": 1.0}),
        None,
        None,
        None,
        (1, {"step": 1, "loss": 0.5}),
        None,
    ]


def test_non_finite_values_count_but_stay_out_of_min_and_max(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "metrics.jsonl",
        '{"step": 0, "loss": 1.0}',
        '{"step": 1, "loss": null}',
        json.dumps({"step": 2, "loss": math.nan}),  # Python's json writes a bare NaN
        json.dumps({"step": 3, "loss": 3.0}),
        json.dumps({"step": 4, "loss": -math.inf}),
    )
    assert summarize_metrics(path).metrics == {
        "loss": {"last": None, "min": 1.0, "max": 3.0, "count": 5, "step": 4}
    }


def test_a_metric_with_only_non_finite_values(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "metrics.jsonl", '{"step": 5, "loss": null}')
    assert summarize_metrics(path).metrics == {
        "loss": {"last": None, "min": None, "max": None, "count": 1, "step": 5}
    }


def test_without_step_a_point_is_numbered_per_metric(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "metrics.jsonl",
        '{"loss": 3.0}',
        '{"loss": 2.0, "acc": 0.1}',
        '{"loss": 1.0}',
        '{"step": null, "acc": 0.2}',
    )
    metrics = summarize_metrics(path).metrics
    assert metrics["loss"]["step"] == 2
    assert metrics["acc"]["step"] == 1


def test_only_numbers_are_metrics(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "metrics.jsonl",
        '{"step": 0, "loss": 1, "phase": "train", "done": false, "hist": [1, 2], "cfg": {}}',
        '{"step": 1, "loss": 2, "phase": "eval", "done": true}',
    )
    assert summarize_metrics(path).metrics == {
        "loss": {"last": 2, "min": 1, "max": 2, "count": 2, "step": 1}
    }


def test_integers_beyond_64_bits_are_read(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "metrics.jsonl", f'{{"step": 0, "tokens": {2**70}}}')
    assert summarize_metrics(path).metrics["tokens"]["last"] == 2**70


def test_summary_of_points_written_by_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("GITEXP_METRICS", str(path))
    child._reset_for_tests()
    try:
        for step, loss in enumerate([0.9, 0.4, math.nan, 0.6]):
            gitexp.log(step=step, loss=loss, phase="train")
        gitexp.log(acc=0.5)
        gitexp.flush()
    finally:
        child._reset_for_tests()
    assert summarize_metrics(path).metrics == {
        "loss": {"last": 0.6, "min": 0.4, "max": 0.9, "count": 4, "step": 3},
        "acc": {"last": 0.5, "min": 0.5, "max": 0.5, "count": 1, "step": 0},
    }


@given(st.lists(st.one_of(st.integers(-(2**60), 2**60), st.floats()), min_size=1))
def test_summary_matches_a_plain_computation(values: list[float]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "metrics.jsonl"
        write_lines(path, *(json.dumps({"step": i, "x": v}) for i, v in enumerate(values)))
        summary = summarize_metrics(path)
    finite = [v for v in values if math.isfinite(v)]
    expected_last = values[-1] if math.isfinite(values[-1]) else None
    assert summary.bad_lines == 0
    assert summary.metrics == {
        "x": {
            "last": expected_last,
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "count": len(values),
            "step": len(values) - 1,
        }
    }


def test_series_and_summaries_read_lines_alike(tmp_path: Path) -> None:
    from gitexp.series import metric_series

    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"step": 0, "loss": 1.0}\n'
        b'{"step": NaN, "loss": Infinity}\n'  # Python's json module writes these literals
        b'{"step": 2, "loss": 18446744073709551616}\n'  # beyond orjson's 64 bits
        b"\n"
        b"[1]\n"
        b'{"loss": 0.5, "_rank": 1}\n'
        b'{"step": 4, "lo'
    )
    summary = summarize_metrics(path)
    series = metric_series(tmp_path)

    assert summary.bad_lines == 2
    assert summary.metrics["loss"] == {
        "last": 0.5,
        "min": 0.5,
        "max": 18446744073709551616,
        "count": 4,
        "step": 3,
    }
    assert [step for step, _ in series["loss"]] == [0, 1, 2]
    assert math.isnan(series["loss"][1][1])
