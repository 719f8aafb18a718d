"""Tables of runs: aligned text, CSV (read back with the csv module), GitHub markdown."""

from __future__ import annotations

import csv
import io

import click
import pytest

from gitexp.cli.tables import render_table

COLUMNS = ["id", "status", "params.lr", "loss"]
ROWS = [
    ["train/20260101.002.bbbb", "failed", "0.01", "0.5"],
    ["train/20260101.001.aaaa", "succeeded", "0.1", "-"],
]


def test_text_table_aligns_columns_and_right_aligns_numbers() -> None:
    assert render_table(COLUMNS, ROWS, "text").splitlines() == [
        "id                       status     params.lr  loss",
        "train/20260101.002.bbbb  failed          0.01   0.5",
        "train/20260101.001.aaaa  succeeded        0.1     -",
    ]


def test_text_table_ignores_colour_when_measuring() -> None:
    rows = [[click.style("a", fg="red"), "x"], ["bbb", "y"]]
    lines = render_table(["c", "d"], rows, "text").splitlines()
    assert [click.unstyle(line) for line in lines] == ["c    d", "a    x", "bbb  y"]


def test_text_table_with_no_rows_is_the_header() -> None:
    assert render_table(["id", "status"], [], "text") == "id  status"


def test_csv_round_trips_awkward_cells() -> None:
    rows = [['say "hi", then\nleave', "1"], [click.style("red", fg="red"), ""]]
    text = render_table(["message", "n"], rows, "csv")
    assert not text.endswith("\n")
    assert list(csv.reader(io.StringIO(text + "\n"))) == [
        ["message", "n"],
        ['say "hi", then\nleave', "1"],
        ["red", ""],
    ]


def test_markdown_table_escapes_pipes_and_newlines() -> None:
    rows = [["a|b", "1"], ["two\nlines", "2.5"]]
    assert render_table(["text", "n"], rows, "md").splitlines() == [
        "| text | n |",
        "| --- | ---: |",
        "| a\\|b | 1 |",
        "| two lines | 2.5 |",
    ]


def test_rows_must_match_the_columns() -> None:
    with pytest.raises(ValueError, match="a row has 1 cells for 2 columns"):
        render_table(["a", "b"], [["x"]], "text")
