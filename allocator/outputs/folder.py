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
    """Text cells starting like a formula get a leading quote (CSV/Excel injection)."""
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            text = out[col].astype(object)
            first = text.astype(str).str[:1]  # vectorized: no Python call per cell
            mask = first.isin(FORMULA_START) & text.notna()
            if mask.any():
                out[col] = text.where(~mask, "'" + text.astype(str))
    return out


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
        safe.to_csv(self.tmp / f"{name}.csv", index=False)
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
