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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from allocator.errors import InputError

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Temporary folders of runs in progress: an interrupt handler removes them before exiting.
ACTIVE: set[Path] = set()
WRITERS: set[ThreadPoolExecutor] = set()  # their background CSV writers


def discard_active() -> None:
    for writer in list(WRITERS):  # no queued table may land in a folder being removed
        writer.shutdown(wait=True, cancel_futures=True)
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
        if isinstance(dtype, pd.StringDtype):  # object columns may hold anything
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
    """CSV through Arrow's C++ writer, formula-like text neutralized on the way.

    About 10x faster than `DataFrame.to_csv` on the large sensitivity tables (440k rows:
    0.24 s against 2.2 s), and it releases the GIL, so the run folder writes tables in a
    thread while the report renders. Text is always quoted, booleans read true/false, whole
    floats print without '.0'; any CSV reader (pandas, Excel, R) reads it back to the same
    values. A frame Arrow cannot type falls back to pandas. Arrow is imported here, after the
    solve: not held in memory while the model is built."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table = None
    plain = table is not None and all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
        or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)
        or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))
        for t in table.schema.types)
    if not plain:  # dates, lists, mixed objects: pandas writes them as before
        _neutralize(frame).to_csv(path, index=False)
        return
    starts = pa.array(list(FORMULA_START))
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            risky = pc.fill_null(pc.is_in(pc.utf8_slice_codeunits(col, 0, 1),
                                          value_set=starts), False)
            if pc.any(risky).as_py():
                quote, nothing = pa.scalar("'", col.type), pa.scalar("", col.type)
                col = pc.if_else(risky, pc.binary_join_element_wise(quote, col, nothing), col)
        columns.append(col)
    pa_csv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), path)


class RunFolder:
    """Collects files in a temporary folder; `commit` moves it into place."""

    def __init__(self, out: Path, formats: list[str]) -> None:
        self.out = out
        self.formats = formats
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        ACTIVE.add(self.tmp)
        # CSV files are written by one background thread (Arrow releases the GIL), in the
        # order given; `commit` waits for them, so the folder is still complete or absent.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-writer")
        WRITERS.add(self._writer)
        self._pending: list[Future[None]] = []

    def table(self, name: str, frame: pd.DataFrame) -> None:
        """Write a table; the caller must not change `frame` afterwards (written later)."""
        self._pending.append(self._writer.submit(write_csv, frame, self.tmp / f"{name}.csv"))
        if "parquet" in self.formats:
            frame.to_parquet(self.tmp / f"{name}.parquet", index=False)
        if "json" in self.formats:
            frame.to_json(self.tmp / f"{name}.json", orient="records", indent=1)
        if "xlsx" in self.formats:
            _neutralize(frame).to_excel(self.tmp / f"{name}.xlsx", index=False)

    def flush(self) -> None:
        """Wait for the tables still being written; a failed write raises here."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def json(self, name: str, payload: dict[str, Any]) -> None:
        (self.tmp / name).write_text(json.dumps(payload, indent=2, default=str) + "\n")

    def text(self, name: str, content: str) -> None:
        (self.tmp / name).write_text(content, encoding="utf-8")

    def commit(self, force: bool) -> None:
        self.flush()
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
        self._writer.shutdown(wait=True, cancel_futures=True)  # one in progress finishes
        WRITERS.discard(self._writer)
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
