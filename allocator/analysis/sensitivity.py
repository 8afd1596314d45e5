"""Shadow prices, reduced costs and their ranges, per stage, in one sign convention.

Convention, for every solver and both row senses: ``dual`` is the change of the stage's
objective per unit increase of the row's right-hand side (the objective as the stage states
it: minimized for ops stages, in the file's own sense for MPS files); ``reduced_cost`` the
change per unit increase of the variable's value.

Ranges come from HiGHS's ranging at the stage's optimal basis, whatever solver found the
plan, and are reported as Excel's Sensitivity Report does so an analyst can check them: a
binding row's right-hand side range is HiGHS's; a non-binding ``<=`` row can rise without
limit and fall by its slack (``>=``: the mirror). Where a binding row's range is empty on one
side the dual is not unique; the left and right shadow prices (per unit when the right-hand
side goes down, and up) then come from two small warm re-solves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel, join_labels

BINDING_TOL = 1e-7
MAX_ONE_SIDED = 200  # left/right re-solves per stage; the largest |dual| rows first
MAX_EXTENDED = 60  # rows per stage whose basis range is widened to the full price range
MAX_STEPS = 8  # successive rangings per end of a range
DEFAULT_SHARE = 0.05  # of a stage's solve time, for the extra re-solves (output.sensitivity_share)
MIN_EXTRA_SECONDS = 0.5
EXTRA_SPLIT = (0.4, 0.7)  # cumulative shares: one-sided prices, price ranges; then ladders


@dataclass
class LpSensitivity:
    """One stage LP's sensitivity, in model row/column order (holds of earlier stages last)."""

    stage: str
    objective: float
    x: np.ndarray
    activity: np.ndarray
    rhs: np.ndarray
    slack: np.ndarray
    binding: np.ndarray
    row_dual: np.ndarray
    col_dual: np.ndarray
    rhs_low: np.ndarray
    rhs_high: np.ndarray
    cost: np.ndarray
    cost_low: np.ndarray
    cost_high: np.ndarray
    dual_unique: np.ndarray
    dual_left: np.ndarray  # per unit of rhs decrease (objective change / -delta)
    dual_right: np.ndarray  # per unit of rhs increase
    range_kind: np.ndarray | None = None  # "price": the dual changes past each end; "basis"
    source: str = "lp"  # "lp" or "fixed-integer lp"
    extras_deadline: float | None = None  # when the ladders' share of the budget runs out
    ranging_seconds: float = 0.0  # one full ranging: what each ranging probe costs on top


def _clean(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=float).copy()
    out[out >= 1e30] = np.inf
    out[out <= -1e30] = -np.inf
    return out


def highs_sensitivity(highs, stage: str, one_sided: bool = True,  # type: ignore[no-untyped-def]
                      source: str = "lp", budget: float | None = None) -> LpSensitivity:
    """Read duals and ranging from a Highs instance that has just solved an LP to optimality.

    `budget`: seconds for the re-solves after HiGHS's ranging (None: no limit). The first
    EXTRA_SPLIT[0] of it goes to one-sided prices, up to EXTRA_SPLIT[1] to price ranges;
    the rest is left for the ladders (`extras_deadline`), so each kind gets some.
    """
    lp = highs.getLp()
    n, m = lp.num_col_, lp.num_row_
    sol = highs.getSolution()
    lo, hi = _clean(lp.row_lower_), _clean(lp.row_upper_)
    activity = np.asarray(sol.row_value, dtype=float)
    row_dual = np.asarray(sol.row_dual, dtype=float)
    slack_lo, slack_hi = activity - lo, hi - activity
    use_hi = np.isfinite(hi) & (~np.isfinite(lo) | (slack_hi <= slack_lo))
    rhs = np.where(use_hi, hi, lo)
    slack = np.where(use_hi, slack_hi, slack_lo)
    binding = np.abs(slack) <= BINDING_TOL * np.maximum(1.0, np.abs(rhs))
    started = time.perf_counter()
    status, ranging = highs.getRanging()
    ranging_seconds = time.perf_counter() - started
    rhs_low = np.where(use_hi, activity, -np.inf)
    rhs_high = np.where(use_hi, np.inf, activity)
    cost = np.asarray(lp.col_cost_, dtype=float)
    cost_low = np.full(n, np.nan)
    cost_high = np.full(n, np.nan)
    if status.name == "kOk" if hasattr(status, "name") else True:
        up = _clean(ranging.row_bound_up.value_)[:m]
        dn = _clean(ranging.row_bound_dn.value_)[:m]
        rhs_low = np.where(binding, np.minimum(dn, rhs), rhs_low)
        rhs_high = np.where(binding, np.maximum(up, rhs), rhs_high)
        cost_low = _clean(ranging.col_cost_dn.value_)[:n]
        cost_high = _clean(ranging.col_cost_up.value_)[:n]
    equality = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
    width_tol = 1e-9 * np.maximum(1.0, np.abs(rhs))
    unique = ~binding | ((rhs_high - rhs > width_tol) & (rhs - rhs_low > width_tol))
    unique |= equality & ~binding
    result = LpSensitivity(
        stage, float(highs.getInfo().objective_function_value),
        np.asarray(sol.col_value, dtype=float), activity, rhs, slack, binding, row_dual,
        np.asarray(sol.col_dual, dtype=float), rhs_low, rhs_high, cost, cost_low, cost_high,
        unique, row_dual.copy(), row_dual.copy(), source=source,
    )
    result.range_kind = np.where(binding, "basis", "price").astype(object)
    result.ranging_seconds = ranging_seconds
    now = time.perf_counter()
    result.extras_deadline = None if budget is None else now + budget
    if one_sided and not unique.all():
        _one_sided_prices(highs, result, lo, hi,
                          None if budget is None else now + EXTRA_SPLIT[0] * budget)
    if one_sided:
        _extend_ranges(highs, result, lo, hi,
                       None if budget is None else now + EXTRA_SPLIT[1] * budget)
    return result


def _set_rhs(highs, row: int, lo: float, hi: float, use_hi: bool,  # type: ignore[no-untyped-def]
             value: float) -> None:
    if lo == hi:
        highs.changeRowBounds(row, _bound(value), _bound(value))
    elif use_hi:
        highs.changeRowBounds(row, _bound(lo), _bound(value))
    else:
        highs.changeRowBounds(row, _bound(value), _bound(hi))


def _extend_ranges(highs, sens: LpSensitivity, lo: np.ndarray,  # type: ignore[no-untyped-def]
                   hi: np.ndarray, deadline: float | None = None) -> None:
    """Widen basis ranges to price ranges by successive ranging (parametric analysis).

    HiGHS's range is where the current basis stays optimal; in a degenerate LP the next
    basis can carry the same price, and a negotiator wants to know how far the *price*
    holds. Past each end we re-solve a step beyond, and while the dual is unchanged take the
    new basis's range end. Done for the rows with the largest |dual| (the bottlenecks).
    """
    rows = np.flatnonzero(sens.binding & sens.dual_unique & (np.abs(sens.row_dual) > 1e-9))
    rows = rows[np.argsort(-np.abs(sens.row_dual[rows]), kind="stable")][:MAX_EXTENDED]
    cost = sens.ranging_seconds  # of one probe (a warm re-solve and a ranging), updated
    out_of_time = False
    for r in rows:
        if out_of_time or not affordable(deadline, cost):
            break  # the rest keep their basis ranges (range_kind = "basis")
        use_hi = bool(np.isfinite(hi[r]) and sens.rhs[r] == hi[r])
        dual = sens.row_dual[r]
        for direction in (-1.0, 1.0):
            end = sens.rhs_low[r] if direction < 0 else sens.rhs_high[r]
            closed = False
            for _ in range(MAX_STEPS):
                if not np.isfinite(end):
                    closed = True
                    break
                if not affordable(deadline, cost):
                    out_of_time = True  # `end` is still a proven end of this price
                    break
                started = time.perf_counter()
                probe = end + direction * 1e-6 * max(1.0, abs(end))
                _set_rhs(highs, int(r), lo[r], hi[r], use_hi, probe)
                highs.run()
                if highs.getModelStatus().name != "kOptimal":
                    closed = True  # infeasible past the end: the price cannot continue
                    break
                new_dual = highs.getSolution().row_dual[r]
                if abs(new_dual - dual) > 1e-7 * max(1.0, abs(dual)):
                    closed = True
                    break
                _status, ranging = highs.getRanging()
                values = ranging.row_bound_dn.value_ if direction < 0 else \
                    ranging.row_bound_up.value_
                new_end = _clean([values[r]])[0]
                cost = time.perf_counter() - started
                if direction * (new_end - probe) <= 0:
                    end = probe
                    break
                end = new_end
            if direction < 0:
                sens.rhs_low[r] = end
            else:
                sens.rhs_high[r] = end
            if not closed:
                break
        else:
            sens.range_kind[r] = "price"  # type: ignore[index]
        _set_rhs(highs, int(r), lo[r], hi[r], use_hi, sens.rhs[r])


def _one_sided_prices(highs, sens: LpSensitivity, lo: np.ndarray,  # type: ignore[no-untyped-def]
                      hi: np.ndarray, deadline: float | None = None) -> None:
    """Left and right shadow prices of the rows whose dual is not unique, by re-solving."""
    rows = np.flatnonzero(~sens.dual_unique)
    rows = rows[np.argsort(-np.abs(sens.row_dual[rows]), kind="stable")][:MAX_ONE_SIDED]
    base = sens.objective
    cost = 0.0  # of the last row's two re-solves: the next is expected to cost as much
    for r in rows:
        if not affordable(deadline, cost):
            sens.dual_left[r] = sens.dual_right[r] = np.nan  # not computed: out of time
            continue
        started = time.perf_counter()
        delta = 1e-4 * max(1.0, abs(sens.rhs[r]))
        slopes = []
        for direction in (-1.0, 1.0):
            new_lo = lo[r] + direction * delta if np.isfinite(lo[r]) else lo[r]
            new_hi = hi[r] + direction * delta if np.isfinite(hi[r]) else hi[r]
            highs.changeRowBounds(int(r), _bound(new_lo), _bound(new_hi))
            highs.run()
            ok = highs.getModelStatus().name == "kOptimal"
            value = highs.getInfo().objective_function_value if ok else np.nan
            slopes.append((value - base) / (direction * delta) if ok else np.nan)
        highs.changeRowBounds(int(r), _bound(lo[r]), _bound(hi[r]))
        sens.dual_left[r], sens.dual_right[r] = slopes
        cost = time.perf_counter() - started
        if abs(slopes[0] - slopes[1]) <= 1e-6 * max(1.0, abs(sens.row_dual[r])):
            sens.dual_unique[r] = True  # a basis change, but the same price on both sides


def affordable(deadline: float | None, expected: float) -> bool:
    """Whether a probe expected to take `expected` seconds ends before `deadline`: checking
    only that the deadline has not passed would let one slow probe overrun it by a whole
    re-solve and ranging (seconds each on a large model)."""
    return deadline is None or time.perf_counter() + expected <= deadline


def _bound(value: float) -> float:
    return float(np.clip(value, -1e30, 1e30))


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return join_labels(frame)


def sensitivity_frame(model: LinearModel, stages: list[LpSensitivity],
                      solved: list[str] | None = None) -> pd.DataFrame:
    """sensitivity.csv: one row per (stage, constraint) and per (stage, variable).

    `solved`: the stages in solve order, which name the hold rows (hold i keeps stage i's
    optimum); by default the analyzed stages, which are the same unless one failed."""
    frames = []
    labels: dict[str, np.ndarray] = {}  # per block, shared by every stage (the costly part)

    def labels_of(block) -> np.ndarray:  # type: ignore[no-untyped-def]
        key = f"{type(block).__name__}:{block.name}"
        if key not in labels:
            labels[key] = _labels(block.labels)
        return labels[key]

    held = solved if solved is not None else [s.stage for s in stages]
    for sens in stages:
        for block in model.con_blocks.values():
            sl = block.slice
            frames.append(pd.DataFrame({
                "stage": sens.stage, "kind": "constraint", "family": block.name,
                "labels": labels_of(block), "activity": sens.activity[sl],
                "rhs": sens.rhs[sl], "slack": sens.slack[sl], "binding": sens.binding[sl],
                "dual": sens.row_dual[sl], "dual_unique": sens.dual_unique[sl],
                "dual_left": sens.dual_left[sl], "dual_right": sens.dual_right[sl],
                "rhs_low": sens.rhs_low[sl], "rhs_high": sens.rhs_high[sl],
                "range_kind": sens.range_kind[sl] if sens.range_kind is not None else "basis",
                "value": np.nan, "reduced_cost": np.nan, "cost": np.nan, "cost_low": np.nan,
                "cost_high": np.nan, "dual_source": sens.source,
            }))
        holds = np.arange(model.num_rows, len(sens.activity))
        if holds.size:
            frames.append(pd.DataFrame({
                "stage": sens.stage, "kind": "constraint", "family": "stage_hold",
                "labels": [held[i] if i < len(held) else f"hold {i + 1}"
                           for i in range(holds.size)],
                "activity": sens.activity[holds], "rhs": sens.rhs[holds],
                "slack": sens.slack[holds], "binding": sens.binding[holds],
                "dual": sens.row_dual[holds], "dual_unique": sens.dual_unique[holds],
                "dual_left": sens.dual_left[holds], "dual_right": sens.dual_right[holds],
                "rhs_low": sens.rhs_low[holds], "rhs_high": sens.rhs_high[holds],
                "range_kind": "basis", "value": np.nan, "reduced_cost": np.nan,
                "cost": np.nan, "cost_low": np.nan, "cost_high": np.nan,
                "dual_source": sens.source,
            }))
        for block in model.var_blocks.values():
            sl = block.slice
            frames.append(pd.DataFrame({
                "stage": sens.stage, "kind": "variable", "family": block.name,
                "labels": labels_of(block), "activity": np.nan, "rhs": np.nan,
                "slack": np.nan, "binding": False, "dual": np.nan, "dual_unique": True,
                "dual_left": np.nan, "dual_right": np.nan, "rhs_low": np.nan,
                "rhs_high": np.nan, "range_kind": "", "value": sens.x[sl],
                "reduced_cost": sens.col_dual[sl],
                "cost": sens.cost[sl], "cost_low": sens.cost_low[sl],
                "cost_high": sens.cost_high[sl], "dual_source": sens.source,
            }))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def analyze_stage(highs, model: LinearModel, stage: str,  # type: ignore[no-untyped-def]
                  source: str = "lp", solve_seconds: float = 0.0,
                  share: float = DEFAULT_SHARE) -> tuple[LpSensitivity, pd.DataFrame]:
    """Sensitivity and price ladders of one solved stage LP held by `highs`.

    The re-solves behind one-sided prices, price ranges and ladders are warm but not free:
    after HiGHS's ranging they get `share` of the stage's own solve time (at least
    MIN_EXTRA_SECONDS), split by EXTRA_SPLIT, so a large nightly model spends little on its
    report beyond the ranging while a small model gets every extra. What the budget does not
    reach keeps HiGHS's basis ranges and says so (range_kind = "basis").

    `highs` is left at its last probe's solution, with every bound restored: no re-solve is
    spent on getting back to the optimum, which every caller already holds (a later stage's
    solve starts warm from wherever this leaves the basis).
    """
    from allocator.analysis.ladder import stage_ladders

    budget = max(MIN_EXTRA_SECONDS, share * solve_seconds)
    # The extras are small moves from an optimal basis: dual simplex re-solves them warm in
    # milliseconds, where interior point (if the stage used it) would start over each time.
    _status, method = highs.getOptionValue("solver")
    highs.setOptionValue("solver", "simplex")
    try:
        sens = highs_sensitivity(highs, stage, source=source, budget=budget)
        ladders = stage_ladders(highs, model, sens, deadline=sens.extras_deadline)
    finally:
        highs.setOptionValue("solver", method)
    return sens, ladders


def resolve_stage_sensitivities(
    model: LinearModel, objectives: list, stages: list, x: np.ndarray,  # type: ignore[type-arg]
    share: float = DEFAULT_SHARE,
) -> tuple[list[LpSensitivity], list[pd.DataFrame]]:
    """Sensitivity of each solved stage by a HiGHS re-solve: used when another solver found
    the plan, and for MIPs, whose duals are those of the LP with the integers fixed."""
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
        objective = by_name[stage.name]
        highs.changeColsCost(model.num_vars, np.arange(model.num_vars, dtype=np.int32),
                             objective.c)
        highs.changeObjectiveOffset(float(objective.constant))
        started = time.perf_counter()
        highs.run()
        if highs.getModelStatus().name != "kOptimal":
            break
        sens, ladder = analyze_stage(highs, model, stage.name, source,
                                     time.perf_counter() - started, share)
        out.append(sens)
        ladders.append(ladder)
        if stage.hold_rhs is not None:
            nz = np.flatnonzero(objective.c)
            highs.addRow(-1e30, float(stage.hold_rhs - objective.constant), nz.size,
                         nz.astype(np.int32), objective.c[nz])
    return out, ladders
