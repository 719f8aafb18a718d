"""Rendering tables of runs: an aligned text table, CSV, or a GitHub markdown table.

`git exp compare` and `git exp log --csv/--md` share these, so every table looks the same.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

TableFormat = Literal["text", "csv", "md"]
TABLE_FORMATS: tuple[TableFormat, ...] = ("text", "csv", "md")
COLUMN_GAP = "  "
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z|[-+]?(?:inf|nan)\Z")


def render_table(columns: list[str], rows: list[list[str]], fmt: TableFormat) -> str:
    """The table as text in `fmt`, without a final newline (print it with `click.echo`).

    `text` aligns columns two spaces apart, right-aligning columns whose cells are all
    numbers (ANSI colour in a cell does not count towards its width); `csv` is RFC 4180 with
    a header row; `md` is a GitHub markdown table with `|` escaped.
    """
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells for {len(columns)} columns")
    if fmt == "text":
        return _text_table(columns, rows)
    if fmt == "csv":
        return _csv_table(columns, rows)
    if fmt == "md":
        return _markdown_table(columns, rows)
    raise ValueError(f"unknown table format {fmt!r}")


def _visible_width(cell: str) -> int:
    return len(ANSI_ESCAPE.sub("", cell))


def _is_numeric_column(rows: list[list[str]], index: int) -> bool:
    cells = [ANSI_ESCAPE.sub("", row[index]) for row in rows]
    filled = [cell for cell in cells if cell not in ("", "-")]
    return bool(filled) and all(NUMBER.match(cell) for cell in filled)


def _text_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [
        max([_visible_width(columns[i]), *(_visible_width(row[i]) for row in rows)])
        for i in range(len(columns))
    ]
    numeric = [_is_numeric_column(rows, i) for i in range(len(columns))]
    lines = []
    for row in [columns, *rows]:
        cells = []
        for i, cell in enumerate(row):
            padding = " " * (widths[i] - _visible_width(cell))
            cells.append(padding + cell if numeric[i] else cell + padding)
        lines.append(COLUMN_GAP.join(cells).rstrip())
    return "\n".join(lines)


def _csv_table(columns: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([ANSI_ESCAPE.sub("", cell) for cell in row] for row in rows)
    return buffer.getvalue().removesuffix("\n")


def _markdown_cell(cell: str) -> str:
    plain = ANSI_ESCAPE.sub("", cell)
    return plain.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    numeric = [_is_numeric_column(rows, i) for i in range(len(columns))]
    lines = [
        "| " + " | ".join(_markdown_cell(cell) for cell in columns) + " |",
        "| " + " | ".join("---:" if right else "---" for right in numeric) + " |",
    ]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
