"""Checks around the solver: values no backend can hold, and the plan re-checked after it.

Both exist because a solver can fail quietly. HiGHS refuses a row whose coefficient reaches
1e15 at load time and then solves what is left (an empty plan, reported optimal); the other
backends crash on it. And whatever the cause (a load bug, a tolerance, a stale session), a
plan is only shipped if a recomputation from our own arrays, independent of the solver,
agrees with what the solver reported: every row and bound holds, every stage's objective is
what the solver said.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from allocator.core.model import ConBlock, LinearModel, Objective, VarBlock, join_labels

# HiGHS refuses matrix entries from 1e15 on (its large_matrix_value) and treats costs from
# 1e20 on as infinite; the OR-Tools and PuLP backends index past such rows. One limit for all.
LARGEST_COEFFICIENT = 1e15
# Bounds at or past this are infinite to HiGHS (infinite_bound): a finite limit there would
# silently vanish, so it is refused rather than dropped.
LARGEST_BOUND = 1e20
# A plan's rows and objectives must agree with the solver's figures to this relative
# tolerance (scaled by the row's own magnitude): loose enough for PDLP at 1e-8 and for
# CP-SAT's 0.01 FTE grid, tight enough that a dropped row or a stale solution shows.
PLAN_TOLERANCE = 1e-6
MAX_SHOWN = 10


def _label(blocks: Iterable[VarBlock | ConBlock], index: int) -> str:
    for block in blocks:
        if block.start <= index < block.start + block.size:
            if block.labels.shape[1] == 0:
                return f"{block.name}[{index - block.start}]"
            row = block.labels.iloc[[index - block.start]]
            return f"{block.name}[{join_labels(row, ', ')[0]}]"
    return f"#{index}"


def column_label(model: LinearModel, j: int) -> str:
    return _label(model.var_blocks.values(), j)


def row_label(model: LinearModel, i: int) -> str:
    return _label(model.con_blocks.values(), i)


def value_problems(model: LinearModel, objectives: Sequence[Objective]) -> list[str]:
    """Coefficients and bounds a backend cannot hold, named by their business labels."""
    found: list[str] = []
    matrix = model.matrix
    big = np.flatnonzero(np.abs(matrix.data) >= LARGEST_COEFFICIENT)
    if big.size:
        rows = np.searchsorted(matrix.indptr, big, side="right") - 1
        for k, i in zip(big[:MAX_SHOWN], rows[:MAX_SHOWN], strict=False):
            column = column_label(model, int(matrix.indices[k]))
            found.append(f"coefficient {matrix.data[k]:g} of {column} in "
                         f"{row_label(model, int(i))} is {LARGEST_COEFFICIENT:g} or more")
    for objective in objectives:
        big = np.flatnonzero(np.abs(objective.c) >= LARGEST_COEFFICIENT)
        for j in big[:MAX_SHOWN]:
            found.append(f"objective '{objective.name}' weighs {column_label(model, int(j))} "
                         f"by {objective.c[j]:g}, {LARGEST_COEFFICIENT:g} or more")
    for what, values, labeler in (("lower bound", model.lb, column_label),
                                  ("upper bound", model.ub, column_label),
                                  ("lower limit", model.row_lo, row_label),
                                  ("upper limit", model.row_hi, row_label)):
        big = np.flatnonzero(np.isfinite(values) & (np.abs(values) >= LARGEST_BOUND))
        for j in big[:MAX_SHOWN]:
            found.append(f"{what} {values[j]:g} of {labeler(model, int(j))} is "
                         f"{LARGEST_BOUND:g} or more (a solver would read it as no limit)")
    return found


@dataclass(frozen=True)
class StageFigure:
    """What the solver reported of one stage, to be re-checked against the plan."""

    name: str
    reported: float  # the objective the solver reported (last stage: of this very plan)
    hold: float | None  # the limit later stages kept this objective under
    final: bool  # the stage whose solution is the plan


def plan_problems(model: LinearModel, objectives: Sequence[Objective],
                  stages: Sequence[StageFigure], x: np.ndarray,
                  tolerance: float = PLAN_TOLERANCE) -> list[str]:
    """Recompute, from our arrays only, that the plan `x` is what the solver said it is.

    Returns the disagreements in words (empty when the plan checks out). One sparse
    product and a few vector comparisons: cheap next to any solve."""
    found: list[str] = []
    if x.shape != (model.num_vars,) or not np.all(np.isfinite(x)):
        return [f"the solution has {x.size} values ({int(np.sum(~np.isfinite(x)))} not finite) "
                f"for {model.num_vars} columns"]
    matrix = model.matrix
    activity = matrix @ x
    # |A| |x| with |A| sharing A's index arrays: only the values are copied (a large model's
    # matrix is the run's biggest object; a full abs() copy would add its indices too).
    magnitudes = sp.csr_array((np.abs(matrix.data), matrix.indices, matrix.indptr),
                              shape=matrix.shape)
    scale = 1.0 + magnitudes @ np.abs(x)
    for what, excess in (("below its lower limit", model.row_lo - activity),
                         ("above its upper limit", activity - model.row_hi)):
        bad = np.flatnonzero(excess > tolerance * scale)
        for i in bad[:MAX_SHOWN]:
            found.append(f"{row_label(model, int(i))} is {excess[i]:.6g} {what}")
        if bad.size > MAX_SHOWN:
            found.append(f"... and {bad.size - MAX_SHOWN} more rows {what}")
    col_scale = 1.0 + np.abs(x)
    for what, excess in (("below its lower bound", model.lb - x),
                         ("above its upper bound", x - model.ub)):
        bad = np.flatnonzero(excess > tolerance * col_scale)
        for j in bad[:MAX_SHOWN]:
            found.append(f"{column_label(model, int(j))} is {excess[j]:.6g} {what}")
    integer = np.flatnonzero(model.integer)
    fractional = integer[np.abs(x[integer] - np.round(x[integer])) > 1e-5]
    for j in fractional[:MAX_SHOWN]:
        found.append(f"{column_label(model, int(j))} = {x[j]:.6g} should be whole")
    by_name = {o.name: o for o in objectives}
    for stage in stages:
        objective = by_name[stage.name]
        terms = objective.c * x
        value = float(terms.sum() + objective.constant)
        tol = tolerance * (1.0 + abs(stage.reported) + float(np.abs(terms).sum()))
        if stage.final and np.isfinite(stage.reported) and abs(value - stage.reported) > tol:
            found.append(f"stage '{stage.name}': the plan's objective is {value:.10g}, the "
                         f"solver reported {stage.reported:.10g}")
        if stage.hold is not None and value > stage.hold + tol:
            found.append(f"stage '{stage.name}': the plan's objective {value:.10g} breaks the "
                         f"limit {stage.hold:.10g} it was held to")
    return found
