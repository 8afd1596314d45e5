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
from typing import Any

import numpy as np
import pandas as pd

from allocator.analysis.figures import round_sig
from allocator.analysis.links import linked_bounds
from allocator.analysis.probes import Probes, bound, solve_at
from allocator.core.model import LinearModel, join_labels

BINDING_TOL = 1e-7
MAX_ONE_SIDED = 200  # rows per stage given left/right prices; largest |dual| x |rhs| first
MAX_EXTENDED = 60  # rows per stage whose basis range is widened to the full price range
MAX_STEPS = 8  # successive rangings per end of a range
MAX_FTE_STEPS = 3  # per end of an FTE value's range: more people priced, ranges a bit shorter
PROBE_SPLIT = (("one-sided prices", 0.3), ("price ranges", 0.2), ("FTE values", 0.3),
               ("ladders", 0.2))
DEFAULT_SHARE = 0.05  # of a stage's solve time: the safety stop (output.sensitivity_share)
SAFETY_MIN_SECONDS = 20.0  # the safety stop is never shorter than this


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
    ranging_seconds: float = 0.0  # one full ranging: what each ranging probe costs on top
    probes: Probes | None = None  # the extras' work budget, shared with the ladders
    # The value of one more FTE of each staff member (ops): the availability row's price
    # with the person's FTE bounds moving along (see analysis.links.LinkedBounds).
    input_rows: np.ndarray | None = None  # availability rows
    input_rhs: np.ndarray | None = None  # today's FTE
    input_dual: np.ndarray | None = None  # objective change per FTE more (right price)
    input_low: np.ndarray | None = None  # the FTE range over which input_dual holds
    input_high: np.ndarray | None = None
    input_kind: np.ndarray | None = None  # price | basis | estimate | zero
    note: str = ""
    left_from: np.ndarray | None = None  # dual_left holds from here to rhs (nan: unknown)
    right_to: np.ndarray | None = None  # dual_right holds from rhs to here


def _clean(values: Any) -> np.ndarray:
    out = np.asarray(values, dtype=float).copy()
    out[out >= 1e30] = np.inf
    out[out <= -1e30] = -np.inf
    return out


def binding_side(activity: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each row: whether its upper limit speaks for it (the nearer limit; a one-sided
    row's only one), that limit (sensitivity.csv's rhs), the slack to it, and whether it
    binds. One rule for every sensitivity table: from a HiGHS solution, or from a plan's
    activities in a decomposed run."""
    slack_lo, slack_hi = activity - lo, hi - activity
    use_hi = np.isfinite(hi) & (~np.isfinite(lo) | (slack_hi <= slack_lo))
    rhs = np.where(use_hi, hi, lo)
    slack = np.where(use_hi, slack_hi, slack_lo)
    binding = np.abs(slack) <= BINDING_TOL * np.maximum(1.0, np.abs(rhs))
    return use_hi, rhs, slack, binding


def highs_sensitivity(highs, stage: str, one_sided: bool = True,
                      source: str = "lp", probes: Probes | None = None,
                      model: LinearModel | None = None) -> LpSensitivity:
    """Read duals and ranging from a Highs instance that has just solved an LP to optimality.

    `probes`: the work budget of the re-solves after HiGHS's ranging (None: no limit), handed
    out by PROBE_SPLIT: one-sided prices, price ranges, then (with `model`, an ops model) the
    value of one more FTE of each staff member; the rest is left for the ladders.
    """
    lp = highs.getLp()
    n, m = lp.num_col_, lp.num_row_
    sol = highs.getSolution()
    lo, hi = _clean(lp.row_lower_), _clean(lp.row_upper_)
    activity = np.asarray(sol.row_value, dtype=float)
    row_dual = np.asarray(sol.row_dual, dtype=float)
    use_hi, rhs, slack, binding = binding_side(activity, lo, hi)
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
    result.left_from = np.full(len(activity), np.nan)
    result.right_to = result.left_from.copy()
    result.ranging_seconds = ranging_seconds
    probes = probes if probes is not None else Probes()
    result.probes = probes
    if one_sided:
        probes.phase(*PROBE_SPLIT[0])
        if not unique.all():
            _one_sided_prices(highs, result, lo, hi, probes)
        probes.phase(*PROBE_SPLIT[1])
        _extend_ranges(highs, result, lo, hi, probes)
    if model is not None:
        probes.phase(*PROBE_SPLIT[2])
        _fte_prices(highs, model, result, lo, hi, probes if one_sided else Probes(0))
    return result


def _set_rhs(highs, row: int, lo: float, hi: float, use_hi: bool,
             value: float) -> None:
    if lo == hi:
        highs.changeRowBounds(row, bound(value), bound(value))
    elif use_hi:
        highs.changeRowBounds(row, bound(lo), bound(value))
    else:
        highs.changeRowBounds(row, bound(value), bound(hi))


def _extend_ranges(highs, sens: LpSensitivity, lo: np.ndarray,
                   hi: np.ndarray, probes: Probes) -> None:
    """Widen basis ranges to price ranges by successive ranging (parametric analysis).

    HiGHS's range is where the current basis stays optimal; in a degenerate LP the next
    basis can carry the same price, and a negotiator wants to know how far the *price*
    holds. Past each end we re-solve a step beyond, and while the dual is unchanged take the
    new basis's range end. Done for the rows with the largest |dual| x |rhs| first.
    """
    rows = np.flatnonzero(sens.binding & sens.dual_unique & (np.abs(sens.row_dual) > 1e-9))
    rows = rows[np.argsort(-_impact(sens, rows), kind="stable")][:MAX_EXTENDED]
    for r in rows:
        use_hi = bool(np.isfinite(hi[r]) and sens.rhs[r] == hi[r])
        low, high, closed = _widen(highs, int(r), lo[r], hi[r], use_hi, sens.row_dual[r],
                                   sens.rhs_low[r], sens.rhs_high[r], probes)
        sens.rhs_low[r], sens.rhs_high[r] = low, high
        if closed:
            sens.range_kind[r] = "price"  # type: ignore[index]
        _set_rhs(highs, int(r), lo[r], hi[r], use_hi, sens.rhs[r])
        if probes.stopped or (probes.cap is not None and probes.used >= probes.cap):
            break  # the rest keep their basis ranges (range_kind = "basis")


def _impact(sens: LpSensitivity, rows: np.ndarray) -> np.ndarray:
    """What a row's price is worth at the scale of its right-hand side (a budget's price
    per unit of money is small, its rows come first all the same)."""
    return np.abs(sens.row_dual[rows]) * np.maximum(1.0, np.abs(sens.rhs[rows]))


def _widen(highs, r: int, lo: float, hi: float, use_hi: bool,
           dual: float, low: float, high: float, probes: Probes,
           steps: int = MAX_STEPS) -> tuple[float, float, bool]:
    """The range of right-hand sides over which `dual` holds, from a basis range [low, high]:
    past each end, re-solve a step beyond; while the price is unchanged, take the new basis's
    end. Returns the range and whether both of its ends were proven (the price changes, or
    the LP turns infeasible, past each)."""
    ends = [low, high]
    closed_both = True
    for side, direction in ((0, -1.0), (1, 1.0)):
        end = ends[side]
        closed = False
        for _ in range(steps):
            if not np.isfinite(end):
                closed = True
                break
            if not probes.take():
                break  # `end` is still a proven end of this price
            probe = end + direction * max(1e-6 * max(1.0, abs(end)), 1e-7)
            _set_rhs(highs, r, lo, hi, use_hi, probe)
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
            if direction * (new_end - probe) <= 0:
                end = probe
                break
            end = new_end
        ends[side] = end
        closed_both &= closed
    return ends[0], ends[1], closed_both


def _fte_prices(highs, model: LinearModel, sens: LpSensitivity,
                lo: np.ndarray, hi: np.ndarray, probes: Probes) -> None:
    """The value of one more FTE of each staff member, with the range where it holds.

    A person's FTE is the right-hand side of their availability row and also the upper bound
    of their assignment columns (analysis.links.LinkedBounds): the row's dual alone misses the
    bounds' reduced costs. Those bounds are implied by the rows (x >= 0, down <= baseline), so
    relaxing them all leaves the feasible set, for every FTE, as it is; in that LP the FTE is
    the row's right-hand side alone. One warm re-solve and one ranging then price every
    person: a person not fully used is worth 0 (up to any FTE); a fully used one is worth the
    row's dual over its basis range. Where that range is empty on the upper side (a
    degenerate vertex) the price of going up is found by a re-solve a step above, and the
    most valuable ranges are widened to the range of the price, as for any row, while the
    probes last. Until then a person keeps the basis's estimate `row dual + reduced costs of
    the columns at those bounds`, never smaller in size than the true price
    (input_kind = "estimate").
    """
    links = linked_bounds(model)
    if links is None:
        return
    rows = links.rows
    n = rows.size
    x, col_dual = sens.x, sens.col_dual
    lp = highs.getLp()
    col_lo = np.asarray(lp.col_lower_, dtype=float)
    col_hi = np.asarray(lp.col_upper_, dtype=float)
    person = np.repeat(np.arange(n), np.diff(links.col_ptr))
    cols = links.cols
    at_ub = x[cols] >= col_hi[cols] - 1e-9 * np.maximum(1.0, np.abs(col_hi[cols]))
    estimate = sens.row_dual[rows] + np.bincount(
        person, weights=np.where(at_ub, np.minimum(col_dual[cols], 0.0), 0.0), minlength=n)
    link_person = np.repeat(np.arange(n), np.diff(links.link_ptr))
    link_on = (links.link_z >= 0) & (col_lo[np.maximum(links.link_z, 0)] > 0.5)
    if links.link_rows.size:
        estimate += np.bincount(link_person[link_on],
                                weights=np.minimum(sens.row_dual[links.link_rows[link_on]], 0.0),
                                minlength=n)
    fte = hi[rows]
    sens.input_rows = rows
    sens.input_rhs = fte.copy()
    sens.input_dual = estimate
    sens.input_low = np.full(n, np.nan)
    sens.input_high = np.full(n, np.nan)
    zero = np.abs(estimate) <= 1e-12
    sens.input_kind = np.where(zero, "zero", "estimate").astype(object)
    sens.input_dual[zero] = 0.0
    if not probes.take():
        return
    inf = 1e30
    relax = np.unique(cols).astype(np.int32)
    link_rows = links.link_rows[link_on]
    highs.changeColsBounds(relax.size, relax, col_lo[relax], np.full(relax.size, inf))
    for row in link_rows:
        highs.changeRowBounds(int(row), bound(lo[row]), inf)
    try:
        highs.run()
        if highs.getModelStatus().name != "kOptimal":
            return
        solution = highs.getSolution()
        dual = np.asarray(solution.row_dual, dtype=float)[rows]
        used = np.asarray(solution.row_value, dtype=float)[rows]
        _status, ranging = highs.getRanging()
        up = _clean(ranging.row_bound_up.value_)[rows]
        dn = _clean(ranging.row_bound_dn.value_)[rows]
        tol = 1e-9 * np.maximum(1.0, np.abs(fte))
        idle = used < fte - tol  # not fully used: one more FTE is worth nothing
        sens.input_dual[idle] = 0.0
        sens.input_low[idle] = used[idle]
        sens.input_high[idle] = np.inf
        sens.input_kind[idle] = "price"
        open_up = ~idle & (up > fte + tol)  # the basis's price holds a step up
        sens.input_dual[open_up] = dual[open_up]
        sens.input_low[open_up] = np.minimum(dn[open_up], fte[open_up])
        sens.input_high[open_up] = up[open_up]
        sens.input_kind[open_up] = "basis"
        # Re-solves, most valuable first: a degenerate person's price up, then the widening
        # of basis ranges into price ranges.
        order = np.flatnonzero(~idle)
        order = order[np.argsort(sens.input_dual[order], kind="stable")]
        for k in order:
            if probes.stopped or (probes.cap is not None and probes.used >= probes.cap):
                break
            r = int(rows[k])
            if open_up[k]:
                low, high, closed = _widen(highs, r, lo[r], hi[r], True, float(dual[k]),
                                           float(sens.input_low[k]), float(sens.input_high[k]),
                                           probes, MAX_FTE_STEPS)
                found: tuple[float, float, float, str] | None = (
                    float(dual[k]), low, high, "price" if closed else "basis")
            else:
                found = _price_up(highs, r, lo[r], hi[r], float(fte[k]), probes)
            highs.changeRowBounds(r, bound(lo[r]), bound(hi[r]))
            if found is None:
                continue
            sens.input_dual[k], sens.input_low[k], sens.input_high[k] = found[:3]
            sens.input_kind[k] = found[3]
    finally:
        highs.changeColsBounds(relax.size, relax, col_lo[relax], col_hi[relax])
        for row in link_rows:
            highs.changeRowBounds(int(row), bound(lo[row]), bound(hi[row]))
    sens.input_dual += 0.0


def _price_up(highs, r: int, lo: float, hi: float, rhs: float,
              probes: Probes) -> tuple[float, float, float, str] | None:
    """The price of raising row r's upper bound from `rhs`, and the range where it holds."""
    if not probes.take():
        return None
    at = solve_at(highs, r, lo, hi, True, rhs)
    if at is None:
        return None
    _obj, dual, low, high = at
    if high - rhs <= 1e-9 * max(1.0, abs(rhs)):  # a breakpoint: going up is the next piece
        if not probes.take():
            return None
        nxt = solve_at(highs, r, lo, hi, True, rhs + max(1e-6 * max(1.0, abs(rhs)), 1e-7))
        if nxt is None:
            return None
        _obj, dual, low, high = nxt
        low = max(low, rhs) if low > rhs - 1e-9 * max(1.0, abs(rhs)) else low
    low, high, closed = _widen(highs, r, lo, hi, True, dual, low, high, probes, MAX_FTE_STEPS)
    return dual, low, high, "price" if closed else "basis"


def _one_sided_prices(highs, sens: LpSensitivity, lo: np.ndarray,
                      hi: np.ndarray, probes: Probes) -> None:
    """Left and right shadow prices of the rows whose dual is not unique, by re-solving a
    hair below and above the right-hand side: each is the dual of the basis found there, so
    the exact one-sided derivative, and that basis's range says how far it holds
    (`left_from`, `right_to`)."""
    rows = np.flatnonzero(~sens.dual_unique)
    rows = rows[np.argsort(-_impact(sens, rows), kind="stable")][:MAX_ONE_SIDED]
    for r in rows:
        if not (probes.take() and probes.take()):
            sens.dual_left[r] = sens.dual_right[r] = np.nan  # not computed within the probes
            continue
        rhs = float(sens.rhs[r])
        use_hi = bool(np.isfinite(hi[r]) and rhs == hi[r])
        eps = max(1e-6 * max(1.0, abs(rhs)), 1e-7)
        found = []
        for direction in (-1.0, 1.0):
            found.append(_probe(highs, int(r), lo[r], hi[r], use_hi, rhs + direction * eps))
        _set_rhs(highs, int(r), lo[r], hi[r], use_hi, rhs)
        (left, _l_low, l_high), (right, r_low, _r_high) = found
        assert sens.left_from is not None and sens.right_to is not None
        sens.dual_left[r], sens.dual_right[r] = left, right
        tol = 1e-9 * max(1.0, abs(rhs))
        # Each one-sided price holds from the right-hand side on if its basis reaches it.
        sens.left_from[r] = found[0][1] if np.isfinite(left) and l_high >= rhs - tol \
            else np.nan
        sens.right_to[r] = found[1][2] if np.isfinite(right) and r_low <= rhs + tol \
            else np.nan
        if np.isfinite(left) and np.isfinite(right) and \
                abs(left - right) <= 1e-6 * max(1.0, abs(sens.row_dual[r])):
            sens.dual_unique[r] = True  # a basis change, but the same price on both sides


def _probe(highs, r: int, lo: float, hi: float, use_hi: bool,
           value: float) -> tuple[float, float, float]:
    """Row r's dual with its right-hand side at `value`, and the basis range around it
    (nan, nan, nan where the LP is not optimal there)."""
    _set_rhs(highs, r, lo, hi, use_hi, value)
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return np.nan, np.nan, np.nan
    dual = float(highs.getSolution().row_dual[r])
    _status, ranging = highs.getRanging()
    low = _clean([ranging.row_bound_dn.value_[r]])[0]
    high = _clean([ranging.row_bound_up.value_[r]])[0]
    return dual, min(low, value), max(high, value)


def affordable(deadline: float | None, expected: float) -> bool:
    """Whether a probe expected to take `expected` seconds ends before `deadline`: checking
    only that the deadline has not passed would let one slow probe overrun it by a whole
    re-solve and ranging (seconds each on a large model)."""
    return deadline is None or time.perf_counter() + expected <= deadline


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return join_labels(frame)


def sensitivity_frame(model: LinearModel, stages: list[LpSensitivity],
                      solved: list[str] | None = None) -> pd.DataFrame:
    """sensitivity.csv: one row per (stage, constraint) and per (stage, variable).

    `solved`: the stages in solve order, which name the hold rows (hold i keeps stage i's
    optimum); by default the analyzed stages, which are the same unless one failed."""
    frames = []
    labels: dict[str, np.ndarray] = {}  # per block, shared by every stage (the costly part)

    def labels_of(block) -> np.ndarray:
        key = f"{type(block).__name__}:{block.name}"
        if key not in labels:
            labels[key] = _labels(block.labels)
        return labels[key]

    held = solved if solved is not None else [s.stage for s in stages]
    for sens in stages:
        # How far each one-sided price holds: the price range where the dual is unique.
        left_from = sens.left_from if sens.left_from is not None else \
            np.full(len(sens.rhs), np.nan)
        right_to = sens.right_to if sens.right_to is not None else left_from.copy()
        left_from = np.where(np.isnan(left_from) & sens.dual_unique, sens.rhs_low, left_from)
        right_to = np.where(np.isnan(right_to) & sens.dual_unique, sens.rhs_high, right_to)
        for block in model.con_blocks.values():
            sl = block.slice
            frames.append(pd.DataFrame({
                "stage": sens.stage, "kind": "constraint", "family": block.name,
                "labels": labels_of(block), "activity": sens.activity[sl],
                "rhs": sens.rhs[sl], "slack": sens.slack[sl], "binding": sens.binding[sl],
                "dual": sens.row_dual[sl], "dual_unique": sens.dual_unique[sl],
                "dual_left": sens.dual_left[sl], "dual_right": sens.dual_right[sl],
                "left_from": left_from[sl], "right_to": right_to[sl],
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
                "left_from": left_from[holds], "right_to": right_to[holds],
                "rhs_low": sens.rhs_low[holds], "rhs_high": sens.rhs_high[holds],
                "range_kind": "basis", "value": np.nan, "reduced_cost": np.nan,
                "cost": np.nan, "cost_low": np.nan, "cost_high": np.nan,
                "dual_source": sens.source,
            }))
        if sens.input_rows is not None and "availability" in model.con_blocks:
            frames.append(pd.DataFrame({
                "stage": sens.stage, "kind": "input", "family": "fte",
                "labels": labels_of(model.con_blocks["availability"]),
                "activity": sens.activity[sens.input_rows], "rhs": sens.input_rhs,
                "slack": sens.slack[sens.input_rows], "binding": sens.binding[sens.input_rows],
                "dual": sens.input_dual, "dual_unique": sens.input_kind != "estimate",
                "dual_left": np.nan, "dual_right": sens.input_dual,
                "left_from": np.nan, "right_to": sens.input_high,
                "rhs_low": sens.input_low, "rhs_high": sens.input_high,
                "range_kind": sens.input_kind, "value": np.nan, "reduced_cost": np.nan,
                "cost": np.nan, "cost_low": np.nan, "cost_high": np.nan,
                "dual_source": sens.source,
            }))
        for var_block in model.var_blocks.values():
            sl = var_block.slice
            frames.append(pd.DataFrame({
                "stage": sens.stage, "kind": "variable", "family": var_block.name,
                "labels": labels_of(var_block), "activity": np.nan, "rhs": np.nan,
                "slack": np.nan, "binding": False, "dual": np.nan, "dual_unique": True,
                "dual_left": np.nan, "dual_right": np.nan, "left_from": np.nan,
                "right_to": np.nan, "rhs_low": np.nan,
                "rhs_high": np.nan, "range_kind": "", "value": sens.x[sl],
                "reduced_cost": sens.col_dual[sl],
                "cost": sens.cost[sl], "cost_low": sens.cost_low[sl],
                "cost_high": sens.cost_high[sl], "dual_source": sens.source,
            }))
    if not frames:
        return pd.DataFrame()
    return _tidy(pd.concat(frames, ignore_index=True))


VALUE_DECIMALS = 9  # values and activities: float noise below this, not a figure


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """No -0 in any figure; values and activities rounded to VALUE_DECIMALS decimals (far
    inside the solver's tolerances), so 23.3 is not written 23.299999999999997."""
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            values = frame[column].to_numpy()
            if column in ("value", "activity", "slack", "rhs"):
                values = np.round(values, VALUE_DECIMALS)
            frame[column] = round_sig(values)
    return frame


