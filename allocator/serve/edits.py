"""The cells a negotiation moves, checked with the rules of the tables they belong to.

A change names its row by the table's id column (`budgets` B-SOU, `sites` Leeds) or, for
targets, by site and service (`"Leeds/picking"` or `["Leeds", "picking"]`, as the coverage
rows are labelled). The bounds come from the model's table schemas (as the session reads
them), so the page refuses exactly what `allocator solve` would refuse in the file; every
problem of a request is reported at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from allocator.errors import InputError, Problem
from allocator.tables.schema import Schema

# What the page may edit: a handful of cells a negotiation moves, not the whole data set.
EDITABLE: dict[str, tuple[str, ...]] = {
    "budgets": ("amount",),
    "sites": ("capacity_fte", "min_fte"),
    "targets": ("demand", "min_level"),
}
KEYS: dict[str, tuple[str, ...]] = {
    "budgets": ("budget_id",), "sites": ("site_id",), "targets": ("site_id", "service_id")}
MAX_CHANGES = 500
# The readers refuse numbers of 1e15 or more (a pasted account number): so does the page.
TOO_LARGE = 1e15
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")  # 1,250,000.50


@dataclass(frozen=True)
class Change:
    """One cell: `table` row `key` (its id values), `column` set to `value`."""

    table: str
    key: tuple[str, ...]
    column: str
    value: float | None

    @property
    def id(self) -> str:
        return "/".join(self.key)

    def as_json(self) -> dict[str, Any]:
        return {"table": self.table, "id": self.id if len(self.key) == 1 else list(self.key),
                "column": self.column, "value": self.value}


def _where(raw: Any, n: int) -> str:
    if isinstance(raw, dict) and raw.get("table") is not None:
        return f"change {n} ({raw.get('table')} {raw.get('id')!s} {raw.get('column')})"
    return f"change {n}"


def _key_of(table: str, raw_id: Any, frame: pd.DataFrame) -> tuple[str, ...] | str:
    """The id values of the row, or the reason none matches."""
    names = KEYS[table]
    if isinstance(raw_id, list | tuple):
        parts = tuple(str(p) for p in raw_id)
    elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        text = str(raw_id)
        if len(names) == 1:
            parts = (text,)
        else:  # "site/service": the site may hold '/' itself, the service is the last part
            site, _, service = text.rpartition("/")
            parts = (site, service) if site else (text,)
    else:
        return f"'id' must be the row's {' and '.join(names)} (text)"
    if len(parts) != len(names):
        return (f"'id' must name {' and '.join(names)}"
                + (" as \"site/service\" or [site, service]" if len(names) > 1 else ""))
    mask = pd.Series(True, index=frame.index)
    for name, part in zip(names, parts, strict=True):
        mask &= frame[name].astype(str) == part
    if not mask.any():
        named = ", ".join(f"{n} {p!r}" for n, p in zip(names, parts, strict=True))
        return f"no row of {table} has {named}"
    return parts


def _value_problem(schema: Schema, column: str, value: Any) -> tuple[float | None, str]:
    col = next(c for c in schema.columns if c.name == column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if col.nullable:
            return None, ""
        return None, "a number is needed here (the cell cannot be empty)"
    if isinstance(value, bool):
        return None, f"expected a number, found {value!r}"
    if isinstance(value, str) and "," in value and not _GROUPED.match(value.strip()):
        # "1,5" is a decimal comma (1.5), not fifteen: refuse it rather than guess
        return None, (f"expected a number, found {value!r}: commas only between groups of "
                      "three digits (1,000,000); a decimal point, not a comma (1.5)")
    try:
        number = float(str(value).replace(",", "").replace("_", "").strip()) \
            if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None, f"expected a number, found {value!r}"
    if not math.isfinite(number):
        return None, f"expected a finite number, found {value!r}"
    if abs(number) >= TOO_LARGE:
        return None, f"{number:.6g} is too large to be meant (1e15 or more)"
    if col.min is not None and (number < col.min or (col.min_exclusive and number == col.min)):
        bound = "greater than" if col.min_exclusive else "at least"
        return None, f"must be {bound} {col.min:g}, found {number:g}"
    if col.max is not None and number > col.max:
        return None, f"must be at most {col.max:g}, found {number:g}"
    return number, ""


def parse_changes(raw: Any, tables: dict[str, pd.DataFrame],
                  schemas: dict[str, Schema]) -> list[Change]:
    """The request's changes, checked against the base tables; InputError lists every
    problem (source 'change N (...)', the column, what was expected)."""
    if not isinstance(raw, list):
        raise InputError("'changes' must be a list of {table, id, column, value}", "request")
    if len(raw) > MAX_CHANGES:
        raise InputError(f"at most {MAX_CHANGES} changes in one request (found {len(raw)})",
                         "request")
    problems: list[Problem] = []
    found: dict[tuple[str, tuple[str, ...], str], Change] = {}
    for n, item in enumerate(raw, start=1):
        where = _where(item, n)
        if not isinstance(item, dict):
            problems.append(Problem(where, "expected {table, id, column, value}"))
            continue
        table, column = item.get("table"), item.get("column")
        if table not in EDITABLE:
            problems.append(Problem(where, f"table must be one of {', '.join(EDITABLE)}; "
                                           f"found {table!r}"))
            continue
        if column not in EDITABLE[table]:
            problems.append(Problem(where, f"the page can change {table} "
                                           f"{' or '.join(EDITABLE[table])}; found {column!r}",
                                    column=str(column)))
            continue
        key = _key_of(table, item.get("id"), tables[table])
        if isinstance(key, str):
            problems.append(Problem(where, key))
            continue
        value, problem = _value_problem(schemas[table], column, item.get("value"))
        if problem:
            problems.append(Problem(where, problem, column=column))
            continue
        found[(table, key, column)] = Change(table, key, column, value)  # the last one wins
    if problems:
        raise InputError(problems)
    return list(found.values())


def apply_changes(tables: dict[str, pd.DataFrame], changes: list[Change]
                  ) -> dict[str, pd.DataFrame]:
    """Copies of the edited tables with the changes made (the others are not copied)."""
    edited: dict[str, pd.DataFrame] = {}
    for change in changes:
        frame = edited.get(change.table)
        if frame is None:
            frame = edited[change.table] = tables[change.table].copy()
        mask = pd.Series(True, index=frame.index)
        for name, part in zip(KEYS[change.table], change.key, strict=True):
            mask &= frame[name].astype(str) == part
        frame.loc[mask, change.column] = math.nan if change.value is None else change.value
    return edited
