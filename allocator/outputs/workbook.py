"""plan.xlsx: the run's tables in one workbook, formatted for the people who open workbooks.

Finance opens a workbook, not a folder of CSV files: one sheet per table (summary first, then
plan, coverage, budgets, sites, bottlenecks, hiring, the other tables of the model, and
sensitivity last, the largest), money with thousands separators and no decimals, FTE to two
decimals, shares as percentages, the header row frozen and filtered, columns wide enough to
read. The values are the CSV files' values (formats only change how they show), so the
loaders read each sheet back as the same table; text that starts like a formula gets the
same leading `'` as in the CSVs, which the loaders take off again.

Written with XlsxWriter, not openpyxl (which the loaders use to read): its streaming mode
holds one row in memory, gives a number format to a whole column (openpyxl's write-only mode
needs a styled cell object per formatted cell) and never takes a string for a formula
(`strings_to_formulas` off: a second guard behind the `'`); measured (benchmarks/workbook.py,
benchmarks/README.md "Workbook"), it writes the same workbook in about 70% of openpyxl's CPU
time (a medium run's tables, 10.9M cells: 30 s against 42 s; the demo's: 0.45 s against
0.66 s). Nearly all of it is the sensitivity sheet: the other sheets of medium take 0.5 s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.outputs.cells import FORMULA_START

WORKBOOK = "plan.xlsx"
MONEY = "#,##0"
FTE = "#,##0.00"
UNITS = "#,##0.00"  # demand and service in the model's units: two decimals, like FTE
PERCENT = "0.0%"
EXCEL_ROWS = 1_048_576  # a sheet's rows, the header included
SHEET_ORDER = ("summary", "plan", "coverage", "budgets", "sites", "changes", "bottlenecks",
               "hiring")
LAST = ("ladders", "marginals", "sensitivity")  # the large analysis tables go last

# Formats by table and column where the name alone would mislead (assignment's `headroom`
# is load, budgets' is money); other tables get the rules of `_by_name`.
_FORMATS: dict[str, dict[str, str]] = {
    "plan": {"fte": FTE, "cost": MONEY},
    "coverage": {"demand": UNITS, "served": UNITS, "shortfall": UNITS, "served_share": PERCENT},
    "budgets": {"amount": MONEY, "spent": MONEY, "headroom": MONEY},
    "sites": {"fte": FTE, "capacity_fte": FTE, "min_fte": FTE, "cost": MONEY},
    "hiring": {"cost_per_fte": MONEY, "value_per_fte": UNITS, "holds_up_to_fte": FTE,
               "cost_saving_per_fte": MONEY, "cost_holds_up_to_fte": FTE},
}
# Units change from row to row (a budget's price next to a person's): Excel's General.
_MIXED = frozenset({"summary", "bottlenecks", "sensitivity", "ladders", "marginals"})
_MONEY_NAME = re.compile(r"(^|_)(cost|amount|spend|spent|budget)(_|$)")
_FTE_NAME = re.compile(r"(^|_)fte(_|$)")
_SHARE_NAME = re.compile(r"(^|_)(share|utilization)$")


def number_format(table: str, column: str) -> str | None:
    """The Excel number format of a numeric column (None: General)."""
    if table in _FORMATS:
        return _FORMATS[table].get(column)
    if table in _MIXED:
        return None
    if _FTE_NAME.search(column):
        return FTE
    if _SHARE_NAME.search(column):
        return PERCENT
    if _MONEY_NAME.search(column):
        return MONEY
    return None


def sheet_order(names: list[str]) -> list[str]:
    first = [n for n in SHEET_ORDER if n in names]
    last = [n for n in LAST if n in names]
    return first + [n for n in names if n not in first and n not in last] + last


def summary_rows(summary: Mapping[str, Any]) -> pd.DataFrame:
    """summary.json as `field`/`value` rows: nested keys dotted, stages by name."""
    rows: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            for i, inner in enumerate(value, start=1):
                name = inner.get("name") if isinstance(inner, Mapping) else None
                walk(f"{prefix}.{name if name is not None else i}", inner)
        else:
            rows.append((prefix, value))

    walk("", summary)
    values = [v if isinstance(v, bool | int | float) or v is None else str(v) for _, v in rows]
    return pd.DataFrame({"field": [k for k, _ in rows], "value": pd.Series(values, dtype=object)})


def _cells(series: pd.Series) -> tuple[list[Any], str]:
    """A column as Python values for the writer (None: an empty cell) and its kind.

    Infinite numbers are written as the text `inf` / `-inf`, as the CSV has them: Excel has
    no infinity, and an error cell would not read back."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return series.astype(object).where(series.notna(), None).tolist(), "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype):
            return series.astype(object).where(series.notna(), None).tolist(), "number"
        values = series.to_numpy(dtype=float, na_value=np.nan)
        cells = values.astype(object)
        cells[np.isnan(values)] = None
        cells[np.isposinf(values)] = "inf"
        cells[np.isneginf(values)] = "-inf"
        return cells.tolist(), "number"
    text = series.astype(object)
    if pd.api.types.infer_dtype(text, skipna=True) not in ("string", "empty"):
        return _mixed(text), "mixed"
    missing = text.isna().to_numpy()
    strings = text.astype(str)
    risky = strings.str[:1].isin(FORMULA_START).to_numpy() & ~missing
    cells = strings.to_numpy(dtype=object)
    if risky.any():  # neutralized as the CSV writer does: a leading "'"
        cells[risky] = np.char.add("'", cells[risky].astype(str)).astype(object)
    cells[missing] = None
    return cells.tolist(), "text"


def _mixed(text: pd.Series) -> list[Any]:
    """A column of numbers and words (summary's values): numbers stay numbers."""
    out: list[Any] = []
    for value in text.tolist():
        if isinstance(value, str):
            out.append("'" + value if value[:1] in FORMULA_START and value else value)
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(None if math.isnan(value) else ("inf" if value > 0 else "-inf"))
        elif isinstance(value, bool | int | float):
            out.append(value)
        else:
            out.append(None if value is None or value is pd.NA else str(value))
    return out


def _width(header: str, cells: list[Any], fmt: str | None) -> float:
    """Wide enough for the header and the widest of the first rows as Excel shows them."""
    sample = cells[:500]
    widest = len(header)
    for value in sample:
        if value is None:
            continue
        if isinstance(value, bool):
            shown = "FALSE"
        elif isinstance(value, int | float):
            if fmt == MONEY:
                shown = f"{value:,.0f}"
            elif fmt in (FTE, UNITS):
                shown = f"{value:,.2f}"
            elif fmt == PERCENT:
                shown = f"{value:.1%}"
            else:
                shown = f"{value:.10g}"
        else:
            shown = str(value)
        widest = max(widest, len(shown))
    return float(min(max(widest + 2, 8), 60))


def _chunks(frame: pd.DataFrame, rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    for part, start in enumerate(range(0, max(len(frame), 1), rows), start=1):
        yield part, frame.iloc[start:start + rows]


def sheet_name(table: str, part: int) -> str:
    """Excel allows 31 characters; a table past a sheet's rows goes on in 'name (2)'."""
    suffix = f" ({part})" if part > 1 else ""
    return table[:31 - len(suffix)] + suffix


def write_workbook(path: Path, tables: Mapping[str, pd.DataFrame | None],
                   summary: Mapping[str, Any] | None) -> None:
    """Write plan.xlsx: a sheet per table (summary first), formatted, header frozen."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {
        "constant_memory": True,  # rows streamed to disk: one row held at a time
        "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
        # a fixed creation time: the same run writes the same bytes
        "default_date_format": "yyyy-mm-dd"})
    book.set_properties({"title": "allocator plan", "created": pd.Timestamp(0).to_pydatetime()})
    header_format = book.add_format({"bold": True, "bottom": 1})
    formats = {fmt: book.add_format({"num_format": fmt}) for fmt in (MONEY, FTE, PERCENT)}
    frames: dict[str, pd.DataFrame] = {}
    if summary is not None:
        frames["summary"] = summary_rows(summary)
    frames.update({name: frame for name, frame in tables.items() if frame is not None})
    for name in sheet_order(list(frames)):
        frame = frames[name]
        for part, chunk in _chunks(frame, EXCEL_ROWS - 1):
            sheet = book.add_worksheet(sheet_name(name, part))
            columns = [_cells(chunk[c]) for c in chunk.columns]
            for j, header in enumerate(chunk.columns):
                cells, kind = columns[j]
                fmt = number_format(name, str(header)) if kind == "number" else None
                sheet.set_column(j, j, _width(str(header), cells, fmt),
                                 formats[fmt] if fmt else None)
            sheet.write_row(0, 0, [str(c) for c in chunk.columns], header_format)
            sheet.freeze_panes(1, 0)
            if len(chunk.columns):
                sheet.autofilter(0, 0, max(len(chunk), 1), len(chunk.columns) - 1)
            write = sheet.write_row
            for i, row in enumerate(zip(*(cells for cells, _ in columns), strict=True),
                                    start=1):
                write(i, 0, row)
    book.close()


def read_workbook(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of plan.xlsx through the loaders (text cells, the `'` taken off), a
    table continued on 'name (2)' sheets joined again."""
    import openpyxl

    from allocator.tables.readers import read_table

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        names = list(book.sheetnames)
    finally:
        book.close()
    tables: dict[str, pd.DataFrame] = {}
    for sheet in names:
        found = re.fullmatch(r"(.*) \((\d+)\)", sheet)
        table = found.group(1) if found else sheet
        frame = read_table(table, {"path": str(path), "sheet": sheet}, path.parent,
                           max_file_mb=float("inf")).frame
        tables[table] = pd.concat([tables[table], frame], ignore_index=True) \
            if table in tables else frame
    return tables
