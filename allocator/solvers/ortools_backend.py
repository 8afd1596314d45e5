"""OR-Tools' GLOP, PDLP and SCIP through model_builder, filled from sparse arrays in one call.

OR-Tools' model_builder has no vectorized way to add one long row, so the stage-hold rows are
kept here and the model is refilled (``fill_model_from_sparse_data``) before each solve: one
vectorized call, cheaper than a Python loop over the terms of a row as long as the model.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from allocator.core.model import LinearModel
from allocator.errors import InputError
from allocator.solvers.base import Backend, Capability, RawSolution, Status

if TYPE_CHECKING:
    from ortools.linear_solver.python import model_builder_helper as mbh


def _text_params(options: dict[str, object]) -> list[str]:
    """Pass-through options: ``{"params": "raw text"}`` or key/value pairs in text format."""
    lines = []
    for key, value in options.items():
        if key == "params":
            lines.append(str(value))
        elif isinstance(value, bool):
            lines.append(f"{key}: {'true' if value else 'false'}")
        else:
            lines.append(f"{key}: {value}")
    return lines


class _ModelBuilderBackend(Backend):
    solver_id = ""

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            from ortools.linear_solver.python import model_builder_helper as mbh
        except ImportError as exc:  # pragma: no cover - a dependency
            return False, str(exc)
        # The distribution's version: ortools' top-level package has no type information.
        if not mbh.ModelSolverHelper(cls.solver_id).solver_is_supported():
            return False, f"OR-Tools {version('ortools')} was built without {cls.solver_id}"
        return True, f"ortools {version('ortools')}"

    def load(self, model: LinearModel) -> None:
        self.model = model
        self.c = np.zeros(model.num_vars)
        self.constant = 0.0
        self.extra_rows: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        self.is_mip = model.num_integer > 0

    def set_objective(self, c: np.ndarray, constant: float = 0.0) -> None:
        self.c = np.asarray(c, dtype=float)
        self.constant = float(constant)

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        self.extra_rows.append((cols, vals, lo, hi))

    def _parameters(self) -> str:
        raise NotImplementedError

    def _build(self) -> mbh.ModelBuilderHelper:
        from ortools.linear_solver.python import model_builder_helper as mbh

        model = self.model
        matrix = model.matrix
        lo, hi = model.row_lo, model.row_hi
        if self.extra_rows:
            n = model.num_vars
            rows = [sp.csr_array((v, (np.zeros(len(c), dtype=np.int64), c)), shape=(1, n))
                    for c, v, _, _ in self.extra_rows]
            matrix = sp.vstack([matrix, *rows], format="csr")
            lo = np.concatenate([lo, [r[2] for r in self.extra_rows]])
            hi = np.concatenate([hi, [r[3] for r in self.extra_rows]])
        helper = mbh.ModelBuilderHelper()
        helper.fill_model_from_sparse_data(  # ortools' generated stub spells the arrays
            # ndarray[float64[m, 1]] (a shape where numpy's stubs expect one): no array fits
            model.lb, model.ub, self.c, lo, hi, sp.csr_matrix(matrix)  # type: ignore[arg-type]
        )
        helper.set_objective_offset(self.constant)
        for index in np.flatnonzero(model.integer):
            helper.set_var_integrality(int(index), True)
        return helper

    def solve(self, time_limit: float | None) -> RawSolution:
        from ortools.linear_solver.python import model_builder_helper as mbh

        helper = self._build()
        solver = mbh.ModelSolverHelper(self.solver_id)
        solver.enable_output(False)
        if time_limit is not None:
            solver.set_time_limit_in_seconds(float(time_limit))
        params = self._parameters()
        if params:
            solver.set_solver_specific_parameters(params)
        start = time.perf_counter()
        solver.solve(helper)
        seconds = time.perf_counter() - start
        st = mbh.SolveStatus
        status = solver.status()
        if status == st.OPTIMAL:
            result = Status.OPTIMAL
        elif status == st.FEASIBLE:
            result = Status.FEASIBLE
        elif status == st.INFEASIBLE:
            result = Status.INFEASIBLE
        elif status == st.UNBOUNDED:
            result = Status.UNBOUNDED
        elif status in (st.NOT_SOLVED, st.CANCELLED_BY_USER) or (
            status == st.ABNORMAL and time_limit is not None and seconds >= 0.95 * time_limit
        ):
            result = Status.NO_SOLUTION
        elif status == st.INVALID_SOLVER_PARAMETERS:
            raise InputError(f"{self.display} rejected the solver options: {params!r}",
                             "solver.options")
        else:
            return RawSolution(Status.ERROR, seconds=seconds,
                               message=f"{self.display}: {status.name} {solver.status_string()}")
        raw = RawSolution(result, seconds=seconds, message=status.name)
        if result.has_solution and solver.has_solution():
            raw.x = np.asarray(solver.variable_values())
            raw.objective = float(solver.objective_value())
            raw.bound = float(solver.best_objective_bound()) if self.is_mip else raw.objective
            if not self.is_mip and Capability.DUALS in self.capabilities:
                raw.row_dual = np.asarray(solver.dual_values())[: self.model.num_rows + len(
                    self.extra_rows)]
                raw.col_dual = np.asarray(solver.reduced_costs())
        elif result.has_solution:
            raw.status = Status.NO_SOLUTION
        return raw


class GlopBackend(_ModelBuilderBackend):
    name = "glop"
    display = "GLOP (OR-Tools)"
    solver_id = "glop"
    capabilities = frozenset({Capability.CONTINUOUS, Capability.DUALS, Capability.TIME_LIMIT,
                              Capability.SEED})
    methods = frozenset({"auto", "simplex", "dual", "primal"})

    def _parameters(self) -> str:
        s = self.settings
        lines = [f"random_seed: {s.seed}"]
        if s.presolve is not None:
            lines.append(f"use_preprocessing: {'true' if s.presolve else 'false'}")
        if s.method in ("dual", "primal"):
            lines.append(f"use_dual_simplex: {'true' if s.method == 'dual' else 'false'}")
        return "\n".join(lines + _text_params(s.options))


class PdlpBackend(_ModelBuilderBackend):
    name = "pdlp"
    display = "PDLP (OR-Tools)"
    solver_id = "pdlp"
    capabilities = frozenset({Capability.CONTINUOUS, Capability.DUALS, Capability.TIME_LIMIT,
                              Capability.THREADS})
    methods = frozenset({"auto", "pdlp"})
    plan_tolerance = 1e-4

    def _parameters(self) -> str:
        s = self.settings
        # PDLP's default (1e-6 relative) leaves stage objectives visibly apart from simplex
        # solvers; 1e-8 makes its answers agree at the lexicographic tolerance.
        lines = [f"num_threads: {max(1, s.threads)}"]
        if "termination_criteria" not in str(s.options):
            lines.append("termination_criteria { simple_optimality_criteria { "
                         "eps_optimal_absolute: 1e-8 eps_optimal_relative: 1e-8 } }")
        if s.presolve:
            lines.append("presolve_options { use_glop: true }")
        return "\n".join(lines + _text_params(s.options))


class ScipBackend(_ModelBuilderBackend):
    name = "scip"
    display = "SCIP (OR-Tools)"
    solver_id = "scip"
    capabilities = frozenset({Capability.CONTINUOUS, Capability.INTEGER, Capability.TIME_LIMIT,
                              Capability.SEED, Capability.MIP_GAP})

    def _parameters(self) -> str:
        s = self.settings
        lines = [f"randomization/randomseedshift = {s.seed}"]
        if s.mip_gap is not None:  # None: SCIP's own default
            lines.append(f"limits/gap = {s.mip_gap}")
        if s.presolve is False:
            lines.append("presolving/maxrounds = 0")
        for key, value in s.options.items():  # SCIP's own parameter-file syntax
            lines.append(str(value) if key == "params" else f"{key} = {value}")
        return "\n".join(lines)
