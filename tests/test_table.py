"""``facerest.table.Table``: the one table type of evaluate, compare and the benchmark, as Markdown and CSV."""

import csv

import pytest

from facerest.errors import FacerestError
from facerest.table import Table, fixed_point, significant


def test_table_writes_markdown_and_csv(tmp_path):
    columns = ["Method", "PSNR↑ (RGB)", "s/face"]
    rows = [{"Method": "gfpgan", "PSNR↑ (RGB)": 25.123456, "s/face": 0.5}, {"Method": "lq", "s/face": None}]
    markdown_path, csv_path = Table(columns, rows, ["a note"]).write(tmp_path / "table")
    markdown = markdown_path.read_text(encoding="utf-8")
    assert markdown == (
        "| Method | PSNR↑ (RGB) | s/face |\n|---|---|---|\n| gfpgan | 25.1235 | 0.5000 |\n| lq | - | - |\n\n- a note\n"
    )
    with open(csv_path, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [columns, ["gfpgan", "25.123456", "0.5"], ["lq", "", ""]]


def test_titled_table_with_significant_cells():
    table = Table(["a", "b"], title="T", cell=significant, notes=["Limited by: nothing"])
    table.add(1.23456, None)
    table.add(0.000123, "x|y")
    assert table.markdown() == "## T\n\n| a | b |\n|---|---|\n| 1.23 | – |\n| 1.23e-04 | x/y |\n\n- Limited by: nothing\n"
    assert significant(float("nan")) == "–" and significant(1234.5) == "1234" and significant(12.34) == "12.3"
    assert fixed_point(None) == "-" and fixed_point(3) == "3" and fixed_point(0.5) == "0.5000"


def test_rows_by_position_and_name_and_empty_tables():
    table = Table(["a", "b", "c"], title="Empty", notes=["skipped: nothing to do"])
    assert table.markdown() == "## Empty\n\n- skipped: nothing to do\n"  # no rows: no table lines
    assert table.add(1, c="z") == {"a": 1, "c": "z"}
    with pytest.raises(ValueError, match="4 values for 3 columns"):
        table.add(1, 2, 3, 4)
    assert table.csv().splitlines() == ["a,b,c", "1,,z"]


def test_write_names_the_files_it_cannot_write(tmp_path):
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(FacerestError, match="cannot write the table to"):
        Table(["a"]).write(tmp_path / "a-file" / "table")
