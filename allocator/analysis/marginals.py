"""Exact marginal values for MIPs: re-solve with one right-hand side moved by a step.

A MIP has no true duals (the fixed-integer LP's duals say nothing about reassigning people),
so for budgets, capacities and service floors we re-solve the first stage with the limit
moved and report the change per unit. The re-solves are independent and run in parallel
processes (spawned, not forked: the parent holds solver threads).

A nightly run promises to end within its time limit, so the re-solves share a deadline: each
is given what is left of it, and at the deadline the pool is terminated (its processes
killed, not left to finish) and the moves not valued are named. The workers also die with
the run: each asks the kernel for SIGKILL when its parent goes (Linux's PDEATHSIG), so an
interrupted or killed run leaves no solver process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import TimeoutError as PoolTimeout
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


def _die_with_parent() -> None:
    """Pool initializer: SIGKILL this worker when the process that started it exits."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        # Not fatal where it fails: the parent still terminates the pool on its way out.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
        if os.getppid() == 1:  # the parent died before the request took effect
            os._exit(1)


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with its stderr on /dev/null.

    When a run is interrupted the process exits at once (os._exit: the solver thread cannot
    be joined), and the tracker, left behind, warns on stderr about the pool's semaphores,
    which it then cleans up itself. That warning means nothing to a user and breaks the
    promise of a clean interrupt, so the tracker is started early with its stderr silenced.
    """
    from multiprocessing import resource_tracker

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _solve(model: LinearModel, objective: Objective, move: Move | None, time_limit: float,
           mip_gap: float | None) -> float:
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
    if mip_gap is not None:  # None: HiGHS's own default
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


@dataclass
class Marginals:
    """The valued moves, and what the deadline left unvalued (said in the run's notes)."""

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)


def mip_marginals(
    model: LinearModel, objective: Objective, x: np.ndarray, targets: pd.DataFrame | None,
    step_share: float = 0.01, limit: int = 30, time_limit: float = 60.0,
    mip_gap: float | None = 1e-6, workers: int | None = None, deadline: float | None = None,
) -> Marginals:
    """Per unit change of the first stage's objective when each limit is relaxed by a step.

    `deadline` (a time.monotonic() instant) bounds the whole computation: each re-solve gets
    at most what is left of it, and whatever has not finished then is killed and skipped."""
    moves = _moves(model, x, targets, step_share, limit)
    if not moves:
        return Marginals(pd.DataFrame())

    def left() -> float:
        return float("inf") if deadline is None else deadline - time.monotonic()

    if left() < 1.0:
        return Marginals(pd.DataFrame(), [f"{m.family} {m.labels}" for m in moves])
    workers = workers or max(1, min(len(moves), os.cpu_count() or 1))
    values: list[float] = []
    base = float("nan")
    _quiet_resource_tracker()
    pool = get_context("spawn").Pool(processes=min(workers, len(moves) + 1),
                                     initializer=_die_with_parent)
    try:
        per_solve = min(time_limit, left())
        base_job = pool.apply_async(_solve, (model, objective, None, per_solve, mip_gap))
        jobs = [pool.apply_async(_solve, (model, objective, m, min(time_limit, left()),
                                          mip_gap)) for m in moves]
        results: list[float | None] = []
        for job in [base_job, *jobs]:
            try:
                wait = None if not np.isfinite(left()) else max(0.0, left())
                results.append(job.get(timeout=wait))
            except PoolTimeout:
                results.append(None)
        base = results[0] if results[0] is not None else float("nan")
        values = [np.nan if r is None else r for r in results[1:]]
        unfinished = [r is None for r in results[1:]]
    finally:
        pool.terminate()  # kills workers still solving: the deadline is a promise
        pool.join()
    if not np.isfinite(base):
        return Marginals(pd.DataFrame(), [f"{m.family} {m.labels}" for m in moves])
    rows = []
    sign = -1.0 if model.maximize else 1.0  # objectives in the user's sense
    for move, value, late in zip(moves, values, unfinished, strict=True):
        if late:
            continue
        # Per unit increase of the limit, as duals are (a floor's step lowers the floor).
        per_unit = (value - base) / move.step if np.isfinite(value) else float("nan")
        if move.family == "floor":
            per_unit = -per_unit
        rows.append({"stage": objective.name, "family": move.family, "labels": move.labels,
                     "limit": move.shown, "step": move.step, "objective": sign * base + 0.0,
                     "objective_moved": sign * value + 0.0,
                     "marginal_per_unit": sign * per_unit + 0.0,
                     "method": "MIP re-solve"})
    skipped = [f"{m.family} {m.labels}" for m, late in zip(moves, unfinished, strict=True)
               if late]
    return Marginals(pd.DataFrame(rows), skipped)
