"""Declarative column schemas, checked vectorized, collecting every failure with its row.

We tried pandera first (lazy validation gives a failure table too), but on pandas 3 it stops
checking a column's range once a single cell fails to coerce, and its failure cases would
have to be re-mapped to spreadsheet rows anyway. These checks are a few vectorized pandas
expressions per column; the cost of owning them is small and the messages are ours.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.errors import Problem
from allocator.tables.readers import INVISIBLE, LoadedTable, rows_text

MAX_PROBLEMS_PER_CHECK = 50
# Any input number at or past this is refused where it is read (file, row, column): HiGHS
# refuses matrix entries from 1e15 on (large_matrix_value) and the other backends index past
# such rows; the model-level check (core/checks.py) stays behind it for derived values.
LARGEST_INPUT = 1e15
# An extra column this close to a schema column (difflib ratio) is taken for a misspelling.
CLOSE_HEADER = 0.85
# A number with a decimal comma (';'-delimited files): 1,5  -2,25  3  1,5e3
_COMMA_NUMBER = r"^\s*[+-]?\d+(?:,\d+)?(?:[eE][+-]?\d+)?\s*$"
_POINT_DECIMAL = r"^\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*$"
# '.' grouping thousands, as German and other locales write them: 1.500  12.345.678  1.500,25
_GROUPED = r"^\s*[+-]?[1-9]\d{0,2}(?:\.\d{3})+(?:,\d+)?\s*$"
# Digits grouped by a space or an apostrophe: 1 500, 1'500 (French, Swiss exports)
_SPACE_GROUPED = r"^\s*[+-]?\d{1,3}(?:[ '\u2019]\d{3})+(?:[.,]\d+)?\s*$"
# Other names of the models' columns, for a Col that lists no aliases of its own (the ops
# schemas are declared in formulations/ops_data.py). Each names one column only: a name
# that could mean two columns is no alias.
COMMON_ALIASES: dict[str, tuple[str, ...]] = {
    "capacity_fte": ("capacity", "max_fte", "cap_fte"),
    "min_fte": ("minimum_fte",),
    "travel_cost": ("travel",),
}
# Optional columns whose blank cells are meant to take the default, for a Col that does not
# say: a required task's unassigned_penalty is never used, so most tasks leave it blank.
BLANK_MEANS_DEFAULT = frozenset({"unassigned_penalty"})
# Short words of headers, read in full when comparing an unknown column with the contract.
_ABBREVIATIONS = {"min": "minimum", "max": "maximum", "cap": "capacity", "qty": "quantity",
                  "amt": "amount", "pct": "percent", "no": "number", "num": "number"}
# Words of a unit after a column's name ('Travel cost (EUR)'): the column, in some unit.
_UNITS = frozenset({"eur", "usd", "gbp", "chf", "k", "keur", "kusd", "€", "$", "£", "k€",
                    "fte", "hours", "h", "hrs", "km", "percent", "%", "year", "month", "week",
                    "day", "pa"})


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
    # Other names read as this column, with a note (COMMON_ALIASES when empty).
    aliases: tuple[str, ...] = ()
    # Blank cells in an otherwise filled column take the default without a note (None:
    # BLANK_MEANS_DEFAULT decides); else a note names them (a merged cell, a value not
    # copied down).
    blank_means_default: bool | None = None

    def other_names(self) -> tuple[str, ...]:
        return self.aliases or COMMON_ALIASES.get(self.name, ())

    def blank_is_meant(self) -> bool:
        if self.blank_means_default is None:
            return self.name in BLANK_MEANS_DEFAULT
        return self.blank_means_default


@dataclass(frozen=True)
class Schema:
    table: str
    columns: tuple[Col, ...]
    unique: tuple[str, ...] = ()
    allow_empty: bool = False
    notes: dict[str, str] = field(default_factory=dict)


def _rows(table: LoadedTable, mask: np.ndarray) -> np.ndarray:
    return table.row_of(np.flatnonzero(mask))


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
    _aliases(table, schema, problems)
    frame = table.frame
    _misspelt_columns(table, schema, problems)
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
        if col.default is not None and not col.nullable and not col.blank_is_meant():
            _partly_blank(table, col, empty)
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
            if table.decimal_comma:
                text = _decimal_commas(table, text, empty, col.name, problems)
            numbers = pd.to_numeric(text.where(~empty, np.nan), errors="coerce").astype(float)
            is_nan_text = text.astype(str).str.strip().str.lower().isin(["nan"]).to_numpy() & ~empty
            not_number = numbers.isna().to_numpy() & ~empty & ~is_nan_text  # one message a cell
            comma = np.zeros(len(frame), dtype=bool)
            if not_number.any():  # '1,234', '1 234' or '1,5': say what a number looks like
                cells = text.astype(str)
                comma = not_number & (cells.str.contains(",", regex=False).to_numpy()
                                      | cells.str.match(_SPACE_GROUPED).to_numpy(dtype=bool))
            _report(problems, table, not_number & ~comma, col.name, "expected a number", raw)
            _report(problems, table, comma, col.name, "expected a number, with '.' for "
                    "decimals and no thousands separator", raw)
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
            huge = ok & (np.abs(finite) >= LARGEST_INPUT)
            _report(problems, table, huge, col.name,
                    f"a number of {LARGEST_INPUT:g} or more: no solver holds it (HiGHS refuses "
                    "such coefficients and would drop their rows); is it a pasted id or "
                    "account number? Use other units",
                    raw)
            out[col.name] = numbers
    clean = _check_ids(table, schema, out, problems)
    if schema.unique and all(c in frame.columns for c in schema.unique):
        key = out[list(schema.unique)]
        if clean:
            _case_only_ids(table, schema, key)
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


def _aliases(table: LoadedTable, schema: Schema, problems: list[Problem]) -> None:
    """A column under another common name ('capacity', 'max_fte' for 'capacity_fte') is read
    as the contract's column, with a note: ignoring it would drop every limit it holds. Where
    two columns could be the one (the contract's name and an alias, or two aliases), nothing
    is guessed: refused, naming both.

    The rename is made in the table itself, so later messages and notes use the contract's
    name, and the headers map it to the header as written."""
    frame = table.frame
    known = {c.name for c in schema.columns}
    renames: dict[str, str] = {}
    for col in schema.columns:
        found = [a for a in frame.columns if a in col.other_names() and a not in known]
        if not found:
            continue
        shown = " and ".join(repr(table.header(a)) for a in found)
        if col.name in frame.columns or len(found) > 1:
            both = f"{table.header(col.name)!r} and {shown}" if col.name in frame.columns \
                else shown
            problems.append(Problem(
                table.source, f"columns {both} could each be {col.name!r} (a common name for "
                "it): cannot tell which one holds it; keep one of them, or rename the other",
                table.header_row, table.header(found[-1])))
            continue
        renames[found[0]] = col.name
        note = (f"{table.source}: read column {table.header(found[0])!r} as {col.name!r} (a "
                "common name for it)")
        if note not in table.notes:
            table.notes.append(note)
    if renames:
        frame.rename(columns=renames, inplace=True)
        for alias, name in renames.items():
            table.headers[name] = table.headers.pop(alias, alias)


def _words(name: str) -> list[str]:
    return [_ABBREVIATIONS.get(word, word) for word in name.split("_") if word]


def _looks_like(extra: str, column: str) -> bool:
    """Whether an unknown column is probably `column` misspelt or shortened: close in
    spelling (difflib), the same words once abbreviations are read in full ('minimum_fte' for
    'min_fte'), the column followed by a unit ('travel_cost_eur'), or the column's first
    words ('travel' for 'travel_cost', the first at least 4 letters). 'comment', 'notes',
    'manager' look like no column of any model."""
    if difflib.SequenceMatcher(None, extra, column).ratio() >= CLOSE_HEADER:
        return True
    mine, theirs = _words(extra), _words(column)
    if not mine:
        return False
    if "_".join(mine) == "_".join(theirs) or difflib.SequenceMatcher(
            None, "_".join(mine), "_".join(theirs)).ratio() >= CLOSE_HEADER:
        return True
    if len(mine) > len(theirs) and mine[:len(theirs)] == theirs and all(
            word in _UNITS for word in mine[len(theirs):]):
        return True  # the column with a unit: 'travel_cost_eur'
    return len(mine) < len(theirs) and theirs[:len(mine)] == mine and len(mine[0]) >= 4


def _misspelt_columns(table: LoadedTable, schema: Schema, problems: list[Problem]) -> None:
    """An extra column like exactly one schema column that the file lacks (_looks_like) is
    taken for a misspelling: ignoring it would silently drop what it holds (every travel
    cost, say)."""
    known = [c.name for c in schema.columns]
    aliases = {a for c in schema.columns for a in c.other_names()}
    for extra in table.frame.columns:
        if extra in known or extra in aliases:  # an other name: _aliases has said it
            continue
        close = [name for name in known if _looks_like(str(extra), name)]
        if len(close) == 1 and close[0] not in table.frame.columns:
            header = table.header(extra)
            problems.append(Problem(
                table.source, f"unknown column {header!r}; did you mean {close[0]!r}? (a "
                "misspelt column would be ignored; rename it, or drop it if it is not meant "
                "to be used)", table.header_row, header))


def _partly_blank(table: LoadedTable, col: Col, empty: np.ndarray) -> None:
    """An optional column given in some rows and blank in others: the blank ones take the
    default, which is rarely what a half-filled column means (a merged cell, a value not
    copied down, a region left out puts the site in no region's budget). A note names them."""
    count = int(empty.sum())
    if count == 0 or count == len(empty):
        return
    rows = table.row_of(np.flatnonzero(empty)[:5])
    shown = rows_text(rows) if count <= 5 else \
        f"rows {', '.join(str(int(r)) for r in rows)}, ..."
    default = f"{col.default:g}" if isinstance(col.default, float) else str(col.default)
    note = (f"{table.source}: column '{col.name}' is empty in {count} of {len(empty)} rows "
            f"({shown}); they get the default {default!r}: fill them in if that is not "
            "meant (a merged cell, or a value not copied down?)")
    if note not in table.notes:
        table.notes.append(note)


def _decimal_commas(table: LoadedTable, text: pd.Series, empty: np.ndarray, column: str,
                    problems: list[Problem]) -> pd.Series:
    """A ';'-delimited file's numbers, column by column.

    '1,5' is 1.5 where the column is unambiguous (no cell uses '.' as decimal separator); a
    column mixing both is refused. A '.' before exactly three digits ('1.500') groups
    thousands where the column shows that it does (decimal commas elsewhere in it, or a cell
    such as '1.500,5' or '1.500.000'): read as 1500, with a note. Where nothing in the column
    tells ('1.500' beside whole numbers), the cell is refused rather than guessed; a column
    with decimal points such as '1.5' or '0.125' reads '.' as the decimal point."""
    cells = text.astype(str)
    has_comma = cells.str.contains(",", regex=False).to_numpy() & ~empty
    has_point = cells.str.contains(".", regex=False).to_numpy() & ~empty
    if not has_comma.any() and not has_point.any():
        return text
    comma = has_comma & ~has_point & cells.str.match(_COMMA_NUMBER).to_numpy(dtype=bool)
    grouped = np.zeros(len(cells), dtype=bool)
    point = np.zeros(len(cells), dtype=bool)
    if has_point.any():
        grouped = has_point & cells.str.match(_GROUPED).to_numpy(dtype=bool)
        point = has_point & ~grouped & cells.str.match(_POINT_DECIMAL).to_numpy(dtype=bool)
    surely = grouped & (has_comma | (cells.str.count(r"\.").to_numpy() > 1))
    commas = comma | surely
    if point.any() and commas.any():
        _report(problems, table, point, column, "this column mixes decimal commas (e.g. row "
                f"{int(table.row_of(np.flatnonzero(commas)[:1])[0])}) and decimal points; "
                "use one separator", text)
        return text
    if not commas.any():
        if grouped.any() and not point.any():
            _ambiguous_points(table, cells, grouped, column, problems)
        return text  # decimal points only ('1.5', '2.125'), as in any file
    fixed = cells.where(~grouped, cells.str.replace(".", "", regex=False))
    fixed = fixed.str.replace(",", ".", regex=False)
    for note in ([f"{table.source}: column '{column}' read with decimal commas (1,5 = 1.5), "
                  "as the file separates columns with ';'"] if (commas & has_comma).any()
                 else []) + ([f"{table.source}: column '{column}' read with '.' as thousands "
                              "separator (1.500 = 1500), as the column uses decimal commas"]
                             if grouped.any() else []):
        if note not in table.notes:
            table.notes.append(note)
    return text.where(~(comma | grouped), fixed)


def _ambiguous_points(table: LoadedTable, cells: pd.Series, grouped: np.ndarray,
                      column: str, problems: list[Problem]) -> None:
    """'1.500' in a ';' file whose column shows neither decimal commas nor decimal points:
    1500 in a German export, 1.5 in an English one. Refused, with both readings."""
    where = np.flatnonzero(grouped)
    rows = table.row_of(where[:MAX_PROBLEMS_PER_CHECK])
    for pos, row in zip(where, rows, strict=False):
        cell = str(cells.iloc[pos]).strip()
        whole = cell.replace(".", "")
        decimal = cell.replace(".", ",").rstrip("0").rstrip(",")
        problems.append(Problem(
            table.source, f"{cell}: thousands separator or decimal point? (a ';'-separated "
            f"file may use either) write {whole} or {decimal}", int(row), column))
    if len(where) > MAX_PROBLEMS_PER_CHECK:
        problems.append(Problem(
            table.source, f"thousands separator or decimal point?: "
            f"{len(where) - MAX_PROBLEMS_PER_CHECK} more rows", None, column))


def _check_ids(table: LoadedTable, schema: Schema, out: pd.DataFrame,
               problems: list[Problem]) -> bool:
    """Ids (key columns and *_id columns) holding invisible or control characters are
    refused: a zero-width space or a direction override makes two ids look the same, a
    line break breaks every table that shows them. False if any was found."""
    clean = True
    for col in schema.columns:
        name = col.name
        if col.kind != "str" or name not in out.columns or not (
                name in schema.unique or name.endswith("_id")):
            continue
        values = out[name]
        present = values.notna().to_numpy()
        cells = values.to_numpy(dtype=object)[present]
        joined = " ".join(map(str, cells))
        # One C scan (isprintable is False for every Cc/Cf/Zl/Zp character); the regex, and
        # then a check per cell, only where something is there.
        if joined.isprintable() or not INVISIBLE.search(joined):
            continue
        clean = False
        bad = np.zeros(len(values), dtype=bool)
        bad[np.flatnonzero(present)] = pd.Series(cells, dtype=object).astype(object).map(
            lambda v: INVISIBLE.search(str(v)) is not None).to_numpy(dtype=bool)
        # The raw cell, not the stripped one: a trailing tab is shown as it was.
        raw = table.frame[name] if name in table.frame.columns else values
        _report(problems, table, bad, name, "an id holding an invisible or control character "
                "(zero-width space, NUL, direction override, tab or line break); remove it",
                raw)
    return clean


def _case_only_ids(table: LoadedTable, schema: Schema, key: pd.DataFrame) -> None:
    """Keys unique only by case or Unicode form ('S1' and 's1', composed and decomposed 'é')
    are different ids, as the data contract says; a note names them, as they are rarely
    meant (both are read, and count as different people, sites or services)."""
    import unicodedata

    present = key.notna().all(axis=1).to_numpy()
    if present.sum() < 2:
        return
    parts = [key[c].to_numpy(dtype=object)[present] for c in key.columns]
    raw = parts[0] if len(parts) == 1 else pd.Series(parts[0], dtype=object).astype(str).str.cat(
        [pd.Series(p, dtype=object).astype(str) for p in parts[1:]], sep="\x00"
    ).to_numpy(dtype=object)
    joined = "\x01".join(map(str, raw))  # no id holds a control character (checked before)
    if joined.isascii():
        folded = joined.lower()
        if folded == joined:  # no upper case at all: nothing can differ by case only
            return
    else:
        folded = unicodedata.normalize("NFKC", joined).casefold()
    folded_keys = pd.Series(folded.split("\x01"), dtype=object)
    if len(folded_keys) != len(raw) or not folded_keys.duplicated().any():
        return
    pairs = pd.DataFrame({"f": folded_keys.to_numpy(), "r": raw,
                          "pos": np.flatnonzero(present)})
    pairs = pairs[pairs["f"].duplicated(keep=False)]
    variants = pairs.drop_duplicates(["f", "r"])
    clashing = variants["f"].duplicated(keep=False)
    if not clashing.any():
        return
    shown = variants[clashing].groupby("f", sort=False).head(2).head(2)
    label = "+".join(schema.unique)
    rows = table.row_of(shown["pos"].to_numpy())
    example = " and ".join(f"{r.replace(chr(0), '/')!r} (row {int(n)})"
                           for r, n in zip(shown["r"], rows, strict=True))
    groups = int(variants[clashing]["f"].nunique())
    note = (
        f"{table.source}: {groups} {label} value(s) differ from another only by case or "
        f"Unicode form, e.g. {example}; they are read as different {schema.table} (ids are "
        "case-sensitive)")
    if note not in table.notes:
        table.notes.append(note)


def check_reference(
    table: LoadedTable, frame: pd.DataFrame, column: str, valid: pd.Index, target: str,
    problems: list[Problem],
) -> None:
    """Every value of `column` must be one of `valid` (ids of table `target`)."""
    if column not in frame.columns:
        return
    values = frame[column]
    bad = (~values.isin(valid) & values.notna()).to_numpy()
    if bad.any():  # 'orléans' for 'Orléans', or a decomposed 'é': say why they differ
        folded = {_fold(v): v for v in valid.astype(str)}
        near = bad.copy()
        near[bad] = [_fold(str(v)) in folded for v in values[bad]]
        _report(problems, table, near, column, f"not a {target} id; a {target} id differs "
                "from it only by case or Unicode form (ids are case-sensitive)", values)
        bad = bad & ~near
    _report(problems, table, bad, column, f"not a {target} id", values)


def _fold(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", text).casefold()
