"""Warm start from an earlier run: its LP basis and plan, mapped by business labels.

People come and go between nights, so positions mean nothing from one night's model to the
next: every column and row is named by its block and its labels (`x|S0042/Leeds/picking`,
`availability|S0042`, `hold|service` for the row that holds a stage's optimum), and a run
folder keeps, in `basis.parquet`, the name of each column and row, the simplex status it had
at the end of each stage, and each column's value in the plan. Tomorrow's run looks its own
names up in that file: matched columns and rows take their old status, new columns start
nonbasic at a bound (a new person works nowhere yet), new rows basic (their slack), and
HiGHS repairs the basis if the count of basic variables is off (an "alien" basis: it
factorizes what it can and completes the rest with slacks).

The warm start changes where the solver starts, never what it proves: the same model is
solved to the same optimality tolerances, so the objectives are those of a cold run. Where
the optimum is not unique, a warm run may end at another optimal plan (a different vertex
of the same optimal face); the run's notes say a warm start was used, and from which run.

Lexicographic stages: the basis of *every* stage is kept, and stage k starts from the
earlier run's stage-k basis (its hold rows mapped by the stage they hold). Measured on the
medium instance (benchmarks/warm.py, benchmarks/README.md), the later stages dominate a warm
run when they start from today's previous stage: a new objective makes that basis primal
feasible but far from dual feasible, and primal simplex walks a long way; yesterday's
stage-k basis is nearly optimal for today's stage k, and dual simplex repairs the few rows
that changed. Whole mode (a MIP) has no basis to carry: the earlier plan's integer columns
are given to HiGHS as a (partial) start, which it completes and uses as its first incumbent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.core.model import ConBlock, LinearModel, VarBlock, join_labels
from allocator.errors import InputError
from allocator.solvers.base import Backend, SolverSettings

BASIS_FILE = "basis.parquet"
UNKNOWN = -1  # a status the earlier run has no word on (a new column or row)
HOLD = "hold"  # the block name of the rows that hold each stage's optimum
# Below this share of today's columns found in the earlier run, its basis is mostly slacks:
# no help, and it would force simplex where interior point may be the faster cold start.
MIN_MATCHED = 0.5


def _block_keys(block: VarBlock | ConBlock) -> np.ndarray:
    if block.labels.shape[1] == 0:
        return np.array([f"{block.name}|{i}" for i in range(block.size)], dtype=object)
    return block.name + "|" + join_labels(block.labels)


def column_keys(model: LinearModel) -> np.ndarray:
    """One name per column: the block and its labels (vectorized over each block)."""
    parts = [_block_keys(b) for b in model.var_blocks.values()]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=object)


def row_keys(model: LinearModel, holds: Sequence[str] = ()) -> np.ndarray:
    """One name per row, then one per hold row (named by the stage whose optimum it holds)."""
    parts = [_block_keys(b) for b in model.con_blocks.values()]
    parts.append(np.array([f"{HOLD}|{name}" for name in holds], dtype=object))
    return np.concatenate(parts)


@dataclass
class StageBasis:
    """One stage's final simplex statuses (HiGHS's HighsBasisStatus values, int8): columns,
    then the model's rows followed by the hold rows of the stages before it."""

    stage: str
    columns: np.ndarray
    rows: np.ndarray


@dataclass
class BasisLog:
    """The bases a run's stages end with, captured by the stage solver's callback while the
    solver holds each one; written to the run folder as `basis.parquet`."""

    stages: list[StageBasis] = field(default_factory=list)

    def capture(self, backend: object, stage_name: str) -> None:
        basis = getattr(backend, "basis", None)
        found = basis() if callable(basis) else None
        if found is not None:
            self.stages.append(StageBasis(stage_name, found[0], found[1]))


def basis_frame(model: LinearModel, log: BasisLog, x: np.ndarray | None) -> pd.DataFrame:
    """`basis.parquet`: name, kind, value (columns: the plan), and `status_<stage>` per stage
    (UNKNOWN where the stage had no such row: the holds of later stages)."""
    holds = [s.stage for s in log.stages[:-1]]
    cols, rows = column_keys(model), row_keys(model, holds)
    frame = pd.DataFrame({
        "kind": pd.Categorical(np.repeat(["column", "row"], [cols.size, rows.size]),
                               categories=["column", "row"]),
        "name": np.concatenate([cols, rows]),
        "value": np.concatenate([x if x is not None else np.full(cols.size, np.nan),
                                 np.full(rows.size, np.nan)]),
    })
    for stage in log.stages:
        status = np.full(cols.size + rows.size, UNKNOWN, dtype=np.int8)
        status[:cols.size] = stage.columns
        status[cols.size:cols.size + stage.rows.size] = stage.rows
        frame[f"status_{stage.stage}"] = status
    return frame


def write_basis(path: Path, model: LinearModel, log: BasisLog, x: np.ndarray | None) -> None:
    basis_frame(model, log, x).to_parquet(path, index=False, compression="zstd")


@dataclass
class WarmStart:
    """An earlier run's bases and plan in this model's positions (UNKNOWN / NaN: new)."""

    source: str
    bases: list[StageBasis]  # in this run's stage order, as far as the earlier run had them
    values: np.ndarray  # the earlier plan's value of each column (NaN: a new column)
    columns_matched: int
    columns: int
    rows_matched: int
    rows: int
    columns_gone: int
    rows_gone: int

    def note(self) -> str:
        stages = ", ".join(f"'{b.stage}'" for b in self.bases) or "none"
        new_cols, new_rows = self.columns - self.columns_matched, self.rows - self.rows_matched
        return (f"warm start from {self.source}: columns and rows matched by their labels: "
                f"{self.columns_matched:,} of {self.columns:,} columns ({new_cols:,} new, "
                f"{self.columns_gone:,} of that run's gone), {self.rows_matched:,} of "
                f"{self.rows:,} rows ({new_rows:,} new, {self.rows_gone:,} gone); bases "
                f"reused for stages {stages}")


def basis_file(run: Path) -> Path:
    """The warm-start file of a run folder (or the file itself)."""
    run = Path(os.path.expanduser(run))
    return run if run.is_file() else run / BASIS_FILE


def read_warm(run: Path, model: LinearModel, stages: Sequence[str],
              source: str | None = None) -> WarmStart:
    """The earlier run's bases and plan mapped onto this model by labels; InputError if the
    run has no warm-start file (or an unreadable one)."""
    path = basis_file(run)
    if not path.is_file():
        raise InputError(f"{run} holds no {BASIS_FILE} to warm-start from (a run folder "
                         "of this version with a plan has one)", str(run))
    try:
        frame = pd.read_parquet(path)
        kind = frame["kind"].astype(str).to_numpy()
        names = frame["name"].astype(str).to_numpy(dtype=object)
        values = frame["value"].to_numpy(dtype=float)
    except Exception as exc:
        raise InputError(f"{BASIS_FILE} cannot be read as a warm-start file: "
                         f"{type(exc).__name__}: {exc}", str(path)) from None
    is_col = kind == "column"
    old_cols, old_rows = names[is_col], names[~is_col]
    cols = column_keys(model)
    rows = row_keys(model, stages[:-1])
    col_at = _positions(old_cols, cols)  # where each of today's columns was (-1: new)
    row_at = _positions(old_rows, rows)
    matched_cols = int((col_at >= 0).sum())
    matched_rows = int((row_at[:model.num_rows] >= 0).sum())
    bases: list[StageBasis] = []
    recorded = [c.removeprefix("status_") for c in frame.columns if c.startswith("status_")]
    for k, stage in enumerate(stages):
        if stage not in recorded:
            break  # a stage that run did not solve: from here on, today's chain goes on
        status = frame[f"status_{stage}"].to_numpy(dtype=np.int8)
        col_status, row_status = status[is_col], status[~is_col]
        width = model.num_rows + k  # the model's rows and the holds of the stages before
        bases.append(StageBasis(stage, _take(col_status, col_at),
                                _take(row_status, row_at[:width])))
    gone_cols = int(old_cols.size - matched_cols)
    old_model_rows = int((~pd.Series(old_rows, dtype=object).str.startswith(f"{HOLD}|")).sum())
    return WarmStart(source or str(run), bases,
                     np.where(col_at >= 0, values[is_col][np.maximum(col_at, 0)], np.nan),
                     matched_cols, cols.size, matched_rows, model.num_rows, gone_cols,
                     max(0, old_model_rows - matched_rows))


def _positions(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """For each new name, its position among the old ones (-1: not there, or not unique)."""
    index = pd.Index(old)
    if not index.is_unique:
        keep = ~index.duplicated(keep=False)
        found = pd.Index(old[keep]).get_indexer(new)
        return np.where(found >= 0, np.flatnonzero(keep)[np.maximum(found, 0)], -1)
    return np.asarray(index.get_indexer(new))


def _take(status: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.where(at >= 0, status[np.maximum(at, 0)], UNKNOWN).astype(np.int8)


def start_backend(model: LinearModel, solver: str, settings: SolverSettings,
                  warm: WarmStart | None) -> tuple[Backend, list[str]]:
    """The solver session, loaded, with the warm start given to it where it can take one;
    the notes say what was reused (or why nothing was)."""
    from allocator.solvers.highs import HighsBackend
    from allocator.solvers.registry import make_backend

    backend = make_backend(solver, settings, model)
    backend.load(model)
    if warm is None:
        return backend, []
    if warm.columns and warm.columns_matched < MIN_MATCHED * warm.columns:
        return backend, [f"warm start from {warm.source} not used: only "
                         f"{warm.columns_matched:,} of {warm.columns:,} columns matched by "
                         "their labels (another model, or most of it new)"]
    if not isinstance(backend, HighsBackend):
        return backend, [f"warm start from {warm.source} not used: only HiGHS takes a "
                         f"starting basis or plan here (solver {solver})"]
    why_not = backend.warm_start([(b.columns, b.rows) for b in warm.bases], warm.values)
    if why_not is not None:
        return backend, [f"warm start from {warm.source} not used: {why_not}"]
    note = warm.note()
    if model.num_integer:
        given = int(np.isfinite(warm.values[model.integer]).sum())
        note = note.split(": columns")[0] + (
            f": the integer columns of its plan matched by label ({given:,} of "
            f"{model.num_integer:,}) given to HiGHS as a MIP start")
    return backend, [note]


def iteration_note(backend: Backend, stages: Sequence[str]) -> str | None:
    """How many simplex iterations each warm stage took (the warm start's effect)."""
    counts = getattr(backend, "iterations", None)
    if not counts or getattr(backend, "is_mip", False):
        return None
    shown = ", ".join(f"{name} {n:,}" for name, n in zip(stages, counts, strict=False))
    return f"warm start: simplex iterations by stage: {shown}"
