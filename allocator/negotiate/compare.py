"""`allocator compare A B [C ...]`: scenarios or runs side by side, for the budget meeting.

Each item is a run folder (read as it is) or a scenario file (solved first, through
`allocator.api.solve`, into ``runs/<name>/`` inside the output folder, so the comparison
carries the runs it speaks of). Every figure is read from the run folders: stage objectives
from summary.json, cost and FTE from plan.csv, demand served and coverage from coverage.csv,
budget use and headroom from budgets.csv, binding constraints and their prices from
sensitivity.csv. Which inputs differ, by business ids, is the diff engine's input side
(`allocator.diff.diff_runs`, each run against the first); with exactly two items the diff
engine's whole detail (moves, coverage, budgets, constraints, waterfalls) is written beside
the comparison. One diff engine, not two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputError, Problem
from allocator.negotiate.alternatives import escape, figure, html_page, html_table, svg_of

BINDING_SHOWN = 12  # binding constraints per stage in compare.csv (all in compare_binding.csv)
HEAT_SITES = 40  # sites in each coverage heat map: the least covered
PRICED = 1e-9  # a dual smaller than this is no price


@dataclass(frozen=True)
class Comparison:
    """Runs side by side. `side_by_side` is compare.csv: one row per figure (section, item,
    unit), one column per run; the other frames are long (one row per run and id)."""

    names: tuple[str, ...]
    folders: tuple[Path, ...]
    sources: tuple[str, ...]  # what each item was: the scenario file or the run folder
    kpis: pd.DataFrame  # one row per run: status, stage objectives, cost, FTE, demand served
    side_by_side: pd.DataFrame
    coverage: pd.DataFrame  # run, site_id, service_id, demand, served, shortfall, served_share
    coverage_by_site: pd.DataFrame  # run, site_id, demand, served, served_share
    budgets: pd.DataFrame  # run, budget_id, scope, amount, spent, headroom
    binding: pd.DataFrame  # run, stage, family, labels, activity, rhs, dual, impact
    inputs: pd.DataFrame  # each run's input changes against the first, by business ids
    input_tables: pd.DataFrame  # run, table, status (same / changed ...) against the first
    diff: Any = None  # exactly two runs: the diff engine's RunDiff
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- the items -------------------------------------------------------------------------------


def _labels(items: Sequence[Path]) -> list[str]:
    """Short, unique names: the file's stem or the folder's name, with its parent where two
    items share it (two scenario.toml files in different folders)."""
    def stem(path: Path) -> str:
        return path.name if path.is_dir() else path.stem

    stems = [stem(p) for p in items]
    parents = [p.resolve().parent.name for p in items]
    names = []
    for s, parent, p in zip(stems, parents, items, strict=True):
        if p.is_dir() or (stems.count(s) == 1 and s != "scenario"):
            names.append(s)  # a run folder's name; a scenario file's own name
        else:  # scenario.toml in its own folder: the folder says which
            names.append(parent if parents.count(parent) == 1 else f"{parent}/{s}")
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _kind(path: Path) -> str:
    if path.is_dir():
        return "run" if (path / "summary.json").is_file() else ""
    return "scenario" if path.is_file() else ""


def _run_folder_problems(folder: Path) -> list[Problem]:
    """What makes a run folder unreadable (summary.json not JSON: an internal error later) or
    incomplete (a table the run wrote is gone: its figures would read as blank), as the diff
    checks it."""
    from allocator.diff.engine import _missing_files, _summary

    problems: list[Problem] = []
    try:
        _summary(folder)
    except InputError as exc:
        problems += exc.problems
    gone = _missing_files(folder)
    if gone:
        problems.append(Problem(str(folder), f"{', '.join(gone)} missing: the run wrote it "
                                "(its .allocator-run lists it) and it is gone since"))
    return problems


def resolve_items(items: Sequence[str | Path], runs_dir: Path | None,
                  overrides: Sequence[str] = (), on_solve: Any = None,
                  store: str | bool | None = None, record_in: Path | None = None,
                  recorded: list[tuple[Path, Path]] | None = None,
                  ) -> tuple[list[str], list[Path], list[str]]:
    """(names, run folders, sources): runs as given, scenarios solved into `runs_dir/<name>`
    (a new temporary folder each when None). Every bad item is said at once. `store`: record
    each solve in the run store (as `allocator.solve(store=)`), under `record_in/<name>`
    when `runs_dir` is a temporary folder that will be renamed to it; `recorded` is told of
    each (scenario, folder named in the store), so that a comparison that fails after its
    solves can say so there."""
    from allocator.api import solve

    paths = [Path(str(p)).expanduser() for p in items]
    problems: list[Problem] = []
    if len(paths) < 2:
        problems.append(Problem("compare", "give at least two scenario files or run folders"))
    kinds = [_kind(p) for p in paths]
    for path, kind in zip(paths, kinds, strict=True):
        if not kind:
            what = ("a folder without summary.json (not a run folder)" if path.is_dir()
                    else "not found")
            problems.append(Problem(str(path), f"{what}: expected a scenario file or a run "
                                    "folder"))
        elif kind == "run":
            problems += _run_folder_problems(path)
    if problems:
        raise InputError(problems)
    names = _labels(paths)
    folders: list[Path] = []
    # What the store records for each solve: `allocator compare ...` as typed, or, from
    # Python, a line that still says compare (the mark of a what-if: store/lookup.py).
    command = list(sys.argv) if len(sys.argv) > 1 and sys.argv[1] == "compare" else \
        ["python: allocator.negotiate.compare", "compare", *map(str, items)]
    for name, path, kind in zip(names, paths, kinds, strict=True):
        if kind == "run":
            folders.append(path)
            continue
        safe = re.sub(r"[^\w.#-]+", "_", name)
        target = None if runs_dir is None else runs_dir / safe
        if on_solve is not None:
            on_solve(name, path)
        try:
            run = solve(path, target, overrides=list(overrides), store=store,
                        record_as=None if record_in is None else record_in / safe,
                        record_command=command)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        folders.append(run.folder)
        if store and record_in is not None and recorded is not None:
            recorded.append((path, record_in / safe))
    if problems:
        raise InputError(problems)
    return names, folders, [str(p) for p in paths]


# --- reading the runs ------------------------------------------------------------------------


def _table(folder: Path, name: str) -> pd.DataFrame | None:
    from allocator.outputs.readback import read_output_table

    path = folder / f"{name}.csv"
    if not path.exists() and not path.with_suffix(".parquet").exists():
        return None
    return read_output_table(path)


def _summary(folder: Path) -> dict[str, Any]:
    from allocator.api import open_run

    return open_run(folder).summary


def _binding(sensitivity: pd.DataFrame | None) -> pd.DataFrame:
    columns = ["stage", "family", "labels", "activity", "rhs", "dual", "impact"]
    if sensitivity is None or "kind" not in sensitivity:
        return pd.DataFrame(columns=columns)
    rows = sensitivity[(sensitivity["kind"] == "constraint")
                       & sensitivity["binding"].astype(str).str.lower().eq("true")].copy()
    rows["dual"] = pd.to_numeric(rows["dual"], errors="coerce")
    rows = rows[rows["dual"].abs() > PRICED]
    rows["labels"] = rows["labels"].fillna("").astype(str)
    rhs = pd.to_numeric(rows["rhs"], errors="coerce")
    low = pd.to_numeric(rows.get("rhs_low"), errors="coerce")
    high = pd.to_numeric(rows.get("rhs_high"), errors="coerce")
    # The price times the room over which it holds: what the limit is worth, at most.
    room = np.fmax((high - rhs).where(np.isfinite(high)), (rhs - low).where(np.isfinite(low)))
    room = room.fillna(np.maximum(rhs.abs(), 1.0))
    rows["impact"] = rows["dual"].abs() * room
    return rows[columns].reset_index(drop=True)


def _kpis(name: str, folder: Path, summary: dict[str, Any], plan: pd.DataFrame | None,
          coverage: pd.DataFrame | None, budgets: pd.DataFrame | None) -> dict[str, Any]:
    row: dict[str, Any] = {"run": name, "folder": str(folder), "status": summary.get("status"),
                           "exit_code": summary.get("exit_code")}
    for stage, value in (summary.get("objectives") or {}).items():
        row[f"objective_{stage}"] = np.nan if value is None else float(value)
    if summary.get("fte_moved") is not None:
        row["fte_moved_vs_baseline"] = float(summary["fte_moved"])
    if plan is not None and {"fte", "cost"} <= set(plan.columns):
        row["plan_cost"] = float(plan["cost"].sum())
        row["fte"] = float(plan["fte"].sum())
    if coverage is not None and {"demand", "served", "shortfall"} <= set(coverage.columns):
        demand = float(coverage["demand"].sum())
        row["demand"] = demand
        row["served"] = float(coverage["served"].sum())
        row["unmet"] = float(coverage["shortfall"].sum())
        row["demand_served_share"] = row["served"] / demand if demand else 1.0
    if budgets is not None and {"amount", "spent", "headroom"} <= set(budgets.columns) \
            and len(budgets):
        row["budgets_binding"] = int((budgets["headroom"] <= 1e-6 * np.maximum(
            1.0, budgets["amount"].abs())).sum())
    return row


def compare_runs(folders: Sequence[str | Path], names: Sequence[str] | None = None,
                 sources: Sequence[str] | None = None) -> Comparison:
    """Run folders side by side (no solving): the frames `allocator compare` writes."""
    from allocator.diff import diff_runs

    paths = [Path(f) for f in folders]
    labels = list(names) if names is not None else _labels(paths)
    summaries = [_summary(p) for p in paths]
    notes: list[str] = []
    kpi_rows, coverage, by_site, budgets, binding = [], [], [], [], []
    for name, folder, summary in zip(labels, paths, summaries, strict=True):
        plan, cov = _table(folder, "plan"), _table(folder, "coverage")
        bud = _table(folder, "budgets")
        kpi_rows.append(_kpis(name, folder, summary, plan, cov, bud))
        if summary.get("status") not in ("optimal", "feasible"):
            notes.append(f"{name}: {summary.get('status')} (exit {summary.get('exit_code')}): "
                         "no plan to compare" + (" (see its diagnosis.md)"
                                                 if (folder / "diagnosis.md").exists() else ""))
        if cov is not None and {"site_id", "service_id", "served"} <= set(cov.columns):
            coverage.append(cov.assign(run=name))
            site = cov.groupby("site_id", sort=True)[["demand", "served"]].sum().reset_index()
            site["served_share"] = np.where(site["demand"] > 0,
                                            site["served"] / site["demand"].where(
                                                site["demand"] > 0, 1.0), 1.0)
            by_site.append(site.assign(run=name))
        if bud is not None and "budget_id" in bud:
            budgets.append(bud.assign(run=name))
        binding.append(_binding(_table(folder, "sensitivity")).assign(run=name))
        if summary.get("model") != summaries[0].get("model"):
            notes.append(f"{name} is of model '{summary.get('model')}', {labels[0]} of "
                         f"model '{summaries[0].get('model')}': only what both have is "
                         "compared")
    kpis = pd.DataFrame(kpi_rows)
    diffs = [diff_runs(paths[0], p) for p in paths[1:]]
    inputs, tables = [], []
    for name, found in zip(labels[1:], diffs, strict=True):
        if len(found.input_changes):
            inputs.append(found.input_changes.assign(run=name, against=labels[0]))
        tables.append(found.inputs.assign(run=name, against=labels[0]))
        notes += [f"{name}: {n}" for n in found.notes if "different models" not in n]
    frame = Comparison(
        names=tuple(labels), folders=tuple(paths),
        sources=tuple(sources) if sources is not None else tuple(str(p) for p in paths),
        kpis=kpis,
        side_by_side=pd.DataFrame(),
        coverage=_long(coverage, ["run", "site_id", "service_id", "demand", "served",
                                  "shortfall", "served_share"]),
        coverage_by_site=_long(by_site, ["run", "site_id", "demand", "served",
                                         "served_share"]),
        budgets=_long(budgets, ["run", "budget_id", "scope", "amount", "spent", "headroom"]),
        binding=_long(binding, ["run", "stage", "family", "labels", "activity", "rhs", "dual",
                                "impact"]),
        inputs=_long(inputs, ["run", "against", "table", "file", "change", "key", "column",
                              "value_a", "value_b", "rel_change", "sentence"]),
        input_tables=_long(tables, ["run", "against", "table", "status", "rows_added",
                                    "rows_removed", "rows_changed", "cells_changed", "note"]),
        diff=diffs[0] if len(diffs) == 1 else None,
        notes=tuple(dict.fromkeys(notes)),
    )
    return dataclasses.replace(frame, side_by_side=side_by_side(frame))


def _long(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)
    return frame[[c for c in columns if c in frame.columns]]


# --- side by side ------------------------------------------------------------------------------


STAGE_UNITS = {"service": "weighted shortfall", "cost": "money", "stability": "2 x FTE moved",
               "weighted": "weighted sum"}


def side_by_side(found: Comparison) -> pd.DataFrame:
    """compare.csv: section, item, unit, then one column per run (the run's name)."""
    names = list(found.names)
    rows: list[dict[str, Any]] = []

    def add(section: str, item: str, unit: str, values: dict[str, Any]) -> None:
        rows.append({"section": section, "item": item, "unit": unit,
                     **{n: values.get(n, np.nan) for n in names}})

    kpis = found.kpis.set_index("run")
    add("run", "exit code", "0 optimal, 3 infeasible, ...", kpis["exit_code"].to_dict())
    for column in kpis.columns:
        if column.startswith("objective_"):
            stage = column[len("objective_"):]
            add("stage objective", stage, STAGE_UNITS.get(stage, "objective"),
                kpis[column].to_dict())
    for column, item, unit in (("plan_cost", "cost", "money"), ("fte", "FTE", "FTE"),
                               ("demand", "demand", "workload units"),
                               ("served", "demand served", "workload units"),
                               ("unmet", "unmet workload", "workload units"),
                               ("demand_served_share", "demand served", "share"),
                               ("fte_moved_vs_baseline", "FTE moved vs baseline", "FTE")):
        if column in kpis:
            add("plan", item, unit, kpis[column].to_dict())
    if len(found.budgets):
        for (bid, scope), rows_of in found.budgets.groupby(["budget_id", "scope"], sort=True):
            by_run = rows_of.set_index("run")
            add("budget amount", str(bid), f"money ({scope})", by_run["amount"].to_dict())
            add("budget use", str(bid), "money", by_run["spent"].to_dict())
            add("budget headroom", str(bid), "money", by_run["headroom"].to_dict())
    if len(found.coverage_by_site):
        for site, rows_of in found.coverage_by_site.groupby("site_id", sort=True):
            add("coverage by site", str(site), "share of demand served",
                rows_of.set_index("run")["served_share"].to_dict())
    if len(found.coverage):
        for (site, service), rows_of in found.coverage.groupby(["site_id", "service_id"],
                                                               sort=True):
            add("coverage", f"{site} / {service}", "share of demand served",
                rows_of.set_index("run")["served_share"].to_dict())
    for (stage, family, labels), dual in _top_binding(found.binding).items():
        add(f"binding ({stage} stage)", f"{family} {labels}".strip(),
            "price: objective change per unit more", dual)
    if len(found.input_tables):
        for table, rows_of in found.input_tables.groupby("table", sort=True):
            counted = {names[0]: 0.0}
            for row in rows_of.itertuples(index=False):
                counted[row.run] = (0.0 if row.status == "same" else float(np.nansum(
                    [row.rows_added, row.rows_removed, row.rows_changed], dtype=float))
                    if pd.notna(row.rows_changed) else np.nan)
            add("input", str(table), f"rows added, removed or changed against {names[0]}",
                counted)
    # Numbers only: a column mixing text and numbers would be written as text, and a
    # negative price would then get the formula guard's quote ('-0.01).
    frame = pd.DataFrame(rows, columns=["section", "item", "unit", *names])
    for name in names:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def table_status(found: Comparison) -> pd.DataFrame:
    """Each input table, run by run, against the first: same, or what changed, in words."""
    if found.input_tables.empty:
        return pd.DataFrame(columns=["table", *found.names])
    rows = []
    for table, rows_of in found.input_tables.groupby("table", sort=True):
        said = {"table": str(table), found.names[0]: "reference"}
        for row in rows_of.itertuples(index=False):
            parts = [f"{int(n)} {w}" for n, w in ((row.rows_added, "added"),
                                                  (row.rows_removed, "removed"),
                                                  (row.rows_changed, "changed"))
                     if pd.notna(n) and n]
            total = sum(int(n) for n in (row.rows_added, row.rows_removed, row.rows_changed)
                        if pd.notna(n))
            said[row.run] = "same" if row.status == "same" else \
                f"{row.status}" + (f": {', '.join(parts)} (row{'s' if total > 1 else ''})"
                                   if parts else "")
            if pd.notna(row.note) and row.note:
                said[row.run] += f" ({row.note})"
        rows.append(said)
    return pd.DataFrame(rows, columns=["table", *found.names])


def _top_binding(binding: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, float]]:
    """The constraints binding with a price in any run, the largest impacts of each stage
    first (at most BINDING_SHOWN a stage): {(stage, family, labels): {run: dual}}."""
    if binding.empty:
        return {}
    keys = ["stage", "family", "labels"]
    impact = binding.groupby(keys, sort=False)["impact"].max().reset_index()
    order = {s: i for i, s in enumerate(dict.fromkeys(binding["stage"]))}
    impact["order"] = impact["stage"].map(order)
    impact = impact.sort_values(["order", "impact", "family", "labels"],
                                ascending=[True, False, True, True], kind="stable")
    top = impact.groupby("stage", sort=False).head(BINDING_SHOWN)
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for row in top.itertuples(index=False):
        mine = binding[(binding["stage"] == row.stage) & (binding["family"] == row.family)
                       & (binding["labels"] == row.labels)]
        out[(str(row.stage), str(row.family), str(row.labels))] = dict(
            zip(mine["run"], mine["dual"].astype(float), strict=True))
    return out


# --- pictures and pages ------------------------------------------------------------------------


def _kpi_bars(found: Comparison) -> str:
    kpis = found.kpis
    shown = [(c, t) for c, t in (("objective_service", "service stage (weighted shortfall)"),
                                 ("plan_cost", "cost (money)"), ("fte", "FTE"),
                                 ("demand_served_share", "demand served (%)"))
             if c in kpis and kpis[c].notna().any()]
    if not shown:
        return ""
    fig, axes = figure(9, 2.4 * math.ceil(len(shown) / 2), ncols=1)
    fig.clf()
    colors = ["#5b7fa6", "#4c8c6c", "#d9a441", "#8c5b9e", "#d9604c", "#55606d"]
    labels = [str(n) for n in kpis["run"]]
    for k, (column, title) in enumerate(shown):
        ax = fig.add_subplot(math.ceil(len(shown) / 2), 2, k + 1)
        values = kpis[column].astype(float) * (100 if column == "demand_served_share" else 1)
        ax.bar(range(len(labels)), values.fillna(0.0),
               color=[colors[i % len(colors)] for i in range(len(labels))])
        ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0,
                      ha="right" if len(labels) > 3 else "center")
        ax.set_title(title, pad=10)
        finite = values.dropna()
        if len(finite) and column != "objective_service":
            low, high = float(finite.min()), float(finite.max())
            pad = max((high - low) * 0.5, abs(high) * 0.02, 1e-9)
            ax.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, high + pad)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.yaxis.set_major_formatter(lambda v, _pos: _cell(float(v)))
        for i, v in enumerate(values):
            if pd.notna(v):
                ax.annotate(_cell(float(v)), (i, v), ha="center", va="bottom", fontsize=7)
    fig.subplots_adjust(hspace=0.6, wspace=0.4)
    del axes
    return svg_of(fig)


def _heat_maps(found: Comparison) -> str:
    coverage = found.coverage
    if coverage.empty:
        return ""
    grid = coverage.pivot_table(index="site_id", columns=["run", "service_id"],
                                values="served_share", aggfunc="first")
    worst = coverage.groupby("site_id")["served_share"].min().sort_values(kind="stable")
    sites = sorted(worst.index[:HEAT_SITES].astype(str))
    services = sorted(coverage["service_id"].astype(str).unique())
    runs = list(found.names)
    fig, axes = figure(min(2.6 * len(runs) + 1.5, 14), max(2.2, 0.26 * len(sites) + 1.2),
                       ncols=len(runs))
    axes = np.atleast_1d(axes)
    image = None
    for ax, run in zip(axes, runs, strict=True):
        values = np.full((len(sites), len(services)), np.nan)
        for j, service in enumerate(services):
            if (run, service) in grid.columns:
                values[:, j] = grid[(run, service)].reindex(sites).to_numpy(dtype=float)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0.0, vmax=1.0,
                          aspect="auto")
        ax.set_title(run)
        ax.set_xticks(range(len(services)), services, rotation=45, ha="right")
        ax.set_yticks(range(len(sites)), sites if ax is axes[0] else [""] * len(sites))
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v) and v < 0.995 and len(sites) <= 25:
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=6)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="share of demand served", shrink=0.8)
    hidden = coverage["site_id"].nunique() - len(sites)
    note = (f"<p class='muted'>The {len(sites)} least covered sites; {hidden} more in "
            "compare_coverage.csv.</p>" if hidden > 0 else "")
    return svg_of(fig) + note


def _md_table(frame: pd.DataFrame, limit: int = 200) -> str:
    if frame.empty:
        return "_No rows._\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = []
    for row in frame.head(limit).itertuples(index=False):
        body.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    more = f"\n_{len(frame) - limit} more rows in the CSV file._\n" if len(frame) > limit \
        else ""
    return "\n".join([head, rule, *body]) + "\n" + more


def _cell(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | float | np.number):
        number = float(value)
        if math.isnan(number):
            return ""
        if not math.isfinite(number):
            return "unlimited" if number > 0 else "-unlimited"
        if abs(number) >= 1000:
            return f"{number:,.0f}"
        return "0" if abs(number) < 1e-6 else f"{number:,.4g}"  # below: the solver's noise
    return "" if value is None else str(value)


def _shown(found: Comparison) -> pd.DataFrame:
    """compare.csv as a person reads it: shares in %, the detail of coverage left to the CSV
    when it is long."""
    frame = found.side_by_side.copy()
    frame = frame[frame["section"] != "input"]  # said in words in its own table
    unit = frame["unit"].astype(str)
    share, money = unit.str.startswith("share"), unit.str.startswith("money")
    for name in found.names:
        frame[name] = [f"{float(v):.1%}" if s and pd.notna(v) else
                       f"{round(float(v)) + 0:,}" if m and pd.notna(v) else _cell(v)
                       for v, s, m in zip(frame[name], share, money, strict=True)]
    cells = frame["section"] == "coverage"
    if cells.sum() > 60:
        frame = frame[~cells]
    return frame


def compare_markdown(found: Comparison) -> str:
    lines = [f"# Compare: {' | '.join(found.names)}", ""]
    for name, folder, source in zip(found.names, found.folders, found.sources, strict=True):
        lines.append(f"- **{name}**: {source}" + (f" (run: `{folder}`)" if str(folder) != source
                                                   else ""))
    status = pd.DataFrame({"run": list(found.names), "status": list(found.kpis["status"])})
    lines += ["", _md_table(status), "## Side by side (`compare.csv`)", "",
              _md_table(_shown(found), 400),
              f"## Input tables against {found.names[0]}", "", _md_table(table_status(found))]
    if len(found.inputs):
        lines += [f"## Inputs that differ from {found.names[0]} (`compare_inputs.csv`)", ""]
        lines += [f"- {r.run}: {r.sentence}" for r in found.inputs.head(100).itertuples()]
        lines.append("")
    if found.diff is not None:
        lines += ["## What changed between the two (`diff.md`)", ""]
        lines += [f"- {s}" for s in found.diff.story] + [""]
    if found.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in found.notes], ""]
    return "\n".join(lines)


def compare_html(found: Comparison) -> str:
    runs = pd.DataFrame({"run": list(found.names), "source": list(found.sources),
                         "status": list(found.kpis["status"])})
    body = [f"<h1>Compare: {escape(' | '.join(found.names))}</h1>",
            html_table(runs, left=3), "<h2>Key figures</h2>", _kpi_bars(found),
            "<h2>Coverage by site and service</h2>", _heat_maps(found),
            "<h2>Side by side</h2>",
            "<p class='muted'>Stage objectives from each run's summary.json; cost and FTE "
            "from plan.csv; demand served from coverage.csv; budgets from budgets.csv; "
            "prices (change of the stage's objective per unit more of the limit) from "
            "sensitivity.csv.</p>", html_table(_shown(found), left=3),
            f"<h2>Input tables against {escape(found.names[0])}</h2>",
            html_table(table_status(found), left=len(found.names) + 1)]
    if len(found.inputs):
        body += [f"<h2>Inputs that differ from {escape(found.names[0])}</h2>",
                 "<ul>" + "".join(f"<li>{escape(r.run)}: {escape(r.sentence)}</li>"
                                  for r in found.inputs.head(100).itertuples()) + "</ul>"]
    if found.diff is not None:
        body += ["<h2>What changed between the two</h2>",
                 "<ul>" + "".join(f"<li>{escape(s)}</li>" for s in found.diff.story) + "</ul>",
                 "<p class='muted'>The whole detail: diff.html and its CSV files beside this "
                 "page.</p>"]
    if found.notes:
        body += ["<h2>Notes</h2>",
                 "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in found.notes) + "</ul>"]
    return html_page(f"Compare {' | '.join(found.names)}", "\n".join(body))


# --- the folder ----------------------------------------------------------------------------


def add_files(found: Comparison, folder: Any) -> None:
    """Every file of the comparison into an open run folder."""
    from allocator.diff.write import add_files as add_diff_files

    folder.table("compare", found.side_by_side)
    folder.table("compare_kpis", found.kpis)
    for name in ("coverage", "budgets", "binding", "inputs"):
        frame = getattr(found, name)
        folder.table(f"compare_{name}", frame)
    folder.text("compare.md", compare_markdown(found))
    folder.text("compare.html", compare_html(found))
    if found.diff is not None:
        add_diff_files(found.diff, folder)


def compare(items: Sequence[str | Path], out: str | Path | None = None, *,
            force: bool = False, overrides: Sequence[str] = (),
            on_solve: Any = None, store: str | bool | None = None) -> Comparison:
    """Scenario files or run folders side by side; scenarios are solved first (into
    `out/runs/<name>` when `out` is given, else temporary folders). With `out`, the folder
    is written whole or not at all, and the returned frames name the final run folders.
    `store`: record the solves in the run store (the CLI's default), by their final
    folders."""
    from allocator.outputs.folder import check_target

    if out is None:
        names, folders, sources = resolve_items(items, None, overrides, on_solve, store)
        return compare_runs(folders, names, sources)
    from allocator.diff.write import refuse_other_kind, refuse_out_over_inputs

    target = Path(out).expanduser()
    refuse_out_over_inputs(target, [Path(str(p)) for p in items
                                    if (Path(str(p)).expanduser() / "summary.json").is_file()])
    refuse_other_kind(target, force, "compare.csv", "compare")
    check_target(target, force)
    recorded: list[tuple[Path, Path]] = []
    from allocator.store.db import utcnow

    began = utcnow()
    try:
        return _compare_into(items, target, force, overrides, on_solve, store, recorded)
    except BaseException as exc:  # the solves' folders were not kept: the store says so
        _not_kept(recorded, store, exc, began)
        raise


def _not_kept(recorded: list[tuple[Path, Path]], store: str | bool | None,
              exc: BaseException, began: Any) -> None:
    from allocator.store.db import resolve_url
    from allocator.store.record import mark_not_kept

    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for scenario, named in recorded:
        with contextlib.suppress(Exception):  # the comparison's own error is the news
            url = resolve_url(None if store is True else str(store), scenario, named)
            if url is not None:
                mark_not_kept(url, named, f"solved for a comparison that then failed "
                                          f"({why}): its run folder was not kept", began)


def _compare_into(items: Sequence[str | Path], target: Path, force: bool,
                  overrides: Sequence[str], on_solve: Any, store: str | bool | None,
                  recorded: list[tuple[Path, Path]]) -> Comparison:
    from allocator.outputs.folder import run_folder

    with run_folder(target, ["csv"], force) as folder:
        names, folders, sources = resolve_items(items, folder.tmp / "runs", overrides,
                                                on_solve, store, target / "runs", recorded)
        found = compare_runs(folders, names, sources)
        final = tuple(target / p.relative_to(folder.tmp) if p.is_relative_to(folder.tmp)
                      else p for p in found.folders)
        diff = found.diff
        if diff is not None:  # diff.md names its two folders: the final ones
            diff = dataclasses.replace(diff, a=final[0], b=final[1])
        kpis = found.kpis.assign(folder=[str(p) for p in final])
        found = dataclasses.replace(found, folders=final, diff=diff, kpis=kpis)
        add_files(found, folder)
    return found
