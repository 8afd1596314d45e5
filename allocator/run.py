"""The solve pipeline, in phases: load, build, solve (each stage analyzed beside it), write
the plan, gather the analysis, write the rest. `PhaseClock` times the phases; work moved to
the spare core is booked to the phase that waits for it, never to writing."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from allocator.analysis.marginals import mip_marginals
from allocator.analysis.sensitivity import LpSensitivity, sensitivity_frame
from allocator.analysis.stage import analyze_stage, resolve_stage_sensitivities
from allocator.bundle import BUNDLE_FILE, expected_files, write_bundle
from allocator.core.model import LinearModel, Objective
from allocator.decompose.entry import solve_if_wanted, wanted
from allocator.decompose.partitioned import wanted as partitioned_wanted
from allocator.decompose.prices import MEANING as PRICES_MEANING
from allocator.decompose.prices import PRICES_FILE, prices_frame, read_prices
from allocator.errors import CapabilityError, ExitCode, InputError
from allocator.formulations import get_formulation
from allocator.formulations.base import Built, Formulation
from allocator.outputs.folder import RunFolder, check_target, run_folder
from allocator.outputs.report import render_infeasible_report, render_report
from allocator.outputs.summary import InputSummary, RunSummary, StageSummary, finite
from allocator.progress import Listener, fan_out, solving, to_log, with_phases
from allocator.runlog import LOG_FILE, RunLog
from allocator.scenario import OutputConfig, Scenario, load_scenario
from allocator.solvers.base import Backend, SolverSettings, Status
from allocator.solvers.highs import HighsBackend, clone_at_basis
from allocator.solvers.lexicographic import SolveResult, StageResult, solve_stages, stage_objectives
from allocator.solvers.registry import backend_class, check_capabilities
from allocator.version import __version__
from allocator.warm import (
    BASIS_FILE,
    BasisLog,
    basis_file,
    iteration_note,
    read_warm,
    start_backend,
    write_basis,
)

if TYPE_CHECKING:
    import highspy


@dataclass(frozen=True)
class RunOutcome:
    exit_code: ExitCode
    summary: dict[str, Any]  # summary.json as written (RunSummary.as_json)
    result: SolveResult | None = None
    ops: Built | None = None
    tables: dict[str, Any] = field(default_factory=dict)
    sensitivities: list[LpSensitivity] = field(default_factory=list)


class PhaseClock:
    """Wall seconds by phase. A phase entered inside another is not counted in the outer
    one, so that waiting for background work is booked to that work (e.g. 'sensitivity'
    inside 'solve' or 'write'), and the phases add up to the total."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()
        self._open: list[tuple[str, float, list[float]]] = []  # name, start, [inner seconds]
        # Told of each phase as it starts (None) and ends (its own seconds): the run's log.
        self.listener: Callable[[str, float | None], None] | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = (name, time.perf_counter(), [0.0])
        self._open.append(frame)
        if self.listener is not None:
            self.listener(name, None)
        try:
            yield
        finally:
            self._open.pop()
            spent = time.perf_counter() - frame[1]
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - frame[2][0]
            if self._open:
                self._open[-1][2][0] += spent
            if self.listener is not None:
                self.listener(name, spent - frame[2][0])

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def report(self) -> dict[str, float]:
        """The phases so far (an open one up to now) and the total, as summary.json has
        them: the summary is written inside the write phase it reports."""
        now = time.perf_counter()
        seconds = dict(self.seconds)
        inner = 0.0
        for name, start, nested in reversed(self._open):
            own = now - start - nested[0] - inner
            seconds[name] = seconds.get(name, 0.0) + own
            inner = now - start
        total = now - self._started
        # The moments between phases (a summary built, a listener told): booked as 'other'
        # so that the phases add up to the total however loaded the machine is (they were
        # 17 ms short of it on a busy one).
        between = total - sum(seconds.values())
        if between > 0.0005:
            seconds["other"] = seconds.get("other", 0.0) + between
        return {**seconds, "total": total}


def settings_from(scenario: Scenario) -> SolverSettings:
    s = scenario.solver
    return SolverSettings(time_limit=s.time_limit, threads=s.threads, seed=s.seed,
                          mip_gap=s.mip_gap, presolve=s.presolve, method=s.method,
                          options=dict(s.options))


def prepare(
    scenario_path: Path, overrides: list[str]
) -> tuple[Scenario, Built, dict[str, float]]:
    """Load, validate and build; no solver involved (this is all `allocator validate` does)."""
    clock = PhaseClock()
    scenario, _formulation, built = _prepare(scenario_path, overrides, clock)
    return scenario, built, dict(clock.seconds)


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

    def __init__(self, highs: highspy.Highs, model: LinearModel, stage: StageResult,
                 share: float, deadline: float | None = None,
                 probes: int | None = None, ladder_span: float | None = None) -> None:
        self.stage = stage.name
        self.error = ""
        self._found: tuple[LpSensitivity, pd.DataFrame, str] | None = None
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

        def work(clone: highspy.Highs) -> None:
            # The copy of the model goes as soon as the analysis is done: the thread lets go
            # of its arguments when `work` returns.
            try:
                clone.run()  # refactorize at the optimal basis: no iterations
                if clone.getModelStatus().name != "kOptimal":
                    self.error = f"HiGHS: {clone.modelStatusToString(clone.getModelStatus())}"
                    return
                clone.setOptionValue("time_limit", float("inf"))
                self._found = analyze_stage(clone, model, stage.name,
                                            solve_seconds=stage.seconds, share=share,
                                            probes=probes, deadline=deadline,
                                            ladder_span=ladder_span)
            except Exception as exc:  # reported in the run's notes; the plan stands
                self.error = f"{type(exc).__name__}: {exc}"

        self._thread = threading.Thread(target=work, args=(clone,),
                                        name=f"sensitivity-{stage.name}", daemon=True)
        self._thread.start()

    def result(self) -> tuple[LpSensitivity, pd.DataFrame, str] | None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._found


def _prepare(
    scenario_path: Path, overrides: list[str], clock: PhaseClock
) -> tuple[Scenario, Formulation, Built]:
    with clock.phase("load"):
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
    with clock.phase("build"):
        ops = formulation.build(data, scenario)
        ops.model.matrix  # noqa: B018 - assemble the CSR now so the build phase owns its cost
        check_capabilities(solver_class, ops.model)
    return scenario, formulation, ops


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
        Status.INFEASIBLE_OR_UNBOUNDED: ExitCode.INFEASIBLE,
        Status.NO_SOLUTION: ExitCode.TIME_LIMIT_NO_PLAN,
        Status.UNBOUNDED: ExitCode.INTERNAL,
        Status.ERROR: ExitCode.INTERNAL,
    }[status]


def summary_of(
    scenario: Scenario, ops: Built, result: SolveResult, seconds: dict[str, float],
    code: ExitCode, notes: list[str] | tuple[str, ...] | None = None,
) -> RunSummary:
    sign = -1.0 if ops.model.maximize else 1.0
    return RunSummary(
        name=scenario.name,
        model=scenario.model,
        status=result.status.value,
        exit_code=int(code),
        sense="max" if ops.model.maximize else "min",
        objectives={s.name: finite(sign * s.objective) for s in result.stages},
        # Each stage's value in the plan written: within the hold tolerance of its optimum.
        plan_objectives={s.name: finite(sign * s.final_value) for s in result.stages},
        # The user's unit of stability: FTE moved = half of sum(dp + dm) (moving 1 FTE from
        # one site to another counts 2 in the stage's objective).
        fte_moved=next((finite(0.5 * s.final_value) for s in result.stages
                        if s.name == "stability"), None),
        stages=tuple(StageSummary(
            name=s.name, status=s.status.value, objective=finite(sign * s.objective),
            plan_value=finite(sign * s.final_value), bound=finite(sign * s.bound),
            gap=finite(s.gap), seconds=round(s.seconds, 4),
            held_at=finite(sign * s.hold_rhs) if s.hold_rhs is not None else None,
            limit=s.limit.value if s.limit is not None else None)
            for s in result.stages),
        mip_gap=finite(result.gap),
        solver={"name": result.solver, **scenario.solver.model_dump()},
        objective_settings=scenario.objective.model_dump(),
        policy=scenario.policy.model_dump(),
        seconds={k: round(v, 4) for k, v in seconds.items()},
        model_size=ops.model.size(),
        inputs={name: InputSummary(source=t.source, rows=t.rows, sha256_16=t.digest)
                for name, t in ops.sources.items()},
        warnings=tuple(ops.warnings),
        notes=tuple(result.notes if notes is None else notes),
        message=result.message,
        version=__version__,
    )


class StageAnalyses:
    """The sensitivity of each solved stage, started as the stage ends (on a clone of its
    HiGHS, in a thread) and gathered when the plan's tables are written: one object with a
    start (`capture`, the solver's per-stage callback), a `gather` and a `stop`."""

    def __init__(self, model: LinearModel, output: OutputConfig, deadline: float | None,
                 enabled: bool, clock: PhaseClock) -> None:
        self.model, self.output, self.deadline = model, output, deadline
        self.enabled, self.clock = enabled, clock
        self.running: list[StageAnalysis] = []
        self.gathered = False

    def capture(self, backend: Backend, stage: StageResult) -> None:
        # HiGHS holds this stage's optimal basis right now: analyze it on a clone in a thread
        # (the spare core) while the next stage solves, or, after the last stage, while the
        # plan tables are built and written.
        if not (self.enabled and isinstance(backend, HighsBackend)):
            return
        with self.clock.phase("sensitivity"):
            if self.model.nnz >= ONE_COPY_NONZEROS:  # one model copy at a time (memory); the
                for earlier in self.running:  # earlier one is usually done: it had a whole
                    earlier.result()  # stage's solve to run in
            self.running.append(StageAnalysis(backend.highs, self.model, stage,
                                              self.output.sensitivity_share, self.deadline,
                                              self.output.sensitivity_probes,
                                              self.output.ladder_span))

    @property
    def started(self) -> bool:
        return bool(self.running)

    def gather(self, notes: list[str]) -> tuple[list[LpSensitivity], list[pd.DataFrame]]:
        """Wait for the analyses; what one could not do is said in `notes`."""
        sensitivities: list[LpSensitivity] = []
        ladders: list[pd.DataFrame] = []
        with self.clock.phase("sensitivity"):
            for analysis in self.running:
                found = analysis.result()
                if found is None:
                    notes.append(f"sensitivity of stage '{analysis.stage}' not available: "
                                 f"{analysis.error}")
                    continue
                sensitivities.append(found[0])
                ladders.append(found[1])
                if found[0].note:  # the safety stop cut the extras short: say so
                    notes.append(found[0].note)
        self.running.clear()
        return sensitivities, ladders

    def stop(self) -> None:
        """No thread may stay inside HiGHS when the process exits (it would abort)."""
        for analysis in self.running:
            analysis.result()
        self.running.clear()


@dataclass
class _Run:
    """What the writing phases share: the inputs, the solve, and what they add."""

    scenario: Scenario
    formulation: Formulation
    ops: Built
    result: SolveResult
    objectives: list[Objective]
    clock: PhaseClock
    deadline: float | None
    say: Callable[[str], None]
    notes: list[str]
    tables: dict[str, Any] = field(default_factory=dict)


def _write_plan(run: _Run, folder: RunFolder) -> None:
    x = run.result.x
    assert x is not None
    run.tables = run.formulation.plan_tables(run.ops, x)
    for name, frame in run.tables.items():
        folder.table(name, frame)


def _write_extras(run: _Run, folder: RunFolder) -> None:
    """Model-specific tables and files (funding's trade-off curve, say)."""
    assert run.result.x is not None
    with run.clock.phase("extra"):
        extra_tables, extra_files = run.formulation.extra_outputs(run.ops, run.result.x,
                                                                  deadline=run.deadline)
    for name, frame in extra_tables.items():
        folder.table(name, frame)
    for name, text in extra_files.items():
        folder.text(name, text)
        if name.endswith(".txt"):  # a formulation's word on what it could not write
            run.notes.append(text.strip())
    run.tables.update(extra_tables)
    if not (extra_tables or extra_files):
        run.clock.seconds.pop("extra", None)


def _write_sensitivity(run: _Run, folder: RunFolder,
                       sensitivities: list[LpSensitivity], ladders: list[pd.DataFrame]) -> None:
    if not sensitivities:
        return
    sens_table = sensitivity_frame(run.ops.model, sensitivities,
                                   [st.name for st in run.result.stages])
    nonempty = [frame for frame in ladders if not frame.empty]
    ladder_table = pd.concat(nonempty, ignore_index=True) if nonempty else None
    folder.table("sensitivity", sens_table)
    story = run.formulation.bottlenecks(run.ops, sens_table, run.tables, run.scenario.name,
                                        ladder_table)
    ranked_table = None
    if story is not None:
        markdown, ranked_table = story
        folder.text("bottlenecks.md", markdown)
        folder.table("bottlenecks", ranked_table)
    if ladder_table is not None:
        folder.table("ladders", ladder_table)
    run.tables.update(sensitivity=sens_table, bottlenecks=ranked_table, ladders=ladder_table)


def _write_marginals(run: _Run, folder: RunFolder) -> None:
    """Whole mode: exact marginal values by re-solves, within the run's deadline."""
    scenario, x = run.scenario, run.result.x
    if not (run.ops.model.num_integer and scenario.output.sensitivity
            and scenario.output.marginal_rows) or x is None:
        return
    with run.clock.phase("marginals"):
        run.say("whole mode: exact marginal values by parallel re-solves")
        found = mip_marginals(
            run.ops.model, run.objectives[0], x,
            run.formulation.input_tables(run.ops).get("targets"),
            scenario.output.marginal_step, scenario.output.marginal_rows,
            time_limit=max(10.0, 5 * run.result.stages[0].seconds),
            mip_gap=scenario.solver.mip_gap, deadline=run.deadline)
    if found.skipped:
        run.notes.append(
            f"time limit: {len(found.skipped)} marginal re-solves not run or stopped at the "
            f"run's deadline ({', '.join(found.skipped[:5])}"
            + (", ..." if len(found.skipped) > 5 else "") + ")")
    if not found.table.empty:
        folder.table("marginals", found.table)
        run.tables["marginals"] = found.table


def _write_report(run: _Run, folder: RunFolder, code: ExitCode) -> None:
    if run.scenario.output.report:
        summary = summary_of(run.scenario, run.ops, run.result, run.clock.report(), code,
                             run.notes)
        folder.text("report.html", render_report(run.scenario.name, summary.as_json(),
                                                 run.tables, run.formulation.report_words()))


def _write_baseline_diff(folder: RunFolder, summary: dict[str, Any], clock: PhaseClock,
                         notes: list[str]) -> None:
    """baseline_*.csv, baseline_diff.md/.html: what changed against the baseline plan, as
    `allocator diff` says it. The plan stands without them: a failure is a note."""
    from allocator.diff import write_baseline_diff

    with clock.phase("baseline diff"):
        try:
            write_baseline_diff(folder.tmp, into=folder, summary=summary)
        except Exception as exc:
            notes.append("the comparison with the baseline (baseline_diff.md) was not "
                          f"written: {type(exc).__name__}: {exc}")


def _write_diagnosis(run: _Run, folder: RunFolder) -> None:
    with run.clock.phase("diagnosis"):
        run.say("infeasible: diagnosing (elastic repairs and a conflict set)")
        story = run.formulation.diagnose(run.ops, _within(run.scenario, run.deadline))
    if story is not None:
        folder.text("diagnosis.md", story[0])
        folder.json("diagnosis.json", story[1])
        recommendation = story[1].get("recommendation")
        if recommendation:  # on the terminal (and in cron mail), not only in the folder
            run.notes.append(str(recommendation))
    if run.scenario.output.report:
        summary = summary_of(run.scenario, run.ops, run.result, run.clock.report(),
                             ExitCode.INFEASIBLE, run.notes)
        folder.text("report.html", render_infeasible_report(
            run.scenario.name, summary.as_json(), story[1] if story is not None else {}))


def solve_scenario(
    scenario_path: Path, out: Path, overrides: list[str] | None = None, *, force: bool = False,
    accept_timeout: bool = False, on_phase: Callable[[str], None] | None = None,
    warm_from: Path | None = None, warm_source: str | None = None, log: RunLog | None = None,
    bundle: bool = False,
    on_progress: Listener | None = None,
) -> RunOutcome:
    """Run a scenario end to end and write its folder; returns the exit code to use.

    `warm_from`: an earlier run folder (or its basis.parquet) to start the solver from
    (allocator/warm.py); `warm_source` names it in the notes (e.g. "run 12 (runs/mon)").
    `on_progress` is told of phases, stages and the solver's figures as they happen
    (allocator/progress.py: the terminal display, the heartbeat); the log gets them too.
    `log` gets every event of the run (allocator/runlog.py; default: one that passes the
    progress lines to `on_phase`); its text is the folder's run.log. `bundle`: write
    bundle.tar.gz, all a replay needs (allocator/bundle.py)."""
    log = log if log is not None else RunLog(echo=on_phase)
    say = log.progress
    # `--out=~/x` reaches us unexpanded (the shell expands `~` only at a word's start).
    out = Path(os.path.expanduser(out))
    scenario_path = Path(os.path.expanduser(scenario_path))
    check_target(out, force)
    clock = PhaseClock()
    if on_progress is not None:  # the same events in the run's log (run.log, JSON lines)
        on_progress = fan_out(on_progress, to_log(log.event))
    clock.listener = with_phases(log.phase, on_progress)
    began = time.monotonic()
    with clock.phase("load"):
        peek = load_scenario(scenario_path, overrides or [])
    if partitioned_wanted(peek):  # tables by region: each worker reads and builds its own
        return _solve_partitioned(peek, out, force, accept_timeout, clock, began, log,
                                  warm_from, warm_source, bundle or peek.output.bundle)
    scenario, formulation, ops = _prepare(scenario_path, overrides or [], clock)
    # The run's one promise to a scheduler: it ends by this instant plus the time to write
    # (loading counted). Solving gets what is left; the extras get what solving leaves.
    limit = scenario.solver.time_limit
    deadline = None if limit is None or not np.isfinite(limit) else began + limit
    size = ops.model.size()
    say(f"model: {size['rows']:,} rows, {size['columns']:,} columns, {size['nonzeros']:,} "
        f"nonzeros, {size['integer_columns']:,} integer")
    objectives = stage_objectives(ops.model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights.items()))
    if scenario.output.report:
        threading.Thread(target=_preload_plotting, name="preload-plotting", daemon=True).start()
    settings = settings_from(scenario)
    if settings.time_limit is not None:  # the limit is for the whole run
        remaining = settings.time_limit - clock.elapsed()
        settings = SolverSettings(**{**settings.__dict__, "time_limit": max(remaining, 0.01)})
    analyses = StageAnalyses(ops.model, scenario.output, deadline,
                             scenario.output.sensitivity and ops.model.num_integer == 0, clock)
    warm = None
    skipped: list[str] = []
    prices_only = warm_from is not None and not basis_file(warm_from).is_file() and \
        (Path(warm_from) / PRICES_FILE).is_file()  # a partitioned run's folder
    if prices_only and not wanted(ops.model):  # prices for a decomposed run; no basis here
        skipped.append(f"warm start from {warm_source or warm_from} not used: that run was "
                       f"decomposed on partitioned tables and left {PRICES_FILE}, not the "
                       f"{BASIS_FILE} a monolithic run starts from")
        warm_from = None
    if warm_from is not None and not prices_only:
        with clock.phase("warm"):
            warm = read_warm(warm_from, ops.model, [o.name for o in objectives], warm_source)
    bases = BasisLog()

    def on_stage(backend: Backend, stage: StageResult) -> None:
        bases.capture(backend, stage.name)  # the basis tomorrow's run starts from
        analyses.capture(backend, stage)

    try:
        with clock.phase("solve"), solving(on_progress, [o.name for o in objectives],
                                           scenario.solver.name, ops.model.maximize,
                                           on_stage) as staged:
            # --decompose (allocator/decompose/entry.py): Dantzig-Wolfe on Dask instead
            # (an earlier run's master prices, when it was decomposed too, start it warm)
            earlier = (read_prices(warm_from) if warm_from is not None and wanted(ops.model)
                       else None)
            decomposed = solve_if_wanted(ops.model, objectives, scenario.objective.rel_tol,
                                         scenario.objective.abs_tol, settings.time_limit,
                                         scenario.solver.mip_gap, earlier)
            if decomposed is not None:
                result, decomposition, master_prices = decomposed
                source = warm.source if warm is not None else (warm_source or str(warm_from))
                warm_notes = [] if warm_from is None else [
                    f"warm start from {source}: the decomposition's master started from its "
                    f"prices ({PRICES_FILE})" if earlier is not None else
                    f"warm start from {source} not used: decomposed solve, and that run has "
                    f"no {PRICES_FILE} (it was not decomposed)"]
            else:
                loading = time.monotonic()
                backend, warm_notes = start_backend(ops.model, scenario.solver.name, settings,
                                                    warm)
                if settings.time_limit is not None:  # loading the solver came out of the run's
                    settings = SolverSettings(**{**settings.__dict__, "time_limit": max(
                        settings.time_limit - (time.monotonic() - loading), 0.01)})
                result = solve_stages(ops.model, objectives, scenario.solver.name, settings,
                                      scenario.objective.rel_tol, scenario.objective.abs_tol,
                                      backend=backend, on_stage=staged)
    except BaseException:
        analyses.stop()
        raise
    notes = [*skipped, *warm_notes, *result.notes]
    if warm is not None and decomposed is None and not warm_notes[0].startswith(
            f"warm start from {warm.source} not"):
        iterations = iteration_note(backend, [s.name for s in result.stages])
        notes.extend([iterations] if iterations else [])
    if not result.status.has_solution or result.x is None:
        analyses.stop()
    sensitivities: list[LpSensitivity] = []
    ladders: list[pd.DataFrame] = []
    if scenario.output.sensitivity and result.x is not None and not analyses.started:
        with clock.phase("sensitivity"):  # other solvers, and MIPs: re-solved with HiGHS
            sensitivities, ladders = resolve_stage_sensitivities(
                ops.model, objectives, list(result.stages), result.x,
                scenario.output.sensitivity_share, scenario.output.sensitivity_probes,
                scenario.output.ladder_span, deadline, notes)
        notes.extend(s.note for s in sensitivities if s.note)
    code = exit_code_for(result.status, accept_timeout)
    run = _Run(scenario, formulation, ops, result, objectives, clock, deadline, say, notes)
    try:
        with clock.phase("write"), run_folder(out, scenario.output.formats, force) as folder:
            if result.status.has_solution and result.x is not None:
                _write_plan(run, folder)
                plan_names = list(run.tables)
                if decomposed is not None:  # the finance figure at this scale, and tomorrow's
                    folder.table("master_prices", prices_frame(master_prices))  # warm start
                with clock.phase("warm"):  # what tomorrow's run starts from
                    write_basis(folder.tmp / BASIS_FILE, ops.model, bases, result.x)
                _write_extras(run, folder)
                if analyses.started:
                    sensitivities, ladders = analyses.gather(notes)
                _write_sensitivity(run, folder, sensitivities, ladders)
                _write_marginals(run, folder)
                _write_report(run, folder, code)
            elif result.status.is_infeasible:
                _write_diagnosis(run, folder)
            folder.flush()  # the tables still being written belong to this phase
            if bundle or scenario.output.bundle:
                with clock.phase("bundle"):
                    notes.extend(write_bundle(
                        folder.tmp / BUNDLE_FILE, scenario_path, scenario, ops.sources,
                        ops.model, objectives, result, folder.tmp,
                        expected_files(plan_names if result.x is not None else []),
                        basis_file(warm_from) if warm_from is not None else None))
            summary = summary_of(scenario, ops, result, clock.report(), code, notes).as_json()
            if result.x is not None and (summary.get("inputs") or {}).get("baseline"):
                _write_baseline_diff(folder, summary, clock, notes)
                summary = summary_of(scenario, ops, result, clock.report(), code,
                                     notes).as_json()
            if decomposed is not None:  # both bounds and the gap of each stage, and more
                summary["decomposition"] = decomposition
            folder.json("summary.json", summary)
            log.outcome(summary, str(out))
            folder.text(LOG_FILE, log.text())
    finally:
        analyses.stop()
    return RunOutcome(code, summary, result, ops, run.tables, sensitivities)


@dataclass(frozen=True)
class _PartitionedShape:
    """What summary_of reads of a model, for a run whose model was never built whole."""

    size_of: dict[str, int]
    maximize: bool = False

    def size(self) -> dict[str, int]:
        return dict(self.size_of)


@dataclass(frozen=True)
class _Source:
    source: str
    rows: int
    digest: str


@dataclass(frozen=True)
class _PartitionedBuilt:
    model: _PartitionedShape
    sources: dict[str, _Source]
    warnings: list[str]


def _partitioned_bottlenecks(scenario: Scenario, solved: Any
                             ) -> tuple[str, pd.DataFrame] | None:
    """bottlenecks.md and .csv of a partitioned run, from its sensitivity.csv: prices exact
    at the optimum (each stage's master converged), said per unit at today's price, since
    there is no whole LP to range (formulations/ops/bottlenecks.py, `marginal`)."""
    sensitivity = solved.tables.get("sensitivity")
    if sensitivity is None or sensitivity.empty or not solved.exact_duals:
        return None
    from allocator.formulations.ops.bottlenecks import bottlenecks_markdown

    return bottlenecks_markdown(sensitivity, None, solved.tables["sites"], scenario.name,
                                moved_constant=solved.moved_constant,
                                coverage=solved.tables.get("coverage"), marginal=True)


def _partitioned_bundle(scenario: Scenario, solved: Any, folder: Path, warm_from: Path | None,
                        warmed: bool, req: Any) -> list[str]:
    """bundle.tar.gz of a partitioned run: its parts as they are, the plan's tables, and how
    it decomposed (allocator/bundle.py, `write_partitioned_bundle`)."""
    from allocator.bundle import write_partitioned_bundle

    result = solved.result
    prices = None
    if warm_from is not None and warmed:  # read_prices reads the folder's (or file's folder's)
        prices = (warm_from if warm_from.is_dir() else warm_from.parent) / PRICES_FILE
    plan = [name for name in solved.tables if name != "sensitivity"] \
        if result.status.has_solution else []
    return write_partitioned_bundle(
        folder / BUNDLE_FILE, Path(scenario.source), scenario,
        {name: source[2] for name, source in solved.inputs.items()}, solved.part_digests,
        {s.name: (float(s.objective) if np.isfinite(s.objective) else None)
         for s in result.stages}, result.status.value, folder, expected_files(plan), prices,
        {"mode": req.mode, "workers": req.workers, "polish": req.polish})


def _solve_partitioned(scenario: Scenario, out: Path, force: bool, accept_timeout: bool,
                       clock: PhaseClock, began: float, log: RunLog,
                       warm_from: Path | None, warm_source: str | None,
                       bundle: bool = False) -> RunOutcome:
    """The decomposed run on tables partitioned by region (allocator/decompose/partitioned.py):
    the workers read and build their regions; this writes what the client can: the plan's
    tables, master_prices.csv, summary.json and run.log."""
    from allocator.decompose import entry
    from allocator.decompose.partitioned import solve_partitioned

    limit = scenario.solver.time_limit
    req = entry.current()
    earlier = read_prices(warm_from) if warm_from is not None else None
    with clock.phase("solve"):
        client, cluster = entry.connect(req)
        try:
            left = None if limit is None else max(0.01, limit - (time.monotonic() - began))
            solved = solve_partitioned(scenario, client=client, workers=req.workers,
                                       time_limit=left, warm_prices=earlier, say=log.progress,
                                       polish=req.polish)
        finally:
            entry.close(client, cluster)
    result = solved.result
    notes = list(result.notes)
    if warm_from is not None:
        source = warm_source or str(warm_from)
        notes.insert(0, f"warm start from {source}: the decomposition's master started from "
                        f"its prices ({PRICES_FILE})" if earlier is not None else
                        f"warm start from {source} not used: that run has no {PRICES_FILE} "
                        "(it was not decomposed)")
    code = exit_code_for(result.status, accept_timeout)
    built = _PartitionedBuilt(_PartitionedShape(solved.size),
                              {k: _Source(*v) for k, v in solved.inputs.items()},
                              solved.warnings)
    story = _partitioned_bottlenecks(scenario, solved)
    if story is None and "sensitivity" in solved.tables:
        notes.append("bottlenecks.md not written: a stage's master stopped before it "
                     "converged, so its prices are not exactly the LP's")
    with clock.phase("write"), run_folder(out, scenario.output.formats, force) as folder:
        if result.status.has_solution and solved.tables:
            for name, frame in solved.tables.items():
                folder.table(name, frame)
            folder.table("master_prices", prices_frame(solved.prices))
            if story is not None:
                folder.text("bottlenecks.md", story[0])
                folder.table("bottlenecks", story[1])
        folder.flush()
        if bundle or scenario.output.bundle:
            with clock.phase("bundle"):
                try:
                    notes.extend(_partitioned_bundle(scenario, solved, folder.tmp, warm_from,
                                                     earlier is not None, req))
                except (OSError, InputError) as exc:  # a part gone since: the plan stays
                    (folder.tmp / BUNDLE_FILE).unlink(missing_ok=True)
                    notes.append(f"bundle.tar.gz not written: {str(exc).splitlines()[0]}")
        if solved.diagnosis is not None:
            folder.text("diagnosis.md", solved.diagnosis[0])
            folder.json("diagnosis.json", solved.diagnosis[1])
        folder.flush()

        def summarize() -> dict[str, Any]:
            said = summary_of(scenario, built, result, clock.report(), code,  # type: ignore[arg-type]
                              notes).as_json()
            said["decomposition"] = solved.decomposition
            return said

        summary = summarize()
        if scenario.output.report:  # from the plan's tables and the summary, as monolithic
            if solved.diagnosis is not None:
                folder.text("report.html", render_infeasible_report(
                    scenario.name, summary, solved.diagnosis[1]))
            elif result.status.has_solution and solved.tables:
                from allocator.formulations.ops import OpsFormulation
                from allocator.formulations.ops.bottlenecks import MARGINAL_WORDS

                shown = {**solved.tables, "master_prices": prices_frame(solved.prices),
                         **({"bottlenecks": story[1]} if story is not None else {})}
                words = replace(OpsFormulation().report_words(),
                                table_notes={"master_prices": PRICES_MEANING,
                                             "bottlenecks": MARGINAL_WORDS})
                folder.text("report.html", render_report(scenario.name, summary, shown, words))
        if result.status.has_solution and solved.tables and \
                (summary.get("inputs") or {}).get("baseline"):
            _write_baseline_diff(folder, summary, clock, notes)
            summary = summarize()
        folder.json("summary.json", summary)
        log.outcome(summary, str(out))
        folder.text(LOG_FILE, log.text())
    return RunOutcome(code, summary, result, None, solved.tables)
