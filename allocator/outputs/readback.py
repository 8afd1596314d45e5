"""A run folder's tables read back as the run meant them: ids and other text stay text
(`007`), and cells the writer protected against formula injection read as written. Used by
the Python API, diff, compare and the run store alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from allocator.outputs.cells import FORMULA_START


def _unprotect(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo the writer's formula protection: `'=x` was written for the text `=x`."""
    for col in frame.columns:
        if pd.api.types.is_string_dtype(frame[col].dtype) or frame[col].dtype == object:
            text = frame[col].astype(object)
            text = text.where(text.isna(), text.astype(str))
            protected = text.str.startswith("'", na=False) & text.str[1:2].isin(FORMULA_START)
            if protected.any():
                frame[col] = text.where(~protected, text.str[1:])
    return frame


def read_output_table(path: Path) -> pd.DataFrame:
    """One table of a run folder, as the run meant it: ids and other text stay text."""
    if path.with_suffix(".parquet").exists():
        return pd.read_parquet(path.with_suffix(".parquet"))
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False,
                        dtype={c: str for c in _text_columns(path)})
    return _unprotect(frame)


def _text_columns(path: Path) -> list[str]:
    """Columns that hold ids or words: read as text whatever they look like (`007`)."""
    header = pd.read_csv(path, nrows=0).columns
    return [c for c in header if c.endswith(("_id", "id", "labels", "name", "skills", "skill",
                                             "region", "scope", "family", "stage", "kind"))]
