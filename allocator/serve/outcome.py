"""What the page shows of one solve (the base or an alternative), and how two differ.

Every figure is taken from the plan's own tables (coverage, budgets, sites, plan) and the
run's summary, the same files `allocator solve` writes, so the page says what a CLI run of
the same inputs says. Which constraints bind is read from those tables too (a budget with no
headroom, a site at its capacity or at its minimum staffing), not from the solver's duals:
the difference against the base then needs no sensitivity analysis. Prices and ranges come
from sensitivity.csv where the solve made one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# A budget, capacity or floor binds when its slack is within this share of its size (and 1e-6
# absolute): solvers stop within 1e-7 relative of a bound.
BIND_TOL = 1e-6
UNITS = {"service": "units of weighted shortfall", "cost": "in cost",
         "stability": "FTE moved"}


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _column(values: pd.Series) -> list[Any]:
    """One column as JSON-safe values: numbers as floats (NaN and inf as null), flags as
    booleans, anything else as text (null where missing). A column at a time, not a cell."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return [bool(v) for v in values.to_numpy()]
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        out = numbers.astype(object)
        out[~np.isfinite(numbers)] = None
        return list(out)
    missing = values.isna().to_numpy()
    text = values.astype(object).to_numpy()
    return [None if m else str(v) for v, m in zip(text, missing, strict=True)]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN and inf as null)."""
    names = [str(c) for c in frame.columns]
    columns = [_column(frame[c]) for c in frame.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] \
        if columns else [{} for _ in range(len(frame))]


@dataclass(frozen=True)
class Outcome:
    """One solved alternative, as the page shows it."""

    status: str
    objectives: dict[str, float | None]
    coverage: pd.DataFrame  # site_id, service_id, demand, served, shortfall, served_share
    budgets: pd.DataFrame  # budget_id, scope, amount, spent, headroom
    sites: pd.DataFrame  # site_id, fte, capacity_fte, min_fte, cost
    plan: pd.DataFrame  # staff_id, site_id, service_id, fte, cost
    prices: pd.DataFrame = field(default_factory=pd.DataFrame)  # binding rows priced
    seconds: float = 0.0
    how: str = ""  # "warm re-solve", "cold solve", "the run's own plan"
    notes: tuple[str, ...] = ()

    @property
    def solved(self) -> bool:
        return self.status in ("optimal", "feasible")

    def kpis(self) -> dict[str, float | None]:
        """The headline figures, in the user's units (none without a plan)."""
        if not self.solved:
            return dict.fromkeys(("weighted_shortfall", "cost", "fte", "demand", "served",
                                  "unmet", "served_share"))
        demand = float(self.coverage["demand"].sum()) if not self.coverage.empty else 0.0
        served = float(self.coverage["served"].sum()) if not self.coverage.empty else 0.0
        return {
            "weighted_shortfall": self.objectives.get("service"),
            "cost": float(self.plan["cost"].sum()) if not self.plan.empty else 0.0,
            "fte": float(self.plan["fte"].sum()) if not self.plan.empty else 0.0,
            "demand": demand,
            "served": served,
            "unmet": float(self.coverage["shortfall"].sum()) if not self.coverage.empty
            else 0.0,
            "served_share": served / demand if demand > 0 else None,
        }

    def binding(self) -> pd.DataFrame:
        """Budgets, capacities and minimum staffing at their limit, read from the tables:
        family, id, limit, used."""
        rows: list[tuple[str, str, float, float]] = []
        b = self.budgets
        if not b.empty:
            tight = b["headroom"] <= BIND_TOL * np.maximum(1.0, b["amount"].abs())
            rows += [("budget", str(i), float(a), float(s)) for i, a, s in
                     zip(b.loc[tight, "budget_id"], b.loc[tight, "amount"],
                         b.loc[tight, "spent"], strict=True)]
        s = self.sites
        if not s.empty:
            cap = s["capacity_fte"].astype(float)
            full = cap.notna() & (s["fte"] >= cap - BIND_TOL * np.maximum(1.0, cap.abs()))
            rows += [("capacity", str(i), float(c), float(f)) for i, c, f in
                     zip(s.loc[full, "site_id"], cap[full], s.loc[full, "fte"], strict=True)]
            low = s["min_fte"].astype(float).fillna(0.0)
            floor = (low > 0) & (s["fte"] <= low + BIND_TOL * np.maximum(1.0, low))
            rows += [("min_staff", str(i), float(c), float(f)) for i, c, f in
                     zip(s.loc[floor, "site_id"], low[floor], s.loc[floor, "fte"], strict=True)]
        return pd.DataFrame(rows, columns=["family", "id", "limit", "used"])

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "objectives": {k: _num(v) for k, v in self.objectives.items()},
            "kpis": self.kpis(),
            "coverage": _records(self.coverage),
            "budgets": _records(self.budgets),
            "sites": _records(self.sites),
            "binding": _records(self.binding()),
            "prices": _records(self.prices),
            "seconds": round(self.seconds, 4),
            "how": self.how,
            "notes": list(self.notes),
        }


# ---- prices in business words ----------------------------------------------------------

STEPS = {"budget": 1000.0}
FAMILIES = ("budget", "capacity", "min_staff", "coverage", "moved")


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.4g}"


def price_sentence(stage: str, family: str, label: str, dual: float, rhs: float,
                   low: float | None, high: float | None) -> str:
    """One binding row's price in words: what one more unit of the input does to the stage."""
    step = STEPS.get(family, 1.0)
    effect = dual * step
    unit = UNITS.get(stage, "")
    if stage == "cost":
        verb = "saves" if effect < 0 else "adds"
        said = f"{verb} {_fmt(abs(effect))} in cost (service held at its best level)"
    elif stage == "service":
        verb = "avoids" if effect < 0 else "adds"
        said = f"{verb} {_fmt(abs(effect))} {unit}"
    else:
        said = f"changes {stage} by {_fmt(effect)}"
    what = {
        "budget": (f"Budget {label}", f"each extra {_fmt(step)} of money"),
        "capacity": (f"Site {label} capacity", "each extra FTE of room"),
        "min_staff": (f"Site {label} minimum staffing", "each extra FTE required"),
        "coverage": (f"Demand {label}", "each extra unit of workload"),
        "moved": ("The limit on FTE moved", "each extra unit"),
    }.get(family, (f"{family} {label}", "each extra unit"))
    span = ""
    if low is not None or high is not None:
        lo = "-inf" if low is None else _fmt(low)
        hi = "no limit" if high is None else _fmt(high)
        span = f"; this price holds from {lo} to {hi}"
    return f"{what[0]} (today {_fmt(rhs)}): {what[1]} {said}{span}."


def prices_from_sensitivity(sens: pd.DataFrame) -> pd.DataFrame:
    """The priced rows a negotiation talks about: binding budgets, capacities and minimum
    staffing, and demand whose shortfall has a price (both stages)."""
    cols = ["stage", "family", "id", "rhs", "dual", "rhs_low", "rhs_high", "sentence"]
    if sens.empty:
        return pd.DataFrame(columns=cols)
    c = sens[(sens["kind"] == "constraint")
             & sens["family"].isin(FAMILIES)]
    dual = c["dual"].astype(float).fillna(0.0)
    keep = (c["binding"].astype(str).str.lower() == "true") & (dual.abs() > 1e-9)
    # Demand is priced in the service stage (shortfall per unit); the cost stage's demand
    # prices (one per target) would crowd out the budgets and capacities.
    keep &= (c["family"] != "coverage") | (c["stage"] == "service")
    c = c[keep]
    rows = []
    for r in c.itertuples(index=False):
        low, high = _num(r.rhs_low), _num(r.rhs_high)
        rows.append((r.stage, r.family, str(r.labels), float(r.rhs), float(r.dual), low, high,
                     price_sentence(str(r.stage), str(r.family), str(r.labels), float(r.dual),
                                    float(r.rhs), low, high)))
    return _ordered(pd.DataFrame(rows, columns=cols))


def prices_from_bindings(bindings: Sequence[Any]) -> pd.DataFrame:
    """The same rows from a session's solve (`Binding`: stage, family, label, rhs, dual):
    prices without ranges (a warm re-solve does no ranging)."""
    cols = ["stage", "family", "id", "rhs", "dual", "rhs_low", "rhs_high", "sentence"]
    rows = []
    for b in bindings:
        if b.family not in FAMILIES or (b.family == "coverage" and b.stage != "service"):
            continue
        label = b.label
        if b.family == "coverage":  # the session joins ids with ',', the run files with '/'
            site, _, service = label.rpartition(",")
            label = f"{site}/{service}" if site else label
        rows.append((b.stage, b.family, label, b.rhs, b.dual, None, None,
                     price_sentence(b.stage, b.family, label, b.dual, b.rhs, None, None)))
    return _ordered(pd.DataFrame(rows, columns=cols))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Stages in the lexicographic order, then the limits people negotiate (budgets,
    capacities, floors) before demand, the largest prices first."""
    order = {"budget": 0, "capacity": 1, "min_staff": 2, "moved": 3, "coverage": 4}
    stages = {"service": 0, "cost": 1, "stability": 2}
    frame["_s"] = frame["stage"].map(stages).fillna(3)
    frame["_o"] = frame["family"].map(order)
    frame["_a"] = -frame["dual"].abs()
    return frame.sort_values(["_s", "_o", "_a", "id"], kind="stable").drop(
        columns=["_s", "_o", "_a"]).reset_index(drop=True)


# ---- the difference against the base --------------------------------------------------

FTE_TOL = 1e-6
# Coverage and FTE by site and service: changes below this (workload units, FTE) are the
# solvers' tolerances, not a change anyone negotiates (the staff-level moves keep the diff
# engine's own tolerance).
SHOWN_TOL = 1e-4


def diff(base: Outcome, other: Outcome) -> dict[str, Any]:
    """Moves, coverage changes, budget use, and constraints that started or stopped binding.

    The frames come from the nightly diff's engine (`allocator.diff.engine`: moves.csv,
    coverage_diff.csv, budgets_diff.csv), so the room and `allocator diff` agree on what a
    move is; the page also totals the moves by site and service."""
    from allocator.diff.engine import budgets_frame, coverage_frame, moves_frame

    moves = moves_frame(base.plan, other.plan)
    moves = moves.reindex(moves["delta"].abs().sort_values(ascending=False, kind="stable")
                          .index).reset_index(drop=True)
    by_place = (moves.groupby(["site_id", "service_id"], sort=True)["delta"].sum()
                .reset_index())
    by_place = by_place[by_place["delta"].abs() > SHOWN_TOL]

    cov = coverage_frame(base.coverage, other.coverage)
    if not cov.empty:
        changed = (cov["served_delta"].abs() > SHOWN_TOL) | \
            (cov["shortfall_delta"].abs() > SHOWN_TOL)
        cov = cov[changed].reset_index(drop=True)
    budgets = budgets_frame(base.budgets, other.budgets)
    if not budgets.empty:
        budgets = budgets[(budgets["spent_delta"].abs() > 1e-6)
                          | (budgets["amount_delta"].abs() > 1e-9)]

    bind_a = {(f, i) for f, i in base.binding()[["family", "id"]].itertuples(index=False)}
    bind_b = {(f, i) for f, i in other.binding()[["family", "id"]].itertuples(index=False)}
    started = [{"family": f, "id": i} for f, i in sorted(bind_b - bind_a)]
    stopped = [{"family": f, "id": i} for f, i in sorted(bind_a - bind_b)]

    ka, kb = base.kpis(), other.kpis()
    kpis = {k: (None if ka[k] is None or kb[k] is None else kb[k] - ka[k])  # type: ignore[operator]
            for k in ka}
    return {
        "kpis": kpis,
        "objectives": {k: (None if v is None or base.objectives.get(k) is None
                           else v - base.objectives[k])  # type: ignore[operator]
                       for k, v in other.objectives.items()},
        "moves": _records(moves[["staff_id", "site_id", "service_id", "fte_a", "fte_b",
                                 "delta"]]),
        "moved_fte": 0.5 * float(moves["delta"].abs().sum()),
        "moves_by_site_service": _records(by_place),
        "coverage": _records(cov),
        "budgets": _records(budgets),
        "started_binding": started,
        "stopped_binding": stopped,
    }
