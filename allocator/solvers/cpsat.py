"""CP-SAT: an integer solver, so the model is scaled to integers here, and the scaling is said.

Continuous columns become integers counted in steps of ``1/resolution`` (default 100 steps per
unit, i.e. 0.01 FTE), and each row is multiplied by the smallest power of ten that makes all
its coefficients whole. A row that needs more than 10^9 is refused: CP-SAT would lose the
precision silently. The objective stays floating point (CP-SAT supports that natively).
"""

from __future__ import annotations

import math
import time
from importlib.metadata import version
from typing import TYPE_CHECKING

import numpy as np

from allocator.core.model import LinearModel
from allocator.errors import CapabilityError
from allocator.solvers.base import Backend, Capability, RawSolution, Status

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

MAX_ROW_SCALE_DIGITS = 9
DEFAULT_RESOLUTION = 100


def _row_scale(coefs: np.ndarray) -> int | None:
    """Smallest power of ten k such that coefs * 10^k are whole numbers (to 1e-9)."""
    for k in range(MAX_ROW_SCALE_DIGITS + 1):
        scaled = coefs * 10.0**k
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return k
    return None


class CpSatBackend(Backend):
    name = "cpsat"
    display = "CP-SAT (OR-Tools)"
    capabilities = frozenset({Capability.INTEGER, Capability.TIME_LIMIT, Capability.THREADS,
                              Capability.SEED, Capability.MIP_GAP})

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            from ortools.sat.python import cp_model  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a dependency
            return False, str(exc)
        # The distribution's version: ortools' top-level package has no type information.
        return True, f"ortools {version('ortools')}"

    def load(self, model: LinearModel) -> None:
        self.model = model
        resolution = float(self.settings.options.get("resolution", DEFAULT_RESOLUTION))
        self.step = np.where(model.integer, 1.0, resolution)  # integer units per model unit
        lb, ub = model.lb * self.step, model.ub * self.step
        if not np.all(np.isfinite(ub)) or not np.all(np.isfinite(lb)):
            raise CapabilityError("CP-SAT needs finite bounds on every variable; use highs or scip")
        self.lb = np.ceil(lb - 1e-9).astype(np.int64)
        self.ub = np.floor(ub + 1e-9).astype(np.int64)
        self.rows: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        matrix = model.matrix
        lo, hi = model.row_lo, model.row_hi
        for r in range(model.num_rows):
            sl = slice(matrix.indptr[r], matrix.indptr[r + 1])
            self.rows.append((matrix.indices[sl], matrix.data[sl], lo[r], hi[r]))
        self.c = np.zeros(model.num_vars)
        self.constant = 0.0
        self.max_digits = 0
        if model.num_integer < model.num_vars:
            self.notes.append(
                f"CP-SAT: {model.num_vars - model.num_integer} continuous columns counted in "
                f"steps of 1/{resolution:g} (set solver.options.resolution to change)"
            )

    def set_objective(self, c: np.ndarray, constant: float = 0.0) -> None:
        self.c = np.asarray(c, dtype=float)
        self.constant = float(constant)

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        self.rows.append((np.asarray(cols), np.asarray(vals, dtype=float), lo, hi))

    def _build(self) -> cp_model.CpModel:
        from ortools.sat.python import cp_model

        cp = cp_model.CpModel()
        proto = cp.proto
        for low, high in zip(self.lb.tolist(), self.ub.tolist(), strict=True):
            proto.variables.add().domain.extend([low, high])
        self.max_digits = 0
        for number, (cols, vals, lo, hi) in enumerate(self.rows):
            coefs = vals / self.step[cols]
            digits = _row_scale(coefs)
            if digits is None:
                raise CapabilityError(
                    f"CP-SAT needs whole-number coefficients: row {number} would need scaling "
                    f"beyond 10^{MAX_ROW_SCALE_DIGITS}; use highs, scip or cbc for this model"
                )
            self.max_digits = max(self.max_digits, digits)
            scale = 10.0**digits
            ints = np.round(coefs * scale).astype(np.int64)
            low = math.ceil(lo * scale - 1e-6) if np.isfinite(lo) else cp_model.INT_MIN
            high = math.floor(hi * scale + 1e-6) if np.isfinite(hi) else cp_model.INT_MAX
            linear = proto.constraints.add().linear
            linear.vars.extend(cols.tolist())
            linear.coeffs.extend(ints.tolist())
            linear.domain.extend([int(low), int(high)])
        nz = np.flatnonzero(self.c)
        objective = proto.floating_point_objective
        objective.vars.extend(nz.tolist())
        objective.coeffs.extend((self.c[nz] / self.step[nz]).tolist())
        objective.offset = self.constant
        return cp

    def solve(self, time_limit: float | None) -> RawSolution:
        from ortools.sat.python import cp_model

        model = self._build()
        if self.max_digits and not getattr(self, "_scaling_said", False):
            # The spec asks that the scaling be said: rows were multiplied by up to 10^k so
            # that every coefficient is whole (exact: no coefficient was rounded).
            self.notes.append(f"CP-SAT: rows scaled by up to 10^{self.max_digits} to make "
                              "every coefficient a whole number (exactly, nothing rounded)")
            self._scaling_said = True
        solver = cp_model.CpSolver()
        params = solver.parameters
        params.num_workers = max(1, self.settings.threads)
        params.random_seed = self.settings.seed
        if self.settings.mip_gap is not None:  # None: CP-SAT's own default
            params.relative_gap_limit = self.settings.mip_gap
        if time_limit is not None:
            params.max_time_in_seconds = float(time_limit)
        for key, value in self.settings.options.items():
            if key != "resolution":
                setattr(params, key, value)
        start = time.perf_counter()
        code = solver.solve(model)
        seconds = time.perf_counter() - start
        if code == cp_model.OPTIMAL:
            result = Status.OPTIMAL
        elif code == cp_model.FEASIBLE:
            result = Status.FEASIBLE
        elif code == cp_model.INFEASIBLE:
            result = Status.INFEASIBLE
        elif code == cp_model.UNKNOWN:
            result = Status.NO_SOLUTION
        else:
            return RawSolution(Status.ERROR, seconds=seconds,
                               message=f"CP-SAT: {solver.status_name(code)}")
        raw = RawSolution(result, seconds=seconds, message=solver.status_name(code))
        if result.has_solution:
            values = np.asarray(solver.response_proto.solution, dtype=float)
            raw.x = values / self.step
            raw.objective = float(solver.objective_value)
            raw.bound = float(solver.best_objective_bound)
        return raw
