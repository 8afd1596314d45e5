"""What the formulations share: reading their tables against their schemas in one pass,
yes/no columns, and outputs sorted by id.

The four models differ in their schemas and their cross-table checks; one loop reads all
their tables and collects every problem of every table before anything is raised
(data-contract.md: all errors at once), and each model adds its own checks to the same list.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.errors import InputError, Problem
from allocator.scenario import Scenario
from allocator.tables.readers import LoadedTable, locate, read_table
from allocator.tables.schema import Schema, _report, validate

# Spellings accepted in a yes/no column (case-insensitive); the schema lists them as choices.
BOOL_TEXT: dict[str, bool] = {"true": True, "yes": True, "1": True, "y": True,
                              "false": False, "no": False, "0": False, "n": False}
BOOL_CHOICES = tuple(BOOL_TEXT)


@dataclass
class TableSet:
    """The tables of one scenario as read and typed, with every problem found so far."""

    loaded: dict[str, LoadedTable] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def report(self, table: str, mask: np.ndarray, column: str, what: str,
               values: pd.Series | None = None) -> None:
        """Record a problem on the rows of `table` where `mask` holds (spreadsheet rows)."""
        _report(self.problems, self.loaded[table], np.asarray(mask, dtype=bool), column, what,
                values)

    def raw(self, table: str, column: str) -> pd.Series | None:
        """A column as the file wrote it, to quote in messages ('1e3', not 1000.0)."""
        frame = self.loaded[table].frame
        return frame[column] if column in frame.columns else None

    @property
    def notes(self) -> list[str]:
        """What reading and validation noticed without refusing (delimiter, decimal commas,
        ids unique only by case), to show with the model's warnings."""
        return [note for table in self.loaded.values() for note in table.notes]

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputError(self.problems)


def _lower_columns(table: LoadedTable, columns: tuple[str, ...]) -> LoadedTable:
    """Yes/no cells compared case-insensitively: `TRUE` from Excel is as good as `true`."""
    present = [c for c in columns if c in table.frame.columns]
    if not present:
        return table
    frame = table.frame.copy()
    for col in present:
        text = frame[col].astype(object)
        frame[col] = text.where(text.isna(), text.astype(str).str.strip().str.lower())
    return dataclasses.replace(table, frame=frame)


def read_tables(
    scenario: Scenario, schemas: dict[str, Schema], required: tuple[str, ...],
    lower_columns: tuple[str, ...] = (), keep_text: bool = True,
) -> TableSet:
    """Read and validate every table the scenario names; raise only if one is unusable.

    Bad cells do not stop here, so that the caller's cross-table checks (references,
    scopes) add their problems to the same report; an unreadable table, a table with no
    rows or one lacking a required column does stop, as checks against it would be noise.
    `keep_text=False` drops each table's text frame once typed (`TableSet.raw` then has
    nothing to quote): for a model whose messages quote the typed values, and whose tables
    are large.
    """
    found = TableSet()
    for name in sorted(set(scenario.tables) - set(schemas)):
        close = difflib.get_close_matches(name, list(schemas), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        found.problems.append(Problem(
            scenario.source, f"unknown table 'tables.{name}' for the {scenario.model} model"
            f"{hint} (tables here: {', '.join(schemas)})"))
    for name in required:
        if name not in scenario.tables:
            found.problems.append(
                Problem(scenario.source, f"the {scenario.model} model needs a '{name}' table"))
    for name, spec in scenario.tables.items():
        if name not in schemas:
            continue
        try:
            table = read_table(name, spec, scenario.base_dir, origin=scenario.source,
                               max_file_mb=scenario.input.max_file_mb)
        except InputError as exc:
            found.problems.extend(exc.problems)
            continue
        table = _lower_columns(table, lower_columns)
        frame, problems = validate(table, schemas[name])
        found.loaded[name] = table if keep_text else table.without_frame()
        found.problems.extend(problems)
        found.frames[name] = frame
    found.problems = locate(found.problems, found.loaded)  # a folder's rows by part file
    broken = [n for n, f in found.frames.items()
              if (len(f) == 0 and not schemas[n].allow_empty)
              or any(c.required and c.name not in f.columns for c in schemas[n].columns)]
    if broken or any(n not in found.frames for n in required):
        raise InputError(found.problems)
    return found


def as_bool(values: pd.Series) -> np.ndarray:
    """A validated yes/no column as booleans (cells already checked against BOOL_CHOICES)."""
    return values.map(BOOL_TEXT).fillna(False).to_numpy(dtype=bool)


def cat(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    """Labels as codes into the ids: a million-row block costs an integer array."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=categories)


def sort_ids(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sort by the ids as text, so plans diff cleanly from one run to the next."""
    if frame.empty:
        return frame.reset_index(drop=True)
    order = frame[keys].astype(str).sort_values(keys, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def explicit_sense(scenario: Scenario, model: str, natural: str) -> None:
    """Refuse `[objective] sense` against a model's only meaningful direction.

    Only an explicit setting is refused (pydantic records which fields the file set), so a
    scenario that says nothing gets the model's natural sense.
    """
    objective = scenario.objective
    if "sense" in objective.model_fields_set and objective.sense != natural:
        raise InputError(
            f"objective.sense = '{objective.sense}': the {model} model can only "
            f"{'maximize' if natural == 'max' else 'minimize'} its objective; remove the key",
            scenario.source)
