"""Messy real inputs through the real CLI (docs/input-rules.md): exports as spreadsheets and
databases write them, each read right or refused with file, spreadsheet row and column.

Each test copies tests/cases/tiny (or a model's data) into tmp_path, makes it messy in one
way, and checks what the CLI does. The catalogue in docs/input-rules.md names the test behind
each quirk. SQL rules run against SQLite and a throwaway PostgreSQL server (skipped only
where PostgreSQL's binaries are not installed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, TINY, CliRun, run_cli
from tests.pg import free_port, throwaway_postgres
from tests.test_bad_inputs import assert_problem, edit, problem_lines, solve_bad

OK, BAD_INPUT = 0, 2
TABLES = ("sites", "services", "staff", "targets", "budgets")


def solve_ok(scenario: Path, *extra: str) -> CliRun:
    out = scenario.parent.parent / f"out-{scenario.parent.name}"
    run = run_cli("solve", scenario, *extra, out=out)
    assert run.code == OK, (run.code, run.stdout, run.stderr)
    return run


def plan_rows(run: CliRun) -> list[tuple[str, str, str, float]]:
    plan = run.table("plan")
    return sorted(zip(plan["staff_id"], plan["site_id"], plan["service_id"],
                      plan["fte"].round(6), strict=True))


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str, float]]:
    folder = tmp_path_factory.mktemp("tiny").resolve() / "case"
    shutil.copytree(TINY.parent, folder)
    return plan_rows(solve_ok(folder / "scenario.toml"))


def read_csvs(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in TABLES}


def set_tables(case: Path, tables: dict[str, object], extra: str = "") -> Path:
    """Rewrite the case's scenario with these [tables] entries (strings or dicts)."""
    lines = ['model = "ops"', 'name = "tiny"', "[tables]"]
    for name, spec in tables.items():
        if isinstance(spec, str):
            lines.append(f"{name} = {json.dumps(spec)}")
        else:
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in spec.items())
            lines.append(f"{name} = {{ {inner} }}")
    lines += ["[objective]", 'order = ["service", "cost"]', extra]
    (case / "scenario.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return case / "scenario.toml"


# --- 1. headers ------------------------------------------------------------------------------


@pytest.mark.slow
def test_header_case_and_spaces_do_not_matter(case: Path, tiny_plan: list) -> None:
    edit(case / "staff.csv", "staff_id,home_site,skills,fte,cost_per_fte,mobility,travel_cost",
         " Staff_ID ,Home_Site,SKILLS,FTE , Cost_Per_FTE,Mobility,Travel_Cost")
    edit(case / "sites.csv", "site_id,region,capacity_fte,min_fte",
         "site_id,region,Capacity_FTE,min_fte")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_capacity_in_other_case_still_limits(case: Path) -> None:
    """Capacity_FTE was ignored before: site A's limit vanished without a word. At 0.5 FTE
    it cannot hold s2, who works only at A: the run is infeasible (exit 3), as with the
    lower-case header, instead of an optimal plan that ignores the limit."""
    edit(case / "sites.csv", "site_id,region,capacity_fte,min_fte\nA,north,3,",
         "site_id,region,Capacity_FTE,min_fte\nA,north,0.5,")
    run = run_cli("solve", case / "scenario.toml", out=case.parent / "out")
    assert run.code == 3, (run.code, run.stderr)
    edit(case / "sites.csv", "Capacity_FTE", "capacity_fte")
    assert run_cli("solve", case / "scenario.toml", out=case.parent / "out2").code == 3


def test_misspelt_optional_column_is_refused_with_the_suggestion(case: Path) -> None:
    edit(case / "staff.csv", "mobility,travel_cost", "mobility,travel_costs")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 1, "travel_costs",
                   "unknown column 'travel_costs'; did you mean 'travel_cost'?")


@pytest.mark.slow
def test_unrelated_extra_column_is_still_kept_and_ignored(case: Path, tiny_plan: list) -> None:
    edit(case / "staff.csv", "mobility,travel_cost", "mobility,travel_cost,comment")
    text = (case / "staff.csv").read_text().splitlines()
    (case / "staff.csv").write_text("\n".join([text[0]] + [f"{r},ok" for r in text[1:]]) + "\n")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


@pytest.mark.parametrize("second", ["capacity_fte", "Capacity_FTE ", " CAPACITY_fte"])
def test_duplicated_header_is_refused_naming_both(case: Path, second: str) -> None:
    edit(case / "sites.csv", "site_id,region,capacity_fte,min_fte\nA,north,3,\nB,north,,",
         f"site_id,region,capacity_fte,min_fte,{second}\nA,north,3,,1\nB,north,,,")
    run = solve_bad(case)
    assert_problem(run, case / "sites.csv", 1, second, "duplicated header",
                   "column C 'capacity_fte'", f"column E {second!r}")


def assignment_case(tmp_path: Path) -> Path:
    folder = tmp_path.resolve() / "assign"
    shutil.copytree(ROOT / "data" / "assignment", folder)
    text = (ROOT / "models" / "assignment.toml").read_text().replace("../data/assignment/", "")
    (folder / "scenario.toml").write_text(text)
    return folder


def test_header_rules_apply_to_the_other_models(tmp_path: Path) -> None:
    folder = assignment_case(tmp_path)
    edit(folder / "resources.csv", "resource_id,capacity", "Resource_ID ,capacty")
    edit(folder / "options.csv", "task_id,resource_id,cost,load",
         "task_id,resource_id,cost,LOAD,load")
    run = solve_bad(folder)
    assert_problem(run, folder / "resources.csv", 1, "capacty", "did you mean 'capacity'?")
    assert_problem(run, folder / "options.csv", 1, "load", "duplicated header", "column D 'LOAD'")


# --- 2. Excel --------------------------------------------------------------------------------


def typed(value: str) -> object:
    """A CSV cell as a person would type it in Excel (numbers as numbers, ids as text)."""
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return value if value.startswith("0") and len(value) > 1 and "." not in value else (
        int(number) if number.is_integer() else number)


def write_book(case: Path, path: Path | None = None, change=None) -> Path:
    """Every table of the case as a sheet of one workbook (sheet names capitalized), and a
    scenario reading them; `change(workbook)` edits the workbook before it is saved."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, frame in read_csvs(case).items():
        sheet = book.create_sheet(name.capitalize())
        sheet.append(list(frame.columns))
        for row in frame.itertuples(index=False):
            sheet.append([typed(v) for v in row])
    if change is not None:
        change(book)
    path = path or case / "book.xlsx"
    book.save(path)
    return set_tables(case, {n: {"path": path.name, "sheet": n.capitalize()} for n in TABLES})


def test_excel_na_region_stays_text(case: Path, tiny_plan: list) -> None:
    """`NA` (North America) was read as missing, became the default region "all", and the
    budget scoped to region NA named nothing."""
    def change(book) -> None:
        for row in (2, 3):
            book["Sites"][f"B{row}"] = "NA"
        book["Budgets"]["B2"] = "region:NA"
        book["Services"]["B2"] = "pick"
    scenario = write_book(case, change=change)
    assert plan_rows(solve_ok(scenario)) == tiny_plan


@pytest.mark.parametrize("word", ["NA", "#N/A", "NULL", "None", "nan"])
def test_excel_missing_words_are_text_not_missing(case: Path, word: str) -> None:
    """In a number column they are named as not numbers; before, a default applied."""
    def change(book) -> None:
        book["Staff"]["G3"] = word  # travel_cost (optional, default 0)
    scenario = write_book(case, change=change)
    run = solve_bad(case)
    assert scenario.exists()
    assert_problem(run, f"{case / 'book.xlsx'} [sheet Staff]", 3, "travel_cost",
                   "expected a number" if word != "nan" else "NaN is not a value here")


def test_excel_formula_without_saved_value_is_refused_naming_the_cell(case: Path) -> None:
    def change(book) -> None:
        book["Staff"]["G3"] = "=F2*2"  # openpyxl saves formulas with no cached value
    write_book(case, change=change)
    run = solve_bad(case)
    assert_problem(run, f"{case / 'book.xlsx'} [sheet Staff]", 3, "travel_cost",
                   "formula cell G3 (=F2*2) has no saved value")


def save_formula_value(book: Path, sheet_xml_hint: bytes, ref: str, formula: str,
                       value: str, kind: str | None = None) -> None:
    """Rewrite cell `ref` as Excel saves a computed formula: <f>formula</f><v>value</v>."""
    import re
    import zipfile

    with zipfile.ZipFile(book) as src:
        parts = {i.filename: src.read(i) for i in src.infolist()}
    name = next(n for n, b in parts.items()
                if n.startswith("xl/worksheets/") and sheet_xml_hint in b)
    t = f' t="{kind}"' if kind else ""
    cell = f'<c r="{ref}"{t}><f>{formula}</f><v>{value}</v></c>'.encode()
    parts[name], count = re.subn(rf'<c r="{ref}"[^>]*>.*?</c>'.encode(), cell, parts[name])
    assert count == 1
    with zipfile.ZipFile(book, "w") as dst:
        for n, b in parts.items():
            dst.writestr(n, b)


def test_excel_formula_with_saved_value_reads_its_value(case: Path, tiny_plan: list) -> None:
    """A workbook saved by Excel keeps each formula's value: that value is read, and a
    formula whose value is the empty text (=IF(..., "")) is an empty cell."""
    def change(book) -> None:
        book["Staff"]["D3"] = "=1+1"  # fte of s2, 2 in the tiny case
        book["Staff"]["G3"] = '=IF(1>2,"x","")'  # travel_cost of s2: empty, default 0
    write_book(case, change=change)
    save_formula_value(case / "book.xlsx", b"1+1", "D3", "1+1", "2")
    save_formula_value(case / "book.xlsx", b"1+1", "G3", "IF(1&gt;2,&quot;x&quot;,&quot;&quot;)",
                       "", "str")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 broken", b"not a workbook at all",
                                     b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old xls"])
def test_empty_or_corrupt_workbook_is_named(case: Path, content: bytes) -> None:
    (case / "staff.xlsx").write_bytes(content)
    edit(case / "scenario.toml", 'staff = "staff.csv"', 'staff = "staff.xlsx"')
    run = solve_bad(case)
    line = assert_problem(run, case / "staff.xlsx", None, None, "not a valid Excel workbook")
    assert "engine" not in line


def test_excel_sheet_name_ignores_case_and_spaces(case: Path, tiny_plan: list) -> None:
    write_book(case)
    text = (case / "scenario.toml").read_text().replace('sheet = "Staff"', 'sheet = " staff"')
    (case / "scenario.toml").write_text(text)
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_excel_hidden_first_sheet_is_skipped(case: Path, tiny_plan: list) -> None:
    import openpyxl

    staff = read_csvs(case)["staff"]
    book = openpyxl.Workbook()
    old = book.active
    old.title, old.sheet_state = "old", "hidden"
    old.append(["nothing", "useful"])
    sheet = book.create_sheet("staff")
    sheet.append(list(staff.columns))
    for row in staff.itertuples(index=False):
        sheet.append([typed(v) for v in row])
    book.save(case / "staff.xlsx")
    edit(case / "scenario.toml", 'staff = "staff.csv"', 'staff = "staff.xlsx"')
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_excel_blank_row_keeps_row_numbers_and_dates_are_text(case: Path) -> None:
    def change(book) -> None:
        sheet = book["Targets"]
        sheet.insert_rows(3)  # row 3 empty: the second target moves to row 4
        sheet["C4"] = dt.datetime(2024, 3, 1)  # demand, auto-converted to a date by Excel
    write_book(case, change=change)
    run = solve_bad(case)
    assert_problem(run, f"{case / 'book.xlsx'} [sheet Targets]", 4, "demand",
                   "expected a number", "2024-03-01")


def test_excel_ids_stay_as_shown(case: Path, tiny_plan: list) -> None:
    """'007' typed as text, and 7 formatted '000', both read 007; numbers read back exact."""
    def change(book) -> None:
        book["Staff"]["A2"] = 7
        book["Staff"]["A2"].number_format = "000"
    write_book(case, change=change)
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_excel_far_formatted_cell_costs_nothing(case: Path, tiny_plan: list) -> None:
    """One formatted empty cell far away (whole-column formats do this) made the sheet
    200,000 x 2,000 cells, read cell by cell: minutes for four rows."""
    from openpyxl.styles import Font

    def change(book) -> None:
        book["Staff"].cell(row=200_000, column=2_000).font = Font(bold=True)
    write_book(case, change=change)
    start = time.perf_counter()
    run = run_cli("validate", case / "scenario.toml", timeout=120)
    assert run.code == OK, run.stderr
    assert time.perf_counter() - start < 30
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_excel_merged_header_cell_reads_its_first_column(case: Path) -> None:
    """A header merged over two columns names the first; the second is noted and ignored."""
    from allocator.tables.readers import read_table

    def change(book) -> None:
        sheet = book["Staff"]
        sheet["H1"], sheet["H2"], sheet["H3"] = None, 5, 5
        sheet.merge_cells("G1:H1")
    write_book(case, change=change)
    table = read_table("staff", {"path": "book.xlsx", "sheet": "Staff"}, case)
    assert "travel_cost" in table.frame.columns
    assert any("column(s) H hold values but no header" in n for n in table.notes)
    assert run_cli("validate", case / "scenario.toml").code == OK


# --- 3. row numbers --------------------------------------------------------------------------


def test_blank_line_does_not_shift_row_numbers(case: Path) -> None:
    edit(case / "staff.csv", "region,10\ns2,A,pick,2,", "region,10\n\n\ns2,A,pick,-2,")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 5, "fte", "expected a number > 0", "'-2'")


def test_leading_blank_lines_and_multiline_cells_count_as_rows(case: Path) -> None:
    """A quoted cell over two lines is one spreadsheet row; blank lines above the header
    are rows too."""
    edit(case / "staff.csv", "mobility,travel_cost\n007,A,pick;pack,1,100,region,10\n",
         'mobility,travel_cost,note\n007,A,pick;pack,1,100,region,10,"two\nlines"\n\n')
    edit(case / "staff.csv", "s2,A,pick,2,80,site,0", "s2,A,pick,x,80,site,0,")
    (case / "staff.csv").write_text("\n\n" + (case / "staff.csv").read_text())
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 6, "fte", "expected a number")


def test_blank_line_in_other_models_keeps_row_numbers(tmp_path: Path) -> None:
    folder = assignment_case(tmp_path)
    edit(folder / "options.csv", "checkout-redesign,payments,84,12\n",
         "checkout-redesign,payments,84,12\n\n")
    edit(folder / "options.csv", "checkout-redesign,mobile,96,14", "checkout-redesign,mobile,96,-1")
    run = solve_bad(folder)
    assert_problem(run, folder / "options.csv", 4, "load", "expected a number >= 0")


def test_row_with_too_many_cells_is_named_not_shifted(case: Path) -> None:
    """pandas took a first data row with one cell too many for an index column, silently
    shifting every value one column left."""
    edit(case / "staff.csv", "007,A,pick;pack,1,100,region,10", "007,A,pick;pack,1,100,region,10,")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 2, None, "this row has 8 cells and the header 7")


# --- 4. files --------------------------------------------------------------------------------


def test_fifo_is_refused_without_blocking(case: Path) -> None:
    (case / "staff.csv").unlink()
    os.mkfifo(case / "staff.csv")
    run = run_cli("validate", case / "scenario.toml", timeout=60)
    assert run.code == BAD_INPUT, run.stderr
    assert_problem(run, case / "staff.csv", None, None, "is a FIFO", "must be a regular file")


@pytest.mark.parametrize("target", ["/dev/zero", "folder"])
def test_device_or_folder_is_refused(case: Path, target: str) -> None:
    (case / "staff.csv").unlink()
    if target == "folder":
        (case / "staff.csv").mkdir()
    else:
        (case / "staff.csv").symlink_to(target)
    run = run_cli("validate", case / "scenario.toml", timeout=60)
    assert run.code == BAD_INPUT, run.stderr
    kind = "a device" if target == "/dev/zero" else "a folder"
    assert_problem(run, case / "staff.csv", None, None, f"is {kind}", "regular file")


def test_file_size_cap_is_a_setting(tmp_path: Path) -> None:
    folder = assignment_case(tmp_path)
    run = solve_bad(folder, "--set", "input.max_file_mb=0.0001")
    assert_problem(run, folder / "options.csv", None, None, "above the 0.0001 MB cap",
                   "input.max_file_mb")
    assert run_cli("validate", folder / "scenario.toml", "--set",
                   "input.max_file_mb=1").code == OK


def test_file_size_cap_applies_to_ops(case: Path) -> None:
    run = solve_bad(case, "--set", "input.max_file_mb=0.0001")
    assert_problem(run, case / "staff.csv", None, None, "above the 0.0001 MB cap",
                   "input.max_file_mb")


# --- 5. delimiters, decimal commas, encodings ------------------------------------------------


def to_semicolons(path: Path, decimal_comma: bool = True) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if decimal_comma:
        frame = frame.apply(lambda s: s.str.replace(".", ",", regex=False))
    frame.to_csv(path, sep=";", index=False)


@pytest.mark.slow
def test_semicolon_file_with_decimal_commas_reads_like_the_csv(case: Path) -> None:
    edit(case / "targets.csv", "A,pick,4,0.5,1", "A,pick,4.5,0.5,1.5")
    expected = plan_rows(solve_ok(case / "scenario.toml"))
    shutil.rmtree(case.parent / f"out-{case.name}")
    for name in ("targets", "staff", "sites"):
        to_semicolons(case / f"{name}.csv")
    assert "4,5;0,5;1,5" in (case / "targets.csv").read_text()
    run = run_cli("validate", case / "scenario.toml")
    assert run.code == OK, run.stderr
    assert plan_rows(solve_ok(case / "scenario.toml")) == expected


def test_excel_sep_line_sets_the_delimiter_and_is_not_a_row(case: Path) -> None:
    """Excel writes and reads a first line "sep=;" and does not show it: row numbers
    start at the header below it."""
    (case / "targets.csv").write_bytes(b"sep=;\r\nsite_id;service_id;demand;min_level;weight"
                                       b"\r\nA;pick;4;0,5;1\r\nA;pack;x;0;2\r\nB;pack;2;0;1\r\n")
    run = solve_bad(case)
    assert_problem(run, case / "targets.csv", 3, "demand", "expected a number", "'x'")


def test_percent_and_currency_cells_are_named(case: Path) -> None:
    """Spreadsheet formats exported as text ("50%", "$1,000") are not guessed at."""
    edit(case / "targets.csv", "A,pick,4,0.5,1", "A,pick,4,50%,1")
    edit(case / "budgets.csv", "all,all,1000", 'all,all,"$1,000"')
    run = solve_bad(case)
    assert_problem(run, case / "targets.csv", 2, "min_level", "expected a number", "'50%'")
    assert_problem(run, case / "budgets.csv", 2, "amount", "no thousands separator", "'$1,000'")


def test_semicolon_file_mixing_decimal_separators_is_refused(case: Path) -> None:
    (case / "targets.csv").write_text("site_id;service_id;demand;min_level;weight\n"
                                      "A;pick;4,5;0,5;1\nA;pack;1.5;0;2\nB;pack;2;0;1\n")
    run = solve_bad(case)
    assert_problem(run, case / "targets.csv", 3, "demand", "mixes decimal commas (e.g. row 2)")


def test_header_with_both_delimiters_is_refused_with_a_hint(case: Path) -> None:
    edit(case / "sites.csv", "site_id,region,capacity_fte,min_fte",
         "site_id;region,capacity_fte;min_fte")
    run = solve_bad(case)
    assert_problem(run, case / "sites.csv", 1, None, "holds both ',' and ';'",
                   "cannot tell which one separates the columns")


def test_thousands_separator_is_named(case: Path) -> None:
    edit(case / "budgets.csv", "all,all,1000", 'all,all,"1,000"')
    run = solve_bad(case)
    assert_problem(run, case / "budgets.csv", 2, "amount", "no thousands separator", "'1,000'")


def test_utf16_unicode_text_is_read(case: Path, tiny_plan: list) -> None:
    """Excel's "Unicode text": UTF-16 with a byte-order mark, columns separated by tabs."""
    text = (case / "staff.csv").read_text().replace(",", "\t").replace("\n", "\r\n")
    (case / "staff.csv").write_bytes(text.encode("utf-16"))
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


@pytest.mark.parametrize("bom,newline", [("\ufeff", "\r\n"), ("", "\r\n"), ("\ufeff", "\n"),
                                        ("", "\r")])
def test_bom_and_crlf_are_read(case: Path, tiny_plan: list, bom: str, newline: str) -> None:
    for name in TABLES:
        text = (case / f"{name}.csv").read_text()
        (case / f"{name}.csv").write_bytes((bom + text.replace("\n", newline)).encode())
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_latin1_is_refused_with_its_line_and_a_hint(case: Path) -> None:
    edit(case / "sites.csv", "B,north", "B,Orléans")
    (case / "sites.csv").write_bytes((case / "sites.csv").read_text().encode("cp1252"))
    run = solve_bad(case)
    assert_problem(run, case / "sites.csv", 3, None, "not UTF-8", "Windows-1252", "CSV UTF-8")


def test_workbook_named_csv_is_named(case: Path) -> None:
    """A workbook saved under a .csv name: said as such, not as "not UTF-8 text"."""
    write_book(case, path=case / "book.csv")
    shutil.copy(case / "book.csv", case / "staff.csv")
    (case / "scenario.toml").write_text((TINY.parent / "scenario.toml").read_text())
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", None, None, "is an Excel workbook", "not CSV text")


def test_trailing_empty_columns_and_spaces_are_harmless(case: Path, tiny_plan: list) -> None:
    """Exports often end every line with empty cells ("Unnamed: 7" in pandas), and pad
    cells with spaces."""
    lines = (case / "staff.csv").read_text().splitlines()
    padded = [",".join(f" {c} " for c in line.split(",")) + ",," for line in lines]
    (case / "staff.csv").write_text("\n".join(padded) + "\n")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_csv_missing_words_stay_text(case: Path) -> None:
    edit(case / "sites.csv", "A,north", "A,NA")
    edit(case / "sites.csv", "B,north", "B,NA")
    edit(case / "budgets.csv", "all,all,1000", "all,region:NA,1000")
    assert run_cli("validate", case / "scenario.toml").code == OK


def test_parquet_integer_ids_with_nulls_stay_integers(case: Path, tiny_plan: list) -> None:
    """A skill column of integers with a null, written without pandas' metadata (Spark,
    DuckDB, Polars, pyarrow): pandas made it float ("1.0"), so staff with skill "1" matched
    nothing and the service went unserved."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"service_id": ["pick", "pack"],
                             "skill": pa.array([1, None], pa.int64()),
                             "productivity": pa.array([2, 1], pa.int64())}),
                   case / "services.parquet")
    edit(case / "scenario.toml", 'services = "services.csv"', 'services = "services.parquet"')
    edit(case / "staff.csv", "007,A,pick;pack", "007,A,1;pack")
    edit(case / "staff.csv", "s2,A,pick,", "s2,A,1,")
    run = solve_ok(case / "scenario.toml")
    assert plan_rows(run) == tiny_plan
    assert "unserved" not in run.stderr


# --- 6. formula-neutralized cells read back ---------------------------------------------------


@pytest.mark.slow
def test_plan_with_formula_like_ids_is_tomorrows_baseline(case: Path) -> None:
    """Ids starting with = + - @ are written as '=... (so a spreadsheet does not run them);
    read back, plan.csv is the same data: as a baseline, nobody has moved."""
    (case / "sites.csv").write_text("site_id,region,capacity_fte,min_fte\n@A,north,3,\n"
                                    "+B,north,,\n")
    (case / "staff.csv").write_text(
        "staff_id,home_site,skills,fte,cost_per_fte,mobility,travel_cost\n"
        "=007,@A,pick;pack,1,100,region,10\n-s2,@A,pick,2,80,site,0\n"
        "s3,+B,pack,1,50,region,0\n")
    (case / "targets.csv").write_text("site_id,service_id,demand,min_level,weight\n"
                                      "@A,pick,4,0.5,1\n@A,pack,1,0,2\n+B,pack,2,0,1\n")
    (case / "budgets.csv").write_text("budget_id,scope,amount\n=all,site:@A,1000\n")
    first = solve_ok(case / "scenario.toml")
    written = (first.out / "plan.csv").read_text()
    assert "'=007" in written and "'@A" in written
    shutil.copy(first.out / "plan.csv", case / "baseline.csv")
    text = (case / "scenario.toml").read_text().replace(
        'budgets = "budgets.csv"', 'budgets = "budgets.csv"\nbaseline = "baseline.csv"'
    ).replace('order = ["service", "cost"]', 'order = ["service", "cost", "stability"]')
    (case / "scenario.toml").write_text(text)
    second = run_cli("solve", case / "scenario.toml", out=case.parent / "second")
    assert second.code == OK, second.stderr
    assert "no longer exist" not in second.stderr
    assert abs(second.summary["objectives"]["stability"]) < 1e-6
    assert plan_rows(second) == plan_rows(first)


# --- 8. ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["s\u200b2", "s\x002", "s\u202e2", "s2\u2060", '"s\n2"'])
def test_invisible_characters_in_ids_are_refused(case: Path, bad: str) -> None:
    edit(case / "staff.csv", "\ns2,", f"\n{bad},")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 3, "staff_id", "invisible or control character")


def test_invisible_character_in_a_reference_id_is_refused(case: Path) -> None:
    edit(case / "targets.csv", "A,pack,", "A,pa\u200bck,")
    run = solve_bad(case)
    assert_problem(run, case / "targets.csv", 3, "service_id", "invisible or control character")


def test_reference_differing_only_by_case_or_form_says_so(case: Path) -> None:
    edit(case / "staff.csv", "s3,B,pack", "s3,b,pack")
    edit(case / "targets.csv", "A,pack,", "A,Pack,")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 4, "home_site", "not a site id",
                   "differs from it only by case or Unicode form", "'b'")
    assert_problem(run, case / "targets.csv", 3, "service_id", "not a service id",
                   "only by case or Unicode form", "'Pack'")


@pytest.mark.slow
def test_invisible_characters_in_headers_are_dropped(case: Path, tiny_plan: list) -> None:
    edit(case / "staff.csv", "staff_id,home_site", "\u200bstaff_id,home_site\ufeff")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


def test_ids_differing_only_by_case_are_noted(case: Path) -> None:
    from allocator.formulations.ops.data import SCHEMAS
    from allocator.tables.readers import read_table
    from allocator.tables.schema import validate

    edit(case / "staff.csv", "\ns2,A,pick,2,80,site,0",
         "\ns2,A,pick,2,80,site,0\nS2,A,pick,1,80,site,0")
    table = read_table("staff", "staff.csv", case)
    _, problems = validate(table, SCHEMAS["staff"])
    assert problems == []
    assert any("differ from another only by case" in n and "'s2' (row 3)" in n
               and "'S2' (row 4)" in n for n in table.notes), table.notes


def test_ids_differing_only_by_case_are_a_cli_warning(case: Path) -> None:
    edit(case / "staff.csv", "\ns2,A,pick,2,80,site,0",
         "\ns2,A,pick,2,80,site,0\nS2,A,pick,1,80,site,0")
    run = run_cli("validate", case / "scenario.toml")
    assert run.code == OK, run.stderr
    assert "differ from another only by case" in run.stderr


# --- 7 and 10. SQL: read-only, one statement, relative paths; SQLite and PostgreSQL ----------


def write_sqlite(case: Path, name: str = "ops.db") -> Path:
    path = case / name
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for table, frame in read_csvs(case).items():
            frame.to_sql(table, conn, index=False)
        conn.commit()
    return path


def sqlite_count(path: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def sql_scenario(case: Path, url: str, services_query: str = "SELECT * FROM services") -> Path:
    tables: dict[str, object] = {n: {"url": url, "query": f"SELECT * FROM {n}"} for n in TABLES}
    tables["services"] = {"url": url, "query": services_query}
    return set_tables(case, tables)


HARMFUL = [
    ("DROP TABLE services", "starts with 'DROP'"),
    ("SELECT * FROM services; DROP TABLE services", "holds 2 statements"),
    ("select * from services;\n-- done\n;DELETE FROM services", "holds 2 statements"),
    ("  /* hi */ DELETE FROM services", "starts with 'DELETE'"),
]


@pytest.mark.parametrize("query,why", HARMFUL)
def test_sqlite_runs_only_one_select(case: Path, query: str, why: str) -> None:
    db = write_sqlite(case)
    sql_scenario(case, "sqlite:///ops.db", query)
    run = solve_bad(case)
    assert why in run.stderr and "nothing was run" in run.stderr, run.stderr
    assert sqlite_count(db, "services") == 2


def test_sqlite_is_opened_read_only(case: Path) -> None:
    """A WITH statement that writes (SQLite allows WITH ... DELETE) fails: read-only."""
    db = write_sqlite(case)
    sql_scenario(case, "sqlite:///ops.db",
                 "WITH gone AS (SELECT 1) DELETE FROM services")
    run = solve_bad(case)
    assert "readonly" in run.stderr.replace("read-only", "readonly"), run.stderr
    assert sqlite_count(db, "services") == 2


def test_sqlite_relative_path_is_relative_to_the_scenario(case: Path, tiny_plan: list) -> None:
    write_sqlite(case)
    sql_scenario(case, "sqlite:///ops.db")  # the CLI runs from the repository, not `case`
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


@pytest.mark.parametrize("password", ["p@ss@word", "p@ss?w#rd/x"])
def test_password_with_at_sign_is_hidden(case: Path, password: str) -> None:
    port = free_port()  # nothing listens: the connection fails, and the message is checked
    sql_scenario(case, f"postgresql+psycopg://bob:{password}@127.0.0.1:{port}/db")
    run = solve_bad(case)
    for secret in (password, password[1:], "word@", "p@ss", "w#rd"):
        assert secret not in run.stderr, run.stderr
    assert f"postgresql+psycopg://bob:***@127.0.0.1:{port}/db" in run.stderr
    # The host is the real one (the last '@' ends the password), not "ss@word@127.0.0.1".
    assert all("ss@" not in line for line in problem_lines(run))


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (tests/pg.py); its URL."""
    with throwaway_postgres("allocator-pg-") as url:
        yield url


def pg_load(url: str, case: Path, schema: str) -> str:
    """The case's tables in a schema of their own; the URL that selects it."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        for table, frame in read_csvs(case).items():
            cols = ", ".join(f"{c} text" for c in frame.columns)
            conn.execute(f"CREATE TABLE {schema}.{table} ({cols})")
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {schema}.{table} VALUES ({', '.join(['%s'] * frame.shape[1])})",
                    [tuple(None if v == "" else v for v in row) for row in
                     frame.itertuples(index=False)])
    return url


def pg_count(url: str, table: str) -> int | None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if row[0] is None:
            return None
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def pg_scenario(case: Path, url: str, schema: str, services_query: str | None = None) -> Path:
    tables: dict[str, object] = {n: {"url": url, "query": f"SELECT * FROM {schema}.{n}"}
                                 for n in TABLES}
    if services_query is not None:
        tables["services"] = {"url": url, "query": services_query}
    return set_tables(case, tables)


@pytest.mark.slow
def test_postgres_source_reads_like_the_csv(case: Path, postgres: str, tiny_plan: list) -> None:
    pg_load(postgres, case, "readok")
    pg_scenario(case, postgres, "readok")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan


@pytest.mark.parametrize("query,why", [
    ("DROP TABLE {s}.services", "starts with 'DROP'"),
    ("SELECT * FROM {s}.services; DROP TABLE {s}.services", "holds 2 statements"),
])
def test_postgres_runs_only_one_select(case: Path, postgres: str, query: str, why: str) -> None:
    schema = f"one{abs(hash(query)) % 10_000}"
    pg_load(postgres, case, schema)
    pg_scenario(case, postgres, schema, query.format(s=schema))
    run = solve_bad(case)
    assert why in run.stderr and "nothing was run" in run.stderr, run.stderr
    assert pg_count(postgres, f"{schema}.services") == 2


@pytest.mark.parametrize("query", [
    "WITH gone AS (DELETE FROM {s}.services RETURNING *) SELECT * FROM gone",
    "SELECT *, (SELECT count(*) FROM (SELECT setval('{s}.seq', 5)) x) FROM {s}.services",
    "SELECT * INTO {s}.copied FROM {s}.services",
])
def test_postgres_transaction_is_read_only(case: Path, postgres: str, query: str) -> None:
    """A single SELECT that would still write (a data-modifying WITH, a sequence change) fails
    in the read-only transaction, and nothing changes."""
    import psycopg

    schema = f"ro{abs(hash(query)) % 10_000}"
    pg_load(postgres, case, schema)
    with psycopg.connect(postgres.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SEQUENCE {schema}.seq")
    pg_scenario(case, postgres, schema, query.format(s=schema))
    run = solve_bad(case)
    assert "read-only transaction" in run.stderr, run.stderr
    assert pg_count(postgres, f"{schema}.services") == 2


def test_postgres_bare_url_finds_the_installed_driver(case: Path, postgres: str,
                                                      tiny_plan: list) -> None:
    pg_load(postgres, case, "bare")
    pg_scenario(case, postgres.replace("postgresql+psycopg://", "postgresql://"), "bare")
    assert plan_rows(solve_ok(case / "scenario.toml")) == tiny_plan



# --- 9. a careless user's exports: other names, blanks, thousands, Unicode spaces, Excel ---


def model_case(tmp_path: Path, model: str) -> Path:
    """A private copy of data/<model> with its scenario beside the tables."""
    folder = tmp_path.resolve() / model
    shutil.copytree(ROOT / "data" / model, folder)
    text = (ROOT / "models" / f"{model}.toml").read_text().replace(f"../data/{model}/", "")
    (folder / "scenario.toml").write_text(text)
    return folder


def validate_ok(scenario: Path) -> CliRun:
    run = run_cli("validate", scenario)
    assert run.code == OK, (run.code, run.stdout, run.stderr)
    return run


@pytest.mark.parametrize("header", ["capacity", "max_fte", "cap_fte", "Capacity (FTE)",
                                    "capacity fte", "Capacity-FTE"])
def test_common_names_of_capacity_still_limit(case: Path, header: str) -> None:
    """`capacity` or `Capacity (FTE)` for capacity_fte was an unknown column, kept and
    ignored: site A's limit vanished. At 0.5 FTE site A cannot hold s2 (who works only at
    A): infeasible (exit 3), as with the contract's name; an alias is said in a note."""
    edit(case / "sites.csv", "site_id,region,capacity_fte,min_fte\nA,north,3,",
         f"site_id,region,{header},min_fte\nA,north,0.5,")
    if header in ("capacity", "max_fte", "cap_fte"):
        assert f"read column '{header}' as 'capacity_fte'" in validate_ok(
            case / "scenario.toml").stderr
    run = run_cli("solve", case / "scenario.toml", out=case.parent / "out")
    assert run.code == 3, (run.code, run.stderr)


def test_minimum_fte_is_read_as_min_fte(case: Path) -> None:
    """A minimum of 5 FTE at B cannot be met by 4 FTE of staff: infeasible once read."""
    edit(case / "sites.csv", "capacity_fte,min_fte\nA,north,3,\nB,north,,",
         "capacity_fte,minimum_fte\nA,north,3,\nB,north,,5")
    assert "read column 'minimum_fte' as 'min_fte'" in validate_ok(case / "scenario.toml").stderr
    run = run_cli("solve", case / "scenario.toml", out=case.parent / "out")
    assert run.code == 3, (run.code, run.stderr)


@pytest.mark.slow
def test_travel_is_read_as_travel_cost(case: Path) -> None:
    """`travel` for travel_cost: the costs were dropped (cost 0 for every move)."""
    edit(case / "staff.csv", "region,10\ns2", "region,10000\ns2")
    expected = solve_ok(case / "scenario.toml").summary["objectives"]["cost"]
    shutil.rmtree(case.parent / f"out-{case.name}")
    edit(case / "staff.csv", "mobility,travel_cost", "mobility,travel")
    run = solve_ok(case / "scenario.toml")
    assert "read column 'travel' as 'travel_cost'" in run.stderr
    assert run.summary["objectives"]["cost"] == pytest.approx(expected)


@pytest.mark.parametrize("headers", [("capacity_fte", "capacity"), ("capacity", "max_fte")])
def test_two_columns_that_could_be_one_are_refused(case: Path, headers: tuple) -> None:
    first, second = headers
    edit(case / "sites.csv", "site_id,region,capacity_fte,min_fte\nA,north,3,\nB,north,,",
         f"site_id,region,{first},min_fte,{second}\nA,north,3,,2\nB,north,,,")
    run = solve_bad(case)
    assert_problem(run, case / "sites.csv", 1, second, f"columns '{first}' and '{second}'",
                   "could each be 'capacity_fte'")


@pytest.mark.parametrize("table,old,new,meant", [
    ("targets.csv", "min_level", "minimum_level", "min_level"),
    ("staff.csv", "travel_cost", "travel_costs", "travel_cost"),
    ("staff.csv", "travel_cost", "Travel cost (EUR)", "travel_cost"),
    ("staff.csv", "travel_cost", "travel_cost_\u20ac", "travel_cost"),
])
def test_shortened_or_spelt_out_optional_column_is_refused(case: Path, table: str, old: str,
                                                           new: str, meant: str) -> None:
    edit(case / table, old, new)
    run = solve_bad(case)
    assert_problem(run, case / table, 1, new, f"did you mean '{meant}'?")


def test_first_word_of_an_optional_column_is_refused_in_other_models(tmp_path: Path) -> None:
    folder = assignment_case(tmp_path)
    edit(folder / "tasks.csv", "unassigned_penalty", "Unassigned")
    run = solve_bad(folder)
    assert_problem(run, folder / "tasks.csv", 1, "Unassigned",
                   "did you mean 'unassigned_penalty'?")


@pytest.mark.parametrize("extra", ["comment", "notes", "manager", "remarks", "owner",
                                   "site_name", "capacity_notes"])
def test_ordinary_extra_columns_are_kept_and_ignored(case: Path, tiny_plan: list,
                                                     extra: str) -> None:
    for name in ("sites", "staff"):
        lines = (case / f"{name}.csv").read_text().splitlines()
        (case / f"{name}.csv").write_text(
            "\n".join([f"{lines[0]},{extra}"] + [f"{r},x" for r in lines[1:]]) + "\n")
    run = solve_ok(case / "scenario.toml")
    assert plan_rows(run) == tiny_plan
    assert "read column" not in run.stderr


def test_blank_region_is_noted_with_its_rows(case: Path) -> None:
    """A blank region put site B in region 'all', out of its region's budget, silently."""
    edit(case / "sites.csv", "B,north,,", "B,,,")
    run = validate_ok(case / "scenario.toml")
    assert f"{case / 'sites.csv'}: column 'region' is empty in 1 of 2 rows (row 3); they get " \
           "the default 'all'" in run.stderr, run.stderr
    # a column left out entirely, or filled in everywhere, is no news
    assert "is empty in" not in validate_ok(TINY).stderr


def test_blank_cells_of_optional_columns_in_other_models_are_noted(tmp_path: Path) -> None:
    network = model_case(tmp_path, "network")
    edit(network / "sites.csv", "Leeds,8000,800,closed", "Leeds,8000,800,")
    run = run_cli("validate", network / "scenario.toml")
    assert "column 'status' is empty in 1 of" in run.stderr and "row 3" in run.stderr, \
        run.stderr
    funding = model_case(tmp_path, "funding")
    edit(funding / "programs.csv", "social,digital,0,", "social,,0,")
    run = run_cli("validate", funding / "scenario.toml")
    assert "column 'group' is empty in 1 of" in run.stderr and "'default'" in run.stderr, \
        run.stderr
    # the assignment model's penalty is blank by design for required tasks: no note
    assert "is empty in" not in run_cli("validate", model_case(tmp_path, "assignment")
                                        / "scenario.toml").stderr


def test_excel_merged_data_cell_applies_to_its_whole_range(case: Path, tiny_plan: list) -> None:
    """B2:B3 merged over the two sites' regions: openpyxl leaves B3 empty, and site B fell
    into region 'all' (s3 and 007 could no longer share a region). Read as Excel shows it."""
    def change(book) -> None:
        book["Sites"]["B3"] = None
        book["Sites"].merge_cells("B2:B3")
    write_book(case, change=change)
    run = solve_ok(case / "scenario.toml")
    assert "merged cell(s) B2:B3" in run.stderr, run.stderr
    assert "is empty in" not in run.stderr
    assert plan_rows(run) == tiny_plan


def test_excel_hidden_rows_are_read_and_noted(case: Path, tiny_plan: list) -> None:
    def change(book) -> None:
        book["Staff"].row_dimensions[3].hidden = True
        book["Staff"].column_dimensions["G"].hidden = True
    write_book(case, change=change)
    run = solve_ok(case / "scenario.toml")
    # summary.json: the terminal takes '[sheet Staff]' for markup (cli.py, not escaped)
    warnings = "\n".join(run.summary["warnings"])
    assert f"{case / 'book.xlsx'} [sheet Staff]: row 3 hidden in Excel" in warnings, warnings
    assert "column(s) G hidden in Excel" in warnings
    assert plan_rows(run) == tiny_plan


def test_excel_sheet_not_found_lists_the_sheets(case: Path) -> None:
    write_book(case)
    edit(case / "scenario.toml", 'sheet = "Staff"', 'sheet = "Staf"')
    run = solve_bad(case)
    assert_problem(run, case / "book.xlsx", None, None, "sheet 'Staf' not found",
                   "'Sites', 'Services', 'Staff', 'Targets', 'Budgets'")


def test_semicolon_file_with_thousands_points_is_refused_when_ambiguous(case: Path) -> None:
    """'1.500' in a ';' file was read as 1.5: in a German export it is 1500."""
    (case / "budgets.csv").write_text("budget_id;scope;amount\nall;all;1.500\n")
    run = solve_bad(case)
    assert_problem(run, case / "budgets.csv", 2, "amount",
                   "1.500: thousands separator or decimal point?", "write 1500 or 1,5")


def test_semicolon_file_with_decimal_commas_reads_thousands_points(case: Path,
                                                                   tiny_plan: list) -> None:
    """A column written with decimal commas uses '.' only to group thousands."""
    (case / "budgets.csv").write_text(
        "budget_id;scope;amount\nall;all;1.000\nsiteA;site:A;2.000,5\n")
    run = solve_ok(case / "scenario.toml")
    assert "read as ';'-separated" in run.stderr, run.stderr
    assert "read with '.' as thousands separator (1.500 = 1500)" in run.stderr
    assert plan_rows(run) == tiny_plan
    assert sorted(run.table("budgets")["amount"]) == [1000, 2000.5]


def test_semicolon_file_with_decimal_points_keeps_them(case: Path) -> None:
    """'2.125' beside '1.5' in a ';' file: the column uses '.' as decimal point."""
    (case / "services.csv").write_text("service_id;skill;productivity\npick;pick;2.125\n"
                                       "pack;pack;1.5\n")
    run = validate_ok(case / "scenario.toml")
    assert "thousands" not in run.stderr


def test_non_breaking_space_in_a_region_is_a_plain_space(case: Path, tiny_plan: list) -> None:
    """'North\\u00a0East' (pasted from a web page) and 'North East' made two regions: staff
    moving within their region could no longer reach site B."""
    edit(case / "sites.csv", "A,north", "A,North\u00a0East")
    edit(case / "sites.csv", "B,north", "B,North East")
    run = solve_ok(case / "scenario.toml")
    assert "column 'region': a non-breaking or other Unicode space in 1 cell(s) (row 2" \
        in run.stderr, run.stderr
    assert plan_rows(run) == tiny_plan


def test_decomposed_accents_are_the_same_id(case: Path) -> None:
    """'Orléans' typed with a combining accent (macOS, some databases) in staff.csv and
    composed in sites.csv: the same site, not 'not a site id'."""
    import unicodedata

    nfc, nfd = "Orl\u00e9ans", unicodedata.normalize("NFD", "Orl\u00e9ans")
    assert nfc != nfd
    for name in ("sites", "targets"):
        path = case / f"{name}.csv"
        path.write_text(path.read_text().replace("\nB,", f"\n{nfc},"))
    edit(case / "staff.csv", "s3,B,", f"s3,{nfd},")
    run = solve_ok(case / "scenario.toml")
    assert "in decomposed Unicode form (row 4" in run.stderr, run.stderr
    assert set(run.table("plan")["site_id"]) <= {"A", nfc}
