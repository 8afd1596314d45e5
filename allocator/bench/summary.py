"""From results.csv to rankings: shifted geometric means, solved counts, wins, wrong answers.

Conventions (the usual ones of Mittelmann's and MIPLIB's benchmark tables):

- The time of a cell is the solver's own time (``solver_s``), not the process start-up.
- An instance counts as *solved* by a configuration when every replicate (seed × repeat) is
  verified correct, or is optimal where no optimum is published. A wrong answer is never
  solved, whatever its status.
- An unsolved instance is charged the time limit (or the hard timeout when there is none).
- Per configuration and instance, the replicates' median time is used; their spread is kept
  for ``compare``.
- Shifted geometric mean, shift 10 s: ``exp(mean(log(t + 10))) - 10``, over the instances that
  every configuration can attempt (an LP solver is not charged for the MIPs it cannot take),
  so that a configuration is not rewarded for the instances it skipped.
- Wins: instances a configuration solved at least as fast as every other (ties all win).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.bench.schema import CellStatus, Verdict
from allocator.bench.verify import ExpectedTable

SHIFT = 10.0
NUMERIC = ("threads", "time_limit", "mip_gap", "seed", "repeat", "objective", "bound", "gap",
           "wall_s", "solver_s", "solve_s", "build_s", "maxrss_mb", "hwm_mb", "rows", "cols",
           "integers", "obj_constant", "expected", "rel_err", "exit_code", "timeout_s")


def load_results(path: Path, expected: ExpectedTable | None = None) -> pd.DataFrame:
    """results.csv as a typed frame; verdicts recomputed when a table of optima is given."""
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
    for column in ("message", "verdict_note", "matched", "options"):
        if column in frame:
            frame[column] = frame[column].fillna("").astype(str)
    return frame


def shifted_geomean(times: np.ndarray | pd.Series, shift: float = SHIFT) -> float:
    values = np.asarray(times, dtype=float)
    if values.size == 0:
        return float("nan")
    return float(np.exp(np.mean(np.log(values + shift))) - shift)


def _solved(frame: pd.DataFrame) -> pd.Series:
    verified = frame["verdict"] == Verdict.CORRECT.value
    unverifiable = (frame["verdict"] == Verdict.UNKNOWN.value) & (
        frame["status"] == CellStatus.OPTIMAL.value)
    return verified | unverifiable


def cap_time(frame: pd.DataFrame) -> pd.Series:
    """The time charged to an unsolved cell: its time limit, else its hard timeout."""
    return frame["time_limit"].where(frame["time_limit"].notna(), frame["timeout_s"])


def per_instance(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration × instance: replicates folded into median, min and max."""
    work = frame.copy()
    work["solved"] = _solved(work)
    work["na"] = work["status"] == CellStatus.NOT_APPLICABLE.value
    work["wrong"] = work["verdict"] == Verdict.WRONG.value
    work["failed"] = work["status"].map(lambda s: CellStatus(s).is_failure)
    work["t"] = work["solver_s"].where(work["solved"], cap_time(work))
    grouped = work.groupby(["config", "instance"], sort=False)
    out = grouped.agg(
        replicates=("t", "size"), time=("t", "median"), t_min=("t", "min"),
        t_max=("t", "max"), solved=("solved", "all"), na=("na", "all"),
        wrong=("wrong", "any"), failed=("failed", "any"), status=("status", _mode),
        verdict=("verdict", _worst), objective=("objective", "median"),
        expected=("expected", "first"), matched=("matched", "first"),
        hwm_mb=("hwm_mb", "max"), maxrss_mb=("maxrss_mb", "max"),
        wall_s=("wall_s", "median"), build_s=("build_s", "median"),
        solver_s=("solver_s", "median"),
    ).reset_index()
    return out


def _mode(values: pd.Series) -> str:
    return str(values.mode().iloc[0]) if len(values) else ""


_ORDER = [Verdict.WRONG, Verdict.UNPROVEN, Verdict.UNKNOWN, Verdict.NOT_APPLICABLE,
          Verdict.CORRECT]


def _worst(values: pd.Series) -> str:
    present = set(values)
    return next((v.value for v in _ORDER if v.value in present), "")


def common_instances(cells: pd.DataFrame) -> list[str]:
    """Instances that no configuration is unable to take (the set the rankings run over)."""
    na = cells.groupby("instance", sort=False)["na"].any()
    common = [name for name, skipped in na.items() if not skipped]
    return common or list(na.index)


def per_config(cells: pd.DataFrame) -> pd.DataFrame:
    """The ranking table: one row per configuration."""
    common = common_instances(cells)
    ranked = cells[cells["instance"].isin(common)]
    best = ranked[ranked["solved"]].groupby("instance")["time"].min()
    rows = []
    for config, group in cells.groupby("config", sort=False):
        attempted = group[~group["na"]]
        in_common = ranked[ranked["config"] == config]
        wins = sum(1 for _, r in in_common.iterrows()
                   if r["solved"] and r["time"] <= best.get(r["instance"], math.inf) * (1 + 1e-9))
        rows.append({
            "config": config,
            "instances": len(attempted),
            "solved": int(attempted["solved"].sum()),
            "wrong": int(attempted["wrong"].sum()),
            "unproven": int((~attempted["solved"] & ~attempted["wrong"]).sum()),
            "failed": int(attempted["failed"].sum()),
            "not_applicable": int(group["na"].sum()),
            "sgm_s": shifted_geomean(in_common["time"]),
            "sgm_over": len(in_common),
            "wins": wins,
            "peak_mb": float(group["hwm_mb"].max()) if group["hwm_mb"].notna().any()
            else float(group["maxrss_mb"].max()),
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["solved", "sgm_s"], ascending=[False, True], kind="stable")


@dataclass
class Summary:
    """Everything the writers need."""

    results: pd.DataFrame  # one row per cell
    cells: pd.DataFrame  # one row per configuration × instance
    configs: pd.DataFrame  # one row per configuration
    wrong: pd.DataFrame  # the cells with a wrong answer
    conventions: list[str]  # sentences the report states (objective constants matched, ...)

    @property
    def replicates(self) -> int:
        return int(self.cells["replicates"].max()) if len(self.cells) else 0


def summarize(frame: pd.DataFrame) -> Summary:
    cells = per_instance(frame)
    wrong = frame[frame["verdict"] == Verdict.WRONG.value]
    conventions = []
    alternate = frame[(frame["matched"] != "") & (frame["matched"] != "published")]
    for instance, group in alternate.groupby("instance"):
        row = group.iloc[0]
        conventions.append(
            f"{instance}: matched {row['expected']:.10g}, the value with the MPS objective "
            f"constant ({row['obj_constant']:g}) included, as HiGHS reads it; the published "
            "value leaves the constant out (both accepted, as expected.csv's note says).")
    return Summary(frame, cells, per_config(cells), wrong, conventions)


def instance_matrix(summary: Summary) -> pd.DataFrame:
    """Instances × configurations, each cell 'time verdict' (for the Markdown and HTML)."""
    marks = {Verdict.CORRECT.value: "ok", Verdict.WRONG.value: "WRONG",
             Verdict.UNPROVEN.value: "unproven", Verdict.UNKNOWN.value: "?",
             Verdict.NOT_APPLICABLE.value: "n/a"}
    cells = summary.cells.copy()
    # A wrong answer shows the time it took (the ranking charges it the time limit).
    cells["text"] = [
        "n/a" if r.na else
        f"{r.solver_s if r.wrong else r.time:.3g} s {marks.get(r.verdict, r.verdict)}"
        + ("" if r.solved or r.wrong else f" ({r.status})")
        for r in cells.itertuples()
    ]
    order = list(summary.configs["config"])
    matrix = cells.pivot(index="instance", columns="config", values="text")
    return matrix[[c for c in order if c in matrix.columns]]
