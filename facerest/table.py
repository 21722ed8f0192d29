"""One table type for every report: the ``evaluate`` and ``compare`` tables and the benchmark's.

A ``Table`` holds its columns, its rows (dicts keyed by column; a missing cell is empty), the notes printed under it
and an optional title; it prints as Markdown (the title as a ``##`` heading, then the table, then the notes as a
list) and writes as ``<out>.md`` and ``<out>.csv`` (full precision, empty cells for missing values).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from .errors import FacerestError

Cell = Union[float, int, str, None]
Row = dict[str, Cell]


def fixed_point(value: Cell) -> str:
    """A cell of a metrics table: floats to 4 decimal places, ``-`` when missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def significant(value: Cell) -> str:
    """A cell of a timing table: about three significant digits, ``–`` when missing or NaN, ``|`` shown as ``/``."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01 or magnitude == 0:
            return f"{value:.3g}" if magnitude < 1 else f"{value:.2f}"
        return f"{value:.2e}"
    return str(value).replace("|", "/")


@dataclass
class Table:
    """Columns, rows (dicts keyed by column), notes for under the table, an optional title, and how cells print."""

    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str | None = None
    cell: Callable[[Cell], str] = fixed_point

    def add(self, *values: Cell, **named: Cell) -> Row:
        """Append a row given in column order (and/or by column name); returns it."""
        if len(values) > len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        row = {**dict(zip(self.columns, values)), **named}
        self.rows.append(row)
        return row

    def markdown(self) -> str:
        """The title as a ``##`` heading, the table (when it has rows), then the notes as a list."""
        lines = [f"## {self.title}", ""] if self.title else []
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("|" + "|".join("---" for _ in self.columns) + "|")
            lines += ["| " + " | ".join(self.cell(row.get(column)) for column in self.columns) + " |" for row in self.rows]
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def csv(self) -> str:
        """The header and the rows as CSV, values at full precision, missing ones empty."""
        handle = io.StringIO(newline="")
        writer = csv.writer(handle)
        writer.writerow(self.columns)
        writer.writerows([["" if row.get(column) is None else row.get(column) for column in self.columns] for row in self.rows])
        return handle.getvalue()

    def write(self, out: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``out.md`` (``markdown()``) and ``out.csv`` (``csv()``); returns their paths."""
        out = Path(out)
        markdown_path, csv_path = out.with_name(out.name + ".md"), out.with_name(out.name + ".csv")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            markdown_path.write_text(self.markdown(), encoding="utf-8")
            csv_path.write_text(self.csv(), encoding="utf-8", newline="")
        except OSError as error:
            raise FacerestError(f"cannot write the table to {markdown_path} and {csv_path.name}: {error.strerror or error}") from None
        return markdown_path, csv_path
