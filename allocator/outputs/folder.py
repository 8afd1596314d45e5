"""A run folder that is complete or absent: written beside the target, renamed into place.

A rename within one filesystem is atomic, so a scheduler never sees half a plan; an
interrupted run leaves only a hidden temporary folder, removed on the way out.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from allocator.errors import InputError

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Temporary folders of runs in progress: an interrupt handler removes them before exiting.
ACTIVE: set[Path] = set()


def discard_active() -> None:
    for path in list(ACTIVE):
        shutil.rmtree(path, ignore_errors=True)
        ACTIVE.discard(path)


def check_target(out: Path, force: bool) -> None:
    """Refuse early (before any solving) to replace an existing run without --force."""
    if out.exists() and not force:
        raise InputError(f"output folder {out} exists; use --force to replace it, or another "
                         "--out", "--out")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder", "--out")


def _neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells starting like a formula get a leading quote (CSV/Excel injection).

    Vectorized on the first character; the frame is copied only when a cell needs it."""
    out = frame
    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        values = frame[col]
        if isinstance(dtype, pd.CategoricalDtype):  # decide per category, not per row
            categories = values.cat.categories.astype(str)
            if not categories.str[:1].isin(FORMULA_START).any():
                continue
        if pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
            mask = values.str.startswith(FORMULA_START).fillna(False).astype(bool)
        else:  # object columns may hold numbers or None beside text
            mask = values.astype(str).str[:1].isin(FORMULA_START) & values.notna()
        text = values.astype(object)
        if mask.any():
            if out is frame:
                out = frame.copy()
            out[col] = text.where(~mask, "'" + text.astype(str))
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV through Arrow's C++ writer: about 10x faster than `DataFrame.to_csv` on the
    large sensitivity tables (440k rows: 0.24 s against 2.2 s). Text is always quoted,
    booleans read true/false, whole floats print without '.0'; any CSV reader (pandas, Excel,
    R) reads it back to the same values. A frame Arrow cannot type falls back to pandas.
    Arrow is imported here, after the solve: not held in memory while the model is built."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        frame.to_csv(path, index=False)
        return
    columns = [col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col
               for col in table.columns]
    table = pa.Table.from_arrays(columns, names=table.column_names)
    pa_csv.write_csv(table, path)


class RunFolder:
    """Collects files in a temporary folder; `commit` moves it into place."""

    def __init__(self, out: Path, formats: list[str]) -> None:
        self.out = out
        self.formats = formats
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        ACTIVE.add(self.tmp)

    def table(self, name: str, frame: pd.DataFrame) -> None:
        safe = _neutralize(frame)
        write_csv(safe, self.tmp / f"{name}.csv")
        if "parquet" in self.formats:
            frame.to_parquet(self.tmp / f"{name}.parquet", index=False)
        if "json" in self.formats:
            frame.to_json(self.tmp / f"{name}.json", orient="records", indent=1)
        if "xlsx" in self.formats:
            safe.to_excel(self.tmp / f"{name}.xlsx", index=False)

    def json(self, name: str, payload: dict[str, Any]) -> None:
        (self.tmp / name).write_text(json.dumps(payload, indent=2, default=str) + "\n")

    def text(self, name: str, content: str) -> None:
        (self.tmp / name).write_text(content, encoding="utf-8")

    def commit(self, force: bool) -> None:
        if self.out.exists():
            if not force:
                raise InputError(f"output folder {self.out} appeared during the run; "
                                 "use --force to replace it", "--out")
            old = self.out.with_name(f".{self.out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            self.out.rename(old)
            self.tmp.rename(self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self.tmp.rename(self.out)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        ACTIVE.discard(self.tmp)


@contextlib.contextmanager
def run_folder(out: Path, formats: list[str], force: bool) -> Iterator[RunFolder]:
    folder = RunFolder(out, formats)
    try:
        yield folder
        folder.commit(force)
    finally:
        folder.discard()
