"""From results.csv to rankings: shifted geometric means, outcomes, wins, wrong answers.

Conventions (the usual ones of Mittelmann's and MIPLIB's benchmark tables), each one applied
in one place here so that the table, the per-instance matrix and the performance profile
can never disagree:

- The time of a cell is the solver's own time (``solver_s``, every lexicographic stage of a
  scenario), not the process start-up.
- **Resolution.** Times below ``RESOLUTION`` (10 ms) are below what a forked process on a
  loaded machine times reliably: they count as ``RESOLUTION`` everywhere (wins, shifted
  geometric mean, profile), so two solves under it tie, and they print as "<0.01 s". The
  summary states the resolution.
- **One outcome per cell** (configuration × instance, replicates folded, the worst wins):
  ``wrong`` (a published optimum contradicted), ``disagree`` (no published optimum, and the
  configurations' proven optima differ), ``failed`` (the harness lost the answer: error,
  crash, lost worker), ``timeout`` (killed at the hard timeout), ``unproven`` (the solver
  stopped without a proof), ``solved``, or ``n/a`` (the solver cannot take the instance).
  The counts add up to the instances.
- An unsolved instance is charged the time limit (or the hard timeout when there is none).
- Per configuration and instance, the replicates' median time is used, with their min and
  max beside it.
- Shifted geometric mean, shift 10 s: ``exp(mean(log(t + 10))) - 10``, over the instances that
  every configuration can attempt (an LP solver is not charged for the MIPs it cannot take),
  so that a configuration is not rewarded for the instances it skipped; ``sgm_min`` and
  ``sgm_max`` are the same mean over each instance's fastest and slowest replicate.
- Wins: instances where a configuration's performance ratio (the profile's) is 1 — solved at
  least as fast as every other (ties all win). A win is *clear* when it is the only winner
  and its slowest replicate beats every other solved configuration's fastest; otherwise it
  is *within noise*. With one replicate there is no spread, and the summary says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.bench.schema import CellStatus, Verdict
from allocator.bench.verify import ExpectedTable, cross_check

SHIFT = 10.0
RESOLUTION = 0.01  # seconds; see the module docstring
NUMERIC = ("threads", "time_limit", "mip_gap", "seed", "repeat", "objective", "bound", "gap",
           "wall_s", "solver_s", "solve_s", "build_s", "maxrss_mb", "hwm_mb", "base_mb",
           "rows", "cols", "integers", "obj_constant", "expected", "rel_err", "exit_code",
           "timeout_s")

# Outcomes, worst first: a cell takes the worst of its replicates'.
OUTCOMES = ("wrong", "disagree", "failed", "timeout", "unproven", "solved", "n/a")
# Every mark a table shows, with what it means (printed under every table that uses them).
LEGEND = {
    "ok": "solved, and the optimum matches the published value",
    "agree": "solved; no published optimum, and every configuration's proven optimum agrees "
             "on every stage",
    "?": "solved (proven optimal) but not verified: no published optimum and no other "
         "configuration to check it against",
    "WRONG": "the answer contradicts the published optimum (counted unsolved)",
    "DISAGREE": "no published optimum, and the configurations' proven optima differ: one of "
                "them is wrong (counted unsolved)",
    "unproven": "the solver stopped without proving optimality (its status in brackets)",
    "timeout": "killed at the hard timeout",
    "failed": "no answer: solver error, crashed process or lost worker (status in brackets)",
    "n/a": "the solver cannot take this instance (not counted)",
    "<0.01 s": f"faster than the {RESOLUTION:g} s timing resolution: a tie with any other",
    "[a–b]": "fastest and slowest replicate (the number before it is the median)",
}


def load_results(path: Path, expected: ExpectedTable | None = None) -> pd.DataFrame:
    """results.csv as a typed frame; verdicts recomputed when a table of optima is given, and
    instances with no published optimum checked across configurations."""
    from allocator.bench.runner import read_results, verdict_columns

    rows = read_results(path)
    if expected is not None:
        rows = [r | verdict_columns(r, expected) for r in rows]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in NUMERIC:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("message", "verdict_note", "matched", "options", "stages", "stage_s"):
        if column in frame:
            frame[column] = frame[column].fillna("").astype(str)
    return cross_check(frame)


def shifted_geomean(times: np.ndarray | pd.Series, shift: float = SHIFT) -> float:
    values = np.asarray(times, dtype=float)
    if values.size == 0:
        return float("nan")
    return float(np.exp(np.mean(np.log(values + shift))) - shift)


def solved_rows(frame: pd.DataFrame) -> pd.Series:
    """A replicate counts as solved: verified, agreed, or proven optimal with nothing to check."""
    verified = frame["verdict"].isin([Verdict.CORRECT.value, Verdict.AGREED.value])
    unverifiable = (frame["verdict"] == Verdict.UNKNOWN.value) & (
        frame["status"] == CellStatus.OPTIMAL.value)
    return verified | unverifiable


def cap_time(frame: pd.DataFrame) -> pd.Series:
    """The time charged to an unsolved cell: its time limit, else its hard timeout."""
    return frame["time_limit"].where(frame["time_limit"].notna(), frame["timeout_s"])


def charged_time(frame: pd.DataFrame) -> pd.Series:
    """Per replicate: the solver's time if solved, else the cap; never below the resolution."""
    return frame["solver_s"].where(solved_rows(frame), cap_time(frame)).clip(lower=RESOLUTION)


def row_outcome(frame: pd.DataFrame) -> pd.Series:
    status, verdict = frame["status"], frame["verdict"]
    failed = status.isin([CellStatus.ERROR.value, CellStatus.CRASHED.value,
                          CellStatus.LOST.value])
    choices = [
        status == CellStatus.NOT_APPLICABLE.value,
        verdict == Verdict.WRONG.value,
        verdict == Verdict.DISAGREE.value,
        failed,
        status == CellStatus.TIMEOUT.value,
        solved_rows(frame),
    ]
    return pd.Series(np.select(choices, ["n/a", "wrong", "disagree", "failed", "timeout",
                                         "solved"], "unproven"), index=frame.index)


def _worst_outcome(values: pd.Series) -> str:
    present = set(values)
    if present == {"n/a"}:
        return "n/a"
    return next(o for o in OUTCOMES if o in present)


def per_instance(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration × instance: replicates folded into median, min and max."""
    work = frame.copy()
    work["outcome_row"] = row_outcome(work)
    work["t"] = charged_time(work)
    work["solved"] = work["outcome_row"] == "solved"
    if "base_mb" not in work:
        work["base_mb"] = np.nan
    grouped = work.groupby(["config", "instance"], sort=False)
    out = grouped.agg(
        replicates=("t", "size"), time=("t", "median"), t_min=("t", "min"),
        t_max=("t", "max"), solved=("solved", "all"), outcome=("outcome_row", _worst_outcome),
        status=("status", _mode), verdict=("verdict", _worst),
        objective=("objective", "median"), expected=("expected", "first"),
        matched=("matched", "first"), hwm_mb=("hwm_mb", "max"), base_mb=("base_mb", "median"),
        maxrss_mb=("maxrss_mb", "max"), wall_s=("wall_s", "median"),
        build_s=("build_s", "median"), solver_s=("solver_s", "median"),
    ).reset_index()
    # A cell with an unsolved replicate is unsolved: charged its cap (the slowest charge),
    # not the median of its replicates, in the means as in the profile.
    out["time"] = out["time"].where(out["outcome"] == "solved", out["t_max"])
    out["stage_times"] = _stage_times(work, out)
    out["na"] = out["outcome"] == "n/a"
    out["wrong"] = out["outcome"].isin(["wrong", "disagree"])
    out["solved"] = out["outcome"] == "solved"
    return out


def _stage_times(work: pd.DataFrame, cells: pd.DataFrame) -> list[str]:
    """Per cell, each lexicographic stage's median time over the replicates ('' for a one-
    stage instance): where a scenario's time goes."""
    from allocator.bench.cells import decode_stages

    if "stage_s" not in work:
        return [""] * len(cells)
    texts = {}
    for key, group in work.groupby(["config", "instance"], sort=False):
        stages = [decode_stages(text) for text in group["stage_s"]]
        names = list(dict.fromkeys(n for st in stages for n in st))
        if len(names) < 2:
            continue
        texts[key] = "; ".join(
            f"{n} {format_time(float(np.median([st[n] for st in stages if n in st])))}"
            for n in names)
    return [texts.get((c, i), "") for c, i in zip(cells["config"], cells["instance"],
                                                      strict=True)]


def stage_matrix(summary: Summary) -> pd.DataFrame:
    """Instances with several stages (scenarios) × configurations: each stage's time."""
    staged = summary.cells[summary.cells["stage_times"] != ""]
    if staged.empty:
        return pd.DataFrame()
    return staged.pivot(index="instance", columns="config", values="stage_times").fillna("")


def _mode(values: pd.Series) -> str:
    return str(values.mode().iloc[0]) if len(values) else ""


_ORDER = [Verdict.WRONG, Verdict.DISAGREE, Verdict.UNPROVEN, Verdict.UNKNOWN,
          Verdict.NOT_APPLICABLE, Verdict.AGREED, Verdict.CORRECT]


def _worst(values: pd.Series) -> str:
    present = set(values)
    return next((v.value for v in _ORDER if v.value in present), "")


def common_instances(cells: pd.DataFrame) -> list[str]:
    """Instances that no configuration is unable to take (the set the rankings run over)."""
    na = cells.groupby("instance", sort=False)["na"].any()
    common = [name for name, skipped in na.items() if not skipped]
    return common or list(na.index)


def ratios(cells: pd.DataFrame, instances: list[str]) -> pd.DataFrame:
    """Performance ratios, instances × configurations (inf where not solved).

    The one computation behind the profile *and* the wins column: a win is a ratio of 1.
    """
    subset = cells[cells["instance"].isin(instances)]
    time = subset["time"].where(subset["solved"], np.inf)
    table = subset.assign(t=time).pivot(index="instance", columns="config", values="t")
    best = table.min(axis=1)
    return table.div(best.where(np.isfinite(best), np.nan), axis=0).fillna(np.inf)


def winners(cells: pd.DataFrame, instances: list[str]) -> pd.DataFrame:
    """Per instance: who won, and whether the win stands clear of the replicates' noise."""
    table = ratios(cells, instances)
    indexed = cells.set_index(["instance", "config"])
    rows = []
    for instance, row in table.iterrows():
        won = [c for c in table.columns if row[c] <= 1.0]
        if not won:
            rows.append({"instance": instance, "winner": "", "win": "nobody solved it"})
            continue
        others = [c for c in table.columns if c not in won and np.isfinite(row[c])]
        if len(won) > 1:
            kind = "tie"
        elif int(indexed.loc[(instance, won[0]), "replicates"]) < 2:
            kind = "single repeat"
        elif all(indexed.loc[(instance, won[0]), "t_max"]
                 < indexed.loc[(instance, o), "t_min"] for o in others):
            kind = "clear"
        else:
            kind = "within noise"
        rows.append({"instance": instance, "winner": ", ".join(map(str, won)), "win": kind})
    return pd.DataFrame(rows, columns=["instance", "winner", "win"])


def per_config(cells: pd.DataFrame) -> pd.DataFrame:
    """The ranking table: one row per configuration."""
    common = common_instances(cells)
    ranked = cells[cells["instance"].isin(common)]
    table = ratios(cells, common)
    wins = winners(cells, common)
    rows = []
    for config, group in cells.groupby("config", sort=False):
        attempted = group[~group["na"]]
        in_common = ranked[ranked["config"] == config]
        won = wins[wins["winner"].str.split(", ").map(lambda names, c=config: c in names)]
        counts = attempted["outcome"].value_counts()
        peak = group["hwm_mb"] if group["hwm_mb"].notna().any() else group["maxrss_mb"]
        rows.append({
            "config": config,
            "instances": len(attempted),
            **{name.replace("/", "_"): int(counts.get(name, 0)) for name in OUTCOMES[:-1]},
            "not_applicable": int(group["na"].sum()),
            "sgm_s": shifted_geomean(in_common["time"]),
            "sgm_min": shifted_geomean(in_common["t_min"]),
            "sgm_max": shifted_geomean(in_common["t_max"]),
            "sgm_over": len(in_common),
            "wins": int((table[config] <= 1.0).sum()) if config in table else 0,
            "clear_wins": int((won["win"] == "clear").sum()),
            "peak_mb": float(peak.max()),
            "base_mb": float(group["base_mb"].median()),
        })
    frame = pd.DataFrame(rows)
    return frame.sort_values(["solved", "sgm_s"], ascending=[False, True], kind="stable")


@dataclass
class Summary:
    """Everything the writers need."""

    results: pd.DataFrame  # one row per cell
    cells: pd.DataFrame  # one row per configuration × instance
    configs: pd.DataFrame  # one row per configuration
    wrong: pd.DataFrame  # the cells with a wrong answer or a disagreement
    conventions: list[str]  # sentences the report states (objective constants matched, ...)
    wins: pd.DataFrame | None = None  # per instance: winner and how clear the win is

    @property
    def replicates(self) -> int:
        return int(self.cells["replicates"].max()) if len(self.cells) else 0

    @property
    def single_repeat(self) -> bool:
        return bool(len(self.cells)) and int(self.cells["replicates"].min()) < 2

    def noise_note(self) -> str:
        """What the spread of repeats allows the reader to conclude."""
        if self.single_repeat:
            return ("One replicate per cell: no spread, so no win can be told from noise "
                    "(run with --repeats 3 or --seeds 0,1,2).")
        wins = self.wins if self.wins is not None else pd.DataFrame(columns=["win"])
        noisy = int((wins["win"] == "within noise").sum())
        return (f"{self.replicates} replicates per cell; {noisy} of {len(wins)} instances "
                "were won within noise (the winner's slowest replicate not faster than the "
                "runner-up's fastest).")


def summarize(frame: pd.DataFrame) -> Summary:
    cells = per_instance(frame)
    wrong = frame[frame["verdict"].isin([Verdict.WRONG.value, Verdict.DISAGREE.value])]
    conventions = [
        f"Timing resolution {RESOLUTION:g} s: a time below it counts as {RESOLUTION:g} s in "
        "the wins, the shifted geometric means and the profile alike (a tie), and prints as "
        f"<{RESOLUTION:g} s.",
    ]
    alternate = frame[(frame["matched"] != "") & (frame["matched"] != "published")]
    for instance, group in alternate.groupby("instance"):
        row = group.iloc[0]
        conventions.append(
            f"{instance}: matched {row['expected']:.10g}, the value with the MPS objective "
            f"constant ({row['obj_constant']:g}) included, as HiGHS reads it; the published "
            "value leaves the constant out (both accepted, as expected.csv's note says).")
    common = common_instances(cells)
    return Summary(frame, cells, per_config(cells), wrong, conventions,
                   winners(cells, common))


def format_time(seconds: float) -> str:
    if not np.isfinite(seconds):
        return ""
    return f"<{RESOLUTION:g} s" if seconds <= RESOLUTION else f"{seconds:.3g} s"


_MARKS = {Verdict.CORRECT.value: "ok", Verdict.AGREED.value: "agree",
          Verdict.UNKNOWN.value: "?"}


def cell_text(r: Any) -> str:
    """One matrix cell: time (median [min–max]) and the outcome's mark, from the legend."""
    outcome = r.outcome
    if outcome == "n/a":
        return "n/a"
    if outcome in ("wrong", "disagree"):  # shows the time it took; ranked as unsolved
        return f"{format_time(max(r.solver_s, RESOLUTION))} {outcome.upper()}"
    if outcome in ("unproven", "failed"):
        return f"{outcome} ({r.status})"
    if outcome != "solved":
        return str(outcome)
    text = format_time(r.time)
    if r.replicates > 1:
        text += f" [{format_time(r.t_min)[:-2]}–{format_time(r.t_max)[:-2]}]"
    return f"{text} {_MARKS.get(r.verdict, '?')}"


def instance_matrix(summary: Summary) -> pd.DataFrame:
    """Instances × configurations, one outcome per cell, plus who won each instance."""
    cells = summary.cells.copy()
    cells["text"] = [cell_text(r) for r in cells.itertuples()]
    order = list(summary.configs["config"])
    matrix = cells.pivot(index="instance", columns="config", values="text")
    matrix = matrix[[c for c in order if c in matrix.columns]]
    if summary.wins is not None and len(summary.wins):
        wins = summary.wins.set_index("instance")
        matrix["winner"] = [
            f"{wins.at[i, 'winner']} ({wins.at[i, 'win']})" if i in wins.index
            and wins.at[i, "winner"] else "" for i in matrix.index]
    return matrix
