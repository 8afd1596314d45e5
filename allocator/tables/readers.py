"""Read a table from CSV, Parquet, Excel or SQL, keeping every cell as text until validation.

Reading everything as strings is deliberate: ids such as ``007`` or ``Orléans`` must survive
untouched, and numeric columns are converted later by the schema, which can then name the row
of every bad cell instead of failing on the first one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import InputError, Problem

# Row numbers as a spreadsheet shows them: the header is row 1, so data row 0 is row 2.
HEADER_ROWS = 1
# The password of a database URL (scheme://user:password@host), kept out of every message.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^\s]*@")


def _hide_password(text: str) -> str:
    return _URL_PASSWORD.sub(r"\1***@", text)


@dataclass(frozen=True)
class LoadedTable:
    """A table as read, with where it came from (for messages) and a hash (for summary.json)."""

    name: str
    frame: pd.DataFrame
    source: str
    digest: str
    first_row: int  # the display row number of data row 0
    rows: int = -1  # the table's length, kept when the text frame is dropped

    def __post_init__(self) -> None:
        if self.rows < 0:
            object.__setattr__(self, "rows", len(self.frame))

    def without_frame(self) -> LoadedTable:
        """The same record with its text cells released (once validation has typed them):
        where it came from, its hash and its length are all a run needs afterwards."""
        # copy(): a zero-row view would keep the whole block of text cells alive.
        return dataclasses.replace(self, frame=self.frame.iloc[:0].copy(), rows=self.rows)


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    head = ",".join(map(str, frame.columns)).encode()
    return hashlib.sha256(head + hashed.tobytes()).hexdigest()[:16]


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as object strings with missing cells as NaN (Parquet/SQL bring types).

    Vectorized per column (astype), not a Python call per cell: this runs on every table.
    """
    out = {}
    for col in frame.columns:
        series = frame[col]
        missing = series.isna().to_numpy()
        text = series.astype(str).to_numpy(dtype=object)
        text[missing] = np.nan
        out[str(col).strip()] = text
    return pd.DataFrame(out, index=range(len(frame)), dtype=object)


def read_table(
    name: str, spec: str | dict[str, str], base_dir: Path, origin: str = "scenario"
) -> LoadedTable:
    """Load one table described by a scenario's ``[tables]`` entry (`origin`: its file)."""
    if isinstance(spec, str):
        spec = {"path": spec}
    unknown = set(spec) - {"path", "sheet", "url", "query"}
    if unknown:
        raise InputError(
            f"tables.{name}: unknown keys {sorted(unknown)}; use path/sheet or url/query", origin
        )
    if "url" in spec:
        return _read_sql(name, spec)
    if "path" not in spec:
        raise InputError(f"tables.{name}: give a path, or a url and a query", origin)
    path = Path(spec["path"])
    if not path.is_absolute():
        path = base_dir / path
    source = str(path)
    if not path.exists():
        raise InputError([Problem(source, f"file not found (table '{name}')")])
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            raw = path.read_bytes()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = raw[: exc.start].count(b"\n") + 1
                raise InputError(
                    [Problem(source, f"not UTF-8 text (byte {exc.start}); save it as UTF-8", line)]
                ) from None
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".xlsx", ".xlsm", ".xls"):
            sheet = spec.get("sheet", 0)
            try:
                frame = pd.read_excel(path, sheet_name=sheet, dtype=str)
            except ValueError as exc:
                if "not found" in str(exc):
                    raise InputError([Problem(source, f"sheet {sheet!r} not found")]) from None
                raise
            if "sheet" in spec:
                source = f"{source} [sheet {spec['sheet']}]"
        else:
            raise InputError(
                [Problem(source, f"unsupported file type '{suffix}'; use .csv, .parquet or .xlsx")]
            )
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError([Problem(source, "the file is empty (no header row)")]) from None
    except Exception as exc:  # a malformed file of any format: say which and why
        raise InputError([Problem(source, f"could not be read: {exc}")]) from None
    frame = _as_text(frame)
    return LoadedTable(name, frame, source, _digest(frame), HEADER_ROWS + 1)


def _read_sql(name: str, spec: dict[str, str]) -> LoadedTable:
    # SQLAlchemy is imported here: most runs read files and need not pay for it.
    import sqlalchemy

    url, query = spec["url"], spec.get("query")
    source = f"table '{name}' ({_hide_password(url)})"
    if not query:
        raise InputError([Problem(source, "a SQL source needs a query")])
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception as exc:
        detail = _hide_password(str(exc).splitlines()[0])
        raise InputError([Problem(source, f"not a database URL: {detail}")]) from None
    database = parsed.database or ""
    if (parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
            and not database.startswith("file:") and not Path(database).exists()):
        # SQLite would silently create an empty database, and the query then fails with
        # "no such table"; say what is really wrong, and leave no stray file behind.
        raise InputError([Problem(source, f"database file not found: {database}")])
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            frame = pd.read_sql_query(sqlalchemy.text(query), conn)
    except Exception as exc:
        detail = _hide_password(str(exc).splitlines()[0])
        raise InputError([Problem(source, f"query failed: {detail}")]) from None
    frame = _as_text(frame)
    # A result set has no header row: its first record is row 1.
    return LoadedTable(name, frame, f"{source} query", _digest(frame), 1)
