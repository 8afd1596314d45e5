"""The solve pipeline: scenario -> tables -> model -> stages -> run folder, timed by phase."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator import __version__
from allocator.analysis.marginals import mip_marginals
from allocator.analysis.sensitivity import (
    LpSensitivity,
    analyze_stage,
    resolve_stage_sensitivities,
    sensitivity_frame,
)
from allocator.errors import CapabilityError, ExitCode
from allocator.formulations import get_formulation
from allocator.formulations.base import Built, Formulation
from allocator.outputs.folder import check_target, run_folder
from allocator.outputs.report import render_report
from allocator.scenario import Scenario, load_scenario
from allocator.solvers.base import Backend, SolverSettings, Status
from allocator.solvers.highs import HighsBackend, clone_at_basis
from allocator.solvers.lexicographic import SolveResult, StageResult, solve_stages, stage_objectives
from allocator.solvers.registry import backend_class, check_capabilities


@dataclass
class RunOutcome:
    exit_code: ExitCode
    summary: dict[str, Any]
    result: SolveResult | None = None
    ops: Built | None = None
    tables: dict[str, Any] = field(default_factory=dict)
    sensitivities: list[Any] = field(default_factory=list)


def settings_from(scenario: Scenario) -> SolverSettings:
    s = scenario.solver
    return SolverSettings(time_limit=s.time_limit, threads=s.threads, seed=s.seed,
                          mip_gap=s.mip_gap, presolve=s.presolve, method=s.method,
                          options=dict(s.options))


def prepare(
    scenario_path: Path, overrides: list[str]
) -> tuple[Scenario, Built, dict[str, float]]:
    """Load, validate and build; no solver involved (this is all `allocator validate` does)."""
    scenario, _formulation, built, times = _prepare(scenario_path, overrides)
    return scenario, built, times


def _preload_plotting() -> None:
    """Import matplotlib (0.4 s) while the solver runs: HiGHS releases the GIL, so the
    import takes the idle second core instead of adding to the run's wall time."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
    except Exception:
        pass


# From this size on, a stage's analysis waits for the previous one, so that at most one copy
# of the model is held beside the original (each is about as large as the hand-over).
ONE_COPY_NONZEROS = 1_000_000


class StageAnalysis:
    """Sensitivity and ladders of one solved stage, on a clone of its HiGHS in a thread: the
    next stage (or the plan's tables) goes on in the original meanwhile, on the other core."""

    def __init__(self, highs, model, stage: StageResult,  # type: ignore[no-untyped-def]
                 share: float, deadline: float | None = None,
                 probes: int | None = None) -> None:
        self.stage = stage.name
        self.error = ""
        self._found: tuple[LpSensitivity, pd.DataFrame] | None = None
        self._thread: threading.Thread | None = None
        if not highs.getBasis().valid:  # e.g. interior point with crossover turned off
            self.error = "the solver left no basis to range (is crossover off?)"
            return
        clone = clone_at_basis(highs)
        # The warm start should take no iterations; a limit keeps a numerically troubled one
        # from turning into a second full solve that the run would then wait for.
        clone.setOptionValue("time_limit", max(30.0, stage.seconds) if deadline is None
                             else max(0.5, min(max(30.0, stage.seconds),
                                               deadline - time.monotonic())))

        def work() -> None:
            nonlocal clone
            try:
                clone.run()  # refactorize at the optimal basis: no iterations
                if clone.getModelStatus().name != "kOptimal":
                    self.error = f"HiGHS: {clone.modelStatusToString(clone.getModelStatus())}"
                    return
                clone.setOptionValue("time_limit", float("inf"))
                self._found = analyze_stage(clone, model, stage.name,
                                            solve_seconds=stage.seconds, share=share,
                                            probes=probes, deadline=deadline)
            except Exception as exc:  # reported in the run's notes; the plan stands
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                clone = None  # the copy of the model goes as soon as the analysis is done

        self._thread = threading.Thread(target=work, name=f"sensitivity-{stage.name}",
                                        daemon=True)
        self._thread.start()

    def result(self) -> tuple[LpSensitivity, pd.DataFrame] | None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._found


def _prepare(
    scenario_path: Path, overrides: list[str]
) -> tuple[Scenario, Formulation, Built, dict[str, float]]:
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    scenario = load_scenario(scenario_path, overrides)
    formulation = get_formulation(scenario.model, str(scenario_path))
    # The solver is checked before any table is read (a typo costs no load), and again,
    # with the model's shape, before any solving: `validate` refuses what `solve` would.
    solver_class = backend_class(scenario.solver.name)
    available, detail = solver_class.is_available()
    if not available:
        raise CapabilityError(f"{solver_class.display} is not available here: {detail}",
                              "solver.name")
    data = formulation.load(scenario)
    times["load"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    ops = formulation.build(data, scenario)
    ops.model.matrix  # noqa: B018 - assemble the CSR now so the build phase owns its cost
    check_capabilities(solver_class, ops.model)
    times["build"] = time.perf_counter() - t1
    return scenario, formulation, ops, times


def _within(scenario: Scenario, deadline: float | None) -> Scenario:
    """The scenario with its solver time limit cut to what is left of the run's."""
    if deadline is None:
        return scenario
    left = max(1.0, deadline - time.monotonic())
    solver = scenario.solver.model_copy(update={"time_limit": left})
    return scenario.model_copy(update={"solver": solver})


def exit_code_for(status: Status, accept_timeout: bool) -> ExitCode:
    return {
        Status.OPTIMAL: ExitCode.OK,
        Status.FEASIBLE: ExitCode.OK if accept_timeout else ExitCode.TIME_LIMIT_WITH_PLAN,
        Status.INFEASIBLE: ExitCode.INFEASIBLE,
        Status.NO_SOLUTION: ExitCode.TIME_LIMIT_NO_PLAN,
        Status.UNBOUNDED: ExitCode.INTERNAL,
        Status.ERROR: ExitCode.INTERNAL,
    }[status]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def summary_of(
    scenario: Scenario, ops: Built, result: SolveResult, times: dict[str, float],
    code: ExitCode,
) -> dict[str, Any]:
    sign = -1.0 if ops.model.maximize else 1.0
    return {
        "name": scenario.name,
        "model": scenario.model,
        "status": result.status.value,
        "exit_code": int(code),
        # Objectives in the user's sense (a maximized profit is reported positive).
        "sense": "max" if ops.model.maximize else "min",
        "objectives": {s.name: _finite(sign * s.objective) for s in result.stages},
        # Each stage's value in the plan written: within the hold tolerance of its optimum.
        "plan_objectives": {s.name: _finite(sign * s.final_value) for s in result.stages},
        # The user's unit of stability: FTE moved = half of sum(dp + dm) (moving 1 FTE from
        # one site to another counts 2 in the stage's objective).
        "fte_moved": next((_finite(0.5 * s.final_value) for s in result.stages
                           if s.name == "stability"), None),
        "stages": [
            {"name": s.name, "status": s.status.value, "objective": _finite(sign * s.objective),
             "plan_value": _finite(sign * s.final_value), "bound": _finite(sign * s.bound),
             "gap": _finite(s.gap), "seconds": round(s.seconds, 4),
             "held_at": _finite(sign * s.hold_rhs) if s.hold_rhs is not None else None}
            for s in result.stages
        ],
        "mip_gap": _finite(result.gap),
        "solver": {"name": result.solver, **scenario.solver.model_dump()},
        "objective_settings": scenario.objective.model_dump(),
        "policy": scenario.policy.model_dump(),
        "seconds": {k: round(v, 4) for k, v in times.items()},
        "model_size": ops.model.size(),
        "inputs": {name: {"source": t.source, "rows": t.rows, "sha256_16": t.digest}
                   for name, t in ops.sources.items()},
        "warnings": ops.warnings,
        "notes": result.notes,
        "message": result.message,
        "version": __version__,
    }


def solve_scenario(
    scenario_path: Path, out: Path, overrides: list[str] | None = None, *, force: bool = False,
    accept_timeout: bool = False, on_phase: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run a scenario end to end and write its folder; returns the exit code to use."""
    say = on_phase or (lambda _msg: None)
    # `--out=~/x` reaches us unexpanded (the shell expands `~` only at a word's start).
    out = Path(os.path.expanduser(out))
    scenario_path = Path(os.path.expanduser(scenario_path))
    check_target(out, force)
    start = time.perf_counter()
    began = time.monotonic()
    scenario, formulation, ops, times = _prepare(scenario_path, overrides or [])
    # The run's one promise to a scheduler: it ends by this instant plus the time to write
    # (loading counted). Solving gets what is left; the extras get what solving leaves.
    limit = scenario.solver.time_limit
    deadline = None if limit is None or not np.isfinite(limit) else began + limit
    size = ops.model.size()
    say(f"model: {size['rows']:,} rows, {size['columns']:,} columns, {size['nonzeros']:,} "
        f"nonzeros, {size['integer_columns']:,} integer")
    objectives = stage_objectives(ops.model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights))
    if scenario.output.report:
        threading.Thread(target=_preload_plotting, name="preload-plotting", daemon=True).start()
    t2 = time.perf_counter()
    settings = settings_from(scenario)
    if settings.time_limit is not None:  # the limit is for the whole run
        remaining = settings.time_limit - (t2 - start)
        settings = SolverSettings(**{**settings.__dict__, "time_limit": max(remaining, 0.01)})
    sensitivities: list[LpSensitivity] = []
    ladders: list[pd.DataFrame] = []
    inline = scenario.output.sensitivity and ops.model.num_integer == 0
    analyses: list[StageAnalysis] = []

    def capture(backend: Backend, stage: StageResult) -> None:
        # HiGHS holds this stage's optimal basis right now: analyze it on a clone in a thread
        # (the spare core) while the next stage solves, or, after the last stage, while the
        # plan tables are built and written.
        if inline and isinstance(backend, HighsBackend):
            t_sens = time.perf_counter()
            if ops.model.nnz >= ONE_COPY_NONZEROS:  # one model copy at a time (memory); the
                for earlier in analyses:  # earlier one is usually done: it had a whole
                    earlier.result()  # stage's solve to run in
            analyses.append(StageAnalysis(backend.highs, ops.model, stage,
                                          scenario.output.sensitivity_share, deadline,
                                          scenario.output.sensitivity_probes))
            times["sensitivity"] = times.get("sensitivity", 0.0) + time.perf_counter() - t_sens

    def gather() -> None:
        """Wait for the analyses (what they did not finish under other work counts)."""
        t_wait = time.perf_counter()
        for analysis in analyses:
            found = analysis.result()
            if found is None:
                result.notes.append(f"sensitivity of stage '{analysis.stage}' not available: "
                                    f"{analysis.error}")
                continue
            sensitivities.append(found[0])
            ladders.append(found[1])
            if found[0].note:  # the safety stop cut the extras short: say so
                result.notes.append(found[0].note)
        analyses.clear()
        times["sensitivity"] = times.get("sensitivity", 0.0) + time.perf_counter() - t_wait

    result = solve_stages(ops.model, objectives, scenario.solver.name, settings,
                          scenario.objective.rel_tol, scenario.objective.abs_tol,
                          on_stage=capture)
    times["solve"] = time.perf_counter() - t2 - times.get("sensitivity", 0.0)
    if not result.status.has_solution or result.x is None:
        for analysis in analyses:  # no thread may stay inside HiGHS at exit (SIGABRT)
            analysis.result()
        analyses.clear()
    if scenario.output.sensitivity and result.x is not None and not analyses \
            and not sensitivities:
        t_sens = time.perf_counter()
        sensitivities, ladders = resolve_stage_sensitivities(
            ops.model, objectives, result.stages, result.x, scenario.output.sensitivity_share,
            scenario.output.sensitivity_probes)
        result.notes.extend(s.note for s in sensitivities if s.note)
        times["sensitivity"] = time.perf_counter() - t_sens
    code = exit_code_for(result.status, accept_timeout)
    t3 = time.perf_counter()
    tables: dict[str, Any] = {}
    waited = 0.0
    with run_folder(out, scenario.output.formats, force) as folder:
        if result.status.has_solution and result.x is not None:
            tables = formulation.plan_tables(ops, result.x)
            for name, frame in tables.items():
                folder.table(name, frame)
            t_extra = time.perf_counter()
            extra_tables, extra_files = formulation.extra_outputs(ops, result.x)
            for name, frame in extra_tables.items():
                folder.table(name, frame)
            for name, text in extra_files.items():
                folder.text(name, text)
                if name.endswith(".txt"):  # a formulation's word on what it could not write
                    result.notes.append(text.strip())
            tables.update(extra_tables)
            if extra_tables or extra_files:
                times["extra"] = time.perf_counter() - t_extra
            before = times.get("sensitivity", 0.0)
            gather()
            waited += times["sensitivity"] - before  # sensitivity's, not the write phase's
            if sensitivities:
                sens_table = sensitivity_frame(ops.model, sensitivities,
                                               [st.name for st in result.stages])
                nonempty = [frame for frame in ladders if not frame.empty]
                ladder_table = pd.concat(nonempty, ignore_index=True) if nonempty else None
                folder.table("sensitivity", sens_table)
                story = formulation.bottlenecks(ops, sens_table, tables, scenario.name,
                                                ladder_table)
                ranked_table = None
                if story is not None:
                    markdown, ranked_table = story
                    folder.text("bottlenecks.md", markdown)
                    folder.table("bottlenecks", ranked_table)
                if ladder_table is not None:
                    folder.table("ladders", ladder_table)
                tables.update(sensitivity=sens_table, bottlenecks=ranked_table,
                              ladders=ladder_table)
            if ops.model.num_integer and scenario.output.sensitivity and \
                    scenario.output.marginal_rows:
                t_marg = time.perf_counter()
                say("whole mode: exact marginal values by parallel re-solves")
                found = mip_marginals(
                    ops.model, objectives[0], result.x,
                    getattr(getattr(ops, "data", None), "targets", None),
                    scenario.output.marginal_step, scenario.output.marginal_rows,
                    time_limit=max(10.0, 5 * result.stages[0].seconds),
                    mip_gap=scenario.solver.mip_gap, deadline=deadline)
                if found.skipped:
                    result.notes.append(
                        f"time limit: {len(found.skipped)} marginal re-solves not run or "
                        f"stopped at the run's deadline ({', '.join(found.skipped[:5])}"
                        + (", ..." if len(found.skipped) > 5 else "") + ")")
                marginals = found.table
                if not marginals.empty:
                    folder.table("marginals", marginals)
                    tables["marginals"] = marginals
                times["marginals"] = time.perf_counter() - t_marg
            if scenario.output.report:
                folder.text("report.html", render_report(scenario.name, summary_of(
                    scenario, ops, result, times, code), tables))
        elif result.status is Status.INFEASIBLE:
            t_diag = time.perf_counter()
            say("infeasible: diagnosing (elastic repairs and a conflict set)")
            story = formulation.diagnose(ops, _within(scenario, deadline))
            if story is not None:
                folder.text("diagnosis.md", story[0])
                folder.json("diagnosis.json", story[1])
            times["diagnosis"] = time.perf_counter() - t_diag
        folder.flush()  # the tables still being written belong to this phase
        analysis = waited + sum(times.get(k, 0.0) for k in ("extra", "marginals", "diagnosis"))
        times["write"] = time.perf_counter() - t3 - analysis
        times["total"] = time.perf_counter() - start
        summary = summary_of(scenario, ops, result, times, code)
        folder.json("summary.json", summary)
    return RunOutcome(code, summary, result, ops, tables, sensitivities)
