"""`allocator frontier`: the Pareto frontier between two objectives (service vs cost, cost vs
stability), by the epsilon-constraint method.

The frontier is ``F(e) = min {second : first <= e}`` for ``e`` from the best level of the
first objective (held as the lexicographic run holds it: ``opt + rel_tol |opt| + abs_tol``)
to its level at the second objective's own optimum; beyond that, more slack buys nothing.

LP: F is convex and piecewise linear in ``e`` (a right-hand side), so it is traced exactly by
the parametric walk of parametric.py: ``e`` is the parameter row, HiGHS's ranging gives each
basis's end, one warm re-solve a hair past and one at each breakpoint; equal slopes merged.
MIP: no such form; F is sampled at evenly spaced levels, each a fresh solve whose proven gap
(and bound) is reported beside its value.

The knee is the breakpoint (or sample) where the slope changes most, with both axes scaled
to their range on the frontier (so the units of the two objectives do not decide it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import InfeasibleError, InputError
from allocator.negotiate.parametric import ParametricLP
from allocator.negotiate.session import Session, _near

SAMPLES = 21
TAIL_SAMPLES = 20  # past the piece limit, the rest of an LP frontier is sampled


@dataclass
class FrontierResult:
    frame: pd.DataFrame  # frontier.csv
    first: str
    second: str
    sentences: list[str] = field(default_factory=list)
    exact: bool = True
    out: Path | None = None


def parse_objectives(text: str | Sequence[str], session: Session) -> tuple[str, str]:
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    model = session.built.model
    if len(names) != 2 or not all(names):
        raise InputError(f"'{','.join(names)}': name two objectives, e.g. service,cost "
                         f"(this model has: {', '.join(model.objectives)})", "--objectives")
    problems = [f"no objective '{n}' in this {model.name} model" + _near(n, model.objectives)
                for n in names if n not in model.objectives]
    if names[0] == names[1]:
        problems.append("the two objectives must differ")
    if problems:
        raise InputError("; ".join(problems), "--objectives")
    return names[0], names[1]


def _knee(first: np.ndarray, second: np.ndarray) -> int | None:
    """The interior point where the normalized slope turns most."""
    if first.size < 3:
        return None
    span_a = max(float(first.max() - first.min()), 1e-12)
    span_b = max(float(second.max() - second.min()), 1e-12)
    a, b = (first - first.min()) / span_a, (second - second.min()) / span_b
    angles = np.arctan2(np.diff(b), np.diff(a))
    turn = np.abs(np.diff(angles))
    return int(np.argmax(turn)) + 1


# What one unit less of an objective is, in the words of the meeting.
UNIT_LESS = {"service": "each extra point of service (one unit less of weighted shortfall)",
             "stability": "each FTE moved less (two units less of stability)"}
LEVEL = {"service": "weighted shortfall", "stability": "stability (twice the FTE moved)"}


def _sentences(frame: pd.DataFrame, first: str, second: str) -> list[str]:
    out = []
    less = UNIT_LESS.get(first, f"each unit less of {first}")
    level = LEVEL.get(first, first)
    per = 2.0 if first == "stability" else 1.0
    a = frame[first].to_numpy(float)
    b = frame[second].to_numpy(float)
    for k in range(len(frame) - 1):
        da, db = a[k + 1] - a[k], b[k + 1] - b[k]
        if abs(da) <= 1e-12:
            continue
        rate = per * db / da
        out.append(f"Between {level} {a[k]:,.6g} and {a[k + 1]:,.6g}: {less} costs "
                   f"{-rate:,.6g} more {LEVEL.get(second, second)}"
                   + (" (estimated between samples)" if not bool(frame["exact"].iloc[0]) else "")
                   + ".")
    return out


def frontier(scenario: str | Path, objectives: str | Sequence[str] = ("service", "cost"),
             out: Path | None = None, *, overrides: Sequence[str] = (), plans: bool = False,
             samples: int = SAMPLES, force: bool = False) -> FrontierResult:
    """The frontier as a DataFrame (frontier.csv); with `out`, the frontier folder."""
    session = Session(scenario, list(overrides))
    first, second = parse_objectives(objectives, session)
    if out is not None:
        from allocator.diff.write import refuse_other_kind
        from allocator.outputs.folder import check_target

        check_target(out, force)
        refuse_other_kind(out, force, "frontier.csv", "frontier")  # not a run's folder
    model = session.built.model
    sign = -1.0 if model.maximize else 1.0
    o = session.scenario.objective
    obj_a, obj_b = model.objectives[first], model.objectives[second]
    best_a = session.solve(objectives=[obj_a, obj_b], warm=False)
    best_b = session.solve(objectives=[obj_b, obj_a], warm=False)
    if not (best_a.ok and best_b.ok):
        raise InfeasibleError(f"{scenario}: the scenario has no plan ({best_a.status}); "
                              "nothing to trade off")
    low = sign * best_a.objectives[first]  # minimized sense
    low_hold = low + o.rel_tol * abs(low) + o.abs_tol
    high = sign * best_b.plan_objectives[first]
    nz = np.flatnonzero(obj_a.c)
    exact = model.num_integer == 0
    rows: list[dict[str, object]] = []
    plan_tables: dict[int, dict[str, pd.DataFrame]] = {}
    plp = None
    if high <= low_hold:  # no trade-off: one plan is best for both
        levels = [low_hold]
        rows.append({first: sign * best_a.plan_objectives[first] + 0.0,
                     second: sign * best_a.objectives[second] + 0.0, "epsilon": low_hold,
                     "kind": "single point", "exact": exact})
    elif exact:
        rows, levels, plp = _exact_rows(session, first, second, low_hold, high, sign)
    else:
        rows, levels = [], list(np.linspace(low_hold, high, max(2, samples)))
        for eps in levels:
            point = session.solve(objectives=[obj_b], warm=False,
                                  extra_rows=[(nz, obj_a.c[nz], -math.inf, eps - obj_a.constant)])
            rows.append({first: point.plan_objectives.get(first, np.nan),
                         second: point.objectives.get(second, np.nan), "epsilon": sign * eps,
                         "kind": "sample", "exact": False,
                         "bound": point.bounds.get(second, np.nan),
                         "gap": point.gaps.get(second, np.nan), "status": point.status})
    frame = pd.DataFrame(rows)
    for col in ("slope_before", "slope_after", "bound", "gap", "starts_binding",
                "stops_binding", "status"):
        if col not in frame:
            frame[col] = np.nan if col not in ("starts_binding", "stops_binding", "status") \
                else ("optimal" if col == "status" else "")
    a = frame[first].to_numpy(float)
    b = frame[second].to_numpy(float)
    if len(frame) > 1:  # samples (a MIP, or an LP past the piece limit): slopes between
        slopes = np.diff(b) / np.where(np.diff(a) == 0, np.nan, np.diff(a))
        frame["slope_before"] = frame["slope_before"].fillna(
            pd.Series(np.r_[np.nan, slopes], index=frame.index))
        frame["slope_after"] = frame["slope_after"].fillna(
            pd.Series(np.r_[slopes, np.nan], index=frame.index))
    knee = _knee(a, b)
    frame["knee"] = False
    if knee is not None:
        frame.loc[knee, "knee"] = True
    frame.insert(0, "point", np.arange(len(frame)))
    frame = frame[["point", first, second, "epsilon", "slope_before", "slope_after", "kind",
                   "knee", "exact", "bound", "gap", "status", "starts_binding",
                   "stops_binding"]]
    result = FrontierResult(frame, first, second, _sentences(frame, first, second), exact, out)
    if plans:
        for k, eps in enumerate(levels):
            if plp is not None:  # LP: a warm re-solve at the breakpoint, in the traced model
                if plp.at(eps) is not None:
                    plan_tables[k] = session.formulation.plan_tables(session.built, plp.x())
                continue
            point = session.solve(objectives=[obj_b], plans=True, warm=False,
                                  extra_rows=[(nz, obj_a.c[nz], -math.inf, eps - obj_a.constant)])
            if point.tables is not None:
                plan_tables[k] = point.tables
    if out is not None:
        from allocator.negotiate.pages import write_frontier_folder

        note = ("Exact: an LP, traced by parametric analysis of the epsilon-constraint "
                f"({first} <= e); every breakpoint is a kink of the frontier." if exact else
                f"Sampled: a MIP, {len(frame)} epsilon-constraint solves ({first} <= e), each "
                "with its proven gap.")
        knee_text = ""
        if knee is not None:
            knee_text = (f" The knee (largest change of slope) is at {first} "
                         f"{a[knee]:,.6g}, {second} {b[knee]:,.6g}.")
        write_frontier_folder(out, frame, first, second, result.sentences,
                              f"Frontier of {session.scenario.name}: {first} against {second}",
                              plan_tables, force, note + knee_text)
    session.close()
    return result


def _exact_rows(session: Session, first: str, second: str, low: float, high: float,
                sign: float) -> tuple[list[dict[str, object]], list[float], ParametricLP]:
    from allocator.negotiate.parametric import MAX_PIECES, Curve, Direction, _merge, _walk

    model = session.built.model
    zeros_r, zeros_c = np.zeros(model.num_rows), np.zeros(model.num_vars)
    plp = ParametricLP(Direction(model, 0.0, zeros_r, zeros_r, zeros_c, zeros_c))
    obj_a, obj_b = model.objectives[first], model.objectives[second]
    nz = np.flatnonzero(obj_a.c)
    # first(x) <= e  <=>  c_a x - tau <= -constant
    plp._row(np.r_[nz, plp.tau], np.r_[obj_a.c[nz], -1.0], -1e30, -obj_a.constant)
    plp.objective(obj_b.c, obj_b.constant)
    step = 1e-7 * max(1.0, abs(low), abs(high))
    walked = _walk(plp, low, high, step, [MAX_PIECES])
    if walked is None:
        raise ArithmeticError("a re-solve along the frontier failed; no exact frontier")
    points, values, pieces = walked
    curve = _merge(Curve(second, points, values, pieces, False))
    rows: list[dict[str, object]] = []
    n = len(curve.points)
    complete = curve.points[-1] >= high - step
    for k in range(n):
        before = curve.pieces[k - 1] if k > 0 else None
        after = curve.pieces[k] if k < len(curve.pieces) else None
        left = (before.last_binding or before.binding) if before else frozenset()
        right = after.binding if after else frozenset()
        rows.append({
            first: sign * curve.points[k] + 0.0, second: sign * curve.values[k] + 0.0,
            "epsilon": sign * curve.points[k] + 0.0,
            "slope_before": before.slope if before else np.nan,
            "slope_after": after.slope if after else np.nan,
            "kind": "best " + first if k == 0 else ("best " + second if k == n - 1
                                                    and complete else "breakpoint"),
            "exact": True, "status": "optimal",
            "starts_binding": "; ".join(sorted(right - left)) if before and after else "",
            "stops_binding": "; ".join(sorted(left - right)) if before and after else ""})
    levels = list(curve.points)
    if not complete:  # the piece limit: the rest sampled (exact values, slopes between)
        rows[-1]["slope_after"] = np.nan
        for eps in np.linspace(curve.points[-1], high, TAIL_SAMPLES + 1)[1:]:
            value = plp.at(float(eps))
            if value is None:
                continue
            rows.append({first: sign * float(eps) + 0.0, second: sign * value + 0.0,
                         "epsilon": sign * float(eps) + 0.0, "slope_before": np.nan,
                         "slope_after": np.nan,
                         "kind": f"sample (past {MAX_PIECES} exact pieces)",
                         "exact": False, "status": "optimal", "starts_binding": "",
                         "stops_binding": ""})
            levels.append(float(eps))
        rows[-1]["kind"] = f"best {second} (sampled)"
    return rows, levels, plp
