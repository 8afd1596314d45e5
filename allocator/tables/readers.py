"""Read a table from CSV, Parquet, Excel or SQL, keeping every cell as text until validation.

Reading everything as strings is deliberate: ids such as ``007`` or ``Orléans`` must survive
untouched, and numeric columns are converted later by the schema, which can then name the row
of every bad cell instead of failing on the first one.

Every reader follows the same rules (docs/input-rules.md): only regular files below a size
cap; headers matched ignoring case and surrounding spaces, duplicates refused; text stays text
(``NA``, ``NULL``, ``#N/A`` are values, only an empty cell is missing); row numbers are those
a spreadsheet shows, blank rows included; a cell the run folder wrote with a
formula-neutralizing ``'`` reads back without it; SQL runs one SELECT, read-only.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputError, Problem

# Row numbers as a spreadsheet shows them: the header is row 1, so data row 0 is row 2.
HEADER_ROWS = 1
# Files larger than this are refused unless `[input] max_file_mb` raises the cap.
DEFAULT_MAX_FILE_MB = 2048.0
# The password of a database URL (scheme://user:password@host), kept out of every message:
# greedy up to the LAST '@' of the authority, so a password holding '@' is hidden whole.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^\s]*@")
# What the run folder's writer prefixes with "'" (outputs/folder.py FORMULA_START).
_NEUTRALIZED = re.compile(r"'[=+\-@\t\r]")
_NEUTRALIZED_BYTES = re.compile(rb"(?:^|[,;\t\"\n])'[=+\-@\t\r]")
# Characters never legitimate in an id: Unicode categories Cc, Cf, Zl, Zp (NUL, tab, zero-width
# space, bidirectional overrides, byte-order mark, soft hyphen, ...).
INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
# Unicode spaces (category Zs) other than the plain space: a non-breaking space pasted from a
# web page or a French number format makes 'North\u00a0East' a second region.
UNICODE_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
# What separates words in a header: spaces, hyphens, dots, slashes and brackets all read as
# '_' ('Capacity (FTE)', 'capacity-fte' and 'capacity fte' are all 'capacity_fte').
_HEADER_SEPARATORS = re.compile(r"[\s\-./\\()\[\]{}]+")


def _hide_password(text: str, secret: str | None = None) -> str:
    from urllib.parse import quote, unquote

    if secret:
        for form in {secret, unquote(secret), quote(unquote(secret), safe="")}:
            if len(form) >= 3:  # a shorter one would blank out ordinary words
                text = text.replace(form, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)


@dataclass(frozen=True)
class LoadedTable:
    """A table as read, with where it came from (for messages) and a hash (for summary.json).

    Row numbers are those a spreadsheet shows: `row_numbers[i]` is data row i's (blank rows
    dropped keep their number), or, where None, `first_row + i`. `notes` holds what the
    reader or the schema noticed without refusing (a guessed delimiter, decimal commas, ids
    that differ only by case); callers show them with the run's warnings.
    """

    name: str
    frame: pd.DataFrame
    source: str
    digest: str
    first_row: int  # the display row number of data row 0
    rows: int = -1  # the table's length, kept when the text frame is dropped
    row_numbers: np.ndarray | None = None
    header_row: int | None = HEADER_ROWS  # None: a query result has no header row
    headers: dict[str, str] = field(default_factory=dict)  # column -> header as written
    notes: list[str] = field(default_factory=list)
    decimal_comma: bool = False  # numbers may use ',' as decimal separator (';' files)
    # A folder of Parquet parts: each part's file and first position, and each row's number
    # in its own part (`locate` reports problems there).
    parts: tuple[tuple[str, int], ...] = ()
    part_rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rows < 0:
            object.__setattr__(self, "rows", len(self.frame))

    def row_of(self, positions: np.ndarray | int) -> np.ndarray:
        """Spreadsheet row numbers of data rows at `positions` (0-based)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.row_numbers is None:
            return positions + self.first_row
        return self.row_numbers[positions]

    def header(self, column: str) -> str:
        """A column's header as the file wrote it (for messages)."""
        return self.headers.get(column, column)

    def without_frame(self) -> LoadedTable:
        """The same record with its text cells released (once validation has typed them):
        where it came from, its hash, its length and its row numbers are all a run needs."""
        # copy(): a zero-row view would keep the whole block of text cells alive.
        return dataclasses.replace(self, frame=self.frame.iloc[:0].copy(), rows=self.rows)


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    head = ",".join(map(str, frame.columns)).encode()
    return hashlib.sha256(head + hashed.tobytes()).hexdigest()[:16]


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as object strings with missing cells as NaN (SQL brings types).

    Vectorized per column (astype), not a Python call per cell: this runs on every table.
    """
    out = {}
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        missing = series.isna().to_numpy()
        text = series.astype(str).to_numpy(dtype=object)
        text[missing] = np.nan
        out[i] = text
    result = pd.DataFrame(out, index=range(len(frame)), dtype=object)
    result.columns = [str(c) for c in frame.columns]
    return result


def _letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def normalize_header(text: str) -> str:
    """A header as matched against the contract: invisible characters dropped, compatibility
    forms folded (NFKC: a non-breaking space is a space, a full-width letter a letter), lower
    case, and spaces, hyphens, dots, slashes and brackets read as one '_' ('Capacity (FTE)'
    is 'capacity_fte'), none at either end."""
    name = unicodedata.normalize("NFKC", INVISIBLE.sub("", text)).strip().lower()
    name = _HEADER_SEPARATORS.sub("_", name)
    return re.sub("_+", "_", name).strip("_")


def _named_headers(
    raw_names: list[Any], columns: list[np.ndarray], source: str, header_row: int | None,
    notes: list[str],
) -> tuple[list[str], list[np.ndarray], dict[str, str]]:
    """Normalize headers (normalize_header), refuse duplicates, drop unnamed empty columns.

    Returns the kept names, their cells, and each name's header as written."""
    problems: list[Problem] = []
    names: list[str] = []
    kept: list[np.ndarray] = []
    written: dict[str, str] = {}
    where: dict[str, tuple[int, str]] = {}
    unnamed_with_values = []
    for i, (raw, cells) in enumerate(zip(raw_names, columns, strict=True)):
        text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw)
        # Invisible characters never belong in a header (a stray byte-order mark, a
        # zero-width space pasted with the name): dropped, as are surrounding spaces.
        name = normalize_header(text)
        if not name:
            if pd.notna(cells).any():
                unnamed_with_values.append(_letter(i))
            continue  # an empty trailing column of an export (pandas: "Unnamed: 3")
        if name in where:
            j, first = where[name]
            problems.append(Problem(
                source, f"duplicated header: column {_letter(j)} {first!r} and column "
                f"{_letter(i)} {text!r} both read as {name!r} (headers ignore case, spaces, "
                "hyphens and brackets); delete or rename one", header_row, text))
            continue
        where[name] = (i, text)
        names.append(name)
        kept.append(cells)
        written[name] = text
    if problems:
        raise InputError(problems)
    if unnamed_with_values:
        notes.append(f"{source}: column(s) {', '.join(unnamed_with_values)} hold values but "
                     "no header (a merged header cell, or an index column?); ignored")
    return names, kept, written


def rows_text(numbers: np.ndarray, limit: int = 5) -> str:
    """'row 3', 'rows 3, 5 and 9', 'rows 3, 5, 9, 10, 11, ... (12 in all)'."""
    shown = [str(int(n)) for n in numbers[:limit]]
    if len(numbers) == 1:
        return f"row {shown[0]}"
    if len(numbers) <= limit:
        return f"rows {', '.join(shown[:-1])} and {shown[-1]}"
    return f"rows {', '.join(shown)}, ... ({len(numbers)} in all)"


def _normalize_text(names: list[str], columns: list[np.ndarray], numbers: np.ndarray,
                    source: str, notes: list[str]) -> list[np.ndarray]:
    """Unicode spaces (a non-breaking space, a thin space) read as plain spaces, and text in
    its composed Unicode form (NFC: 'Orléans' typed on a Mac and on Windows is one id), with
    a note naming the column and the first rows.

    One C scan per column ("".isascii()) decides; the per-cell work runs only on a column
    that holds non-ASCII text, and only on its non-ASCII cells."""
    out = []
    for name, cells in zip(names, columns, strict=True):
        present = pd.notna(cells)
        text = cells[present]
        try:
            joined = "\n".join(text)
        except TypeError:  # not all text (never from our readers): leave the column alone
            out.append(cells)
            continue
        if joined.isascii():
            out.append(cells)
            continue
        spaced = UNICODE_SPACES.search(joined) is not None
        decomposed = not unicodedata.is_normalized("NFC", joined)
        if not spaced and not decomposed:
            out.append(cells)
            continue
        series = pd.Series(text, dtype=object)
        fixed = series
        where = np.flatnonzero(present)
        if spaced:
            hit = series.str.contains(UNICODE_SPACES, regex=True).to_numpy(dtype=bool)
            fixed = fixed.str.replace(UNICODE_SPACES, " ", regex=True)
            first = str(series[hit].iloc[0])
            notes.append(
                f"{source}: column '{name}': a non-breaking or other Unicode space in "
                f"{int(hit.sum())} cell(s) ({rows_text(numbers[where[hit]])}, e.g. "
                f"{first!r}) read as a plain space")
        if decomposed:
            nfc = fixed.str.normalize("NFC")
            hit = (nfc != fixed).to_numpy(dtype=bool)
            if hit.any():
                first = ascii(str(fixed[hit].iloc[0]))
                notes.append(
                    f"{source}: column '{name}': {int(hit.sum())} cell(s) in decomposed "
                    f"Unicode form ({rows_text(numbers[where[hit]])}, e.g. {first}, an "
                    "accent typed as a separate mark) read in composed form (NFC), as the "
                    "same text typed elsewhere")
            fixed = nfc
        cells = cells.copy()
        cells[present] = fixed.to_numpy(dtype=object)
        out.append(cells)
    return out


def _drop_blank_rows(columns: list[np.ndarray], numbers: np.ndarray
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Remove rows with every cell missing, keeping the others' spreadsheet row numbers."""
    if not columns or not len(numbers):
        return columns, numbers
    blank = np.ones(len(numbers), dtype=bool)
    for cells in columns:
        blank &= pd.isna(cells)
    if not blank.any():
        return columns, numbers
    keep = ~blank
    return [c[keep] for c in columns], numbers[keep]


def _unneutralize(columns: list[np.ndarray]) -> list[np.ndarray]:
    """Remove the "'" the run folder's writer puts before text starting like a formula."""
    out = []
    for cells in columns:
        series = pd.Series(cells, dtype=object)
        mask = series.str.match(_NEUTRALIZED).fillna(False).to_numpy(dtype=bool)
        if mask.any():
            cells = cells.copy()
            cells[mask] = series[mask].str.slice(1).to_numpy(dtype=object)
        out.append(cells)
    return out


def _size(nbytes: int) -> str:
    mb = nbytes / 1024 / 1024
    return f"{nbytes:,} bytes" if mb < 1 else f"{mb:,.0f} MB"


def _check_file(path: Path, source: str, name: str, max_file_mb: float) -> os.stat_result:
    """Only a regular file below the size cap is opened (a FIFO would block, /dev/zero never
    ends); os.stat follows symlinks, so a link to either is refused too."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError([Problem(source, f"file not found (table '{name}')")]) from None
    except OSError as exc:
        raise InputError([Problem(source, f"cannot be read: {exc.strerror}")]) from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else
                "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise InputError([Problem(
            source, f"is {kind}; table '{name}' must be a regular file (.csv, .parquet or "
            ".xlsx)")])
    if info.st_size > max_file_mb * 1024 * 1024:
        raise InputError([Problem(
            source, f"is {_size(info.st_size)}, above the {max_file_mb:g} MB "
            "cap on input files; raise it with [input] max_file_mb (or --set "
            "input.max_file_mb=...)")])
    return info


def read_table(
    name: str, spec: str | dict[str, str], base_dir: Path, origin: str = "scenario",
    max_file_mb: float | None = None,
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
        return _read_sql(name, spec, base_dir)
    if "path" not in spec:
        raise InputError(f"tables.{name}: give a path, or a url and a query", origin)
    path = Path(spec["path"])
    if not path.is_absolute():
        path = base_dir / path
    source = str(path)
    if path.is_dir() and not path.is_symlink():  # Parquet partitioned by region, read whole
        return _read_folder(name, path, max_file_mb)
    _check_file(path, source, name, DEFAULT_MAX_FILE_MB if max_file_mb is None else max_file_mb)
    suffix = path.suffix.lower()
    notes: list[str] = []
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            raw_names, columns, numbers, header_row, decimal_comma = _read_csv(
                path, source, notes)
        elif suffix == ".parquet":
            raw_names, columns = _read_parquet(path)
            length = len(columns[0]) if columns else 0
            numbers = np.arange(length, dtype=np.int64) + HEADER_ROWS + 1
            header_row, decimal_comma = HEADER_ROWS, False
        elif suffix in (".xlsx", ".xlsm", ".xls"):
            raw_names, columns, numbers, header_row, source = _read_excel(
                path, source, spec.get("sheet"), notes)
            decimal_comma = False
        else:
            raise InputError(
                [Problem(source, f"unsupported file type '{suffix}'; use .csv, .parquet or .xlsx")]
            )
    except InputError:
        raise
    except MemoryError:
        raise InputError([Problem(source, "too large to read in this machine's memory")]
                         ) from None
    except Exception as exc:  # a malformed file of any format: say which and why
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError([Problem(source, f"could not be read: {detail}")]) from None
    names, columns, written = _named_headers(raw_names, columns, source, header_row, notes)
    columns, numbers = _drop_blank_rows(columns, numbers)
    columns = _normalize_text(names, columns, numbers, source, notes)
    frame = pd.DataFrame(dict(zip(range(len(names)), columns, strict=True)),
                         index=range(len(numbers)), dtype=object)
    frame.columns = names
    first = int(numbers[0]) if len(numbers) else (header_row or 0) + 1
    contiguous = not len(numbers) or bool(numbers[-1] - numbers[0] == len(numbers) - 1)
    return LoadedTable(name, frame, source, _digest(frame), first,
                       row_numbers=None if contiguous else numbers.astype(np.int64),
                       header_row=header_row, headers=written, notes=notes,
                       decimal_comma=decimal_comma)


def _read_folder(name: str, folder: Path, max_file_mb: float | None) -> LoadedTable:
    """A folder of Parquet parts (allocator/tables/partitioned.py) as one table: each part read
    as a file (same rules), its `key=value` folders added as columns, in path order. Row
    numbers run on across the parts; `locate` turns them back into a part and its row."""
    from allocator.tables.partitioned import parts, stray_files

    stray = stray_files(folder)
    if stray:
        raise InputError([Problem(str(path), f"is in the folder of table '{name}' but is not "
                                             "a .parquet file; move it out (a folder table "
                                             "reads only Parquet parts)") for path in stray])
    found = parts(folder)
    if not found:
        raise InputError([Problem(str(folder), f"is a folder without .parquet files; table "
                                               f"'{name}' must be a regular file (.csv, "
                                               ".parquet or .xlsx) or a folder of Parquet "
                                               "parts")])
    frames, starts, sources, numbers, notes = [], [], [], [], []
    position = 0
    for part in found:
        table = read_table(name, {"path": str(part.path)}, folder, max_file_mb=max_file_mb)
        frame = table.frame
        for key, value in part.values.items():
            if key not in frame.columns:
                frame = frame.assign(**{key: value})
        frames.append(frame)
        starts.append(position)
        sources.append(table.source)
        numbers.append(table.row_of(np.arange(len(frame))))
        notes.extend(table.notes)
        position += len(frame)
    frame = pd.concat(frames, ignore_index=True).astype(object)
    placed = tuple(zip(sources, starts, strict=True))
    return LoadedTable(name, frame, str(folder), _digest(frame), HEADER_ROWS + 1, notes=notes,
                       parts=placed, part_rows=np.concatenate(numbers).astype(np.int64))


def locate(problems: list[Problem], tables: dict[str, LoadedTable]) -> list[Problem]:
    """Problems on a folder table's rows named by the part file and its own row number."""
    folders = {t.source: t for t in tables.values() if t.parts}
    if not folders:
        return problems
    out = []
    for problem in problems:
        table = folders.get(problem.source)
        if table is None or problem.row is None or table.part_rows is None:
            out.append(problem)
            continue
        pos = problem.row - table.first_row
        k = int(np.searchsorted([s for _, s in table.parts], pos, side="right")) - 1
        out.append(dataclasses.replace(problem, source=table.parts[k][0],
                                       row=int(table.part_rows[pos])))
    return out


# --- CSV ------------------------------------------------------------------------------------


def _decode(raw: bytes, source: str, notes: list[str]) -> str | None:
    """The text of a CSV file: UTF-8 (with or without BOM) or UTF-16 with a BOM (Excel's
    "Unicode text"). Returns None for UTF-8 (pandas decodes it faster from the bytes)."""
    for magic, what in ((b"PK\x03\x04", "an Excel workbook (or another zip archive)"),
                        (b"\xd0\xcf\x11\xe0", "an old-format Excel .xls workbook"),
                        (b"PAR1", "a Parquet file")):
        if raw.startswith(magic):
            raise InputError([Problem(source, f"is {what}, not CSV text: give it the right "
                                              "suffix (.xlsx, .parquet), or export it as CSV "
                                              "UTF-8")])
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError([Problem(source, f"not valid UTF-16 text ({exc.reason}); save "
                                              "it as CSV UTF-8")]) from None
        notes.append(f"{source}: read as UTF-16 text (Excel's \"Unicode text\")")
        return text.lstrip("\ufeff")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start:exc.start + 1].hex()
        hint = ""
        if raw[:4].count(b"\x00") >= 1:
            hint = " (it looks like UTF-16 without a byte-order mark)"
        elif raw[exc.start] >= 0x80:
            hint = " (it looks like Windows-1252/Latin-1, Excel's plain \"CSV\")"
        raise InputError([Problem(
            source, f"not UTF-8 text (byte {exc.start}, 0x{byte}){hint}; save it as "
            "\"CSV UTF-8\"", line)]) from None
    return None


def _delimiter(first_line: str, source: str) -> str:
    """',' unless the header line says otherwise: ';' (Excel in a French or German locale)
    or a tab (Excel's "Unicode text", .tsv), when it holds no comma."""
    found = [d for d in (",", ";", "\t") if d in first_line]
    if not found or found == [","]:
        return ","
    if "," not in found:
        return found[0]
    # Both ',' and another: ',' unless a column name would then hold the other one.
    names = next(csv.reader([first_line], delimiter=","), [])
    other = [d for d in found if d != ","]
    if any(d in n for n in names for d in other):
        shown = " and ".join(repr(d) for d in found)
        raise InputError([Problem(
            source, f"the header line holds both {shown}: cannot tell which one separates "
            "the columns; save the file with ',' between columns", 1)])
    return ","


def _read_csv(path: Path, source: str, notes: list[str]
              ) -> tuple[list[Any], list[np.ndarray], np.ndarray, int, bool]:
    raw = path.read_bytes()
    text = _decode(raw, source, notes)
    # One type from here on: UTF-16 text (rare) goes back to UTF-8 bytes, which pandas reads
    # fastest.
    body = raw if text is None else text.encode("utf-8")
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    # Leading blank lines: skipped, but counted in the row numbers (LF, CRLF or CR-only ends).
    stripped = body.lstrip(b"\r\n")
    lead = body[: len(body) - len(stripped)]
    skipped = lead.count(b"\n") or lead.count(b"\r")
    if not stripped.strip():
        raise InputError([Problem(source, "the file is empty (no header row)")])
    # The header line ends at the first line break of any kind (LF, CRLF, or an old Mac's CR).
    head = stripped[:65536].decode("utf-8", "ignore")
    first_line = re.split(r"[\r\n]", head, maxsplit=1)[0]
    hint = re.fullmatch(r"sep=(.)", first_line.strip(), re.IGNORECASE)
    if hint:  # Excel's delimiter line ("sep=;"): Excel hides it, and so do the row numbers
        delimiter = hint.group(1)
        brk = re.search(rb"\r\n|\n|\r", stripped)
        stripped = stripped[brk.end():] if brk else stripped[:0]
        if not stripped.strip():
            raise InputError([Problem(source, "the file is empty (no header row)")])
        why = f"as its first line 'sep={delimiter}' says"
    else:
        delimiter = _delimiter(first_line, source)
        why = ""
    if delimiter != ",":
        name = {";": "';'", "\t": "tab"}.get(delimiter, repr(delimiter))
        why = why or f"as its header line holds {name} and no ','"
        notes.append(f"{source}: read as {name}-separated, not ','-separated ({why})"
                     + ("; numbers may use ',' as decimal separator" if delimiter == ";"
                        else ""))
    buffer = io.BytesIO(stripped)
    try:
        frame = pd.read_csv(
            buffer, sep=delimiter, header=None, dtype=str, keep_default_na=False,
            na_values=[""], skip_blank_lines=False, encoding="utf-8", index_col=False,
        )
    except pd.errors.EmptyDataError:
        raise InputError([Problem(source, "the file is empty (no header row)")]) from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found:
            want, line, saw = map(int, found.groups())
            raise InputError([Problem(
                source, f"this row has {saw} cells and the header {want} (a stray "
                f"{'comma' if delimiter == ',' else 'delimiter'} or an unquoted cell holding "
                "one?)", line + skipped)]) from None
        raise
    header_row = skipped + 1
    raw_names = list(frame.iloc[0]) if len(frame) else []
    columns = [frame.iloc[1:, i].to_numpy(dtype=object) for i in range(frame.shape[1])]
    numbers = np.arange(len(frame) - 1, dtype=np.int64) + header_row + 1
    if _NEUTRALIZED_BYTES.search(stripped):
        columns = _unneutralize(columns)
    return raw_names, columns, numbers, header_row, delimiter == ";"


# --- Parquet ---------------------------------------------------------------------------------


def _read_parquet(path: Path) -> tuple[list[Any], list[np.ndarray]]:
    """Each column cast to text by Arrow (vectorized): integers read "7" even where the
    column has nulls (pandas would make them floats, "7.0"), floats their shortest form."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_boolean(column.type):
            text = pc.if_else(column, "true", "false")
        else:
            try:
                text = pc.cast(column, pa.string())
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                values = column.to_pylist()
                text = pa.array([None if v is None else str(v) for v in values], pa.string())
        cells = text.to_numpy(zero_copy_only=False).astype(object)
        cells[pd.isna(cells)] = np.nan
        columns.append(cells)
    return list(table.column_names), columns


# --- Excel -----------------------------------------------------------------------------------


def _excel_text(value: Any, number_format: str | None) -> Any:
    """A cell as the text a CSV export would hold; None stays missing."""
    if value is None:
        return np.nan
    if isinstance(value, str):
        return value if value != "" else np.nan
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return repr(value)
        if isinstance(value, float) and abs(value) >= 2**53:
            return repr(value)
        number = str(int(value))
        # A number formatted "000" shows 007 in Excel: read it as shown.
        if number_format and re.fullmatch(r"0+", number_format) and value >= 0:
            number = number.zfill(len(number_format))
        return number
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_formulas(path: Path) -> bool:
    """Whether any worksheet of the workbook holds a formula (a cheap scan of its XML)."""
    import zipfile

    with zipfile.ZipFile(path) as book:
        for info in book.infolist():
            if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                with book.open(info) as part:
                    tail = b""
                    while chunk := part.read(1 << 20):
                        if re.search(rb"<(?:\w+:)?f[ >]", tail + chunk):
                            return True
                        tail = chunk[-8:]
    return False


@dataclass(frozen=True)
class _SheetLayout:
    """What openpyxl's read-only mode does not give: merged ranges (1-based row, column of
    the top-left and bottom-right cells), hidden rows and hidden columns (1-based)."""

    merged: tuple[tuple[int, int, int, int], ...] = ()
    hidden_rows: tuple[int, ...] = ()
    hidden_columns: tuple[int, ...] = ()


_XML_ROW = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_XML_COL = re.compile(rb"<(?:\w+:)?col\b([^>]*)>")
_XML_MERGE = re.compile(rb"<(?:\w+:)?mergeCell\b[^>]*?\sref=\"([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?\"")
_XML_HIDDEN = re.compile(rb"\shidden=\"(?:1|true)\"")
_XML_ATTR = re.compile(rb"\s(r|min|max)=\"(\d+)\"")


def _column_number(letters: bytes) -> int:
    number = 0
    for c in letters:
        number = number * 26 + (c - 64)
    return number


def _sheet_layout(path: Path, member: str | None) -> _SheetLayout:
    """Merged ranges, hidden rows and hidden columns of one worksheet, from its XML in
    chunks (a regex per chunk: a big sheet costs a scan, not a parse)."""
    import zipfile

    if not member:
        return _SheetLayout()
    merged: list[tuple[int, int, int, int]] = []
    rows: list[int] = []
    columns: list[int] = []
    try:
        with zipfile.ZipFile(path) as book, book.open(member.lstrip("/")) as part:
            tail = b""
            while True:
                chunk = part.read(1 << 20)
                buffer = tail + chunk
                cut = len(buffer) if not chunk else buffer.rfind(b">") + 1
                done, tail = buffer[:cut], buffer[cut:]
                if b"hidden" in done:
                    for attrs in _XML_ROW.findall(done):
                        if _XML_HIDDEN.search(attrs):
                            found = dict(_XML_ATTR.findall(attrs))
                            if b"r" in found:
                                rows.append(int(found[b"r"]))
                    for attrs in _XML_COL.findall(done):
                        if _XML_HIDDEN.search(attrs):
                            found = dict(_XML_ATTR.findall(attrs))
                            if b"min" in found:
                                low = int(found[b"min"])
                                high = min(int(found.get(b"max", found[b"min"])), low + 16384)
                                columns.extend(range(low, high + 1))
                for a, r0, b, r1 in _XML_MERGE.findall(done):
                    merged.append((int(r0), _column_number(a), int(r1 or r0),
                                   _column_number(b or a)))
                if not chunk:
                    break
    except (KeyError, OSError, zipfile.BadZipFile):
        return _SheetLayout()
    return _SheetLayout(tuple(sorted(merged)), tuple(rows), tuple(sorted(set(columns))))


def _fill_merged(kept: list[tuple[int, list[Any]]], merged: tuple[tuple[int, int, int, int], ...]
                 ) -> tuple[list[tuple[int, list[Any]]], str]:
    """A merged data cell's value in every cell of its range, as Excel shows it (Excel keeps
    it in the top-left cell only: B2:B3 merged leaves B3 empty, and a default would apply).
    Ranges in or above the header row are left alone (a merged header names its first
    column). Returns the rows, rows left empty dropped, and a note naming the ranges."""
    if not merged:
        return kept, ""
    header = next((n for n, line in kept if line), None)
    if header is None:
        return [], ""
    lines = dict(kept)
    used = []
    for r0, c0, r1, c1 in merged:
        if r0 <= header or r0 not in lines:
            continue
        top = lines[r0]
        value = top[c0 - 1] if c0 - 1 < len(top) else np.nan
        if not isinstance(value, str):
            continue  # an empty merged cell stays empty
        for r in range(r0, r1 + 1):
            line = lines.get(r)
            if line is None or (r > r0 and not any(isinstance(v, str) for v in line)):
                continue  # a row with nothing else in it stays a blank row
            if len(line) < c1:
                line.extend([np.nan] * (c1 - len(line)))
            for c in range(c0, c1 + 1):
                if not isinstance(line[c - 1], str):
                    line[c - 1] = value
        used.append(f"{_letter(c0 - 1)}{r0}:{_letter(c1 - 1)}{r1}")
    kept = [(n, line) for n, line in kept if line]
    if not used:
        return kept, ""
    shown = ", ".join(used[:5]) + (f", ... ({len(used)} in all)" if len(used) > 5 else "")
    return kept, (f"merged cell(s) {shown}: each value read into every cell of its range, as "
                  "Excel shows it")


def _read_excel(path: Path, source: str, sheet: str | None, notes: list[str]
                ) -> tuple[list[Any], list[np.ndarray], np.ndarray, int, str]:
    """Read one sheet with openpyxl: every cell as the text it shows, no missing-value
    guessing (NA, #N/A, NULL are text), formulas by their saved value, and a formula that
    has none refused with its cell."""
    import zipfile

    import openpyxl

    if path.suffix.lower() == ".xls" or not zipfile.is_zipfile(path):
        what = ("an old-format .xls workbook" if path.read_bytes()[:4] == b"\xd0\xcf\x11\xe0"
                else "empty" if path.stat().st_size == 0 else "not a zip archive")
        raise InputError([Problem(
            source, f"not a valid Excel workbook (.xlsx): {what}; open it in Excel and save "
            "it as .xlsx, or export the sheet as CSV UTF-8")])
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError([Problem(source, f"not a valid Excel workbook (.xlsx): {detail}")]
                         ) from None
    try:
        if sheet is not None:
            if sheet not in book.sheetnames:  # as headers: case and spaces do not matter
                same = [n for n in book.sheetnames
                        if n.strip().casefold() == str(sheet).strip().casefold()]
                if len(same) != 1:
                    listed = ", ".join(repr(n) for n in book.sheetnames)
                    why = (f"{len(same)} sheets match it when case and spaces are ignored"
                           if same else "not found")
                    raise InputError([Problem(
                        source, f"sheet {sheet!r} {why}; the workbook's sheets: {listed}")])
                sheet = same[0]
            ws = book[sheet]
            source = f"{source} [sheet {sheet}]"
        else:
            visible = [w for w in book.worksheets if w.sheet_state == "visible"]
            if not visible:
                raise InputError([Problem(source, "the workbook has no visible sheet")])
            ws = visible[0]
            hidden = [w.title for w in book.worksheets[: book.worksheets.index(ws)]]
            if hidden:
                notes.append(f"{source}: hidden sheet(s) {', '.join(hidden)} skipped; read "
                             f"the first visible sheet, {ws.title!r} (name one with sheet = ...)")
        layout = _sheet_layout(path, getattr(ws, "_worksheet_path", None))
        # The rows a merged range covers: kept even if they look empty (filled below).
        merged_rows = {r for r0, _, r1, _ in layout.merged for r in range(r0 + 1, r1 + 1)}
        # The sheet's recorded size is not trusted: one formatted cell at XFD1048576 would
        # make every row 16,384 cells wide and every empty row between real ones. Rows are
        # read as stored, empty ones skipped, trailing empty cells cut.
        ws.reset_dimensions()
        kept: list[tuple[int, list[Any]]] = []
        for number, cells in enumerate(ws.iter_rows(), start=1):
            # Error values (#N/A, #DIV/0!) read as their text, as a CSV export writes them:
            # a number column then says "expected a number (found '#DIV/0!')".
            line = [_excel_text(getattr(cell, "value", None),
                                getattr(cell, "number_format", None)) for cell in cells]
            while line and not isinstance(line[-1], str):  # NaN: an empty cell
                line.pop()
            row = (getattr(cells[0], "row", None) if cells else None) or number
            if line or row in merged_rows:  # a row covered by a merged cell may look empty
                kept.append((row, line))
    finally:
        book.close()
    kept, merged_note = _fill_merged(kept, layout.merged)
    if not kept:
        raise InputError([Problem(source, "the sheet is empty (no header row)")])
    header_row, names = kept[0]
    data = kept[1:]
    if merged_note:
        notes.append(f"{source}: {merged_note}")
    hidden_rows = np.array(sorted(set(layout.hidden_rows) & {n for n, _ in data}),
                           dtype=np.int64)
    if len(hidden_rows):
        notes.append(f"{source}: {rows_text(hidden_rows)} hidden in Excel (by hand or by a "
                     "filter): read as data all the same (a filter does not remove rows); "
                     "delete such rows from the sheet if they are not meant")
    width = max(len(line) for _, line in kept)
    hidden_cols = [c for c in layout.hidden_columns if c <= width]
    if hidden_cols:
        notes.append(f"{source}: column(s) {', '.join(_letter(c - 1) for c in hidden_cols)} "
                     "hidden in Excel; read as data all the same")
    matrix = np.full((len(data), width), np.nan, dtype=object)
    for i, (_, line) in enumerate(data):
        matrix[i, : len(line)] = line
    names = names + [None] * (width - len(names))
    columns = [matrix[:, j].copy() for j in range(width)]
    numbers = np.array([n for n, _ in data], dtype=np.int64)
    col_name = {j: ("" if names[j] is None or (isinstance(names[j], float) and np.isnan(names[j]))
                    else str(names[j]).strip()) or _letter(j) for j in range(width)}
    problems = []
    if _sheet_formulas(path):
        problems += _unsaved_formulas(path, ws.title, source, header_row, col_name)
    if problems:
        raise InputError(problems)
    return names, _unneutralize(columns), numbers, header_row, source


def _unsaved_formulas(path: Path, title: str, source: str, header_row: int,
                      col_name: dict[int, str]) -> list[Problem]:
    """Formula cells without a saved value (written by a program, never opened in Excel):
    their value is unknown, and reading them as empty would change the plan."""
    import openpyxl

    values = openpyxl.load_workbook(path, read_only=True, data_only=True)
    formulas = openpyxl.load_workbook(path, read_only=True, data_only=False)
    problems = []
    try:
        values[title].reset_dimensions()
        formulas[title].reset_dimensions()
        for shown, written in zip(values[title].iter_rows(), formulas[title].iter_rows(),
                                  strict=False):
            for a, b in zip(shown, written, strict=False):
                formula = getattr(b, "value", None)
                is_formula = getattr(b, "data_type", None) == "f" or (
                    isinstance(formula, str) and formula.startswith("=")
                ) or type(formula).__name__ in ("ArrayFormula", "DataTableFormula")
                # A formula whose saved value is the empty string ("str", as Excel writes
                # =IF(...,"")) has a value: an empty cell, as a CSV export holds it.
                if is_formula and getattr(a, "value", None) is None and getattr(
                        a, "data_type", None) != "str":
                    text = formula if isinstance(formula, str) else getattr(formula, "text", "")
                    row = b.row
                    problems.append(Problem(
                        source, f"the formula cell {_letter(b.column - 1)}{row} ({text}) has "
                        "no saved value; open the workbook in Excel and save it, or paste "
                        "values", row, col_name.get(b.column - 1) if row != header_row
                        else None))
                    if len(problems) >= 50:
                        return problems
    finally:
        values.close()
        formulas.close()
    return problems


# --- SQL -------------------------------------------------------------------------------------


def _split_statements(query: str) -> list[str] | str:
    """The statements of `query` (split at ';' outside literals, quoted names and comments),
    with comments blanked; a message if a literal or comment is not closed."""
    statements, current, i, n = [], [], 0, len(query)
    while i < n:
        c = query[i]
        if query.startswith("--", i):
            j = query.find("\n", i)
            i = n if j < 0 else j
            current.append(" ")
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            if j < 0:
                return "a /* comment is not closed"
            i = j + 2
            current.append(" ")
        elif c in "'\"`[":
            close = "]" if c == "[" else c
            j = i + 1
            while True:
                k = query.find(close, j)
                if k < 0:
                    return f"a quote {c} is not closed"
                if query.startswith(close * 2, k) and close != "]":
                    j = k + 2
                    continue
                break
            current.append(query[i:k + 1])
            i = k + 1
        elif c == "$" and (tag := re.match(r"\$(?:[A-Za-z_]\w*)?\$", query[i:])):
            k = query.find(tag.group(0), i + len(tag.group(0)))
            if k < 0:
                return f"a {tag.group(0)} quote is not closed"
            current.append(query[i:k + len(tag.group(0))])
            i = k + len(tag.group(0))
        elif c == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def check_select(query: str) -> str | None:
    """Why `query` may not be run, or None: only one SELECT (or WITH ... SELECT) statement."""
    statements = _split_statements(query)
    if isinstance(statements, str):
        return f"the query cannot be parsed: {statements}"
    if not statements:
        return "the query is empty"
    if len(statements) > 1:
        return (f"the query holds {len(statements)} statements (separated by ';'); give a "
                "single SELECT")
    word = re.match(r"[\s(]*([A-Za-z]+)", statements[0])
    first = word.group(1).upper() if word else statements[0][:20]
    if first not in ("SELECT", "WITH"):
        return (f"only a SELECT (or WITH ... SELECT) query is run on a data source; this one "
                f"starts with {first!r}")
    return None


_USERINFO = re.compile(r"^([^:/@]*):(.*)@([\w.\-\[\]:%,]*)((?:[/?#].*)?)$", re.DOTALL)


def _split_credentials(url: str) -> tuple[str, str | None]:
    """The URL with its password percent-encoded (a raw '@', '/' or '?' in it would
    otherwise move the host), and the password as written: the password runs to the LAST
    '@' that a host name (and a path or query, or nothing) follows."""
    from urllib.parse import quote, unquote

    scheme, sep, rest = url.partition("://")
    if not sep or rest.startswith("/"):
        return url, None
    found = _USERINFO.match(rest)
    if not found:
        return url, None
    user, password, host, tail = found.groups()
    return f"{scheme}://{user}:{quote(unquote(password), safe='')}@{host}{tail}", password


def _read_sql(name: str, spec: dict[str, str], base_dir: Path) -> LoadedTable:
    # SQLAlchemy is imported here: most runs read files and need not pay for it.
    import sqlalchemy

    url, query = spec["url"], spec.get("query")
    fixed, secret = _split_credentials(url)
    try:
        parsed = sqlalchemy.engine.make_url(fixed)
        shown = parsed.render_as_string(hide_password=True)
    except Exception as exc:
        source = f"table '{name}' ({_hide_password(url, secret)})"
        detail = _hide_password(str(exc).splitlines()[0], secret)
        raise InputError([Problem(source, f"not a database URL: {detail}")]) from None
    source = f"table '{name}' ({shown})"
    if not query:
        raise InputError([Problem(source, "a SQL source needs a query")])
    refused = check_select(query)
    if refused:
        raise InputError([Problem(source, f"{refused}; nothing was run")])
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        if parsed.username or parsed.password:
            raise InputError([Problem(source, "SQLite takes no user or password in its URL")])
        database = parsed.database or ""
        if database not in ("", ":memory:"):
            import sqlite3
            from urllib.parse import quote

            file = Path(database[5:] if database.startswith("file:") else database)
            if not file.is_absolute():
                file = base_dir / file  # relative to the scenario file (data contract)
            if not file.exists():
                # SQLite would silently create an empty database, and the query then fails
                # with "no such table"; say what is really wrong, leave no stray file behind.
                raise InputError([Problem(source, f"database file not found: {file}")])
            if not file.is_file():
                raise InputError([Problem(source, f"{file} is not a regular file")])
            target = f"file:{quote(str(file))}?mode=ro"
            kwargs["creator"] = lambda: sqlite3.connect(target, uri=True)
            parsed = sqlalchemy.engine.make_url("sqlite://")
    elif backend == "postgresql":
        driver = parsed.get_driver_name()
        if driver == "psycopg2" and "+" not in parsed.drivername:
            try:  # a bare postgresql:// works with whichever psycopg is installed
                import psycopg2  # noqa: F401
            except ImportError:
                parsed = parsed.set(drivername="postgresql+psycopg")
                driver = "psycopg"
        if driver in ("psycopg", "psycopg2"):
            kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    try:
        engine = sqlalchemy.create_engine(parsed, **kwargs)
        try:
            with engine.connect() as conn:
                try:
                    if backend == "sqlite":
                        conn.exec_driver_sql("PRAGMA query_only = ON")
                    elif backend == "postgresql":
                        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    frame = pd.read_sql_query(sqlalchemy.text(query), conn,
                                              dtype_backend="numpy_nullable")
                finally:
                    conn.rollback()  # whatever the query did, nothing is kept
        finally:
            engine.dispose()
    except Exception as exc:
        detail = _hide_password(str(exc).strip().splitlines()[0] if str(exc).strip()
                                else type(exc).__name__, secret)
        raise InputError([Problem(source, f"query failed: {detail}")]) from None
    notes: list[str] = []
    raw_names = list(frame.columns)
    frame = _as_text(frame)
    columns = [frame.iloc[:, i].to_numpy(dtype=object) for i in range(frame.shape[1])]
    names, columns, written = _named_headers(raw_names, columns, f"{source} query", None, notes)
    columns = _normalize_text(names, columns, np.arange(len(frame), dtype=np.int64) + 1,
                              f"{source} query", notes)
    frame = pd.DataFrame(dict(zip(range(len(names)), columns, strict=True)),
                         index=range(len(frame)), dtype=object)
    frame.columns = names
    # A result set has no header row: its first record is row 1.
    return LoadedTable(name, frame, f"{source} query", _digest(frame), 1, header_row=None,
                       headers=written, notes=notes)
