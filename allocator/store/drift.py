"""`allocator runs drift`: how the recorded runs of a scenario move over the nights.

Everything comes from the store (no run folder is opened): each run's stage objectives and
solve time (`runs`, `run_stages`) and its top binding constraints with their shadow prices
(`run_constraints`: the first rows of its bottlenecks.csv, ranked by impact). A constraint
absent from a run's top rows was not among that night's bottlenecks (it may still have been
binding lower down: the store keeps the top 15).

The bottleneck of a run is its first-ranked row; a sentence is said each time it changes.
A run is flagged when its solve time is over `slow_factor` times the median of the runs
before it (and slower by `min_seconds` at least: a 5 ms solve twice as slow as 2 ms is not
news), or when a stage's objective is further than `objective_jump` (relative) from the
median of the runs before it."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SLOW_FACTOR = 2.0
MIN_SECONDS = 0.5
OBJECTIVE_JUMP = 0.25
FINISHED = ("optimal", "feasible")  # runs with a plan: the ones whose figures are series
FAMILY_WORDS = {"budget": "budget {}", "capacity": "site {} capacity",
                "min_staff": "site {} minimum staffing", "fte": "the FTE of staff {}",
                "availability": "the availability of staff {}", "coverage": "coverage of {}",
                "floor": "the service floor of {}", "moved": "the FTE-moved limit"}


@dataclass(frozen=True)
class Drift:
    runs: pd.DataFrame  # one row per run, oldest first: times, objectives (objective_<stage>)
    binding: pd.DataFrame  # run x top binding constraint (long): rank, dual, rhs, range
    shadow: pd.DataFrame  # the same, wide: one column of shadow prices per constraint
    bottlenecks: pd.DataFrame  # each run's first-ranked constraint
    flags: pd.DataFrame  # run, what, value, median of the runs before, sentence
    sentences: list[str] = field(default_factory=list)


def constraint_name(family: Any, labels: Any, stage: Any = None) -> str:
    """'budget B-SOU', 'site LEE capacity', 'the FTE of staff E1' (+ the stage)."""
    fam, lab = str(family or "constraint"), str(labels or "").strip()
    text = FAMILY_WORDS.get(fam, fam + " {}").format(lab).strip()
    return f"{text} ({stage})" if stage else text


def when(value: dt.datetime, others: pd.Series) -> str:
    """'3 March 2026', with the time where another run shares that day."""
    day = f"{value.day} {value:%B %Y}"
    same = sum(1 for o in others if o.date() == value.date())
    return f"{day} {value:%H:%M:%S} UTC" if same > 1 else day


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def load(session: Any, scenario: str | None = None, last: int = 30,
         what_ifs: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The newest `last` runs (0: all) with their stages and top constraints, oldest first.
    `what_ifs`: count the solves `allocator compare` recorded (edited copies of the
    scenario); left out by default, as the warm start leaves them out, so that an
    afternoon's comparison is neither a night in the series nor an outlier flagged."""
    from sqlalchemy import select

    from allocator.store.lookup import what_if_command
    from allocator.store.models import Run, RunConstraint, RunStage

    query = select(Run.id, Run.uid, Run.scenario_name, Run.status, Run.exit_code,
                   Run.started_at, Run.solve_seconds, Run.total_seconds, Run.folder,
                   Run.command).order_by(Run.started_at.desc(), Run.id.desc())
    if scenario:
        query = query.where(Run.scenario_name == scenario)
    if last and what_ifs:
        query = query.limit(last)
    rows = [row for row in session.execute(query)
            if what_ifs or not what_if_command(row.command)]
    runs = pd.DataFrame([tuple(row)[:-1] for row in rows[:last or None]],
                        columns=["run_id", "uid", "scenario", "status", "exit_code",
                                 "started_at", "solve_seconds", "total_seconds", "folder"])
    runs = runs.iloc[::-1].reset_index(drop=True)
    runs["started_at"] = [_aware(v) for v in runs["started_at"]]
    ids = [int(i) for i in runs["run_id"]]
    stages = pd.DataFrame(session.execute(
        select(RunStage.run_id, RunStage.position, RunStage.name, RunStage.objective)
        .where(RunStage.run_id.in_(ids))).all(),
        columns=["run_id", "position", "stage", "objective"]) if ids else pd.DataFrame(
        columns=["run_id", "position", "stage", "objective"])
    constraints = pd.DataFrame(session.execute(
        select(RunConstraint.run_id, RunConstraint.rank, RunConstraint.stage,
               RunConstraint.kind, RunConstraint.family, RunConstraint.labels,
               RunConstraint.dual, RunConstraint.rhs, RunConstraint.rhs_low,
               RunConstraint.rhs_high, RunConstraint.impact)
        .where(RunConstraint.run_id.in_(ids))).all(),
        columns=["run_id", "rank", "stage", "kind", "family", "labels", "dual", "rhs",
                 "rhs_low", "rhs_high", "impact"]) if ids else pd.DataFrame(
        columns=["run_id", "rank", "stage", "kind", "family", "labels", "dual", "rhs",
                 "rhs_low", "rhs_high", "impact"])
    return runs, stages, constraints


def _history_median(values: pd.Series) -> pd.Series:
    """Each value's history: the median of the values before it (NaN for the first)."""
    return values.expanding().median().shift(1)


def flag_runs(runs: pd.DataFrame, slow_factor: float = SLOW_FACTOR,
              min_seconds: float = MIN_SECONDS,
              objective_jump: float = OBJECTIVE_JUMP) -> pd.DataFrame:
    """Runs whose solve time or an objective is well outside the runs before them (of the
    same scenario, finished with a plan)."""
    found = []
    for scenario, group in runs[runs["status"].isin(FINISHED)].groupby("scenario", sort=True):
        group = group.sort_values(["started_at", "run_id"], kind="stable")
        series = {"solve_seconds": group["solve_seconds"].astype(float)}
        series |= {c: group[c].astype(float) for c in group.columns
                   if c.startswith("objective_")}
        for what, values in series.items():
            history = _history_median(values.dropna()).reindex(values.index)
            for idx in values.index:
                value, median = values[idx], history[idx]
                if pd.isna(value) or pd.isna(median):
                    continue
                run_id = int(group.at[idx, "run_id"])
                if what == "solve_seconds":
                    if value > slow_factor * median and value - median >= min_seconds:
                        found.append((run_id, scenario, what, value, median, value / median,
                                      f"run {run_id} solved in {value:.3g} s, "
                                      f"{value / median:.1f}x the median {median:.3g} s of "
                                      "the runs before it"))
                elif abs(value - median) > 1e-9:
                    stage = what.removeprefix("objective_")
                    if abs(median) <= 1e-9:
                        # no share of a zero median: '250000000000000% from the median 0'
                        found.append((run_id, scenario, what, value, median, math.nan,
                                      f"run {run_id}: {stage} objective {value:,.6g}, where "
                                      "the runs before it had a median of 0"))
                        continue
                    jump = abs(value - median) / abs(median)
                    if jump > objective_jump:
                        found.append((run_id, scenario, what, value, median, jump,
                                      f"run {run_id}: {stage} objective {value:,.6g} is "
                                      f"{jump:.0%} from the median {median:,.6g} of the runs "
                                      "before it"))
    return pd.DataFrame(found, columns=["run_id", "scenario", "what", "value",
                                        "history_median", "ratio", "sentence"])


def drift(session: Any, scenario: str | None = None, last: int = 30,
          slow_factor: float = SLOW_FACTOR, min_seconds: float = MIN_SECONDS,
          objective_jump: float = OBJECTIVE_JUMP, what_ifs: bool = False) -> Drift:
    runs, stages, constraints = load(session, scenario, last, what_ifs)
    if scenario and runs.empty:
        _unknown_scenario(session, scenario)
    if len(stages):
        wide = stages.pivot_table(index="run_id", columns="stage", values="objective",
                                  aggfunc="first")
        order = stages.groupby("stage")["position"].min().sort_values().index
        wide = wide[list(order)]
        wide.columns = [f"objective_{c}" for c in wide.columns]
        runs = runs.merge(wide, left_on="run_id", right_index=True, how="left")
    moments = runs.set_index("run_id")["started_at"]
    binding = constraints.merge(runs[["run_id", "scenario", "started_at"]], on="run_id")
    binding["constraint"] = [constraint_name(f, lab, s) for f, lab, s in zip(
        binding["family"], binding["labels"], binding["stage"], strict=True)]
    binding = binding.sort_values(["started_at", "run_id", "rank"], kind="stable") \
        .reset_index(drop=True)
    shadow = binding.pivot_table(index="run_id", columns="constraint", values="dual",
                                 aggfunc="first") if len(binding) else pd.DataFrame()
    if len(shadow):
        shadow = shadow.reindex(runs["run_id"]).reset_index()
        shadow.insert(1, "started_at", shadow["run_id"].map(moments))
    first = binding[binding["rank"] == binding.groupby("run_id")["rank"].transform("min")]
    bottlenecks = first.drop_duplicates("run_id")[
        ["run_id", "scenario", "started_at", "stage", "family", "labels", "dual",
         "constraint"]].reset_index(drop=True)
    sentences = []
    for name, group in bottlenecks.groupby("scenario", sort=True):
        previous = None
        times = group["started_at"]
        for row in group.itertuples(index=False):
            now = constraint_name(row.family, row.labels)
            if previous is None:
                sentences.append(f"{name}: on {when(row.started_at, times)} (run "
                                 f"{row.run_id}) the bottleneck was {now} ({row.stage} "
                                 f"stage, shadow price {row.dual:,.6g}).")
            elif now != previous:
                sentences.append(f"{name}: the bottleneck moved from {previous} to {now} on "
                                 f"{when(row.started_at, times)} (run {row.run_id}).")
            previous = now
        if previous is not None and len(group) > 1 and not any(
                "moved from" in s for s in sentences if s.startswith(f"{name}:")):
            sentences.append(f"{name}: the bottleneck stayed {previous} over all "
                             f"{len(group)} runs.")
    sentences += _binding_sentences(binding, runs)
    flags = flag_runs(runs, slow_factor, min_seconds, objective_jump)
    sentences += [f"flag: {s}." for s in flags["sentence"]]
    return Drift(runs, binding, shadow, bottlenecks, flags, sentences)


def _unknown_scenario(session: Any, scenario: str) -> None:
    """A misspelt --scenario gives an empty drift that reads as 'nothing moved': refuse it,
    naming the scenarios the store has (the closest first)."""
    import difflib

    from sqlalchemy import select

    from allocator.errors import InputError
    from allocator.store.models import Run

    names = sorted({str(n) for (n,) in session.execute(select(Run.scenario_name).distinct())})
    if scenario in names:  # its only runs are what-ifs, left out without --what-ifs
        raise InputError(f"the store holds only what-if solves of scenario '{scenario}' "
                         "(made by allocator compare), not nights of it; add --what-ifs to "
                         "see them", "--scenario")
    close = difflib.get_close_matches(scenario, names, n=1, cutoff=0.6)
    hint = (f"; did you mean '{close[0]}'?" if close else ".") + (
        f" Scenarios in the store: {', '.join(names[:20])}" if names
        else " The store has no runs yet.")
    raise InputError(f"no run of scenario '{scenario}' in the store{hint}", "--scenario")


def _binding_sentences(binding: pd.DataFrame, runs: pd.DataFrame,
                       limit: int = 5) -> list[str]:
    """Which constraints were binding when: per scenario, the ones among the top in the most
    runs."""
    said: list[str] = []
    if binding.empty:
        return said
    # out of the runs with a plan: a failed or infeasible run has no binding rows to count
    counts = runs[runs["status"].isin(FINISHED)].groupby("scenario")["run_id"].nunique()
    for scenario, rows in binding.groupby("scenario", sort=True):
        groups = sorted(rows.groupby("constraint"), key=lambda g: (
            -g[1]["run_id"].nunique(), g[0]))
        for name, group in groups[:limit]:
            times = group["started_at"]
            prices = group["dual"].dropna()
            span = (f"shadow price {prices.iloc[0]:,.6g}" if prices.nunique() <= 1
                    and len(prices) else
                    f"shadow price from {prices.min():,.6g} to {prices.max():,.6g}")
            said.append(f"{scenario}: {name} was among the top binding constraints in "
                        f"{group['run_id'].nunique()} of {counts.get(scenario, 0)} runs "
                        "with a plan "
                        f"({times.min():%Y-%m-%d %H:%M} to {times.max():%Y-%m-%d %H:%M} UTC), "
                        f"{span}.")
    return said


# --- files ------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "series"


def _plot(x: pd.Series, series: dict[str, pd.Series], title: str, unit: str,
          flagged: pd.Series | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "svg.hashsalt": "allocator"})
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for label, values in series.items():
        ax.plot(range(len(x)), values.to_numpy(float), marker="o", label=label)
        if flagged is not None and flagged.any():
            hit = flagged.to_numpy(bool)
            ax.scatter(np.arange(len(x))[hit], values.to_numpy(float)[hit], s=120,
                       facecolors="none", edgecolors="#c8553d", linewidths=2,
                       label="flagged")
    ax.set_xticks(range(len(x)), list(x), rotation=20, ha="right")
    ax.set_ylabel(unit)
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    if len(series) > 1:
        ax.legend(fontsize=7)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def _labels(runs: pd.DataFrame) -> pd.Series:
    return pd.Series([f"{r.run_id} {r.started_at:%m-%d %H:%M}" for r in
                      runs.itertuples(index=False)], index=runs.index)


SHADOW_PLOTS = 12  # constraints plotted: those binding in the most runs (the CSV has all)


def write_drift(found: Drift, out: str | Path, force: bool = False) -> list[str]:
    """runs.csv, binding.csv, shadow_prices.csv, bottlenecks.csv, flags.csv, drift.md and an
    SVG per series, complete or absent (the run folder's atomic writer). Returns the files."""
    from allocator.diff.write import refuse_other_kind
    from allocator.outputs.folder import check_target, run_folder

    target = Path(out)
    refuse_other_kind(target, force, "drift.md", "runs drift")
    check_target(target, force)
    runs = found.runs
    x = _labels(runs)
    plots: dict[str, str] = {}
    names = sorted(runs["scenario"].unique())

    def by_scenario(col: str, label: str) -> dict[str, pd.Series]:
        """One line per scenario (runs of others are gaps in it)."""
        if len(names) <= 1:
            return {label: runs[col].astype(float)}
        return {f"{label}: {n}": runs[col].astype(float).where(runs["scenario"] == n)
                for n in names}

    for what in [c for c in runs.columns if c.startswith("objective_")]:
        stage = what.removeprefix("objective_")
        flagged = runs["run_id"].isin(found.flags.loc[found.flags["what"] == what, "run_id"])
        plots[f"objective_{_slug(stage)}.svg"] = _plot(
            x, by_scenario(what, stage), f"{stage} objective by run", stage, flagged)
    slow = runs["run_id"].isin(found.flags.loc[found.flags["what"] == "solve_seconds",
                                               "run_id"])
    plots["solve_seconds.svg"] = _plot(
        x, by_scenario("solve_seconds", "solve") | by_scenario("total_seconds", "total"),
        "solve and total time by run", "seconds", slow)
    if len(found.shadow):
        counts = found.binding.groupby("constraint")["run_id"].nunique().sort_values(
            ascending=False, kind="stable")
        for name in list(counts.index[:SHADOW_PLOTS]):
            values = found.shadow.set_index("run_id")[name].reindex(runs["run_id"])
            plots[f"shadow_{_slug(name)}.svg"] = _plot(
                x, {name: values.reset_index(drop=True)}, f"shadow price: {name}",
                "objective per unit (blank: not among the top binding)")
    tables = {"runs": runs, "binding": found.binding, "shadow_prices": found.shadow,
              "bottlenecks": found.bottlenecks, "flags": found.flags}
    md = ["# Drift", "", *[f"- {s}" for s in found.sentences], "",
          "Series: " + ", ".join(f"`{n}`" for n in plots), ""]
    with run_folder(target, ("csv",), force) as folder:
        for name, frame in tables.items():
            frame = frame.copy()
            if "started_at" in frame:
                frame["started_at"] = [v.isoformat() if isinstance(v, dt.datetime) else v
                                       for v in frame["started_at"]]
            folder.table(name, frame)
        for name, svg in plots.items():
            folder.text(name, svg)
        folder.text("drift.md", "\n".join(md))
    return [*(f"{n}.csv" for n in tables), *plots, "drift.md"]
