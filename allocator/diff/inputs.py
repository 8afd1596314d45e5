"""The input side of a diff: which tables two runs read differently, and which rows and cells.

The run folder does not hold its inputs; summary.json records each table's source and a hash
of its content as read (`sha256_16`). Whether a table differs is decided by those hashes
(always right); the rows and cells come from reading the recorded sources again, with the
same reader the run used, and are compared only when the file still hashes as the run read it
(otherwise the diff says the file changed since the run, and names no row of it).

Rows are matched by business ids (the table's `*_id` columns when they identify its rows,
as every contract table's key does: staff_id, site_id + service_id, budget_id ...), else by
position."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ID_COLUMNS = ("staff_id", "site_id", "service_id", "budget_id", "task_id", "resource_id",
              "point_id", "program_id")  # every business key of the contract tables
CHANGE_COLUMNS = ["table", "file", "change", "key", *ID_COLUMNS, "row_a", "row_b",
                  "column", "value_a", "value_b", "rel_change"]
TABLE_COLUMNS = ["table", "status", "source_a", "source_b", "rows_a", "rows_b", "sha256_a",
                 "sha256_b", "rows_added", "rows_removed", "rows_changed", "cells_changed",
                 "note"]
_SHEET = re.compile(r"^(?P<path>.*) \[sheet (?P<sheet>.*)\]$")


@dataclass
class Side:
    """One run's copy of a table, as read again now (None: it could not be)."""

    frame: pd.DataFrame | None
    rows: np.ndarray | None  # spreadsheet row numbers of the frame's rows
    note: str | None = None  # why it is missing or not trusted


@dataclass
class InputDiff:
    tables: pd.DataFrame  # one row per table either run read (TABLE_COLUMNS)
    changes: pd.DataFrame  # one row per added/removed row or changed cell (CHANGE_COLUMNS)
    notes: list[str] = field(default_factory=list)


def _parts_digest(name: str, folder: Path) -> str:
    """A partitioned run's digest of a table its workers read part by part
    (decompose/partitioned.py): the hash of each part's digest, in path order."""
    import hashlib

    from allocator.tables.partitioned import parts
    from allocator.tables.readers import read_table

    found = sorted((str(part.path), read_table(name, {"path": str(part.path)}, folder).digest)
                   for part in parts(folder))
    return hashlib.sha256("".join(d for _, d in found).encode()).hexdigest()[:16]


def _read_again(name: str, record: dict[str, Any]) -> Side:
    """The table from its recorded source, and whether it is still what the run read."""
    from allocator.errors import AllocatorError
    from allocator.tables.readers import read_table

    source = str(record.get("source") or "")
    match = _SHEET.match(source)
    spec = {"path": match["path"], "sheet": match["sheet"]} if match else {"path": source}
    where = Path(spec["path"])
    if not source or not (where.is_file() or where.is_dir()):  # a folder: Parquet parts
        why = "a database query" if source.startswith("table '") else "no longer there"
        return Side(None, None, f"{source or name}: {why}, so its rows cannot be compared")
    try:
        loaded = read_table(name, spec, where.parent)
        same = loaded.digest == record.get("sha256_16") or \
            (where.is_dir() and _parts_digest(name, where) == record.get("sha256_16"))
    except AllocatorError as exc:
        return Side(None, None, f"{source}: cannot be read again ({exc})")
    rows = loaded.row_of(np.arange(len(loaded.frame)))
    if record.get("sha256_16") and not same:
        # Its rows now are not the rows the run read: comparing them would put today's
        # values in the story as the run's (a figure no run ever used).
        return Side(None, None, f"{source} changed since the run read it (hash "
                                f"{record['sha256_16']} then, {loaded.digest} now), so its "
                                "rows cannot be compared")
    return Side(loaded.frame, rows, None)


def _key(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The id columns that identify the rows of both copies, else [] (match by position)."""
    ids = [c for c in a.columns if c.endswith("_id") and c in b.columns]
    if not ids:
        return []
    for frame in (a, b):
        if frame[ids].isna().any(axis=None) or frame.duplicated(ids).any():
            return []
    return ids


# Columns that name things (a site, a scope, a skill): "01" and "1" are two sites, so their
# cells are compared as text, never as numbers.
NAMING_COLUMNS = frozenset({"home_site", "scope", "skills", "skill", "mobility", "region"})


def _same(a: pd.Series, b: pd.Series, column: str = "") -> np.ndarray:
    """Cell equality as a reader of the table means it: numbers by value (1.2 == 1.20),
    except in a column that names things (ids, references)."""
    if column.endswith("_id") or column in NAMING_COLUMNS:
        text_a, text_b = a.astype(object), b.astype(object)
        return ((text_a.astype(str) == text_b.astype(str)) & (text_a.isna() == text_b.isna())
                | (text_a.isna() & text_b.isna())).to_numpy()
    na, nb = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    both = na.notna() & nb.notna()
    text_a, text_b = a.astype(object), b.astype(object)
    equal_text = (text_a == text_b) | (text_a.isna() & text_b.isna())
    equal_num = np.isclose(na.fillna(0).to_numpy(float), nb.fillna(0).to_numpy(float),
                           rtol=1e-12, atol=0.0)
    return np.where(both.to_numpy(), equal_num, equal_text.to_numpy())


def _rel(a: pd.Series, b: pd.Series) -> pd.Series:
    na, nb = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (nb - na) / na.abs()
    return rel.where(na.notna() & nb.notna() & (na != 0))


def _key_text(frame: pd.DataFrame, ids: list[str]) -> pd.Series:
    if not ids:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    text = frame[ids[0]].astype(str)
    for col in ids[1:]:
        text = text + " " + frame[col].astype(str)
    return text


def compare_table(name: str, file: str, a: Side, b: Side) -> pd.DataFrame:
    """Rows added, removed, and cells changed between two copies of one table."""
    assert a.frame is not None and b.frame is not None
    fa = a.frame.reset_index(drop=True).assign(_row=a.rows)
    fb = b.frame.reset_index(drop=True).assign(_row=b.rows)
    ids = _key(a.frame, b.frame)
    on = ids or ["_pos"]
    if not ids:
        fa["_pos"], fb["_pos"] = np.arange(len(fa)), np.arange(len(fb))
    both = fa.merge(fb, on=on, how="outer", suffixes=("_a", "_b"), indicator=True, sort=True)
    if not ids:
        both["key"] = "row " + (both["_pos"] + 1).astype(str)
    else:
        both["key"] = _key_text(both, ids)
    parts = []
    for change, side in (("removed", "left_only"), ("added", "right_only")):
        rows = both[both["_merge"] == side]
        if len(rows):
            parts.append(pd.DataFrame({
                "change": change, "key": rows["key"],
                **{c: rows[c] for c in ids},
                "row_a": rows["_row_a"], "row_b": rows["_row_b"]}))
    common = both[both["_merge"] == "both"]
    for col in [c for c in a.frame.columns if c in b.frame.columns and c not in on]:
        va, vb = common[f"{col}_a"], common[f"{col}_b"]
        differ = ~_same(va, vb, col)
        if differ.any():
            rows = common[differ]
            parts.append(pd.DataFrame({
                "change": "changed", "key": rows["key"], **{c: rows[c] for c in ids},
                "row_a": rows["_row_a"], "row_b": rows["_row_b"], "column": col,
                "value_a": va[differ].astype(object), "value_b": vb[differ].astype(object),
                "rel_change": _rel(va[differ], vb[differ])}))
    for col in sorted(set(a.frame.columns) ^ set(b.frame.columns)):
        parts.append(pd.DataFrame({"change": "column " + (
            "added" if col in b.frame.columns else "removed"), "key": "", "column": [col]}))
    if not parts:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    found = pd.concat(parts, ignore_index=True)
    found.insert(0, "file", file)
    found.insert(0, "table", name)
    return found.reindex(columns=CHANGE_COLUMNS)


def diff_inputs(summary_a: dict[str, Any], summary_b: dict[str, Any]) -> InputDiff:
    inputs_a = summary_a.get("inputs") or {}
    inputs_b = summary_b.get("inputs") or {}
    rows, changes, notes = [], [], []
    for name in [*inputs_a, *(n for n in inputs_b if n not in inputs_a)]:
        ra, rb = inputs_a.get(name), inputs_b.get(name)
        row: dict[str, Any] = {
            "table": name, "source_a": ra and ra.get("source"),
            "source_b": rb and rb.get("source"), "rows_a": ra and ra.get("rows"),
            "rows_b": rb and rb.get("rows"), "sha256_a": ra and ra.get("sha256_16"),
            "sha256_b": rb and rb.get("sha256_16")}
        if ra is None or rb is None:
            row["status"] = "added" if ra is None else "removed"
        elif ra.get("sha256_16") == rb.get("sha256_16"):
            row["status"] = "same"
        else:
            row["status"] = "changed"
            side_a, side_b = _read_again(name, ra), _read_again(name, rb)
            said = [n for n in (side_a.note, side_b.note) if n]
            if side_a.frame is not None and side_b.frame is not None:
                file = Path(_SHEET.sub(r"\g<path>", str(rb.get("source")))).name
                found = compare_table(name, file, side_a, side_b)
                changes.append(found)
                row.update(rows_added=int((found["change"] == "added").sum()),
                           rows_removed=int((found["change"] == "removed").sum()),
                           rows_changed=int(found.loc[found["change"] == "changed", "key"]
                                            .nunique()),
                           cells_changed=int((found["change"] == "changed").sum()))
                # The region column a folder of parts adds (from its region=<R> folders)
                # is where the rows were filed, not a value of the table.
                folder = any(Path(str(r.get("source"))).is_dir() for r in (ra, rb))
                filed = found["change"].isin(["column added", "column removed"]) & \
                    (found.get("column", pd.Series(index=found.index, dtype=object))
                     == "region") & folder
                if found[~filed].empty and not same_source(ra, rb):
                    # Hashes differ, values do not: the same table in another file or
                    # format (a CSV and its Parquet parts by region, say).
                    row["status"] = "same values"
                if same_source(ra, rb) and found.empty:
                    said.append(f"{name}: the run hashes differ but the file reads the same "
                                "now (it changed after run A)")
            row["note"] = "; ".join(dict.fromkeys(said)) or None
            notes += said
        rows.append(row)
    tables = pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)
    change_frame = (pd.concat(changes, ignore_index=True) if changes
                    else pd.DataFrame(columns=CHANGE_COLUMNS))
    return InputDiff(tables, change_frame, list(dict.fromkeys(notes)))


def same_source(ra: dict[str, Any], rb: dict[str, Any]) -> bool:
    return bool(ra.get("source")) and ra.get("source") == rb.get("source")
