"""Where the room's solves come from.

The base is what `allocator solve` writes (or a run folder's own plan); each what-if is a
warm re-solve of a negotiation session (`allocator.negotiate.session`) that keeps the
scenario's validated tables in memory: 0.1 s on the demo where a cold run takes 2 s.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from pathlib import Path

import pandas as pd

from allocator.api import Run, open_run
from allocator.errors import InputError
from allocator.outputs.folder import write_csv
from allocator.scenario import scenario_toml
from allocator.serve.edits import Change, apply_changes
from allocator.serve.outcome import Outcome, prices_from_bindings, prices_from_sensitivity

# The columns of each editable table as the ops schema has them (written back in that order).
COLUMNS = {
    "budgets": ["budget_id", "scope", "amount"],
    "sites": ["site_id", "region", "capacity_fte", "min_fte"],
    "targets": ["site_id", "service_id", "demand", "min_level", "weight"],
}


def outcome_of_run(run: Run, how: str, seconds: float) -> Outcome:
    """A run folder's figures, as the page shows them."""
    names = set(run.tables())

    def table(name: str, columns: list[str]) -> pd.DataFrame:
        return run.table(name) if name in names else pd.DataFrame(columns=columns)

    sens = table("sensitivity", [])
    return Outcome(
        status=run.status,
        objectives={k: v for k, v in run.objectives.items()},
        coverage=table("coverage", ["site_id", "service_id", "demand", "served", "shortfall",
                                    "served_share"]),
        budgets=table("budgets", ["budget_id", "scope", "amount", "spent", "headroom"]),
        sites=table("sites", ["site_id", "fte", "capacity_fte", "min_fte", "cost"]),
        plan=table("plan", ["staff_id", "site_id", "service_id", "fte", "cost"]),
        prices=prices_from_sensitivity(sens),
        seconds=seconds, how=how,
        notes=tuple(str(n) for n in run.summary.get("notes", [])),
    )


def _scenario_of_run(folder: Path, into: Path) -> Path:
    """A scenario file that re-solves a run folder's inputs with its settings (summary.json
    keeps each input's file and the settings; the folder does not keep the scenario)."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if summary.get("model") != "ops":
        raise InputError(f"allocator serve works on ops runs; this run is a "
                         f"'{summary.get('model')}' run", str(folder))
    tables: dict[str, str] = {}
    missing = []
    for name, source in summary.get("inputs", {}).items():
        path = Path(str(source.get("source", "")))
        if path.is_file():
            tables[name] = str(path)
        else:
            missing.append(f"{name} ({source.get('source')})")
    if missing:
        raise InputError("this run's inputs cannot be read again (moved, or not files): "
                         + ", ".join(missing) + "; serve its scenario file instead",
                         str(folder / "summary.json"))
    from allocator.diff.inputs import _read_again

    # The room's base is the run's own plan: an input edited since would be shown (and
    # edited) beside a plan made from other numbers, and every what-if's change against the
    # base would mix the user's edit with that one.
    changed = []
    for name, source in summary.get("inputs", {}).items():
        note = _read_again(name, source).note
        if note and "changed since" in note:
            changed.append(f"{source.get('source')} changed since the run read it")
        elif note:
            changed.append(note)
    if changed:
        raise InputError("; ".join(changed) + ". The run's plan is not a plan of these "
                         "files any more: serve the scenario file instead (its base is "
                         "solved from the files as they are now)", str(folder / "summary.json"))
    solver = {k: v for k, v in summary["solver"].items() if v is not None}
    objective = {k: v for k, v in summary["objective_settings"].items() if v is not None}
    policy = {k: v for k, v in summary["policy"].items() if v is not None}
    raw = {"model": "ops", "name": summary.get("name", "scenario"), "tables": tables,
           "objective": objective, "solver": solver, "policy": policy}
    path = into / "scenario.toml"
    path.write_text(scenario_toml(raw), encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))  # what we wrote reads back
    return path


class SessionEngine:
    """What-ifs as warm re-solves of one negotiation session (allocator.negotiate): the
    scenario is read and validated once, each what-if rebuilds the model from the edited
    tables and solves from the last optimal basis."""

    how = "warm re-solve"

    def __init__(self, scenario_path: Path) -> None:
        from allocator.negotiate.session import Session

        self.scenario_path = scenario_path
        self.session = Session(scenario_path)
        scenario = self.session.scenario
        if scenario.model != "ops":
            raise InputError(f"allocator serve works on the ops model; this scenario is "
                             f"'{scenario.model}'", str(scenario_path))
        self.name = scenario.name
        self.scenario = scenario
        tables = self.session.tables
        empty = {t: pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS[t]})
                 for t in COLUMNS}
        self.tables = {t: tables[t].reindex(columns=COLUMNS[t]).reset_index(drop=True)
                       if t in tables else empty[t] for t in COLUMNS}

    def solve(self, changes: list[Change]) -> Outcome:
        from allocator.negotiate.session import Edit, Target

        edits = [Edit(Target(c.table, c.column, c.key), "set",
                      math.nan if c.value is None else c.value) for c in changes]
        point = self.session.solve(edits, plans=True)
        tables = point.tables or {}
        empty = pd.DataFrame()
        return Outcome(
            status=point.status,
            objectives=dict(point.objectives),
            coverage=tables.get("coverage", empty),
            budgets=tables.get("budgets", empty),
            sites=tables.get("sites", empty),
            plan=tables.get("plan", empty),
            prices=prices_from_bindings(point.binding),
            seconds=point.seconds,
            how=self.how + ("" if point.warm else " (from scratch: no basis to start from)"),
            notes=(point.message,) if point.message else (),
        )

    def base_run(self, workdir: Path) -> Outcome:
        """The base as `allocator solve` writes it (its sensitivity gives the prices their
        ranges); the session is solved once too, so the first what-if starts warm."""
        from allocator.api import solve

        began = time.perf_counter()
        run = solve(self.scenario_path, out=workdir / "base", output__report=False)
        base = outcome_of_run(run, "cold solve (allocator solve)", time.perf_counter() - began)
        self.session.solve([])
        return base

    def export(self, changes: list[Change], folder: Path) -> list[str]:
        """The alternative as a scenario file plus its edited tables, in `folder`: the
        unedited tables are named by absolute path, so the folder runs where it lies."""
        text = self.scenario_path.read_text(encoding="utf-8-sig")
        raw = tomllib.loads(text)
        tables = dict(raw.get("tables", {}))
        for name, spec in list(tables.items()):
            if isinstance(spec, str):
                tables[name] = str((self.scenario.base_dir / spec).resolve())
        edited = apply_changes(self.tables, changes)
        for table, frame in edited.items():
            write_csv(frame, folder / f"{table}.csv")
            tables[table] = f"{table}.csv"
        raw["tables"] = tables
        (folder / "scenario.toml").write_text(scenario_toml(raw), encoding="utf-8")
        return ["scenario.toml", *(f"{t}.csv" for t in edited)]


def open_engine(source: Path, workdir: Path) -> tuple[SessionEngine, Outcome]:
    """The engine for a scenario file or a run folder, and the base outcome: a run folder's
    own plan, or a first solve of the scenario."""
    source = Path(source)
    if source.is_dir():
        run = open_run(source)
        engine = SessionEngine(_scenario_of_run(source, workdir))
        engine.session.solve([])  # the first what-if starts warm
        return engine, outcome_of_run(run, "the run's own plan", 0.0)
    if not source.is_file():
        raise InputError("not found: give a scenario file (.toml) or a run folder",
                         str(source))
    engine = SessionEngine(source)
    return engine, engine.base_run(workdir)
