"""Tables as Parquet partitioned by region: a folder of `region=<R>/part-0.parquet` files.

Why: at a million staff the tables themselves are the client's memory peak before the model
is. Written this way (Hive-style, the layout pyarrow, Spark and DuckDB share), each Dask
worker of a decomposed run reads only its regions' files (allocator/decompose/regional.py),
and the client never holds the staff table. The same folder is still one table to every
other reader: `read_table` on a folder reads all its parts, the partition value added as a
column, so a scenario of partitioned tables also solves monolithic (that is how the tests
compare the two).

Row numbers in messages are per part file, as a person would open it: a problem is reported
against `staff/region=R03/part-0.parquet row 12`, not a position in the whole folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd

PARTITION_KEY = "region"
PART_FILE = "part-0.parquet"
# The tables written partitioned by the generator (`allocator generate --partitioned`) and
# read by region by the decomposed run; the small ones (services, budgets) are one file.
PARTITIONED_TABLES = ("sites", "staff", "targets")


@dataclass(frozen=True)
class Part:
    """One file of a partitioned table and the partition values its path gives."""

    path: Path
    values: dict[str, str]


def is_partitioned(path: Path) -> bool:
    return path.is_dir()


def parts(folder: Path) -> list[Part]:
    """Every `.parquet` file under `folder`, sorted by path (so reading order, row numbers
    and digests are the same on every machine), with its `key=value` folders decoded."""
    found: list[Part] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".parquet") or name.startswith((".", "_")):
                continue
            path = Path(root) / name
            values = {}
            for piece in path.relative_to(folder).parts[:-1]:
                key, sep, value = piece.partition("=")
                if sep:
                    values[key] = unquote(value)
            found.append(Part(path, values))
    return sorted(found, key=lambda p: str(p.path))


def region_folder(folder: Path, region: str) -> Path:
    return folder / f"{PARTITION_KEY}={quote(str(region), safe='')}"


def region_parts(folder: Path, region: str) -> list[Part]:
    """The files of one region (none when the region has no rows in this table), found by
    the decoded folder value: `region=North East` (Spark leaves spaces as they are) and
    `region=North%20East` are both region 'North East'."""
    return [p for p in parts(folder) if p.values.get(PARTITION_KEY) == str(region)]


def stray_files(folder: Path) -> list[Path]:
    """Files in a folder of parts that are not Parquet (`part-1.csv`): they would be
    skipped, so they are refused. Hidden files and Spark's `_SUCCESS` markers are not data."""
    return sorted(Path(root) / name for root, _, files in os.walk(folder) for name in files
                  if not name.endswith(".parquet") and not name.startswith((".", "_")))


def write_partitioned(frame: pd.DataFrame, folder: Path, by: pd.Series) -> None:
    """`frame` as one Parquet file per value of `by` (the partition value lives in the path,
    not in the file, as Hive-style readers expect)."""
    folder.mkdir(parents=True, exist_ok=True)
    for value, rows in frame.groupby(by.to_numpy(), sort=True):
        where = region_folder(folder, str(value))
        where.mkdir(parents=True, exist_ok=True)
        rows.reset_index(drop=True).to_parquet(where / PART_FILE, index=False)


def only_parts(folder: Path) -> bool:
    """Whether `folder` holds nothing but `region=<R>/part-0.parquet` files (what generate
    and partition write): only such a folder is theirs to replace with --force."""
    for path in folder.rglob("*"):
        inside = path.relative_to(folder).parts
        if path.is_dir():
            if len(inside) != 1 or not inside[0].startswith(f"{PARTITION_KEY}="):
                return False
        elif len(inside) != 2 or inside[1] != PART_FILE:
            return False
    return True
