"""HiGHS through highspy, filled from CSR arrays (the fastest hand-over measured here).

highspy is used directly, never OR-Tools' HiGHS: that one returns wrong duals (spec README)
and two HiGHS builds in one process can crash it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.core.model import LinearModel
from allocator.progress import watch_highs
from allocator.solvers.base import Backend, Capability, Limit, RawSolution, Status

if TYPE_CHECKING:  # imported lazily at run time: other backends must not pay for it
    import highspy

_HIGHS_INF = 1e30
AUTO_IPM_COLUMNS = 50_000
# A coupling row (a budget over a region, or over everything) holds at least this many
# entries, and this share of the columns. Measured on the medium allocation LP (200k columns):
# with one such row dual simplex slows from ~7,700 to ~1,100 iterations a second and takes
# 200+ s where interior point takes 18 s; without any (budgets per site only, at most ~1,000
# entries a row) simplex takes 6-7 s against interior point's 10 s.
COUPLING_ROW_MIN = 2_000
COUPLING_ROW_SHARE = 0.02
# A warm first stage of a model interior point would have solved cold gets this many
# simplex iterations (2 per row, at least 20k) before it is given up for a cold interior
# point solve. Measured on medium: a 1% change of the demands took 14k warm iterations
# (both stages 19k in 4.6 CPU s) where interior point takes 20 s; the budget there, 36k
# iterations, bounds what a warm start that does not help can add to a cold run.
WARM_ROW_ITERATIONS = 2.0
WARM_MIN_ITERATIONS = 20_000


def coupling_rows(model: LinearModel) -> int:
    """Rows long enough to make each dual simplex iteration expensive (see COUPLING_ROW_*)."""
    lengths = np.diff(model.matrix.indptr)
    return int(np.count_nonzero(
        lengths >= max(COUPLING_ROW_MIN, COUPLING_ROW_SHARE * model.num_vars)))


def checked(status: highspy.HighsStatus, what: str) -> None:
    """HiGHS answers a refused call with a status, not an exception (a row with a 1e15
    entry is dropped and the rest solved): every call that changes the model is checked."""
    if getattr(status, "name", "") == "kError":
        from allocator.errors import SolverFailure

        raise SolverFailure(f"HiGHS refused {what}; nothing was solved")


def _finite(values: np.ndarray) -> np.ndarray:
    return np.clip(values, -_HIGHS_INF, _HIGHS_INF)


def new_highs() -> highspy.Highs:
    """A silent Highs instance (imported lazily: other backends must not pay for it).

    HiGHS prints its banner from C++ on construction, before any option can be set; the
    process's stdout is redirected around that one call so plans piped to stdout stay clean.
    """
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            highs = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    highs.setOptionValue("output_flag", False)
    return highs


def clone_at_basis(highs: highspy.Highs) -> highspy.Highs:
    """A second Highs holding the same LP and optimal basis, for dual simplex re-solves.

    Analysis of one stage can then run on the spare core while the next stage solves in the
    original: HiGHS gives every calling thread its own task executor, and releases the GIL
    while it runs. Its first `run()` refactorizes the basis and takes no iterations.
    """
    clone = new_highs()
    clone.passOptions(highs.getOptions())  # the user's tolerances, scaling, seed...
    for key, value in (("threads", 1), ("solver", "simplex"), ("output_flag", False),
                       ("time_limit", float("inf"))):
        clone.setOptionValue(key, value)
    checked(clone.passModel(highs.getLp()), "the copy of the model")
    clone.setBasis(highs.getBasis())
    return clone


def _rejected_options(rejected: list[tuple[str, Any]]) -> Exception:
    import difflib

    import highspy

    from allocator.errors import InputError, Problem

    names = [n for n in dir(highspy.HighsOptions()) if not n.startswith("_")]
    problems = []
    for key, value in rejected:
        if key in names:
            why = " (a value HiGHS does not take for it)"
        else:
            close = difflib.get_close_matches(key, names, n=1)
            why = (f" (no such option; did you mean '{close[0]}'?)" if close
                   else " (no such option)")
        problems.append(Problem("solver.options", f"HiGHS rejected option {key} = {value!r}"
                                + why))
    return InputError(problems)


def load_into_highs(
    highs: highspy.Highs, model: LinearModel, c: np.ndarray | None = None, *,
    lb: np.ndarray | None = None, ub: np.ndarray | None = None, relax_integers: bool = False,
) -> None:
    """Columns first with no entries, then rows from CSR: one call each, no per-term work.

    `lb`/`ub`/`relax_integers` let analysis load a variant (integers fixed and relaxed)
    without copying the matrix.
    """
    n = model.num_vars
    cost = np.zeros(n) if c is None else c
    lower = model.lb if lb is None else lb
    upper = model.ub if ub is None else ub
    empty = np.zeros(0, dtype=np.int32)
    checked(highs.addCols(n, cost, _finite(lower), _finite(upper), 0, empty, empty,
                          np.zeros(0)), "the columns")
    matrix = model.matrix
    if model.num_rows:
        checked(highs.addRows(
            model.num_rows, _finite(model.row_lo), _finite(model.row_hi), matrix.nnz,
            matrix.indptr.astype(np.int32, copy=False), matrix.indices.astype(np.int32, copy=False),
            matrix.data,
        ), "the rows")
    integer = np.flatnonzero(model.integer)
    if integer.size and not relax_integers:
        import highspy

        kinds = np.full(integer.size, highspy.HighsVarType.kInteger)
        checked(highs.changeColsIntegrality(integer.size, integer.astype(np.int32), kinds),
                "the integer columns")


_LOWER, _BASIC, _UPPER, _ZERO = 0, 1, 2, 3  # HighsBasisStatus values


def _on_bounds(status: np.ndarray, lo: np.ndarray, hi: np.ndarray, basic: bool) -> np.ndarray:
    """Statuses HiGHS accepts for these bounds: unknown ones (-1) basic (rows: the slack) or
    at a bound (columns: a new person works nowhere yet), and a nonbasic one on a bound that
    exists (a bound that became infinite since the earlier run moves it to the other)."""
    out = np.where(status < 0, _BASIC if basic else _LOWER, status).astype(np.int8)
    nonbasic = out != _BASIC
    has_lo, has_hi = np.isfinite(lo) & (lo > -_HIGHS_INF), np.isfinite(hi) & (hi < _HIGHS_INF)
    at_lo = nonbasic & has_lo & ((out != _UPPER) | ~has_hi)
    at_hi = nonbasic & ~at_lo & has_hi
    out[at_lo], out[at_hi] = _LOWER, _UPPER
    out[nonbasic & ~has_lo & ~has_hi] = _ZERO
    return out


class HighsBackend(Backend):
    name = "highs"
    display = "HiGHS (highspy)"
    capabilities = frozenset(
        {Capability.CONTINUOUS, Capability.INTEGER, Capability.DUALS, Capability.RANGING,
         Capability.WARM_START, Capability.TIME_LIMIT, Capability.THREADS, Capability.SEED,
         Capability.MIP_GAP}
    )
    methods = frozenset({"auto", "simplex", "dual", "primal", "ipm", "pdlp"})

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import highspy  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a dependency
            return False, str(exc)
        from importlib.metadata import version

        return True, f"highspy {version('highspy')}"  # no Highs() built just to ask

    def load(self, model: LinearModel) -> None:
        self.highs = new_highs()
        self.is_mip = model.num_integer > 0
        self.integer = model.integer
        self.num_vars = model.num_vars
        settings = self.settings
        opts: dict[str, bool | int | float | str] = {"random_seed": int(settings.seed)}
        if settings.mip_gap is not None:  # None: HiGHS's own default (1e-4)
            opts["mip_rel_gap"] = float(settings.mip_gap)
        if settings.threads:
            opts["threads"] = int(settings.threads)
        if settings.presolve is not None:
            opts["presolve"] = "on" if settings.presolve else "off"
        method = {"simplex": ("simplex", None), "dual": ("simplex", 1), "primal": ("simplex", 4),
                  "ipm": ("ipm", None), "pdlp": ("pdlp", None)}.get(settings.method)
        if method and not self.is_mip:
            opts["solver"] = method[0]
            if method[0] == "pdlp":
                self.plan_tolerance = 1e-4
            if method[1] is not None:
                opts["simplex_strategy"] = method[1]
        opts.update(settings.options)
        if "threads" in opts:
            # HiGHS fixes its thread pool process-wide at the first solve; another Highs
            # (analysis, MPS reading) may have started it with another size, and then every
            # run fails with "Not Set". Reset the pool: our solves are sequential.
            self.highs.resetGlobalScheduler(True)
        rejected = [(key, value) for key, value in opts.items()
                    if getattr(self.highs.setOptionValue(key, value), "name", "") == "kError"]
        if rejected:  # every one at once, with the nearest real name for a misspelt one
            raise _rejected_options(rejected)
        # method = "auto": interior point (with crossover, so a basis exists for ranging) for
        # the first stage of a large LP with coupling rows, where it was measured 3-12x faster
        # than dual simplex; dual simplex otherwise (faster without coupling rows), and for
        # the later stages, which start warm from the previous stage's basis. The choice
        # depends on the model alone, so the same data gets the same plan every night.
        self.auto_ipm = False
        if (settings.method == "auto" and not self.is_mip and "solver" not in settings.options
                and model.num_vars >= AUTO_IPM_COLUMNS):
            coupling = coupling_rows(model)
            self.auto_ipm = coupling > 0
            self.notes.append(
                f"method auto: {coupling:,} coupling rows (>= "
                f"{max(COUPLING_ROW_MIN, COUPLING_ROW_SHARE * model.num_vars):,.0f} entries): "
                + ("interior point for the first stage, then warm dual simplex" if coupling
                   else "dual simplex"))
        self.solves = 0
        self.num_rows = model.num_rows
        self.warm_ipm = False
        self.iterations: list[int] = []  # simplex iterations of each solve (warm-start notes)
        self.warm_bases: list[tuple[np.ndarray, np.ndarray]] = []
        self.mip_start: tuple[np.ndarray, np.ndarray] | None = None
        self.bounds = (model.lb, model.ub, model.row_lo, model.row_hi)  # for warm bases
        load_into_highs(self.highs, model)

    def basis(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The basis HiGHS holds now (HighsBasisStatus values as int8: columns, rows with
        the holds added so far); None for a MIP or without a valid basis."""
        if self.is_mip:
            return None
        basis = self.highs.getBasis()
        if not basis.valid:
            return None
        return (np.asarray(basis.col_status, dtype=np.int8),
                np.asarray(basis.row_status, dtype=np.int8))

    def warm_start(self, bases: list[tuple[np.ndarray, np.ndarray]],
                   mip_values: np.ndarray | None = None) -> str | None:
        """Start solve k from `bases[k]` (statuses as `basis` gives them, -1 where unknown),
        or a MIP from the known values of its integer columns (NaN: unknown). Returns why
        nothing can be used, if so."""
        if self.is_mip:
            if mip_values is None:
                return "no plan to start the MIP from"
            integer = np.flatnonzero(self.integer & np.isfinite(mip_values))
            if not integer.size:
                return "no integer column of this model was in that plan"
            self.mip_start = (integer.astype(np.int32), np.round(mip_values[integer]))
            return None
        if self.settings.method in ("ipm", "pdlp") or \
                self.settings.options.get("solver") in ("ipm", "pdlp"):
            return f"method {self.settings.method} starts from no basis"
        if not bases:
            return "that run kept no basis of this run's first stage"
        self.warm_bases = list(bases)
        if self.settings.method == "auto" and "solver" not in self.settings.options:
            self.warm_ipm = self.auto_ipm  # cold, interior point: the fallback (solve)
            if self.auto_ipm:  # what the load said of the first stage no longer holds
                self.notes = [n for n in self.notes if not n.startswith("method auto:")]
                self.notes.append("method auto: simplex from the warm start's basis for "
                                  "every stage (interior point starts from no basis)")
            self.auto_ipm = False  # a basis near the optimum: dual simplex, not a cold IPM
            self.highs.setOptionValue("solver", "simplex")
        return None

    def _apply_warm(self) -> None:
        import highspy

        if self.mip_start is not None and self.solves == 0:
            index, values = self.mip_start
            checked(self.highs.setSolution(index.size, index, values), "the MIP start")
        if self.solves >= len(self.warm_bases):
            return
        columns, rows = self.warm_bases[self.solves]
        lb, ub, row_lo, row_hi = self.bounds
        holds = rows.size - row_lo.size  # hold rows: -inf <= objective <= its hold
        statuses = np.array([highspy.HighsBasisStatus(v) for v in range(5)], dtype=object)
        basis = highspy.HighsBasis()
        basis.col_status = statuses[_on_bounds(columns, lb, ub, basic=False)].tolist()
        basis.row_status = statuses[_on_bounds(
            rows, np.concatenate([row_lo, np.full(holds, -np.inf)]),
            np.concatenate([row_hi, np.full(holds, np.inf)]), basic=True)].tolist()
        basis.alien = True  # HiGHS completes a basis whose count of basic variables is off
        checked(self.highs.setBasis(basis), "the warm-start basis")

    def _warm_budget(self) -> int | None:
        """The simplex iterations a warm first stage gets before the cold method takes
        over (only where that method is interior point: see WARM_ROW_ITERATIONS)."""
        if not (self.warm_ipm and self.solves == 0 and self.warm_bases):
            return None
        budget = max(WARM_MIN_ITERATIONS, int(WARM_ROW_ITERATIONS * self.num_rows))
        self.highs.setOptionValue("simplex_iteration_limit", budget)
        return budget

    def _cold_again(self, budget: int) -> None:
        import highspy

        highs = self.highs
        highs.setOptionValue("simplex_iteration_limit", 2**31 - 1)  # HiGHS's default
        if highs.getModelStatus() != highspy.HighsModelStatus.kIterationLimit:
            return
        self.notes.append(
            f"warm start: the first stage was not optimal within {budget:,} simplex "
            "iterations (the data moved too far from that run's for its basis to help): "
            "solved by interior point from scratch instead")
        highs.clearSolver()  # no basis: interior point, then crossover for the next stages
        highs.setOptionValue("solver", "ipm")
        highs.run()
        highs.setOptionValue("solver", "simplex")

    def set_objective(self, c: np.ndarray, constant: float = 0.0) -> None:
        idx = np.arange(self.num_vars, dtype=np.int32)
        checked(self.highs.changeColsCost(self.num_vars, idx, c.astype(float)), "the objective")
        checked(self.highs.changeObjectiveOffset(float(constant)), "the objective constant")

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        checked(self.highs.addRow(float(max(lo, -_HIGHS_INF)), float(min(hi, _HIGHS_INF)),
                                  len(cols), cols.astype(np.int32), vals.astype(float)),
                "the row holding the previous stage")

    def solve(self, time_limit: float | None) -> RawSolution:
        import highspy

        highs = self.highs
        if self.auto_ipm:
            highs.setOptionValue("solver", "ipm" if self.solves == 0 else "simplex")
        self._apply_warm()
        budget = self._warm_budget()
        self.solves += 1
        # HiGHS measures its limit on a clock that runs across calls: add what was used.
        limit = highs.getRunTime() + time_limit if time_limit is not None else _HIGHS_INF
        highs.setOptionValue("time_limit", float(limit))
        start = time.perf_counter()
        with watch_highs(highs, self.is_mip):  # progress, when someone listens (progress.py)
            highs.run()
            if budget is not None:
                self._cold_again(budget)
        seconds = time.perf_counter() - start
        ms = highspy.HighsModelStatus
        limits = {ms.kTimeLimit: Limit.TIME, ms.kIterationLimit: Limit.ITERATIONS,
                  ms.kSolutionLimit: Limit.SOLUTIONS, ms.kInterrupt: Limit.INTERRUPT,
                  # highspy's stubs omit kHighsInterrupt (an enum member at run time)
                  ms.kHighsInterrupt: Limit.INTERRUPT}  # type: ignore[attr-defined]
        status = highs.getModelStatus()
        info = highs.getInfo()
        self.iterations.append(int(info.simplex_iteration_count))
        has_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
        if status == ms.kOptimal:
            result = Status.OPTIMAL
        elif status in (ms.kInfeasible,):
            result = Status.INFEASIBLE
        elif status == ms.kUnboundedOrInfeasible:
            result = Status.INFEASIBLE_OR_UNBOUNDED
        elif status == ms.kUnbounded:
            result = Status.UNBOUNDED
        elif status in limits:
            result = Status.FEASIBLE if has_primal and self.is_mip else Status.NO_SOLUTION
        else:
            return RawSolution(Status.ERROR, seconds=seconds,
                               message=f"HiGHS: {highs.modelStatusToString(status)}")
        raw = RawSolution(result, seconds=seconds, message=highs.modelStatusToString(status),
                          limit=limits.get(status))
        if result.has_solution:
            solution = highs.getSolution()
            raw.x = np.asarray(solution.col_value)
            raw.objective = float(info.objective_function_value)
            raw.bound = float(info.mip_dual_bound) if self.is_mip else raw.objective
            if not self.is_mip and solution.dual_valid:
                raw.row_dual = np.asarray(solution.row_dual)
                raw.col_dual = np.asarray(solution.col_dual)
        return raw
