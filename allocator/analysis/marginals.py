"""Exact marginal values for MIPs: re-solve with one right-hand side moved by a step.

A MIP has no true duals (the fixed-integer LP's duals say nothing about reassigning people),
so for budgets, capacities and service floors we re-solve the first stage with the limit
moved and report the change per unit. The re-solves are independent and run in parallel
processes (spawned, not forked: the parent holds solver threads).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel, Objective

FAMILIES = ("budget", "capacity")


@dataclass(frozen=True)
class Move:
    family: str
    labels: str
    kind: str  # "row" (a row's upper side) or "col_ub" (a column's upper bound)
    index: int
    rhs: float  # the value moved: a row's upper side or a column's upper bound
    step: float  # how far it moves, in the direction that relaxes the limit
    shown: float  # the limit in the user's terms (a floor in served units)


def _solve(model: LinearModel, objective: Objective, move: Move | None, time_limit: float,
           mip_gap: float) -> float:
    from allocator.solvers.highs import load_into_highs, new_highs

    highs = new_highs()
    ub = model.ub.copy()
    if move is not None and move.kind == "col_ub":
        ub[move.index] = move.rhs + move.step
    load_into_highs(highs, model, objective.c, ub=ub)
    highs.changeObjectiveOffset(objective.constant)
    if move is not None and move.kind == "row":
        highs.changeRowBounds(move.index, float(max(model.row_lo[move.index], -1e30)),
                              float(move.rhs + move.step))
    highs.setOptionValue("time_limit", float(time_limit))
    highs.setOptionValue("mip_rel_gap", float(mip_gap))
    highs.setOptionValue("threads", 1)
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return float("nan")
    return float(highs.getInfo().objective_function_value)


def _moves(model: LinearModel, x: np.ndarray, targets: pd.DataFrame | None, step_share: float,
           limit: int) -> list[Move]:
    moves = []
    activity = model.matrix @ x
    for family in FAMILIES:
        block = model.con_blocks.get(family)
        if block is None:
            continue
        hi = model.row_hi[block.slice]
        slack = hi - activity[block.slice]
        for j in np.argsort(slack, kind="stable"):
            rhs = float(hi[j])
            step = max(step_share * abs(rhs), 1.0)
            label = "/".join(map(str, block.labels.iloc[j].tolist()))
            moves.append(Move(family, label, "row", block.start + int(j), rhs, step, rhs))
    u = model.var_blocks.get("shortfall")
    if u is not None and targets is not None:
        floors = np.flatnonzero(targets["min_level"].to_numpy() > 0)
        demand = targets["demand"].to_numpy()
        for t in floors:
            label = "/".join(map(str, u.labels.iloc[t].tolist()))
            # The floor caps the shortfall: relaxing it raises that cap by step units.
            step = max(step_share * demand[t], 1e-9)
            moves.append(Move("floor", label, "col_ub", u.start + int(t),
                              float(model.ub[u.start + t]), step,
                              float(demand[t] - model.ub[u.start + t])))
    return moves[:limit] if limit else moves


def mip_marginals(
    model: LinearModel, objective: Objective, x: np.ndarray, targets: pd.DataFrame | None,
    step_share: float = 0.01, limit: int = 30, time_limit: float = 60.0, mip_gap: float = 1e-6,
    workers: int | None = None,
) -> pd.DataFrame:
    """Per unit change of the first stage's objective when each limit is relaxed by a step."""
    moves = _moves(model, x, targets, step_share, limit)
    if not moves:
        return pd.DataFrame()
    workers = workers or max(1, min(len(moves), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        base_future = pool.submit(_solve, model, objective, None, time_limit, mip_gap)
        futures = [pool.submit(_solve, model, objective, m, time_limit, mip_gap) for m in moves]
        base = base_future.result()
        values = [f.result() for f in futures]
    rows = []
    for move, value in zip(moves, values, strict=True):
        # Per unit increase of the limit, as duals are (a floor's step lowers the floor).
        per_unit = (value - base) / move.step if np.isfinite(value) else float("nan")
        if move.family == "floor":
            per_unit = -per_unit
        rows.append({"stage": objective.name, "family": move.family, "labels": move.labels,
                     "limit": move.shown, "step": move.step, "objective": base,
                     "objective_moved": value, "marginal_per_unit": per_unit,
                     "method": "MIP re-solve"})
    return pd.DataFrame(rows)
