"""Exact piecewise-linear curves of each stage's optimum against one input, by parametric
analysis of the right-hand side.

Why it is exact: when an input moves only right-hand sides and bounds (a budget, a capacity,
a floor, a demand), the model is ``A x in [lo + d_lo t, hi + d_hi t]`` for the input's value
``t``, and an LP's optimum is piecewise linear in ``t``. The direction ``d`` is not assumed
from knowledge of the model: the model is built at three values of the input and compared
(same matrix and costs, bounds moving linearly), so any input of any formulation that has this
form is traced, and one that does not (a cost, a productivity) is refused with the reason.

How: the input becomes a free column ``tau`` tied to the value by one equality row
``tau = t`` (the parameter row); rows and bounds that move get ``-d tau`` terms (a moving
column bound becomes a row). HiGHS's ranging of the parameter row at the optimal basis says
how far that basis stays optimal: the next breakpoint. Each piece costs a warm re-solve a
hair past the breakpoint (its slope is the parameter row's dual) and one at its end (the
value there); pieces with the same slope are merged, so every row written is a true kink.

Lexicographic stages: the second stage's curve is the best second objective *with the first
held at its optimum for that same value* (e.g. the least cost at the best service that
budget allows), exactly as a cold run at that value computes it: the hold row
``c1 x <= z1(t) + rel_tol |z1(t)| + abs_tol`` moves with ``t`` too, linearly on each piece of
``z1``, so the later stage is traced piece by piece of the earlier ones' curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel, Objective, join_labels
from allocator.errors import InputError

if TYPE_CHECKING:
    from allocator.negotiate.session import Edit, Session

MAX_PIECES = 400  # per stage: each is two warm re-solves and one ranging
SLOPE_TOL = 1e-7  # relative: slopes closer than this are one piece
INF = 1e30
COLUMNS = ["stage", "parameter", "objective", "slope_before", "slope_after", "kind",
           "starts_binding", "stops_binding"]


@dataclass
class Direction:
    """How the model's bounds move with the input: ``bound(t) = bound(v0) + d * (t - v0)``."""

    model: LinearModel  # built at v0
    v0: float
    d_row_lo: np.ndarray
    d_row_hi: np.ndarray
    d_lb: np.ndarray
    d_ub: np.ndarray


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _moves(a: np.ndarray, b: np.ndarray, c: np.ndarray, va: float, vb: float, vc: float,
           what: str, problems: list[str]) -> np.ndarray:
    """d with b = a + d (vb - va), checked at c; infinite bounds must stay infinite."""
    fa, fb, fc = np.isfinite(a), np.isfinite(b), np.isfinite(c)
    if not (_same(fa, fb) and _same(fa, fc)):
        problems.append(f"some {what} appear or vanish over the range")
        return np.zeros(a.size)
    d = np.zeros(a.size)
    d[fa] = (b[fa] - a[fa]) / (vb - va)
    predicted = a[fa] + d[fa] * (vc - va)
    scale = np.maximum(1.0, np.abs(c[fa]))
    if (np.abs(predicted - c[fa]) > 1e-9 * scale).any():
        problems.append(f"{what} do not move in proportion to the input")
    return d


def direction(session: Session, edit: Edit, lo: float, hi: float) -> Direction:
    """Build at lo, hi and the middle; refuse what is not a right-hand side."""
    if not hi > lo:
        raise InputError(f"'{edit.target.text}': --exact needs a range with low < high", "--vary")
    values = (lo, hi, 0.5 * (lo + hi))
    models = [session.build([edit.at(v)]).model for v in values]
    a, b, c = models
    problems: list[str] = []
    if a.num_integer:
        raise InputError(f"'{edit.target.text}': the model has {a.num_integer} integer columns; "
                         "an exact curve exists for LPs only (sweep points instead)", "--exact")
    if (a.num_vars, a.num_rows) != (b.num_vars, b.num_rows) or \
            (a.num_vars, a.num_rows) != (c.num_vars, c.num_rows):
        raise InputError(f"'{edit.target.text}': the model changes shape between {lo:g} and "
                         f"{hi:g} (rows or columns appear, e.g. a floor of 0 has no row): "
                         "narrow the range, or sweep points instead", "--exact")
    ma, mb, mc = a.matrix, b.matrix, c.matrix
    if not all(_same(x.indptr, y.indptr) and _same(x.indices, y.indices)
               and _same(x.data, y.data) for x, y in ((ma, mb), (ma, mc))):
        problems.append("it changes the constraint coefficients")
    for name, obj in a.objectives.items():
        if not all(_same(obj.c, m.objectives[name].c) and
                   obj.constant == m.objectives[name].constant for m in (b, c)):
            problems.append(f"it changes the {name} objective")
    if problems:
        raise InputError(f"'{edit.target.text}' is not a right-hand side ({'; '.join(problems)})"
                         ": --exact traces budgets, capacities, floors and demands; sweep "
                         "points for this input", "--exact")
    d_lo = _moves(a.row_lo, b.row_lo, c.row_lo, *values, "row limits", problems)
    d_hi = _moves(a.row_hi, b.row_hi, c.row_hi, *values, "row limits", problems)
    d_lb = _moves(a.lb, b.lb, c.lb, *values, "bounds", problems)
    d_ub = _moves(a.ub, b.ub, c.ub, *values, "bounds", problems)
    if problems:
        raise InputError(f"'{edit.target.text}': {'; '.join(sorted(set(problems)))}: no exact "
                         "curve; sweep points instead", "--exact")
    return Direction(a, lo, d_lo, d_hi, d_lb, d_ub)


@dataclass
class Piece:
    start: float
    end: float
    slope: float
    binding: frozenset[str]  # priced just past the start
    last_binding: frozenset[str] | None = None  # just before the end, when merged


@dataclass
class Curve:
    """One stage's optimum over [low, high]: breakpoints, values, slopes on each side."""

    stage: str
    points: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    stopped: bool = False

    def at(self, t: float | np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(t, dtype=float), self.points, self.values)

    def slope_on(self, a: float, b: float) -> float:
        """The slope of the piece that holds (a, b)."""
        mid = 0.5 * (a + b)
        k = int(np.searchsorted(self.points, mid)) - 1
        k = min(max(k, 0), len(self.points) - 2)
        return (self.values[k + 1] - self.values[k]) / (self.points[k + 1] - self.points[k])


class ParametricLP:
    """The model in HiGHS with the parameter column tau, the parameter row, and hold rows."""

    def __init__(self, direction: Direction) -> None:
        import highspy

        from allocator.solvers.highs import load_into_highs, new_highs

        d = direction
        m = d.model
        self.model = m
        self.n, self.m = m.num_vars, m.num_rows
        lb, ub = m.lb.copy(), m.ub.copy()
        moving_lb = np.flatnonzero(d.d_lb != 0)
        moving_ub = np.flatnonzero(d.d_ub != 0)
        lb[moving_lb] = -np.inf
        ub[moving_ub] = np.inf
        self.highs = highs = new_highs()
        # The first solve is cold: interior point (with crossover, for a basis) where the
        # pipeline's `auto` method would take it (large, with coupling rows: 3-12x faster
        # there); every later one is a warm dual simplex without presolve, at a true basis.
        from allocator.solvers.highs import AUTO_IPM_COLUMNS, coupling_rows

        self.cold = True
        if m.num_vars >= AUTO_IPM_COLUMNS and coupling_rows(m) > 0:
            highs.setOptionValue("solver", "ipm")
        else:
            self._warm_options()
        load_into_highs(highs, m, np.zeros(self.n), lb=lb, ub=ub)
        self.tau = self.n
        highs.addCol(0.0, -highspy.kHighsInf, highspy.kHighsInf, 0,
                     np.zeros(0, dtype=np.int32), np.zeros(0))
        # Rows that move: lo + d (t - v0) <= a x  <=>  lo - d v0 <= a x - d tau.
        row_lo, row_hi = m.row_lo.copy(), m.row_hi.copy()
        moving = np.flatnonzero((d.d_row_lo != 0) | (d.d_row_hi != 0))
        for r in moving:
            dl, dh = d.d_row_lo[r], d.d_row_hi[r]
            fin_lo, fin_hi = np.isfinite(row_lo[r]), np.isfinite(row_hi[r])
            if fin_lo and fin_hi and dl != dh:
                raise InputError("a row whose two limits move differently: no exact curve",
                                 "--exact")
            coef = dl if fin_lo else dh
            highs.changeCoeff(int(r), self.tau, float(-coef))
            new_lo = row_lo[r] - coef * d.v0 if fin_lo else -INF
            new_hi = row_hi[r] - coef * d.v0 if fin_hi else INF
            highs.changeRowBounds(int(r), float(new_lo), float(new_hi))
        # Moving column bounds become rows: x_j - d tau >= lb_j - d v0 (and <= for ub).
        self.bound_rows: list[tuple[int, str]] = []  # (column, "lb"|"ub") per extra row
        for j in moving_lb:
            self._row([int(j), self.tau], [1.0, -d.d_lb[j]], m.lb[j] - d.d_lb[j] * d.v0, INF)
            self.bound_rows.append((int(j), "lb"))
        for j in moving_ub:
            self._row([int(j), self.tau], [1.0, -d.d_ub[j]], -INF, m.ub[j] - d.d_ub[j] * d.v0)
            self.bound_rows.append((int(j), "ub"))
        self.param_row = self.m + len(self.bound_rows)
        self._row([self.tau], [1.0], -INF, INF)
        self.hold_rows: list[int] = []
        self.c = np.zeros(self.n + 1)
        self.names = Names(m)

    def _row(self, cols: list[int] | np.ndarray, vals: list[float] | np.ndarray, lo: float,
             hi: float) -> int:
        cols_a = np.asarray(cols, dtype=np.int32)
        self.highs.addRow(float(max(lo, -INF)), float(min(hi, INF)), cols_a.size, cols_a,
                          np.asarray(vals, dtype=float))
        return int(self.highs.getNumRow()) - 1

    def objective(self, c: np.ndarray, constant: float) -> None:
        self.c = np.r_[c, 0.0]
        self.highs.changeColsCost(self.n + 1, np.arange(self.n + 1, dtype=np.int32), self.c)
        self.highs.changeObjectiveOffset(float(constant))

    def add_hold(self, objective: Objective) -> int:
        nz = np.flatnonzero(objective.c)
        row = self._row(np.r_[nz, self.tau], np.r_[objective.c[nz], 0.0], -INF, INF)
        self.hold_rows.append(row)
        return row

    def set_hold(self, row: int, alpha: float, beta: float) -> None:
        """c x - beta tau <= alpha."""
        self.highs.changeCoeff(row, self.tau, float(-beta))
        self.highs.changeRowBounds(row, -INF, float(alpha))

    def _warm_options(self) -> None:
        self.highs.setOptionValue("solver", "simplex")
        self.highs.setOptionValue("presolve", "off")  # ranging and warm starts at a basis

    def _run(self) -> bool:
        self.highs.run()
        if self.cold:
            self.cold = False
            self._warm_options()
        if self.highs.getModelStatus().name == "kOptimal":
            return True
        # A warm start that ends in numerical trouble: once more from scratch.
        self.highs.clearSolver()
        self.highs.run()
        return bool(self.highs.getModelStatus().name == "kOptimal")

    def at(self, t: float) -> float | None:
        self.highs.changeRowBounds(self.param_row, float(t), float(t))
        if not self._run():
            return None
        return float(self.highs.getInfo().objective_function_value)

    def domain(self, lo: float, hi: float) -> tuple[float, float] | None:
        """The values of the input in [lo, hi] where the model is feasible."""
        saved = self.c.copy(), float(self.highs.getInfo().objective_function_value)
        self.highs.changeRowBounds(self.param_row, float(lo), float(hi))
        ends = []
        for sign in (1.0, -1.0):
            c = np.zeros(self.n + 1)
            c[self.tau] = sign
            self.highs.changeColsCost(self.n + 1, np.arange(self.n + 1, dtype=np.int32), c)
            if not self._run():
                return None
            ends.append(float(self.highs.getSolution().col_value[self.tau]))
        self.highs.changeColsCost(self.n + 1, np.arange(self.n + 1, dtype=np.int32), saved[0])
        return ends[0], ends[1]

    def slope_and_end(self) -> tuple[float, float]:
        """The parameter row's dual (d optimum / d t) and where this basis stops.

        The end is the ranging of the parameter row alone: one solve with the basis
        (B d = e_row) and a ratio test of the basic variables against their bounds, instead
        of HiGHS's full ranging of every row and column (seconds on a 1M-nonzero model).
        """
        solution = self.highs.getSolution()
        dual = float(solution.row_dual[self.param_row])
        highs: Any = self.highs  # highspy's stubs lack the basis calls (present at run time)
        basic = np.asarray(highs.getBasicVariables()[1], dtype=np.int64)
        rows = int(highs.getNumRow())
        unit = np.zeros(rows)
        unit[self.param_row] = 1.0
        d: np.ndarray = np.asarray(highs.getBasisSolve(unit)[1], dtype=np.float64)
        lp = self.highs.getLp()
        is_col = basic >= 0
        cols, logical = basic[is_col], -1 - basic[~is_col]
        value = np.empty(basic.size)
        low = np.empty(basic.size)
        high = np.empty(basic.size)
        rate = np.empty(basic.size)
        value[is_col] = np.asarray(solution.col_value)[cols]
        low[is_col] = np.asarray(lp.col_lower_)[cols]
        high[is_col] = np.asarray(lp.col_upper_)[cols]
        rate[is_col] = d[is_col]
        # A basic row's activity moves against its entry of B^-1 e (HiGHS's logical
        # columns are -e_i).
        value[~is_col] = np.asarray(solution.row_value)[logical]
        low[~is_col] = np.asarray(lp.row_lower_)[logical]
        high[~is_col] = np.asarray(lp.row_upper_)[logical]
        rate[~is_col] = -d[~is_col]
        tiny = 1e-11
        step = np.full(basic.size, np.inf)
        up, down = rate > tiny, rate < -tiny
        step[up] = (high[up] - value[up]) / rate[up]
        step[down] = (low[down] - value[down]) / rate[down]
        step = np.maximum(step[np.isfinite(step)], 0.0)
        t = float(solution.col_value[self.tau])
        return dual, (t + float(step.min()) if step.size else np.inf)

    def binding(self) -> frozenset[str]:
        """The limits with a price now: model rows, and the bounds that move with t."""
        row_dual = np.asarray(self.highs.getSolution().row_dual)
        names = set(self.names.rows(np.flatnonzero(np.abs(row_dual[:self.m]) > 1e-9)))
        for k, (j, side) in enumerate(self.bound_rows):
            if abs(row_dual[self.m + k]) > 1e-9:
                names.add(f"{side} of {self.names.cols(np.array([j]))[0]}")
        # Columns held at a positive upper bound with a price (a person's whole FTE on one
        # task): the kinks of a staffing curve are often these.
        solution = self.highs.getSolution()
        col_dual = np.asarray(solution.col_dual)[:self.n]
        x = np.asarray(solution.col_value)[:self.n]
        ub = self.model.ub
        at_ub = np.flatnonzero(np.isfinite(ub) & (ub > 0) & (np.abs(col_dual) > 1e-9)
                               & (np.abs(x - ub) <= 1e-9 * np.maximum(1.0, np.abs(ub))))
        names.update(f"ub of {n}" for n in self.names.cols(at_ub))
        return frozenset(names)

    def x(self) -> np.ndarray:
        return np.asarray(self.highs.getSolution().col_value)[:self.n]


class Names:
    """Row and column names like budget[B-SOU], made per block on first use (one vectorized
    join per block, not one pandas lookup per name)."""

    def __init__(self, model: LinearModel) -> None:
        self.model = model
        self._blocks: dict[tuple[str, str], np.ndarray] = {}

    def _of(self, kind: str, blocks: list[Any], index: np.ndarray) -> list[str]:
        starts = np.array([b.start for b in blocks])
        out = []
        for j in index:
            block = blocks[int(np.searchsorted(starts, j, side="right")) - 1]
            key = (kind, block.name)
            if key not in self._blocks:
                labels = (join_labels(block.labels, ",") if block.labels.shape[1]
                          else np.arange(block.size).astype(str).astype(object))
                self._blocks[key] = (block.name + "[" + labels + "]")
            out.append(str(self._blocks[key][int(j) - block.start]))
        return out

    def rows(self, index: np.ndarray) -> list[str]:
        return self._of("row", list(self.model.con_blocks.values()), index)

    def cols(self, index: np.ndarray) -> list[str]:
        return self._of("col", list(self.model.var_blocks.values()), index)


def _walk(plp: ParametricLP, a: float, b: float, step: float, budget: list[int]
          ) -> tuple[list[float], list[float], list[Piece]] | None:
    """Breakpoints of the current objective over [a, b]: basis by basis via ranging."""
    first = plp.at(a)
    if first is None:
        return None
    points, values = [a], [first]
    pieces: list[Piece] = []
    t = a
    while t < b - step * 0.5:
        if budget[0] <= 0:
            return points, values, pieces
        budget[0] -= 1
        probe = min(t + step, b)
        if plp.at(probe) is None:
            return None
        slope, end = plp.slope_and_end()
        binding = plp.binding()
        end = min(max(end, probe), b)
        # The optimum is convex in t within a walk and `slope` its right derivative at t, so
        # f(end) on the line through (t, f(t)) proves f linear on [t, end]; a ranging that
        # reached too far is halved until it does.
        while True:
            value = plp.at(end)
            if value is None:
                return None
            line = values[-1] + slope * (end - t)
            if abs(value - line) <= 1e-9 * max(1.0, abs(value), abs(line)) or \
                    end <= probe:
                break
            end = max(probe, t + 0.5 * (end - t))
        # Degenerate vertices change the basis where the slope does not (hundreds of times
        # on a 1M-nonzero model): a farther point on the same line proves the piece longer
        # by the same argument, so the step is doubled while it does (one re-solve each).
        while end < b and end > probe:
            far = min(b, t + 2.0 * (end - t))
            far_value = plp.at(far)
            if far_value is None:
                break
            line = values[-1] + slope * (far - t)
            if abs(far_value - line) > 1e-9 * max(1.0, abs(far_value), abs(line)):
                break
            end, value = far, far_value
        pieces.append(Piece(t, end, slope, binding))
        points.append(end)
        values.append(value)
        t = end
    return points, values, pieces


def _merge(curve: Curve) -> Curve:
    """Keep only the kinks: neighbours with the same slope are one piece."""
    if len(curve.pieces) <= 1:
        return curve
    # Slopes are in the objective's unit per the input's (a shortfall per euro is 1e-5):
    # compared relatively, with a floor from the curve's own scales for flat pieces.
    width = max(curve.points[-1] - curve.points[0], 1e-12)
    floor = 1e-3 * max(1.0, max(abs(v) for v in curve.values)) / width
    pieces = [curve.pieces[0]]
    points, values = [curve.points[0]], [curve.values[0]]
    for k in range(1, len(curve.pieces)):
        prev, piece = pieces[-1], curve.pieces[k]
        scale = max(abs(prev.slope), abs(piece.slope), floor)
        if abs(prev.slope - piece.slope) <= SLOPE_TOL * scale:
            pieces[-1] = Piece(prev.start, piece.end, prev.slope, prev.binding,
                               piece.last_binding or piece.binding)
        else:
            points.append(curve.points[k])
            values.append(curve.values[k])
            pieces.append(piece)
    points.append(curve.points[-1])
    values.append(curve.values[-1])
    return Curve(curve.stage, points, values, pieces, curve.stopped)


def trace(session: Session, edit: Edit, lo: float, hi: float,
          max_pieces: int = MAX_PIECES) -> tuple[list[Curve], tuple[float, float]]:
    """Each stage's exact curve over the feasible part of [lo, hi]."""
    d = direction(session, edit, lo, hi)
    plp = ParametricLP(d)
    objectives = session.objectives(d.model)
    # Feasible values form an interval: feasible at both ends, feasible throughout.
    both = plp.at(lo) is not None and plp.at(hi) is not None
    dom = (lo, hi) if both else plp.domain(lo, hi)
    if dom is None:
        raise InputError(f"'{edit.target.text}': no value in [{lo:g}, {hi:g}] gives a "
                         "feasible plan", "--vary")
    a, b = dom
    scale = max(1.0, abs(a), abs(b))
    step = 1e-7 * scale
    o = session.scenario.objective
    curves: list[Curve] = []
    for objective in objectives:
        plp.objective(objective.c, objective.constant)
        knots = sorted({a, b, *(p for c in curves for p in c.points)})
        knots = _split_at_zero(knots, curves)
        points: list[float] = []
        values: list[float] = []
        pieces: list[Piece] = []
        budget = [max_pieces]
        for k in range(len(knots) - 1):
            s, e = knots[k], knots[k + 1]
            if e - s <= step * 0.5:
                continue
            for curve, row in zip(curves, plp.hold_rows, strict=True):
                zs, slope = float(curve.at(s)), curve.slope_on(s, e)
                sign = 1.0 if float(curve.at(0.5 * (s + e))) >= 0 else -1.0
                factor = 1.0 + o.rel_tol * sign
                constant = session_objective_constant(objectives, curve.stage)
                beta = factor * slope
                alpha = factor * (zs - slope * s) + o.abs_tol - constant
                plp.set_hold(row, alpha, beta)
            walked = _walk(plp, s, e, step, budget)
            if walked is None:
                raise ArithmeticError(f"stage '{objective.name}': a re-solve on [{s:g}, {e:g}] "
                                      "failed; no exact curve")
            w_points, w_values, w_pieces = walked
            if points and abs(points[-1] - w_points[0]) <= step:
                w_points, w_values = w_points[1:], w_values[1:]
            points += w_points
            values += w_values
            pieces += w_pieces
            if budget[0] <= 0:
                break
        curve = _merge(Curve(objective.name, points, values, pieces, budget[0] <= 0))
        curves.append(curve)
        if objective is not objectives[-1]:
            plp.add_hold(objective)
    return curves, (a, b)


def session_objective_constant(objectives: list[Objective], name: str) -> float:
    return next(o.constant for o in objectives if o.name == name)


def _split_at_zero(knots: list[float], curves: list[Curve]) -> list[float]:
    """Knots where an earlier stage's optimum crosses zero (|z| bends there)."""
    extra = []
    for curve in curves:
        z = curve.at(np.asarray(knots))
        for k in range(len(knots) - 1):
            if z[k] * z[k + 1] < 0:
                extra.append(knots[k] - z[k] * (knots[k + 1] - knots[k]) / (z[k + 1] - z[k]))
    return sorted(set(knots) | set(extra))


def curve_frame(curves: list[Curve], sign: float = 1.0) -> pd.DataFrame:
    """exact.csv: one row per breakpoint of each stage (user sense: a maximized objective is
    shown as its value), with the slope on each side and what starts or stops binding."""
    rows: list[dict[str, Any]] = []
    for curve in curves:
        n = len(curve.points)
        for k in range(n):
            before = curve.pieces[k - 1] if k > 0 and k - 1 < len(curve.pieces) else None
            after = curve.pieces[k] if k < len(curve.pieces) else None
            left = (before.last_binding or before.binding) if before else frozenset()
            right = after.binding if after else frozenset()
            kind = "breakpoint"
            if k == 0:
                kind = "start"
            elif k == n - 1:
                kind = "stopped (piece limit)" if curve.stopped else "end"
            rows.append({
                "stage": curve.stage, "parameter": curve.points[k],
                "objective": sign * curve.values[k] + 0.0,
                "slope_before": sign * before.slope + 0.0 if before else np.nan,
                "slope_after": sign * after.slope + 0.0 if after else np.nan,
                "kind": kind,
                "starts_binding": "; ".join(sorted(right - left)) if before and after else "",
                "stops_binding": "; ".join(sorted(left - right)) if before and after else "",
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def exact_curve(session: Session, edit: Edit, lo: float, hi: float,
                max_pieces: int = MAX_PIECES) -> pd.DataFrame:
    """exact.csv as a DataFrame (the Python entry point of `sweep --exact`)."""
    curves, _domain = trace(session, edit, lo, hi, max_pieces)
    sign = -1.0 if session.built.model.maximize else 1.0
    return curve_frame(curves, sign)
