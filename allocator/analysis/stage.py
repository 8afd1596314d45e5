"""One solved stage analyzed: its sensitivity (with ranges and one-sided prices) and its
price ladders, on one work budget. Kept apart from both so that neither imports the other."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from allocator.analysis.ladder import stage_ladders
from allocator.analysis.probes import Probes, default_probes
from allocator.analysis.sensitivity import (
    DEFAULT_SHARE,
    PROBE_SPLIT,
    SAFETY_MIN_SECONDS,
    LpSensitivity,
    highs_sensitivity,
)
from allocator.core.model import LinearModel


def analyze_stage(highs, model: LinearModel, stage: str,
                  source: str = "lp", solve_seconds: float = 0.0,
                  share: float = DEFAULT_SHARE, probes: int | None = None,
                  deadline: float | None = None, ladder_span: float | None = None,
                  ) -> tuple[LpSensitivity, pd.DataFrame, str]:
    """Sensitivity and price ladders of one solved stage LP held by `highs`, and a note for
    the run's notes ("" unless the safety stop cut the extras short).

    The re-solves behind one-sided prices, price ranges, FTE values and ladders are counted,
    not timed: `probes` of them per stage (output.sensitivity_probes; by default
    `default_probes(model)`), handed out by PROBE_SPLIT, so the same input gives the same
    files on any machine. `share` of the stage's solve time (at least SAFETY_MIN_SECONDS),
    or the run's `deadline` (a time.monotonic() instant) if sooner, is only a safety stop
    for a model whose probes are slow; if it triggers, the note says so.

    `highs` is left at its last probe's solution, with every bound restored: no re-solve is
    spent on getting back to the optimum, which every caller already holds (a later stage's
    solve starts warm from wherever this leaves the basis).
    """
    count = default_probes(model) if probes is None else int(probes)
    safety = max(SAFETY_MIN_SECONDS, share * solve_seconds)
    stop = time.perf_counter() + safety
    if deadline is not None:
        stop = min(stop, time.perf_counter() + (deadline - time.monotonic()))
    budget = Probes(count, stop)
    # The extras are small moves from an optimal basis: dual simplex re-solves them warm in
    # milliseconds, where interior point (if the stage used it) would start over each time.
    _status, method = highs.getOptionValue("solver")
    _status, limit = highs.getOptionValue("time_limit")
    highs.setOptionValue("solver", "simplex")
    # The count decides before each probe whether the last one's time still fits; one probe
    # may be a large re-solve (the FTE prices relax every person's bounds at once), so HiGHS
    # itself stops at the safety stop too (its clock runs across calls: add what was used).
    highs.setOptionValue("time_limit", highs.getRunTime() + max(0.0, stop - time.perf_counter()))
    try:
        sens = highs_sensitivity(highs, stage, source=source, probes=budget, model=model)
        budget.phase(*PROBE_SPLIT[3])
        ladders = stage_ladders(highs, model, sens, probes=budget, span_share=ladder_span)
    finally:
        highs.setOptionValue("solver", method)
        highs.setOptionValue("time_limit", limit)
    if time.perf_counter() >= stop and not budget.stopped:  # a probe was cut mid-solve
        budget.stopped = budget.phase_name or "the extras"
    sens.note = budget.note(stage)
    return sens, ladders, sens.note


def resolve_stage_sensitivities(
    model: LinearModel, objectives: list, stages: list, x: np.ndarray,
    share: float = DEFAULT_SHARE, probes: int | None = None, ladder_span: float | None = None,
    deadline: float | None = None, notes: list[str] | None = None,
) -> tuple[list[LpSensitivity], list[pd.DataFrame]]:
    """Sensitivity of each solved stage by a HiGHS re-solve: used when another solver found
    the plan, and for MIPs, whose duals are those of the LP with the integers fixed.

    `deadline` (a time.monotonic() instant, the run's time limit) bounds the re-solves as it
    bounds the solve: each is given what is left, the probes stop at it, and a stage not
    analyzed by then is said in `notes`."""
    from allocator.solvers.highs import load_into_highs, new_highs

    highs = new_highs()
    lb, ub = model.lb.copy(), model.ub.copy()
    integer = model.integer
    source = "lp"
    if integer.any():
        fixed = np.round(x[integer])
        lb[integer] = fixed
        ub[integer] = fixed
        source = "fixed-integer lp"
    load_into_highs(highs, model, lb=lb, ub=ub, relax_integers=True)
    by_name = {o.name: o for o in objectives}
    out = []
    ladders = []
    for stage in stages:
        left = float("inf") if deadline is None else deadline - time.monotonic()
        if left <= 0.0:
            if notes is not None:
                notes.append(f"sensitivity of stage '{stage.name}' not computed: the run's "
                             "time limit was reached first")
            break
        if np.isfinite(left):  # HiGHS's clock runs across calls: add what was used
            highs.setOptionValue("time_limit", highs.getRunTime() + left)
        objective = by_name[stage.name]
        highs.changeColsCost(model.num_vars, np.arange(model.num_vars, dtype=np.int32),
                             objective.c)
        highs.changeObjectiveOffset(float(objective.constant))
        started = time.perf_counter()
        highs.run()
        highs.setOptionValue("time_limit", float("inf"))  # the probes keep their own count
        if highs.getModelStatus().name != "kOptimal":
            if notes is not None and highs.getModelStatus().name == "kTimeLimit":
                notes.append(f"sensitivity of stage '{stage.name}' not computed: the run's "
                             "time limit was reached first")
            break
        sens, ladder, _note = analyze_stage(highs, model, stage.name, source,
                                            time.perf_counter() - started, share, probes,
                                            deadline=deadline, ladder_span=ladder_span)
        out.append(sens)
        ladders.append(ladder)
        if stage.hold_rhs is not None:
            nz = np.flatnonzero(objective.c)
            highs.addRow(-1e30, float(stage.hold_rhs - objective.constant), nz.size,
                         nz.astype(np.int32), objective.c[nz])
    return out, ladders
