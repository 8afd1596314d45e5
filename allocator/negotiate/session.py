"""A scenario loaded once and kept solvable: edit its input tables by business ids, rebuild,
solve lexicographically, warm-started from the previous basis when the model keeps its shape.

Why a session: a negotiation asks many "what if" questions of one scenario. Reading and
validating the tables, starting Python and writing a run folder cost more than a warm
re-solve; a session pays them once and answers each question with a rebuild (vectorized) and
a solve that starts from the last optimal basis.

Edit syntax (docs/negotiate.md)::

    TABLE[ID].COLUMN=VALUE            one cell: budgets[B-SOU].amount=3.2e6
    TABLE[ID1,ID2].COLUMN=VALUE       a table keyed by two ids: targets[Leeds,picking].demand=30
    TABLE.COLUMN*FACTOR               every row's value times FACTOR: targets.demand*1.1
    TABLE[COL=VALUE].COLUMN*FACTOR    the rows where COL is VALUE: targets[site_id=Leeds].demand*1.1
                                      COL may be a column of the sites table reached through
                                      the row's site_id: targets[region=North].demand*0.9
    TABLE[ID].COLUMN*FACTOR           one cell scaled

Ids are matched exactly (case included), as the loaders match them; an unknown table, column
or id is refused with the nearest valid one. A value is checked against the column's schema
(e.g. an amount may not be negative) before anything is built.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel, Objective, join_labels
from allocator.errors import InputError, Problem
from allocator.formulations import get_formulation
from allocator.formulations.base import Built, Formulation
from allocator.scenario import Scenario, load_scenario
from allocator.solvers.base import Backend, RawSolution, SolverSettings, Status
from allocator.solvers.highs import HighsBackend
from allocator.solvers.lexicographic import SolveResult, StageResult, solve_stages, stage_objectives
from allocator.solvers.registry import make_backend
from allocator.tables.schema import Schema

# -- edits ------------------------------------------------------------------------------------

_TARGET = re.compile(r"^\s*(?P<table>[A-Za-z_][\w]*)\s*(?:\[(?P<sel>[^\]]*)\])?\s*\.\s*"
                     r"(?P<column>[A-Za-z_][\w]*)\s*$")
SYNTAX = ("TABLE[ID].COLUMN=VALUE, TABLE[ID1,ID2].COLUMN=VALUE, TABLE.COLUMN*FACTOR or "
          "TABLE[COL=VALUE].COLUMN*FACTOR (e.g. budgets[B-SOU].amount=3.2e6, "
          "targets[region=North].demand*1.1)")


@dataclass(frozen=True)
class Target:
    """What an edit changes: one cell (`key`), the rows matching `where`, or a whole column."""

    table: str
    column: str
    key: tuple[str, ...] | None = None  # the row's id(s), in the table's key order
    where: tuple[str, str] | None = None  # (column, value): the rows a factor applies to

    @property
    def text(self) -> str:
        sel = ""
        if self.key is not None:
            sel = "[" + ",".join(self.key) + "]"
        elif self.where is not None:
            sel = f"[{self.where[0]}={self.where[1]}]"
        return f"{self.table}{sel}.{self.column}"


@dataclass(frozen=True)
class Edit:
    """`op` 'set' writes `value` into the cell; 'scale' multiplies the selected values."""

    target: Target
    op: str  # "set" | "scale"
    value: float

    @property
    def text(self) -> str:
        return f"{self.target.text}{'=' if self.op == 'set' else '*'}{self.value:.12g}"

    def at(self, value: float) -> Edit:
        return dataclasses.replace(self, value=float(value))


def parse_target(text: str, op: str = "set") -> Target:
    """`budgets[B-SOU].amount`, `targets[region=North].demand`, `targets.demand`."""
    match = _TARGET.match(text)
    if match is None:
        raise InputError(f"'{text}': expected {SYNTAX}", "edit")
    sel = match["sel"]
    key: tuple[str, ...] | None = None
    where: tuple[str, str] | None = None
    if sel is not None:
        sel = sel.strip()
        if not sel:
            raise InputError(f"'{text}': empty [] (give an id, or COL=VALUE)", "edit")
        if "=" in sel:
            col, _, value = sel.partition("=")
            where = (col.strip(), value.strip())
        else:
            key = tuple(part.strip() for part in sel.split(","))
    if sel is None and op == "set":
        raise InputError(f"'{text}': '=' sets one cell, so name its row: TABLE[ID].COLUMN=VALUE "
                         "(a whole column is scaled with '*': TABLE.COLUMN*FACTOR)", "edit")
    if where is not None and op == "set":
        raise InputError(f"'{text}': a filter [COL=VALUE] selects several rows; scale them with "
                         "'*FACTOR' (one cell is set with TABLE[ID].COLUMN=VALUE)", "edit")
    return Target(match["table"], match["column"], key, where)


def split_edit(text: str) -> tuple[str, str, str]:
    """(target text, op, value text): the op is the first '=' or '*' outside brackets."""
    depth = 0
    for pos, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0 and char in "=*":
            return text[:pos], "set" if char == "=" else "scale", text[pos + 1:].strip()
    raise InputError(f"'{text}': no '=' or '*'; expected {SYNTAX}", "edit")


def parse_number(text: str, what: str) -> float:
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise InputError(f"'{what}': '{text}' is not a number", "edit") from None
    if not np.isfinite(value):
        raise InputError(f"'{what}': '{text}' is not a finite number", "edit")
    return value


def parse_edit(text: str) -> Edit:
    """One edit from its text (syntax only; `Session.check` resolves tables, columns, ids)."""
    target_text, op, value_text = split_edit(text)
    return Edit(parse_target(target_text, op), op, parse_number(value_text, text))


def _near(word: str, choices: Iterable[str]) -> str:
    options = [str(c) for c in choices]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.4)
    if not close:  # ids differ in case or by a prefix more often than by letters
        folded = {o.casefold(): o for o in options}
        close = [folded[word.casefold()]] if word.casefold() in folded else []
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = ", ".join(options[:8]) + (" ..." if len(options) > 8 else "")
    return f" (valid: {shown})" if options else ""


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """A constraint holding at its limit with a price, in one stage."""

    stage: str
    family: str  # the constraint block: budget, capacity, coverage...
    label: str  # its ids joined: B-SOU, Leeds,picking
    activity: float
    rhs: float  # the limit it holds at
    dual: float  # change of the stage's objective (user sense) per unit more of the limit


@dataclass
class PointResult:
    """One solve of the session: what a sweep row, a frontier point or a compare column holds.

    `objectives` are each stage's optimum in the user's sense; `plan_objectives` each
    objective's value at the final plan (within the hold tolerance of its optimum).
    """

    status: str
    edits: tuple[Edit, ...]
    objectives: dict[str, float] = field(default_factory=dict)
    plan_objectives: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, float] = field(default_factory=dict)  # each stage's proven bound (MIP)
    gaps: dict[str, float] = field(default_factory=dict)  # each stage's relative gap
    cost: float = float("nan")
    shortfall: float = float("nan")
    budget_use: dict[str, float] = field(default_factory=dict)
    budget_limit: dict[str, float] = field(default_factory=dict)
    binding: list[Binding] = field(default_factory=list)
    seconds: float = 0.0
    warm: bool = False
    iterations: int = 0
    message: str = ""
    x: np.ndarray | None = None
    tables: dict[str, pd.DataFrame] | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.OPTIMAL.value, Status.FEASIBLE.value)

    def binding_text(self, stage: str) -> str:
        """'budget[B-SOU] -1.2e-05; capacity[Leeds] -0.5': the stage's priced limits."""
        return "; ".join(f"{b.family}[{b.label}] {b.dual:.6g}" for b in self.binding
                         if b.stage == stage)

    def row(self) -> dict[str, Any]:
        """A flat row: status, every stage's optimum, cost, shortfall, budget use, prices."""
        row: dict[str, Any] = {"status": self.status}
        for name, value in self.objectives.items():
            row[f"objective_{name}"] = value
        row["cost"] = self.cost
        row["shortfall"] = self.shortfall
        for bid, used in self.budget_use.items():
            row[f"budget_used[{bid}]"] = used
        for bid, used in self.budget_use.items():
            limit = self.budget_limit.get(bid, float("nan"))
            row[f"budget_headroom[{bid}]"] = limit - used
        for name in self.objectives:
            row[f"binding_{name}"] = self.binding_text(name)
        row["warm"] = self.warm
        row["iterations"] = self.iterations
        row["seconds"] = round(self.seconds, 4)
        row["message"] = self.message
        return row


# -- the session ------------------------------------------------------------------------------


def _schemas(formulation: Formulation) -> dict[str, Schema]:
    """The formulation's table schemas (their keys and value rules): the one place this
    package reads a model's internals (each formulation module keeps a SCHEMAS dict)."""
    import importlib

    if formulation.name == "ops":
        from allocator.formulations.ops.data import SCHEMAS

        return SCHEMAS
    # One package per model: the plugin in its __init__, the schemas in .model or .data.
    base = type(formulation).__module__
    for name in (base, f"{base}.model", f"{base}.data"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if isinstance(getattr(module, "SCHEMAS", None), dict):
            return dict(module.SCHEMAS)
    return {}


Basis = tuple[np.ndarray, np.ndarray]  # HiGHS column and row statuses, as int8


def basis_arrays(highs: Any) -> Basis | None:
    """HiGHS's basis as two int8 arrays: picklable, so Dask can hand it to a neighbour."""
    basis = highs.getBasis()
    if not basis.valid:
        return None
    return (np.fromiter((int(s) for s in basis.col_status), dtype=np.int8),
            np.fromiter((int(s) for s in basis.row_status), dtype=np.int8))


def set_basis(highs: Any, basis: tuple[np.ndarray, np.ndarray]) -> bool:
    import highspy

    statuses = {int(s): s for s in highspy.HighsBasisStatus.__members__.values()}
    hb = highspy.HighsBasis()
    hb.col_status = [statuses[int(v)] for v in basis[0]]
    hb.row_status = [statuses[int(v)] for v in basis[1]]
    hb.valid = True
    return bool(highs.setBasis(hb).name == "kOk")


def _shape(model: LinearModel) -> tuple[int, int]:
    return model.num_vars, model.num_rows


def row_labels(model: LinearModel, rows: np.ndarray) -> tuple[list[str], list[str]]:
    """(family, label) of model rows: one vectorized join per block touched, not a pandas
    lookup per row (hundreds of binding rows a point)."""
    rows = np.asarray(rows, dtype=np.int64)
    families = np.empty(rows.size, dtype=object)
    labels = np.empty(rows.size, dtype=object)
    blocks = list(model.con_blocks.values())
    starts = np.array([b.start for b in blocks])
    which = np.searchsorted(starts, rows, side="right") - 1
    for k in np.unique(which):
        block = blocks[int(k)]
        mine = np.flatnonzero(which == k)
        local = rows[mine] - block.start
        families[mine] = block.name
        labels[mine] = (join_labels(block.labels.iloc[local], ",") if block.labels.shape[1]
                        else local.astype(str).astype(object))
    return [str(f) for f in families], [str(lab) for lab in labels]


class Session:
    """A scenario loaded once; `solve(edits)` answers one what-if.

    Edits are applied to the validated input tables (never to the files), the model is
    rebuilt from them, and the lexicographic stages are solved with the scenario's solver and
    settings. With HiGHS the first stage starts from the last optimal basis of this session
    (or one given) whenever the model has the same rows and columns.
    """

    def __init__(self, scenario: str | Path | Scenario, overrides: Sequence[str] = (),
                 solver: str | None = None) -> None:
        if isinstance(scenario, Scenario):
            self.scenario = scenario
            self.path = Path(scenario.source)
        else:
            self.path = Path(scenario)
            sets = list(overrides) + ([f"solver.name={solver!r}".replace("'", '"')]
                                      if solver else [])
            self.scenario = load_scenario(self.path, sets)
        self.formulation: Formulation = get_formulation(self.scenario.model, str(self.path))
        self.schemas = _schemas(self.formulation)
        self.data = self.formulation.load(self.scenario)
        self.tables = self._typed_tables()
        self.basis: Basis | None = None  # the first stage's last optimal basis
        self.bases: list[Basis] = []  # every stage's, from the last solve with a plan
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.built: Built = self.formulation.build(self.data, self.scenario)

    # -- tables and edits --------------------------------------------------------------------
    def _typed_tables(self) -> dict[str, pd.DataFrame]:
        """The validated tables edits apply to. The ops data keeps them as attributes (edited
        there in place of a reload); the other models derive their data from the tables, so
        theirs are read again (once) and an edit reloads through the model's own checks."""
        tables: dict[str, pd.DataFrame] = {}
        if self.formulation.name == "ops":
            for name in self.schemas:
                frame = getattr(self.data, name, None)
                if isinstance(frame, pd.DataFrame) and name in self.scenario.tables:
                    tables[name] = frame
            return tables
        from allocator.tables.readers import read_table
        from allocator.tables.schema import validate

        for name, spec in self.scenario.tables.items():
            if name not in self.schemas:
                continue
            table = read_table(name, spec, self.scenario.base_dir, origin=self.scenario.source,
                               max_file_mb=self.scenario.input.max_file_mb)
            frame, _found = validate(table, self.schemas[name])
            tables[name] = frame
        return tables

    def keys(self, table: str) -> tuple[str, ...]:
        return tuple(self.schemas[table].unique)

    def rows_of(self, target: Target, problems: list[Problem] | None = None,
                origin: str = "edit") -> np.ndarray:
        """Positions of the rows a target selects; problems (with the nearest valid name)
        are appended, or raised when no list is given."""
        found: list[Problem] = [] if problems is None else problems
        before = len(found)
        rows = np.zeros(0, dtype=np.int64)
        text = target.text
        if target.table not in self.tables:
            found.append(Problem(origin, f"'{text}': no table '{target.table}' in this scenario"
                                 + _near(target.table, self.tables)))
        else:
            frame = self.tables[target.table]
            schema = self.schemas[target.table]
            numeric = [c.name for c in schema.columns if c.kind == "float"]
            if target.column not in numeric:
                what = ("is not a numeric column" if target.column in frame.columns
                        else "is no column")
                found.append(Problem(origin, f"'{text}': '{target.column}' {what} of "
                                     f"{target.table} (numeric: {', '.join(numeric)})"
                                     + _near(target.column, numeric)))
            keys = self.keys(target.table)
            if target.key is not None:
                if len(target.key) != len(keys):
                    example = (",".join(str(frame[k].iloc[0]) for k in keys) if len(frame)
                               else "...")
                    found.append(Problem(origin, f"'{text}': {target.table} rows are named by "
                                         f"{len(keys)} id(s) ({', '.join(keys)}), e.g. "
                                         f"{target.table}[{example}]"))
                else:
                    mask = np.ones(len(frame), dtype=bool)
                    for k, value in zip(keys, target.key, strict=True):
                        ids = frame[k].astype(str)
                        if not ids.eq(value).any():
                            found.append(Problem(origin, f"'{text}': no {k} '{value}' in "
                                                 f"{target.table}" + _near(value, ids.unique())))
                        mask &= ids.eq(value).to_numpy()
                    rows = np.flatnonzero(mask)
                    if len(found) == before and rows.size == 0:
                        found.append(Problem(origin, f"'{text}': no {target.table} row has "
                                             f"these ids together"))
            elif target.where is not None:
                col, value = target.where
                values = self._filter_column(target.table, col)
                if values is None:
                    cols = list(frame.columns) + (["region"] if "site_id" in frame.columns
                                                  and "sites" in self.tables else [])
                    found.append(Problem(origin, f"'{text}': no column '{col}' to filter "
                                         f"{target.table} by" + _near(col, cols)))
                else:
                    mask = values.astype(str).eq(value).to_numpy()
                    if not mask.any():
                        found.append(Problem(origin, f"'{text}': no {target.table} row has "
                                             f"{col} '{value}'" + _near(value, values.astype(str)
                                                                        .unique())))
                    rows = np.flatnonzero(mask)
            else:
                rows = np.arange(len(frame))
        if problems is None and len(found) > before:
            raise InputError(found)
        return rows

    def _filter_column(self, table: str, column: str) -> pd.Series | None:
        frame = self.tables[table]
        if column in frame.columns:
            return frame[column]
        sites = self.tables.get("sites")
        if (sites is not None and "site_id" in frame.columns and column in sites.columns
                and table != "sites"):
            lookup = pd.Series(sites[column].to_numpy(), index=sites["site_id"].astype(str))
            return frame["site_id"].astype(str).map(lookup)
        return None

    def check(self, edits: Sequence[Edit], origin: str = "edit") -> None:
        """Every problem of these edits at once (InputError), before anything is built."""
        problems = self.problems(edits, origin)
        if problems:
            raise InputError(problems)

    def problems(self, edits: Sequence[Edit], origin: str = "edit") -> list[Problem]:
        """What is wrong with these edits (each problem once), without raising."""
        problems: list[Problem] = []
        for edit in edits:
            rows = self.rows_of(edit.target, problems, origin)
            if not rows.size or edit.target.table not in self.tables:
                continue
            col = next((c for c in self.schemas[edit.target.table].columns
                        if c.name == edit.target.column and c.kind == "float"), None)
            if col is None:
                continue
            base = self.tables[edit.target.table][edit.target.column].to_numpy(float)[rows]
            new = np.full(rows.size, edit.value) if edit.op == "set" else base * edit.value
            new = new[np.isfinite(new)]
            low = col.min
            if low is not None and ((new < low).any() or (col.min_exclusive and
                                                          (new <= low).any())):
                problems.append(Problem(origin, f"'{edit.text}': {edit.target.column} must be "
                                        f"{'>' if col.min_exclusive else '>='} {low:g}; this "
                                        f"edit gives {new.min():.6g}"))
            if col.max is not None and (new > col.max).any():
                problems.append(Problem(origin, f"'{edit.text}': {edit.target.column} must be "
                                        f"<= {col.max:g}; this edit gives {new.max():.6g}"))
        return list(dict.fromkeys(problems))

    def edited_tables(self, edits: Sequence[Edit]) -> dict[str, pd.DataFrame]:
        """The tables the edits change, edited (copies); the session's own stay as loaded."""
        out: dict[str, pd.DataFrame] = {}
        for edit in edits:
            name = edit.target.table
            frame = out.get(name)
            if frame is None:
                frame = out[name] = self.tables[name].copy()
            rows = self.rows_of(edit.target)
            col = frame.columns.get_loc(edit.target.column)
            values = frame[edit.target.column].to_numpy(dtype=float, copy=True)
            values[rows] = edit.value if edit.op == "set" else values[rows] * edit.value
            frame.isetitem(col, values)
        return out

    def write_tables(self, edits: Sequence[Edit], folder: Path) -> dict[str, Path]:
        """The edited tables as CSV files in `folder` (for a cold run, or another model's
        reload): ids as text, numbers written exactly."""
        paths = {}
        for name, frame in self.edited_tables(edits).items():
            path = folder / f"{name}.csv"
            frame.to_csv(path, index=False, float_format="%.17g")
            paths[name] = path
        return paths

    def build(self, edits: Sequence[Edit] = ()) -> Built:
        """The model with these edits (the session's own when there are none)."""
        if not edits:
            return self.built
        self.check(edits)
        if self.formulation.name == "ops":
            data = copy.copy(self.data)
            for name, frame in self.edited_tables(edits).items():
                setattr(data, name, frame)
            return self.formulation.build(data, self.scenario)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="allocator-session-")
        folder = Path(self._tmp.name) / f"edit-{time.monotonic_ns()}"
        folder.mkdir()
        paths = self.write_tables(edits, folder)
        tables = dict(self.scenario.tables)
        tables.update({name: str(path) for name, path in paths.items()})
        scenario = self.scenario.model_copy(update={"tables": tables})
        scenario._source = self.scenario.source
        return self.formulation.build(self.formulation.load(scenario), scenario)

    # -- solving -----------------------------------------------------------------------------
    def settings(self) -> SolverSettings:
        from allocator.run import settings_from

        return settings_from(self.scenario)

    def objectives(self, model: LinearModel) -> list[Objective]:
        o = self.scenario.objective
        return stage_objectives(model, o.order, o.mode, dict(o.weights.items()))

    def solve(self, edits: Sequence[Edit] = (), *, plans: bool = False, warm: bool = True,
              basis: Basis | list[Basis] | None = None,
              objectives: list[Objective] | None = None,
              extra_rows: Sequence[tuple[np.ndarray, np.ndarray, float, float]] = (),
              built: Built | None = None) -> PointResult:
        """Rebuild with `edits`, solve every stage, and read the figures of the plan.

        With HiGHS each stage starts from the optimal basis of the same stage at the last
        point (the stage's objective is the same, so that basis is still dual feasible and
        dual simplex has only the moved limits to repair); `basis` (one per stage from
        `self.bases`, e.g. a neighbour's point on another worker, or the first stage's
        alone) overrides the session's own. `objectives` and `extra_rows` (cols, vals, lo,
        hi) let the frontier solve an epsilon-constrained variant of the same model.
        """
        started = time.perf_counter()
        built = self.build(edits) if built is None else built
        model = built.model
        objectives = self.objectives(model) if objectives is None else objectives
        backend = make_backend(self.scenario.solver.name, self.settings(), model)
        backend.load(model)
        for cols, vals, lo, hi in extra_rows:
            backend.add_row(cols, vals, lo, hi)
        starts: list[Basis] = []
        if basis is not None:
            starts = list(basis) if isinstance(basis, list) else [basis]
        elif warm:
            starts = list(self.bases) or ([self.basis] if self.basis is not None else [])
        captured: dict[str, Any] = {"iterations": 0, "bases": [], "warm": False}
        rows = model.num_rows + len(extra_rows)
        if starts and isinstance(backend, HighsBackend) and model.num_integer == 0:
            highs_backend = backend
            plain_solve = backend.solve
            stage_no = [0]

            def solve_from(limit: float | None) -> RawSolution:
                k = stage_no[0]
                stage_no[0] += 1
                if (k < len(starts) and starts[k][0].size == model.num_vars
                        and starts[k][1].size == rows + k
                        and set_basis(highs_backend.highs, starts[k])):
                    captured["warm"] = True
                    highs_backend.auto_ipm = False  # from a basis, dual simplex is the way
                return plain_solve(limit)

            backend.solve = solve_from  # type: ignore[method-assign,assignment]

        def on_stage(b: Backend, stage: StageResult) -> None:
            if isinstance(b, HighsBackend):
                info = b.highs.getInfo()
                captured["iterations"] += int(info.simplex_iteration_count)
                if model.num_integer == 0:
                    captured["bases"].append(basis_arrays(b.highs))

        o = self.scenario.objective
        result = solve_stages(model, objectives, self.scenario.solver.name, self.settings(),
                              o.rel_tol, o.abs_tol, backend=backend, on_stage=on_stage)
        bases = [b for b in captured["bases"] if b is not None]
        if result.status.has_solution and bases and len(bases) == len(captured["bases"]):
            self.bases = bases
            self.basis = bases[0]
        point = self.figures(built, result, tuple(edits), plans)
        point.warm = bool(captured["warm"])
        point.iterations = captured["iterations"]
        point.seconds = time.perf_counter() - started
        return point

    def figures(self, built: Built, result: SolveResult, edits: tuple[Edit, ...],
                plans: bool = False) -> PointResult:
        """The figures a person reads from a solve, in the user's sense (max models signed)."""
        model = built.model
        sign = -1.0 if model.maximize else 1.0
        point = PointResult(result.status.value, edits, message=result.message)
        if not result.status.has_solution or result.x is None:
            return point
        x = result.x
        point.x = x
        point.objectives = {s.name: sign * s.objective + 0.0 for s in result.stages}
        point.plan_objectives = {s.name: sign * s.final_value + 0.0 for s in result.stages}
        point.bounds = {s.name: sign * s.bound + 0.0 for s in result.stages}
        point.gaps = {s.name: float(s.gap) for s in result.stages}
        for name, objective in model.objectives.items():
            if name not in point.plan_objectives:
                point.plan_objectives[name] = sign * float(objective.c @ x + objective.constant)
        if "cost" in model.objectives:
            c = model.objectives["cost"]
            point.cost = float(c.c @ x + c.constant)
        if "shortfall" in model.var_blocks:
            point.shortfall = float(x[model.var_blocks["shortfall"].slice].sum())
        activity = model.matrix @ x
        if "budget" in model.con_blocks:
            block = model.con_blocks["budget"]
            ids = join_labels(block.labels, ",")
            used = activity[block.slice]
            limit = model.row_hi[block.slice]
            point.budget_use = {str(i): float(u) for i, u in zip(ids, used, strict=True)}
            point.budget_limit = {str(i): float(v) for i, v in zip(ids, limit, strict=True)}
        lo, hi = model.row_lo, model.row_hi
        for stage in result.stages:
            if stage.row_dual is None:
                continue
            dual = np.asarray(stage.row_dual)[:model.num_rows]
            scale = np.maximum(1.0, np.abs(activity))
            priced = np.flatnonzero(np.abs(dual) > 1e-9)
            tight_lo = np.abs(activity[priced] - lo[priced]) <= 1e-7 * scale[priced]
            tight_hi = np.abs(activity[priced] - hi[priced]) <= 1e-7 * scale[priced]
            priced = priced[tight_lo | tight_hi]
            families, labels = row_labels(model, priced)
            rhs = np.where(np.abs(activity[priced] - lo[priced]) <= np.abs(activity[priced] -
                                                                           hi[priced]),
                           lo[priced], hi[priced])
            order = np.argsort(-np.abs(dual[priced]), kind="stable")
            for k in order:
                point.binding.append(Binding(stage.name, families[k], labels[k],
                                             float(activity[priced[k]]), float(rhs[k]),
                                             sign * float(dual[priced[k]]) + 0.0))
        if plans:
            point.tables = self.formulation.plan_tables(built, x)
        return point

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def edits_from(texts: Iterable[str]) -> list[Edit]:
    """Parse several edits; every syntax problem reported at once."""
    edits, problems = [], []
    for text in texts:
        try:
            edits.append(parse_edit(text))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return edits
