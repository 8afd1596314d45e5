"""Declarative column schemas, checked vectorized, collecting every failure with its row.

We tried pandera first (lazy validation gives a failure table too), but on pandas 3 it stops
checking a column's range once a single cell fails to coerce, and its failure cases would
have to be re-mapped to spreadsheet rows anyway. These checks are a few vectorized pandas
expressions per column; the cost of owning them is small and the messages are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.errors import Problem
from allocator.tables.readers import LoadedTable

MAX_PROBLEMS_PER_CHECK = 50


@dataclass(frozen=True)
class Col:
    """One column of the data contract."""

    name: str
    kind: str = "str"  # str | float | choice
    required: bool = True
    default: object = None  # used when the column, or a cell, is missing (and not required)
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False  # an empty cell is allowed and means "none" (e.g. no capacity)


@dataclass(frozen=True)
class Schema:
    table: str
    columns: tuple[Col, ...]
    unique: tuple[str, ...] = ()
    allow_empty: bool = False
    notes: dict[str, str] = field(default_factory=dict)


def _rows(table: LoadedTable, mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask) + table.first_row


def _report(
    problems: list[Problem], table: LoadedTable, mask: np.ndarray, column: str, what: str,
    values: pd.Series | None = None,
) -> None:
    rows = _rows(table, mask)
    shown = np.flatnonzero(mask)[:MAX_PROBLEMS_PER_CHECK]
    for pos, row in zip(shown, rows[:MAX_PROBLEMS_PER_CHECK], strict=False):
        got = "" if values is None else f" (found {values.iloc[pos]!r})"
        problems.append(Problem(table.source, f"{what}{got}", int(row), column))
    if len(rows) > MAX_PROBLEMS_PER_CHECK:
        problems.append(
            Problem(table.source, f"{what}: {len(rows) - MAX_PROBLEMS_PER_CHECK} more rows",
                    None, column)
        )


def validate(table: LoadedTable, schema: Schema) -> tuple[pd.DataFrame, list[Problem]]:
    """Return the typed table and every problem found (the table is meaningless if any)."""
    problems: list[Problem] = []
    frame = table.frame
    out = pd.DataFrame(index=frame.index)
    if len(frame) == 0 and not schema.allow_empty:
        problems.append(Problem(table.source, f"the {schema.table} table has no rows"))
    missing = [c.name for c in schema.columns if c.required and c.name not in frame.columns]
    for name in missing:
        have = ", ".join(map(str, frame.columns)) or "none"
        problems.append(
            Problem(table.source, f"required column missing (columns found: {have})", None, name)
        )
    for col in schema.columns:
        if col.name not in frame.columns:
            if not col.required:
                out[col.name] = col.default if col.default is not None else np.nan
            continue
        raw = frame[col.name]
        text = raw.astype(object)
        empty = raw.isna().to_numpy() | (text.astype(str).str.strip() == "").to_numpy()
        if col.kind in ("str", "choice"):
            values = text.astype(str).str.strip()
            if col.default is not None:
                values = values.where(~empty, str(col.default))
            elif not col.nullable:
                _report(problems, table, empty, col.name, "empty cell; a value is required")
            if col.kind == "choice":
                bad = ~values.isin(col.choices).to_numpy() & ~empty
                _report(problems, table, bad, col.name,
                        f"expected one of {', '.join(col.choices)}", values)
            out[col.name] = values.where(~empty | (col.default is not None), np.nan).astype(object)
        else:
            numbers = pd.to_numeric(text.where(~empty, np.nan), errors="coerce").astype(float)
            is_nan_text = text.astype(str).str.strip().str.lower().isin(["nan"]).to_numpy() & ~empty
            not_number = numbers.isna().to_numpy() & ~empty & ~is_nan_text  # one message a cell
            _report(problems, table, not_number, col.name, "expected a number", raw)
            if col.default is not None:
                numbers = numbers.where(~empty, float(col.default))  # type: ignore[arg-type]
            elif not col.nullable:
                _report(problems, table, empty, col.name, "empty cell; a number is required")
            finite = numbers.to_numpy()
            _report(problems, table, is_nan_text, col.name, "NaN is not a value here")
            inf = np.isinf(finite)
            _report(problems, table, inf, col.name, "expected a finite number", raw)
            ok = np.isfinite(finite)
            if col.min is not None:
                low = ok & ((finite <= col.min) if col.min_exclusive else (finite < col.min))
                sign = ">" if col.min_exclusive else ">="
                _report(problems, table, low, col.name, f"expected a number {sign} {col.min:g}",
                        raw)
            if col.max is not None:
                high = ok & (finite > col.max)
                _report(problems, table, high, col.name, f"expected a number <= {col.max:g}", raw)
            out[col.name] = numbers
    if schema.unique and all(c in frame.columns for c in schema.unique):
        key = out[list(schema.unique)]
        dup = key.duplicated(keep=False).to_numpy() & key.notna().all(axis=1).to_numpy()
        label = "+".join(schema.unique)
        first = key.duplicated(keep="first").to_numpy() & dup
        if first.any():  # labels only for the offending rows: joining all rows is slow
            shown = pd.Series("", index=key.index, dtype=object)
            bad = key[first].fillna("").astype(str)
            shown[first] = bad.iloc[:, 0].str.cat(bad.iloc[:, 1:], sep="/") \
                if bad.shape[1] > 1 else bad.iloc[:, 0]
            _report(problems, table, first, label, f"duplicate {label}; it must be unique",
                    shown)
    for extra in frame.columns:
        if extra not in out.columns:
            out[extra] = frame[extra]  # extra columns are kept and ignored (data contract)
    return out, problems


def check_reference(
    table: LoadedTable, frame: pd.DataFrame, column: str, valid: pd.Index, target: str,
    problems: list[Problem],
) -> None:
    """Every value of `column` must be one of `valid` (ids of table `target`)."""
    if column not in frame.columns:
        return
    values = frame[column]
    bad = (~values.isin(valid) & values.notna()).to_numpy()
    _report(problems, table, bad, column, f"not a {target} id", values)
