"""Infeasibility diagnosis for any formulation, from the labeled blocks alone.

The ops model has its own diagnosis in business words (diagnosis.py). Every other model gets
this one: an elastic relaxation of all constraint rows (one violation column per side),
minimizing the total violation relative to each row's size, reported per family and label;
and HiGHS's IIS of the LP relaxation, mapped to the same labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator.core.model import LinearModel, join_labels
from allocator.solvers.highs import load_into_highs, new_highs

# A safety stop on HiGHS's IIS (its deletion filter solves one LP per candidate row: 18 s on
# a 2,500-staff ops instance, 254 s on one with a baseline and a move limit). Stopped, the
# set is still infeasible but not fully reduced, and diagnosis.md says so.
IIS_SAFETY_SECONDS = 30.0

TOL = 1e-7


def _row_labels(model: LinearModel) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for block in model.con_blocks.values():
        out.extend((block.name, str(label)) for label in join_labels(block.labels))
    return out


def generic_diagnosis(model: LinearModel, title: str, time_limit: float = 60.0
                      ) -> tuple[str, dict[str, Any]]:
    labels = _row_labels(model)
    lo, hi = model.row_lo, model.row_hi
    highs = new_highs()
    load_into_highs(highs, model, np.zeros(model.num_vars))
    highs.setOptionValue("time_limit", float(time_limit))
    scale = 1.0 / np.maximum(1.0, np.where(np.isfinite(hi), np.abs(hi),
                                           np.where(np.isfinite(lo), np.abs(lo), 1.0)))
    rows = np.arange(model.num_rows)
    columns = {}
    empty = np.zeros(0, dtype=np.int32)
    for side, mask, sign in (("raise upper limit", np.isfinite(hi), -1.0),
                             ("lower lower limit", np.isfinite(lo), 1.0)):
        picked = rows[mask]
        k = picked.size
        if not k:
            continue
        start = highs.getNumCol()
        highs.addCols(k, scale[picked], np.zeros(k), np.full(k, 1e30), k,
                      np.arange(k, dtype=np.int32), picked.astype(np.int32), np.full(k, sign))
        columns[side] = (start, picked)
    del empty
    highs.run()
    repairs = []
    if highs.getModelStatus().name == "kOptimal":
        x = np.asarray(highs.getSolution().col_value)
        for side, (start, picked) in columns.items():
            values = x[start:start + picked.size]
            for r, v in zip(picked, values, strict=True):
                if v > TOL:
                    family, label = labels[r]
                    current = hi[r] if side.startswith("raise") else lo[r]
                    proposed = current + v if side.startswith("raise") else current - v
                    repairs.append({"family": family, "labels": label, "change": side,
                                    "current": float(current), "proposed": float(proposed)})
    conflict = []
    iis_model = new_highs()
    load_into_highs(iis_model, model, relax_integers=True)
    method = "elastic rows (violation relative to each limit) and HiGHS IIS"
    stop = min(IIS_SAFETY_SECONDS, max(1.0, time_limit))
    ends = time.monotonic() + stop  # one stop for both strategies
    for strategy in (6, 2):
        iis_model.setOptionValue("iis_strategy", strategy)
        iis_model.setOptionValue("iis_time_limit", max(0.5, ends - time.monotonic()))
        status, iis = iis_model.getIis()
        if status.name in ("kOk", "kWarning") and iis.valid_ and len(iis.row_index_):
            conflict = [{"family": labels[int(r)][0], "labels": labels[int(r)][1]}
                        for r in iis.row_index_]
            if status.name == "kWarning" and time.monotonic() >= ends - 0.1 * stop:
                method += (f" (stopped at its {stop:g} s safety limit: an "
                           "infeasible set, not fully reduced)")
            break
    payload = {"repairs": repairs, "conflict_set": conflict, "method": method}
    lines = [f"# No plan can be made: {title}", "",
             "The smallest relative change of the limits that makes a plan possible:", ""]
    lines += [f"- {r['family']} {r['labels']}: {r['change']} from {r['current']:g} to "
              f"{r['proposed']:g}" for r in repairs[:60]] or ["- (none found)"]
    lines += ["", "## Conflict set (these limits cannot hold together)", ""]
    lines += [f"- {c['family']} {c['labels']}" for c in conflict[:60]] or ["- (not available)"]
    return "\n".join(lines) + "\n", payload


# -- repairs in the input's terms ----------------------------------------------------------
@dataclass
class Lever:
    """One input figure a repair may change, and where it sits in the model.

    `row` with `sign` +1 raises the row's upper side (a budget, a capacity), -1 lowers its
    lower side (a demand, which is an equality: both sides move); `col` instead names a
    column whose lower bound is the figure (a spend floor), lowered. `guard` is a binary
    column that must be 0 for extra room in `row` to count (a site's capacity: not closed).
    """

    group: str  # the option it belongs to: "capacity", "budget", "floors", "demand"
    table: str
    position: int  # data row of `table` (0-based): the spreadsheet row comes from the source
    column: str
    label: str
    current: float
    sign: float
    row: int = -1
    col: int = -1
    guard: int = -1  # its column: 1 means the lever's site is closed (0: open)


OPTION_TITLES = {"capacity": "capacity only", "budget": "budgets only",
                 "floors": "spend floors only", "demand": "serve less demand",
                 "mix": "cheapest mix"}


def _elastic(model: LinearModel, levers: list[Lever], time_limit: float
             ) -> np.ndarray | None:
    """The least relative change of the levers' figures that lets a plan exist (the model's
    integers kept): one violation column per lever, each weighted by 1 / its figure."""
    import highspy

    highs = new_highs()
    lb = model.lb.copy()
    for lever in levers:
        if lever.col >= 0:
            lb[lever.col] = 0.0
    load_into_highs(highs, model, np.zeros(model.num_vars), lb=lb)
    highs.setOptionValue("time_limit", float(time_limit))
    big = 1e9
    start = highs.getNumCol()
    for lever in levers:
        cost = 1.0 / max(1.0, abs(lever.current))
        highs.addCol(cost, 0.0, highspy.kHighsInf, 0, np.zeros(0, np.int32), np.zeros(0))
        e = highs.getNumCol() - 1
        if lever.row >= 0:
            highs.changeCoeff(int(lever.row), e, -lever.sign)
            if lever.guard >= 0:
                highs.addRow(-highspy.kHighsInf, big, 2, np.array([e, lever.guard], np.int32),
                             np.array([1.0, big]))
        else:
            highs.addRow(float(lever.current), highspy.kHighsInf, 2,
                         np.array([lever.col, e], np.int32), np.array([1.0, 1.0]))
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return None
    x = np.asarray(highs.getSolution().col_value, dtype=float)
    return np.maximum(x[start:start + len(levers)], 0.0)


def repair_options(model: LinearModel, levers: list[Lever], sources: dict[str, Any],
                   verify: Any, time_limit: float = 60.0) -> list[dict[str, Any]]:
    """A menu of repairs, one option per group of levers and the cheapest mix, each in the
    input's terms (file, spreadsheet row, column, today's figure, the figure that works) and
    verified by `verify(repairs)`: a re-solve of the model rebuilt from the changed inputs."""
    options = []
    groups = [g for g in OPTION_TITLES if g != "mix" and any(lv.group == g for lv in levers)]
    for key in [*groups, "mix"]:
        chosen = [lv for lv in levers if key == "mix" or lv.group == key]
        found = _elastic(model, chosen, time_limit)
        repairs = []
        if found is not None:
            for lever, e in zip(chosen, found, strict=True):
                if e <= TOL * max(1.0, abs(lever.current)):
                    continue
                # A hair past the least change, so that the re-solve is not on a knife edge.
                step = e * (1 + 1e-9) + 1e-9 * max(1.0, abs(lever.current))
                proposed = lever.current + lever.sign * step
                if lever.sign < 0:
                    proposed = max(proposed, 0.0)
                source = sources[lever.table]
                row = int(source.row_of(lever.position))
                what = "raise" if lever.sign > 0 else "lower"
                repairs.append({
                    "table": lever.table, "source": source.source, "row": row,
                    "column": lever.column, "id": lever.label, "position": lever.position,
                    "current": lever.current,
                    "proposed": proposed,
                    "text": f"{what} {lever.column} of '{lever.label}' ({source.source} row "
                            f"{row}) from {lever.current:g} to {proposed:.6g}"})
        verified = bool(repairs) and bool(verify(repairs))
        options.append({"key": key, "title": OPTION_TITLES[key], "repairs": repairs,
                        "verified_feasible": verified if repairs else None})
    return options


def options_markdown(options: list[dict[str, Any]]) -> list[str]:
    lines = ["## Repairs, in the input files' terms (each verified by re-solving)", ""]
    for k, option in enumerate(options):
        letter = chr(ord("A") + k)
        if not option["repairs"]:
            lines += [f"### Option {letter}: {option['title']}: not enough on its own", ""]
            continue
        state = "verified: a plan exists" if option["verified_feasible"] else \
            "NOT verified: the re-solve found no plan"
        lines += [f"### Option {letter}: {option['title']} ({state})", ""]
        lines += [f"- {r['text']}" for r in option["repairs"][:60]]
        lines.append("")
    return lines


def diagnosis_with_options(model: LinearModel, title: str, time_limit: float,
                           levers: list[Lever], sources: dict[str, Any], verify: Any
                           ) -> tuple[str, dict[str, Any]]:
    """The generic diagnosis (row repairs by label, conflict set) with the menu of repairs in
    the input's terms in front."""
    text, payload = generic_diagnosis(model, title, time_limit)
    options = repair_options(model, levers, sources, verify, time_limit)
    payload["options"] = options
    body = text.split("\n", 2)[2]  # after the title line and its blank line
    lines = [f"# No plan can be made: {title}", "", *options_markdown(options),
             "## In the model's own rows", "", body]
    return "\n".join(lines), payload


def feasible(model: LinearModel, time_limit: float = 60.0) -> bool:
    """Whether a plan exists (HiGHS, the model's integers kept; the first plan found will do)."""
    highs = new_highs()
    load_into_highs(highs, model, np.zeros(model.num_vars))
    highs.setOptionValue("time_limit", float(time_limit))
    highs.run()
    return highs.getModelStatus().name == "kOptimal"


def changed(frame: Any, repairs: list[dict[str, Any]], table: str, column: str) -> Any:
    """A copy of a validated table with the repairs to (table, column) applied by position."""
    out = frame.copy()
    for repair in repairs:
        if repair["table"] == table and repair["column"] == column:
            out.iloc[repair["position"], out.columns.get_loc(column)] = repair["proposed"]
    return out
