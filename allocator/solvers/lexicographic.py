"""Lexicographic (or weighted) solving on any backend, with one result shape.

After each stage its objective is held at ``opt + rel_tol * |opt| + abs_tol`` (a row added
to the model) while the next stage is solved. HiGHS keeps its basis across the added row, so
later stages start warm; the other backends rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from allocator.core.checks import StageFigure, plan_problems, value_problems
from allocator.core.model import LinearModel, Objective
from allocator.errors import InputError, Problem
from allocator.solvers.base import (
    Backend,
    Limit,
    RawSolution,
    SolverSettings,
    Status,
    rel_gap,
)
from allocator.solvers.registry import make_backend


@dataclass(frozen=True)
class StageResult:
    """One stage as solved: frozen, so what analysis and outputs read is what was solved."""

    name: str
    status: Status
    objective: float
    bound: float
    gap: float
    seconds: float
    hold_rhs: float | None = None  # the limit the next stages keep this objective under
    final_value: float = float("nan")  # this objective at the final plan (within the hold)
    row_dual: np.ndarray | None = None  # duals of the model rows (and earlier holds)
    col_dual: np.ndarray | None = None
    limit: Limit | None = None  # what stopped the solve short of a proof, if anything


@dataclass(frozen=True)
class SolveResult:
    """What a solve produced, whatever the solver: status, stages, values, timings."""

    status: Status
    solver: str
    stages: tuple[StageResult, ...] = ()
    x: np.ndarray | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    message: str = ""

    @property
    def objectives(self) -> dict[str, float]:
        return {s.name: s.objective for s in self.stages}

    @property
    def gap(self) -> float:
        return max((s.gap for s in self.stages), default=0.0)

    @property
    def limit(self) -> Limit | None:
        """The limit that ended the solve early (the first stage it stopped), if any."""
        return next((s.limit for s in self.stages if s.limit is not None), None)


def stage_objectives(
    model: LinearModel, order: Sequence[str], mode: str, weights: Mapping[str, float]
) -> list[Objective]:
    """The objectives to solve in turn; stages the model lacks (no baseline) are skipped."""
    present = [name for name in order if name in model.objectives]
    if not present:  # a formulation with its own stages (assignment, network, funding)
        present = list(model.objectives)
    if mode == "weighted":
        c = np.zeros(model.num_vars)
        constant = 0.0
        for name in present:
            w = float(weights.get(name, 1.0))
            c += w * model.objectives[name].c
            constant += w * model.objectives[name].constant
        return [Objective("weighted", c, constant)]
    return [model.objectives[name] for name in present]


def solve_stages(
    model: LinearModel, objectives: list[Objective], solver: str, settings: SolverSettings,
    rel_tol: float = 1e-6, abs_tol: float = 1e-9, backend: Backend | None = None,
    on_stage: Callable[[Backend, StageResult], None] | None = None,
) -> SolveResult:
    """Solve each objective in turn; the first stage that fails decides the status."""
    start = time.perf_counter()
    deadline = start + settings.time_limit if settings.time_limit else None
    unholdable = value_problems(model, objectives)
    if unholdable:
        raise InputError([Problem("model", f"no solver can hold this: {p}")
                          for p in unholdable])
    if backend is None:
        backend = make_backend(solver, settings, model)
        backend.load(model)
    status, message = Status.OPTIMAL, ""
    stages: list[StageResult] = []
    notes: list[str] = []
    x: np.ndarray | None = None
    for objective in objectives:
        remaining = None if deadline is None else max(0.0, deadline - time.perf_counter())
        if remaining is not None and remaining <= 0 and x is not None:
            status = Status.FEASIBLE
            notes.append(f"stage '{objective.name}' not solved: time limit reached")
            break
        backend.set_objective(objective.c, objective.constant)
        raw: RawSolution = backend.solve(remaining)
        if raw.limit is None and raw.status in (Status.FEASIBLE, Status.NO_SOLUTION):
            raw.limit = Limit.TIME  # the one limit every backend is given
        if not raw.status.has_solution:
            if x is not None and raw.status is Status.NO_SOLUTION:
                # Earlier stages gave a plan; it stays valid for every stage solved so far.
                status = Status.FEASIBLE
                notes.append(f"stage '{objective.name}' hit the "
                             f"{(raw.limit or Limit.TIME).value} limit unsolved")
                break
            status, message, x = raw.status, raw.message, None
            stages.append(StageResult(objective.name, raw.status, np.nan, np.nan, np.inf,
                                      raw.seconds, limit=raw.limit))
            break
        hold = None
        if objective is not objectives[-1]:
            hold = raw.objective + rel_tol * abs(raw.objective) + abs_tol
        stage = StageResult(
            objective.name, raw.status, raw.objective, raw.bound,
            rel_gap(raw.objective, raw.bound) if raw.status is Status.FEASIBLE
            else (0.0 if np.isnan(raw.bound) else rel_gap(raw.objective, raw.bound)),
            raw.seconds, hold_rhs=hold, row_dual=raw.row_dual, col_dual=raw.col_dual,
            limit=raw.limit,
        )
        stages.append(stage)
        x = raw.x
        if on_stage is not None:
            on_stage(backend, stage)  # e.g. ranging while the solver holds this stage's basis
        if raw.status is Status.FEASIBLE:
            status = Status.FEASIBLE
        if hold is not None:
            nz = np.flatnonzero(objective.c)
            backend.add_row(nz, objective.c[nz], -np.inf, hold - objective.constant)
    if x is not None:
        by_name = {o.name: o for o in objectives}
        stages = [replace(s, final_value=float(by_name[s.name].c @ x + by_name[s.name].constant))
                  for s in stages]
        # The plan ships only if our own recomputation agrees with the solver's figures.
        figures = [StageFigure(s.name, s.objective, s.hold_rhs, s is stages[-1])
                   for s in stages]
        disagreements = plan_problems(model, objectives, figures, x, backend.plan_tolerance)
        if disagreements:
            status, x = Status.ERROR, None
            message = ("the solver's plan does not check out against the model, so it is "
                       "not written: " + "; ".join(disagreements))
    notes.extend(backend.notes)
    return SolveResult(status, solver, tuple(stages), x, time.perf_counter() - start,
                       tuple(notes), message)
