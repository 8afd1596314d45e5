"""The trade-off curve of the funding model: best value against the total budget, exactly.

The optimal value of an LP is piecewise linear (and concave, for a maximum) in the
right-hand side of one row, so the curve is known exactly from its breakpoints. They are
found by successive ranging, as `ladder.row_ladder` does for one row: solve a hair past the
last breakpoint, and HiGHS's ranging of the row says how far that basis stays optimal: the
next breakpoint (warm re-solves, one per basis). Breakpoints where only the basis changes,
not the slope, are merged away, so every row of the table is a true kink of the curve.

The total budget is a row ``sum_p spend_p <= B`` added for the purpose; the budgets that
already cap all spend one for one are lifted while it is traced (B replaces them), group
budgets and draws stay. A model with integers (whole programs, non-concave curves) has no
such exact form: its curve is sampled on a grid, and says so. Each sample is solved in a
fresh HiGHS instance (one session re-solved at each budget returned stale plans reported
optimal: values above the true best, and a curve falling as the budget grew), and its plan is
checked against its budget before its value is taken. The best value cannot fall as the total
budget rises (more budget only relaxes), so a sample below an earlier one is a solver failure:
it is repaired with the earlier plan's value (still feasible there) and labelled as such.

The curve is always traced by HiGHS, whatever solver found the plan: the ranging it needs is
HiGHS's (as for sensitivity.csv).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel

if TYPE_CHECKING:  # funding calls this module; the type is all it needs back
    from allocator.formulations.funding.model import FundingModel

MAX_PIECES = 1000  # a safety net: each piece costs one ranging and two warm re-solves
SAMPLES = 41  # budgets tried when the model is a MIP
SLOPE_TOL = 1e-7  # relative: slopes closer than this are one piece
COLUMNS = ["budget", "value", "marginal_value_before", "marginal_value_after", "kind", "exact"]


def _inf(value: float) -> float:
    return float(np.clip(value, -1e30, 1e30))


class _Parametric:
    """A HiGHS session over the model with one extra row whose upper bound is varied."""

    def __init__(self, model: LinearModel, c: np.ndarray, constant: float, cols: np.ndarray,
                 vals: np.ndarray, lifted: Sequence[int], relax: bool) -> None:
        import highspy

        from allocator.solvers.highs import load_into_highs, new_highs

        self.highs = new_highs()
        # No `threads` option: HiGHS refuses every run() of an instance whose thread count
        # differs from the scheduler this thread already started (another analysis's).
        load_into_highs(self.highs, model, c, relax_integers=relax)
        for r in lifted:
            self.highs.changeRowBounds(int(r), -highspy.kHighsInf, highspy.kHighsInf)
        self.row = model.num_rows
        self.highs.addRow(-highspy.kHighsInf, highspy.kHighsInf, cols.size,
                          cols.astype(np.int32), vals.astype(float))
        self.c, self.constant, self.cols, self.vals = c, constant, cols, vals
        self.n = model.num_vars

    def _cost(self, c: np.ndarray, constant: float) -> None:
        self.highs.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), c)
        self.highs.changeObjectiveOffset(float(constant))

    def extreme(self, sign: float) -> float | None:
        """The least (sign 1) or largest (sign -1) total the constraints allow."""
        c = np.zeros(self.n)
        c[self.cols] = sign * self.vals
        self._cost(c, 0.0)
        self.highs.run()
        ok = self.highs.getModelStatus().name == "kOptimal"
        value = sign * float(self.highs.getInfo().objective_function_value) if ok else None
        self._cost(self.c, self.constant)
        return value

    def plan_ok(self, budget: float) -> bool:
        """The solution held respects the total budget and its objective is its own."""
        x = np.asarray(self.highs.getSolution().col_value, dtype=float)
        if x.size < self.n:
            return False
        total = float(self.vals @ x[self.cols])
        objective = float(self.c @ x[:self.n] + self.constant)
        reported = float(self.highs.getInfo().objective_function_value)
        scale = max(1.0, abs(budget))
        return total <= budget + 1e-6 * scale and \
            abs(objective - reported) <= 1e-6 * max(1.0, abs(reported))

    def at(self, budget: float) -> float | None:
        """The optimal (minimized) objective with the total capped at `budget`."""
        self.highs.changeRowBounds(self.row, -1e30, _inf(budget))
        self.highs.run()
        if self.highs.getModelStatus().name != "kOptimal":
            return None
        return float(self.highs.getInfo().objective_function_value)

    def piece_after(self, budget: float, step: float) -> tuple[float, float] | None:
        """(slope, end) of the piece just past `budget`: the row's dual and ranging there."""
        if self.at(budget + step) is None:
            return None
        dual = float(self.highs.getSolution().row_dual[self.row])
        _status, ranging = self.highs.getRanging()
        end = float(ranging.row_bound_up.value_[self.row])
        return dual, (np.inf if end >= 1e30 else max(end, budget + step))


def _merge(budgets: list[float], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Drop breakpoints where the slope does not change (a new basis, the same price)."""
    b, v = np.asarray(budgets), np.asarray(values)
    keep = np.ones(b.size, dtype=bool)
    last = 0
    for k in range(1, b.size - 1):
        left = (v[k] - v[last]) / (b[k] - b[last])
        right = (v[k + 1] - v[k]) / (b[k + 1] - b[k])
        if abs(left - right) <= SLOPE_TOL * max(1.0, abs(left), abs(right)):
            keep[k] = False
        else:
            last = k
    return b[keep], v[keep]


def parametric_curve(
    model: LinearModel, c: np.ndarray, constant: float, cols: np.ndarray, vals: np.ndarray,
    lifted: Sequence[int] = (), sign: float = 1.0, max_pieces: int = MAX_PIECES,
) -> pd.DataFrame:
    """Breakpoints of ``sign * min {c x + constant : model, vals @ x[cols] <= B}`` over B,
    from the least feasible B to where more B stops helping (or the most B can be).

    `lifted` rows are freed while tracing (the row traced takes their place). For an LP the
    curve is exact; with integer columns it is sampled on a grid (`exact` is false).
    """
    integer = model.num_integer > 0
    session = _Parametric(model, c, constant, cols, vals, lifted, relax=False)
    low, high = session.extreme(1.0), session.extreme(-1.0)
    if low is None or high is None:
        return pd.DataFrame(columns=COLUMNS)
    if integer:
        return _sampled(model, c, constant, cols, vals, lifted, sign, low, high)

    scale = max(1.0, abs(low), abs(high))
    step = 1e-7 * scale
    first = session.at(low)
    if first is None:
        return pd.DataFrame(columns=COLUMNS)
    budgets, values = [low], [first]
    saturated = stopped = False
    for _ in range(max_pieces):
        current = budgets[-1]
        if current >= high - step:
            break
        piece = session.piece_after(current, step)
        if piece is None:
            break
        dual, end = piece
        if abs(dual) <= 1e-9 * max(1.0, float(np.abs(c).max(initial=0.0))):
            saturated = True  # more budget buys nothing from here on
            break
        end = min(end, high)
        value = session.at(end)
        if value is None:
            break
        budgets.append(end)
        values.append(value)
    else:
        stopped = True  # max_pieces reached: the curve is exact up to its last row only
    values = _checked(model, c, constant, cols, vals, lifted, budgets, values)
    b, v = _merge(budgets, [sign * value + 0.0 for value in values])
    slopes = np.diff(v) / np.diff(b) if b.size > 1 else np.zeros(0)
    before = np.r_[np.nan, slopes]
    after = np.r_[slopes, 0.0 if saturated or b[-1] >= high - step else np.nan]
    kind = np.full(b.size, "breakpoint", dtype=object)
    kind[0] = "least budget"
    if b.size > 1 or saturated:
        kind[-1] = "saturation" if saturated else "most budget"
    if stopped:
        kind[-1] = f"stopped after {max_pieces} pieces"
        after[-1] = np.nan
    return pd.DataFrame({"budget": b, "value": v, "marginal_value_before": before,
                         "marginal_value_after": after, "kind": kind, "exact": True})[COLUMNS]


def _checked(model: LinearModel, c: np.ndarray, constant: float, cols: np.ndarray,
             vals: np.ndarray, lifted: Sequence[int], budgets: list[float],
             values: list[float]) -> list[float]:
    """The traced breakpoints' minimized values, never rising with the budget: a breakpoint
    above an earlier one is re-solved from scratch; one that still rises is an error, not a
    curve to write."""
    v = np.asarray(values, dtype=float)
    tol = 1e-7 * np.maximum(1.0, np.abs(v))
    risen = np.flatnonzero(v > np.minimum.accumulate(v) + tol)
    for k in risen:
        session = _Parametric(model, c, constant, cols, vals, lifted, relax=False)
        fresh = session.at(budgets[k])
        if fresh is not None and session.plan_ok(budgets[k]):
            v[k] = fresh
    if (v > np.minimum.accumulate(v) + tol).any():
        raise ArithmeticError("the traced value curve falls as the budget rises, even after "
                              "fresh re-solves; it is not written")
    return v.tolist()


def _sampled(model: LinearModel, c: np.ndarray, constant: float, cols: np.ndarray,
             vals: np.ndarray, lifted: Sequence[int], sign: float, low: float,
             high: float) -> pd.DataFrame:
    """The MIP's best value on a grid of budgets, each from a fresh solve, checked and made
    non-decreasing (see the module's docstring)."""
    grid = np.unique(np.linspace(low, high, SAMPLES))
    budgets, minimized, kinds = [], [], []
    for budget in grid:
        session = _Parametric(model, c, constant, cols, vals, lifted, relax=False)
        session.highs.setOptionValue("mip_rel_gap", 1e-9)
        value = session.at(budget)
        if value is None or not session.plan_ok(budget):
            continue
        budgets.append(float(budget))
        minimized.append(value)
        kinds.append("sample")
    v = np.asarray(minimized, dtype=float)
    # The minimized objective cannot rise with the budget: a plan fits every larger budget.
    best = np.minimum.accumulate(v) if v.size else v
    risen = v > best + 1e-6 * np.maximum(1.0, np.abs(best))
    for k in np.flatnonzero(risen):
        source = int(np.flatnonzero(v[:k] <= best[k] + 1e-9 * max(1.0, abs(best[k])))[0])
        kinds[k] = (f"sample (the solver's plan was worth {sign * v[k] + 0.0:.6g}; the plan "
                    f"at budget {budgets[source]:.6g} fits and does better)")
    frame = pd.DataFrame({"budget": np.asarray(budgets, dtype=float),
                          "value": sign * np.where(risen, best, v) + 0.0,
                          "marginal_value_before": np.nan, "marginal_value_after": np.nan,
                          "kind": pd.Series(kinds, dtype=object), "exact": False})
    return frame[COLUMNS]


def budget_tradeoff(built: FundingModel, x: np.ndarray | None = None,
                    max_pieces: int = MAX_PIECES) -> pd.DataFrame:
    """tradeoff.csv: the funding model's best value at every total budget (its breakpoints).

    `x` is unused by the trace (which re-solves from scratch) and accepted so the pipeline
    can hand every analysis the same arguments.
    """
    model = built.model
    objective = model.objectives["value"]
    spend = model.var_blocks["spend"]
    cols = spend.start + np.arange(spend.size)
    return parametric_curve(model, objective.c, objective.constant, cols, np.ones(spend.size),
                            built.total_budget_rows.tolist(),
                            sign=-1.0 if model.maximize else 1.0, max_pieces=max_pieces)


def value_at(curve: pd.DataFrame, budget: float | np.ndarray) -> np.ndarray:
    """The curve read at any budget (linear between breakpoints, flat past saturation)."""
    b = curve["budget"].to_numpy(dtype=float)
    v = curve["value"].to_numpy(dtype=float)
    return np.interp(np.asarray(budget, dtype=float), b, v, left=np.nan, right=v[-1])


def tradeoff_svg(curve: pd.DataFrame, built: FundingModel, x: np.ndarray | None = None,
                 why: str = "") -> str:
    """tradeoff.svg: the curve, its breakpoints, and where the plan solved sits on it.

    The axis is a total budget only where the model has one (a budget of scope `all`
    drawing one for one, which the trace replaces); otherwise (mknap-style draws, group
    budgets only) it is the total spend, with every budget of the model held."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9})
    fig, ax = plt.subplots(figsize=(8, 4))
    if len(curve):
        b, v = curve["budget"].to_numpy(float), curve["value"].to_numpy(float)
        exact = bool(curve["exact"].iloc[0])
        ax.plot(b, v, color="#3f6fa8", linewidth=2, marker="o" if exact else ".",
                label="best value (exact breakpoints)" if exact else "best value (sampled)")
    elif why:
        ax.text(0.5, 0.5, f"no curve: {why}", ha="center", va="center", wrap=True,
                transform=ax.transAxes)
    if x is not None:
        spend = x[built.model.var_blocks["spend"].slice]
        objective = built.model.objectives["value"]
        value = -(objective.c @ x + objective.constant)
        ax.plot([spend.sum()], [value], marker="*", markersize=12, color="#d9604c",
                linestyle="none", label="this plan")
    if built.total_budget_rows.size:
        ax.set_xlabel("total budget")
        ax.set_title("Value against the total budget (group budgets held)")
    else:
        ax.set_xlabel("total spend over all programs (no budget of the model caps it as such)")
        ax.set_title("Value against total spend (every budget of the model held)")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]
