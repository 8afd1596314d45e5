"""PuLP as a backend (CBC bundled, or any solver PuLP knows), fed from the arrays.

PuLP builds a Python object per term, which is why it is a backend here and never the
modeling layer: the model is built once, vectorized, and translated row by row only when a
user picks a PuLP solver (often for a commercial licence that only PuLP reaches).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.core.model import LinearModel
from allocator.errors import CapabilityError
from allocator.solvers.base import Backend, Capability, RawSolution, SolverSettings, Status

if TYPE_CHECKING:
    import pulp


def _solver(name: str, settings: SolverSettings, time_limit: float | None) -> pulp.LpSolver:
    import pulp

    kwargs: dict[str, Any] = {"msg": False}
    if time_limit is not None:
        kwargs["timeLimit"] = max(1, round(time_limit))
    if name == "PULP_CBC_CMD":
        options = [f"randomCbcSeed {settings.seed + 1}"]
        options += [f"{k} {v}" for k, v in settings.options.items()]
        if settings.presolve is False:
            options.append("presolve off")
        return pulp.PULP_CBC_CMD(gapRel=settings.mip_gap, threads=max(1, settings.threads),
                                 options=options, **kwargs)
    kwargs.update(settings.options)
    try:
        solver = pulp.getSolver(name, gapRel=settings.mip_gap, **kwargs)
    except pulp.PulpSolverError as exc:
        known = ", ".join(pulp.listSolvers())
        raise CapabilityError(f"PuLP does not know solver {name!r} ({exc}); it knows: {known}",
                              "solver.name") from None
    if not solver.available():
        usable = ", ".join(pulp.listSolvers(onlyAvailable=True))
        raise CapabilityError(f"PuLP solver {name!r} is not available on this machine; "
                              f"available: {usable}", "solver.name")
    return solver


class PulpBackend(Backend):
    """``cbc`` or ``pulp:<NAME>`` for any solver PuLP lists."""

    name = "cbc"
    display = "CBC (PuLP)"
    capabilities = frozenset({Capability.CONTINUOUS, Capability.INTEGER, Capability.DUALS,
                              Capability.TIME_LIMIT, Capability.THREADS, Capability.SEED,
                              Capability.MIP_GAP})
    pulp_name = "PULP_CBC_CMD"

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import pulp
        except ImportError as exc:  # pragma: no cover - a dependency
            return False, str(exc)
        if not pulp.PULP_CBC_CMD(msg=False).available():
            return False, "PuLP is installed without its CBC binary"
        return True, f"pulp {pulp.__version__}"

    def load(self, model: LinearModel) -> None:
        import pulp

        self.model = model
        self.is_mip = model.num_integer > 0
        self.prob = pulp.LpProblem("allocator", pulp.LpMinimize)
        lb, ub, integer = model.lb, model.ub, model.integer
        self.vars = [
            pulp.LpVariable(f"c{j}", None if not np.isfinite(lo) else float(lo),
                            None if not np.isfinite(hi) else float(hi),
                            pulp.LpInteger if isint else pulp.LpContinuous)
            for j, (lo, hi, isint) in enumerate(zip(lb.tolist(), ub.tolist(), integer.tolist(),
                                                    strict=True))
        ]
        matrix = model.matrix
        self.row_cons: list[list[Any]] = []
        lo_all, hi_all = model.row_lo, model.row_hi
        for r in range(model.num_rows):
            sl = slice(matrix.indptr[r], matrix.indptr[r + 1])
            self._add(matrix.indices[sl], matrix.data[sl], lo_all[r], hi_all[r])

    def _add(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        import pulp

        terms = [(self.vars[j], v) for j, v in zip(cols.tolist(), vals.tolist(), strict=True)]
        expr = pulp.LpAffineExpression(terms)
        cons = []
        number = len(self.row_cons)
        if np.isfinite(lo) and np.isfinite(hi) and lo == hi:
            cons.append(pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{number}", float(lo)))
        else:
            if np.isfinite(lo):
                cons.append(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{number}l", float(lo)))
            if np.isfinite(hi):
                cons.append(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{number}u", float(hi)))
        for con in cons:
            self.prob += con
        self.row_cons.append(cons)

    def set_objective(self, c: np.ndarray, constant: float = 0.0) -> None:
        import pulp

        nz = np.flatnonzero(c)
        terms = [(self.vars[j], float(c[j])) for j in nz.tolist()]
        self.prob.setObjective(pulp.LpAffineExpression(terms, constant=float(constant)))
        self.c, self.constant = np.asarray(c, dtype=float), float(constant)

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        self._add(np.asarray(cols), np.asarray(vals, dtype=float), lo, hi)

    def solve(self, time_limit: float | None) -> RawSolution:
        import pulp

        solver = _solver(self.pulp_name, self.settings, time_limit)
        start = time.perf_counter()
        try:
            self.prob.solve(solver)
        except pulp.PulpSolverError as exc:
            return RawSolution(Status.ERROR, seconds=time.perf_counter() - start,
                               message=f"{self.display}: {exc}")
        seconds = time.perf_counter() - start
        sol = self.prob.sol_status
        if sol == pulp.LpSolutionOptimal:
            result = Status.OPTIMAL
        elif sol == pulp.LpSolutionIntegerFeasible:
            result = Status.FEASIBLE
        elif sol == pulp.LpSolutionInfeasible or self.prob.status == pulp.LpStatusInfeasible:
            result = Status.INFEASIBLE
        elif sol == pulp.LpSolutionUnbounded:
            result = Status.UNBOUNDED
        elif sol == pulp.LpSolutionNoSolutionFound:
            result = Status.NO_SOLUTION
        else:
            return RawSolution(Status.ERROR, seconds=seconds,
                               message=f"{self.display}: {pulp.LpStatus[self.prob.status]}")
        raw = RawSolution(result, seconds=seconds, message=pulp.LpStatus[self.prob.status])
        if result.has_solution:
            x = np.array([v.varValue if v.varValue is not None else 0.0 for v in self.vars])
            raw.x = x
            raw.objective = float(self.c @ x + self.constant)
            raw.bound = raw.objective if result is Status.OPTIMAL else float("nan")
            if not self.is_mip:
                raw.row_dual = np.array(
                    [sum((con.pi or 0.0) for con in cons) for cons in self.row_cons])
                raw.col_dual = np.array([v.dj if v.dj is not None else 0.0 for v in self.vars])
        return raw


def pulp_backend_for(solver_name: str) -> type[PulpBackend]:
    """A backend class for ``pulp:<NAME>``; capabilities are PuLP's, checked at solve time.

    The name is checked against PuLP's own list here, so that `validate` and `solve` refuse a
    misspelt solver before any table is read, and an uninstalled one is said as such."""
    import pulp

    from allocator.errors import CapabilityError

    known = pulp.listSolvers()
    if solver_name not in known:
        import difflib

        close = difflib.get_close_matches(solver_name, known, n=1)
        hint = f"; did you mean 'pulp:{close[0]}'?" if close else ""
        raise CapabilityError(f"PuLP knows no solver '{solver_name}'{hint} (PuLP's solvers: "
                              f"{', '.join(known)})", "solver.name")

    def is_available(cls: type[PulpBackend]) -> tuple[bool, str]:
        if solver_name in pulp.listSolvers(onlyAvailable=True):
            return True, "via PuLP"
        return False, f"PuLP cannot find {solver_name} on this machine"

    return type(f"Pulp_{solver_name}", (PulpBackend,), {
        "name": f"pulp:{solver_name}", "display": f"{solver_name} (PuLP)",
        "pulp_name": solver_name, "is_available": classmethod(is_available),
    })
