"""Lexicographic (or weighted) solving on any backend, with one result shape.

After each stage its objective is held at ``opt + rel_tol * |opt| + abs_tol`` (a row added
to the model) while the next stage is solved. HiGHS keeps its basis across the added row, so
later stages start warm; the other backends rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from allocator.core.checks import StageFigure, plan_problems, value_problems
from allocator.core.model import LinearModel, Objective
from allocator.errors import InputError, Problem
from allocator.solvers.base import Backend, RawSolution, SolverSettings, Status, rel_gap
from allocator.solvers.registry import make_backend


@dataclass
class StageResult:
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


@dataclass
class SolveResult:
    """What a solve produced, whatever the solver: status, stages, values, timings."""

    status: Status
    solver: str
    stages: list[StageResult] = field(default_factory=list)
    x: np.ndarray | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def objectives(self) -> dict[str, float]:
        return {s.name: s.objective for s in self.stages}

    @property
    def gap(self) -> float:
        return max((s.gap for s in self.stages), default=0.0)


def stage_objectives(
    model: LinearModel, order: list[str], mode: str, weights: dict[str, float]
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
    result = SolveResult(Status.OPTIMAL, solver)
    for objective in objectives:
        remaining = None if deadline is None else max(0.0, deadline - time.perf_counter())
        if remaining is not None and remaining <= 0 and result.x is not None:
            result.status = Status.FEASIBLE
            result.notes.append(f"stage '{objective.name}' not solved: time limit reached")
            break
        backend.set_objective(objective.c, objective.constant)
        raw: RawSolution = backend.solve(remaining)
        if not raw.status.has_solution:
            if result.x is not None and raw.status is Status.NO_SOLUTION:
                # Earlier stages gave a plan; it stays valid for every stage solved so far.
                result.status = Status.FEASIBLE
                result.notes.append(f"stage '{objective.name}' hit the time limit unsolved")
                break
            result.status = raw.status
            result.message = raw.message
            result.stages.append(StageResult(objective.name, raw.status, np.nan, np.nan,
                                              np.inf, raw.seconds))
            result.x = None
            break
        stage = StageResult(
            objective.name, raw.status, raw.objective, raw.bound,
            rel_gap(raw.objective, raw.bound) if raw.status is Status.FEASIBLE
            else (0.0 if np.isnan(raw.bound) else rel_gap(raw.objective, raw.bound)),
            raw.seconds, row_dual=raw.row_dual, col_dual=raw.col_dual,
        )
        result.stages.append(stage)
        result.x = raw.x
        if on_stage is not None:
            on_stage(backend, stage)  # e.g. ranging while the solver holds this stage's basis
        if raw.status is Status.FEASIBLE:
            result.status = Status.FEASIBLE
        if objective is not objectives[-1]:
            hold = raw.objective + rel_tol * abs(raw.objective) + abs_tol
            stage.hold_rhs = hold
            nz = np.flatnonzero(objective.c)
            backend.add_row(nz, objective.c[nz], -np.inf, hold - objective.constant)
    if result.x is not None:
        by_name = {o.name: o for o in objectives}
        for stage in result.stages:
            objective = by_name[stage.name]
            stage.final_value = float(objective.c @ result.x + objective.constant)
        # The plan ships only if our own recomputation agrees with the solver's figures.
        figures = [StageFigure(s.name, s.objective, s.hold_rhs, s is result.stages[-1])
                   for s in result.stages]
        disagreements = plan_problems(model, objectives, figures, result.x,
                                      backend.plan_tolerance)
        if disagreements:
            result.status = Status.ERROR
            result.x = None
            result.message = ("the solver's plan does not check out against the model, so it "
                              "is not written: " + "; ".join(disagreements))
    result.notes.extend(backend.notes)
    result.seconds = time.perf_counter() - start
    return result
