"""plan.xlsx (formats = ["xlsx"]): one workbook, named sheets, number formats, frozen headers,
read back through the loaders as the CSV tables, formula-like ids neutralized."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from allocator.outputs import workbook
from allocator.outputs.workbook import read_workbook, write_workbook
from allocator.tables.readers import read_table
from tests.conftest import TINY, run_cli

EVIL = "=cmd|' /C calc'!A0"  # the classic DDE payload, as a staff id


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny case with one staff id that Excel would run as a command, solved with xlsx."""
    base = tmp_path_factory.mktemp("workbook")
    case = base / "case"
    shutil.copytree(TINY.parent, case)
    staff = case / "staff.csv"
    staff.write_text(staff.read_text().replace("\ns2,", f"\n{EVIL},"))
    out = base / "run"
    done = run_cli("solve", case / "scenario.toml", "--no-store", "--set",
                   'output.formats=["csv", "xlsx"]', out=out)
    assert done.code == 0, done.stderr
    return out


def test_one_workbook_with_named_sheets(run: Path) -> None:
    assert sorted(p.name for p in run.glob("*.xlsx")) == ["plan.xlsx"]  # not one per table
    book = openpyxl.load_workbook(run / "plan.xlsx")
    tables = sorted(p.stem for p in run.glob("*.csv"))
    assert book.sheetnames[:5] == ["summary", "plan", "coverage", "budgets", "sites"]
    assert book.sheetnames[-1] == "sensitivity"
    assert sorted(book.sheetnames) == sorted(["summary", *tables])
    expected = [n for n in ("summary", "plan", "coverage", "budgets", "sites", "bottlenecks",
                            "hiring", "sensitivity") if n in book.sheetnames]
    assert [n for n in book.sheetnames if n in expected] == expected


def _formats(sheet) -> dict[str, str]:
    headers = [c.value for c in sheet[1]]
    return {h: c.number_format for h, c in zip(headers, sheet[2], strict=True)}


def test_number_formats_frozen_headers_and_widths(run: Path) -> None:
    book = openpyxl.load_workbook(run / "plan.xlsx")
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title  # the header row stays in view
        assert sheet["A1"].font.b, sheet.title
        widths = [sheet.column_dimensions[c].width for c in "AB" if sheet.max_column > 1]
        assert all(w and w >= 8 for w in widths), (sheet.title, widths)
    plan = _formats(book["plan"])
    assert plan["fte"] == "#,##0.00" and plan["cost"] == "#,##0"
    assert plan["staff_id"] == "General"
    budgets = _formats(book["budgets"])
    assert budgets["amount"] == budgets["spent"] == budgets["headroom"] == "#,##0"
    assert _formats(book["coverage"])["served_share"] == "0.0%"
    sites = _formats(book["sites"])
    assert sites["fte"] == sites["capacity_fte"] == "#,##0.00" and sites["cost"] == "#,##0"
    # A long sentence column is wider than an id column, and capped.
    hiring = book["hiring"] if "hiring" in book.sheetnames else None
    if hiring is not None:
        assert _formats(hiring)["cost_per_fte"] == "#,##0"


def _same(csv: pd.DataFrame, sheet: pd.DataFrame, name: str) -> None:
    assert list(sheet.columns) == list(csv.columns), name
    assert len(sheet) == len(csv), name
    for col in csv.columns:
        a, b = csv[col], sheet[col]
        numbers_a = pd.to_numeric(a, errors="coerce")
        if numbers_a.notna().sum() == a.notna().sum() and a.notna().any():
            numbers_b = pd.to_numeric(b, errors="coerce")
            assert np.array_equal(numbers_a.to_numpy(float), numbers_b.to_numpy(float),
                                  equal_nan=True), (name, col)
        else:  # text, and booleans (Excel's TRUE is the CSV's true)
            left = a.astype(object).where(a.notna(), None).map(
                lambda v: v.lower() if v in ("true", "false") else v)
            right = b.astype(object).where(b.notna(), None).map(
                lambda v: v.lower() if v in ("TRUE", "FALSE") else v)
            assert left.tolist() == right.tolist(), (name, col)


def test_sheets_read_back_through_the_loaders_as_the_csv_tables(run: Path) -> None:
    sheets = read_workbook(run / "plan.xlsx")
    for path in sorted(run.glob("*.csv")):
        csv = read_table(path.stem, str(path), run).frame
        _same(csv, sheets[path.stem], path.stem)
    summary = pd.read_json(run / "summary.json", typ="series")
    fields = dict(zip(sheets["summary"]["field"], sheets["summary"]["value"], strict=True))
    assert fields["status"] == summary["status"] == "optimal"
    for stage, value in summary["objectives"].items():
        assert float(fields[f"objectives.{stage}"]) == value


def test_formula_like_id_is_neutralized(run: Path) -> None:
    book = openpyxl.load_workbook(run / "plan.xlsx")
    ids = [(c.value, c.data_type) for c in book["plan"]["A"][1:]]
    assert ("'" + EVIL, "s") in ids  # text with the CSV's leading quote, never a formula
    assert all(not str(v).startswith("=") for v, _ in ids)
    with zipfile.ZipFile(run / "plan.xlsx") as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert not any(b"<f>" in archive.read(n) for n in sheets)  # no formula anywhere
    assert "'" + EVIL in (run / "plan.csv").read_text()  # as the CSV has it
    assert EVIL in set(read_workbook(run / "plan.xlsx")["plan"]["staff_id"])  # read as written


def test_long_table_goes_on_in_a_second_sheet_and_bytes_repeat(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(workbook, "EXCEL_ROWS", 5)  # 4 data rows a sheet
    frame = pd.DataFrame({"staff_id": [f"s{i}" for i in range(10)],
                          "fte": np.linspace(0, 1, 10), "rhs_high": [np.inf] * 9 + [np.nan]})
    write_workbook(tmp_path / "a.xlsx", {"plan": frame}, {"status": "optimal", "gap": 0.0})
    write_workbook(tmp_path / "b.xlsx", {"plan": frame}, {"status": "optimal", "gap": 0.0})
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    assert openpyxl.load_workbook(tmp_path / "a.xlsx").sheetnames == [
        "summary", "plan", "plan (2)", "plan (3)"]
    back = read_workbook(tmp_path / "a.xlsx")["plan"]
    assert back["staff_id"].tolist() == frame["staff_id"].tolist()
    assert np.array_equal(back["fte"].astype(float), frame["fte"])
    assert back["rhs_high"].tolist()[:9] == ["inf"] * 9 and pd.isna(back["rhs_high"].iloc[9])
