"""Near-optimal alternatives (modelling to generate alternatives, MGA) for the ops model.

When the optimal plan is politically impossible, a negotiation needs other plans that cost
almost the same: every lexicographic stage held within a slack of its optimum (``--within
1%``: ``stage <= opt + within * |opt| + abs_tol``, the rows ``solvers/lexicographic.py`` adds
between stages, at the user's slack instead of the solver tolerance), and as different from
the optimal plan and from each other as possible.

**Distance**: FTE moved between sites (``distance="site"``, the default) or between
(site, service) cells (``"cell"``): half the L1 norm of the change of FTE by site, the unit
``FTE moved`` has everywhere else in allocator (moving 1 FTE from Leeds to York is 1).

**Method: max-min L1 distance by alternating LPs** (chosen over the classic Hop-Skip-Jump
iteration, which minimizes the sum of the variables used so far). HSJ measures difference as
"support not used before": once every site is used by some plan (the demo's 20 sites all are,
in the optimum already), its objective only shrinks total FTE and says nothing about where
FTE goes. What a negotiation reads is FTE moved, so that is what is maximized, directly:

    maximize t   s.t.  t <= d_p . (y - y_p)   for every plan p found so far (optimum first)
                       y = FTE by site (aggregate columns), stages held within the slack

For fixed signs ``d_p in {-1, +1}`` this is one LP (one aggregate column per site, one row
per plan); ``d_p . (y - y_p) <= |y - y_p|_1`` with equality when ``d_p = sign(y - y_p)``. So
the signs are re-set to ``sign(y - y_p)`` and the LP solved again (warm, in the same HiGHS)
until they stop changing: each round's true max-min distance is at least the last one's
(a local maximum of a convex function over the near-optimal polytope; the exact maximum needs
a binary per site and plan). Two starts per alternative: HSJ's signs (leave the sites the
plan uses, go where it does not) and seeded random signs; the farthest wins. The work is
counted (``starts x rounds`` LPs per alternative), never timed, so the same input gives the
same files. Whole-person assignment makes each of those LPs a MIP (same method, slower).

Every alternative is checked before it is shown: its rows, bounds and integers and each
stage's objective within its slack, recomputed from the model's arrays
(``core.checks.plan_problems``); the tests check it again from the CSV files with an
independent checker.
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.core.checks import StageFigure, plan_problems
from allocator.core.model import Objective
from allocator.errors import (
    AllocatorError,
    ExitCode,
    InfeasibleError,
    InputError,
    SolverFailure,
)
from allocator.outputs.report import CSS as REPORT_CSS
from allocator.solvers.base import Status

DISTANCES = ("site", "cell")
ZERO_FTE = 1e-6  # less than this at a site or cell is no staff there (solver noise)
SHOWN_MOVES = 3  # moves named in each alternative's sentence
SHOWN_FTE = 0.005  # a move smaller than this is solver noise: neither named nor counted
SHOWN_GROUPS = 2  # "keeps A and B open for picking": phrases of each kind in a sentence
SHOWN_SITES = 3  # sites named in one phrase, the rest counted
STARTS = 2
ROUNDS = 4
HEAT_SITES = 40  # rows of the heat map: the sites that change most


class StageLimit(AllocatorError):
    """The stages ended at a limit, short of the optimum the slack is measured from."""

    exit_code = ExitCode.TIME_LIMIT_NO_PLAN


def parse_within(text: str | float) -> float:
    """'1%', '0.5 %' or '0.01' as a share (0.01); refused unless 0 <= share <= 1, and a bare
    number of 1 or more (is '1' one percent or all?)."""
    if isinstance(text, int | float):
        share = float(text)
    else:
        raw = str(text).strip()
        match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)", raw)
        if match is None:
            raise InputError(f"--within '{raw}': expected a share such as 1% or 0.01",
                             "--within")
        share = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
        if not match.group(2) and share >= 1.0:
            # '--within 1' is 1% to most people and 100% to the parser: ask, do not guess
            raise InputError(f"--within {raw}: a share without % must be below 1; write "
                             f"{raw}% for {raw} percent, or 100% for any plan at all",
                             "--within")
    if not (0.0 <= share <= 1.0) or not math.isfinite(share):
        raise InputError(f"--within {text}: expected a slack between 0% and 100%", "--within")
    return share


@dataclass(frozen=True)
class Alternatives:
    """What `find_alternatives` found: plan 0 is the optimum, 1..N the alternatives."""

    name: str
    within: float
    distance: str
    table: pd.DataFrame  # alternatives.csv: one row per plan, stage objectives and distances
    plans: tuple[dict[str, pd.DataFrame], ...]  # each plan's tables (plan, coverage, ...)
    differences: pd.DataFrame  # FTE by site and service against the optimum, per alternative
    stages: tuple[str, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    lps: int = 0  # LPs (or MIPs) solved to find the alternatives
    settings: dict[str, Any] = field(default_factory=dict)


# --- the search ------------------------------------------------------------------------------


class _Search:
    """One HiGHS holding the model, the slack holds, the aggregate columns and the distance
    rows. It continues from the stage solve's HiGHS where there is one (its optimal basis is
    the first start), and changes the distance rows' signs in place, so every re-solve is
    warm (a changed coefficient keeps the basis; a deleted row would not)."""

    def __init__(self, model: Any, objectives: list[Objective], holds: list[float],
                 groups: np.ndarray, n_groups: int, settings: Any,
                 highs: Any = None) -> None:
        import highspy

        from allocator.solvers.highs import checked, load_into_highs, new_highs

        self.n = model.num_vars
        self.n_groups = n_groups
        if highs is None:  # another solver did the stages: HiGHS starts cold here
            highs = new_highs()
            for key, value in (("random_seed", int(settings.seed)),
                               ("threads", int(settings.threads or 1)),
                               ("mip_rel_gap", float(settings.mip_gap))):
                highs.setOptionValue(key, value)
            highs.resetGlobalScheduler(True)  # our solves are sequential (HighsBackend.load)
            load_into_highs(highs, model)
            held = 0
        else:  # the stage solve added a hold row after each stage but the last
            held = len(objectives) - 1
        for i, (objective, hold) in enumerate(zip(objectives, holds, strict=True)):
            if i < held:  # the solver-tolerance hold, widened to the slack
                checked(highs.changeRowBounds(model.num_rows + i, -1e30,
                                              float(hold - objective.constant)),
                        f"the row holding stage '{objective.name}' within the slack")
                continue
            nz = np.flatnonzero(objective.c)
            checked(highs.addRow(-1e30, float(hold - objective.constant), nz.size,
                                 nz.astype(np.int32), objective.c[nz].astype(float)),
                    f"the row holding stage '{objective.name}' within the slack")
        self.y0 = highs.getNumCol()  # aggregate columns y_g = FTE of group g
        self.t = self.y0 + n_groups  # the max-min distance
        empty = np.zeros(0, dtype=np.int32)
        # t is free: with fixed signs two plans' rows may ask for opposite moves, and then
        # the best t is negative (the LP stays feasible; the true distance is measured after).
        lower = np.zeros(n_groups + 1)
        lower[-1] = -1e30
        checked(highs.addCols(n_groups + 1, np.zeros(n_groups + 1), lower,
                              np.full(n_groups + 1, 1e30), 0, empty, empty, np.zeros(0)),
                "the distance columns")
        # y_g - sum of x at g = 0, one row per group, built as CSR in one call.
        x_cols = np.flatnonzero(groups >= 0)
        order = np.argsort(groups[x_cols], kind="stable")
        x_cols = x_cols[order]
        counts = np.bincount(groups[x_cols], minlength=n_groups)
        starts = np.concatenate([[0], np.cumsum(counts + 1)])[:-1]
        index = np.empty(x_cols.size + n_groups, dtype=np.int32)
        coef = np.empty(x_cols.size + n_groups)
        index[starts] = self.y0 + np.arange(n_groups)
        coef[starts] = 1.0
        within = np.arange(x_cols.size) - np.repeat(np.cumsum(counts) - counts, counts)
        at = np.repeat(starts, counts) + 1 + within
        index[at] = x_cols
        coef[at] = -1.0
        checked(highs.addRows(n_groups, np.zeros(n_groups), np.zeros(n_groups), index.size,
                              starts.astype(np.int32), index, coef), "the aggregate rows")
        cost = np.zeros(self.t + 1)
        cost[self.t] = -1.0  # maximize t
        checked(highs.changeColsCost(cost.size, np.arange(cost.size, dtype=np.int32), cost),
                "the distance objective")
        checked(highs.changeObjectiveOffset(0.0), "the distance objective")
        self.highs = highs
        self.first_distance_row = highs.getNumRow()
        self.signs: list[np.ndarray] = []  # the signs each distance row holds now
        self.kinds = highspy.HighsModelStatus
        self.solves = 0

    def set_distances(self, refs: np.ndarray, signs: np.ndarray) -> None:
        """Rows t - d_p . y <= -d_p . y_p for every reference plan p: the signs that changed
        are changed in place, the rows of new plans added."""
        from allocator.solvers.highs import checked

        highs = self.highs
        for p, (ref, sign) in enumerate(zip(refs, signs, strict=True)):
            hi = float(-(sign * ref).sum())
            if p < len(self.signs):
                row = self.first_distance_row + p
                for g in np.flatnonzero(self.signs[p] != sign):
                    checked(highs.changeCoeff(row, self.y0 + int(g), float(-sign[g])),
                            "a distance row")
                checked(highs.changeRowBounds(row, -1e30, hi), "a distance row")
                self.signs[p] = sign.copy()
                continue
            cols = np.concatenate([[self.t], self.y0 + np.arange(self.n_groups)])
            checked(highs.addRow(-1e30, hi, cols.size, cols.astype(np.int32),
                                 np.concatenate([[1.0], -sign])), "a distance row")
            self.signs.append(sign.copy())

    def solve(self, time_limit: float | None) -> np.ndarray | None:
        highs = self.highs
        limit = highs.getRunTime() + time_limit if time_limit is not None else 1e30
        highs.setOptionValue("time_limit", float(limit))
        highs.run()
        self.solves += 1
        status = highs.getModelStatus()
        if highs.getInfo().primal_solution_status != 2:  # no feasible point
            if status == self.kinds.kTimeLimit:
                return None
            raise SolverFailure(f"HiGHS: the alternatives LP ended "
                                f"'{highs.modelStatusToString(status)}' without a plan")
        return np.asarray(highs.getSolution().col_value)


def _groups(built: Any, distance: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The group (site, or site and service) of each model column; -1 outside the x block."""
    model = built.model
    x = model.var_blocks["x"]
    labels = x.labels[["site_id"] if distance == "site" else ["site_id", "service_id"]]
    text = labels.astype(str)
    keys = text.drop_duplicates().sort_values(list(text.columns), kind="stable")
    keys = keys.reset_index(drop=True)
    index = pd.MultiIndex.from_frame(keys)
    codes = index.get_indexer(pd.MultiIndex.from_frame(text))
    groups = np.full(model.num_vars, -1, dtype=np.int64)
    groups[x.slice] = codes
    return groups, keys


def _aggregate(x: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    inside = groups >= 0
    return np.bincount(groups[inside], weights=np.clip(x[inside], 0.0, None),
                       minlength=n_groups)


def _min_distance(y: np.ndarray, refs: np.ndarray) -> tuple[float, np.ndarray]:
    dist = np.abs(y[None, :] - refs).sum(axis=1)
    return float(dist.min()), dist


def _resign(y: np.ndarray, refs: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """sign(y - y_p), keeping the old sign where they are equal (so the rounds end)."""
    delta = y[None, :] - refs
    new = np.where(delta > ZERO_FTE, 1.0, np.where(delta < -ZERO_FTE, -1.0, signs))
    return new


def _start_signs(refs: np.ndarray, start: int, seed: int, k: int) -> np.ndarray:
    if start == 0:  # Hop-Skip-Jump's: leave what the plan uses, go where it does not
        return np.where(refs > ZERO_FTE, -1.0, 1.0)
    rng = np.random.default_rng([seed, k, start])
    return rng.choice([-1.0, 1.0], size=refs.shape)


def find_alternatives(
    scenario: str | Path, *, within: float | str = 0.01, count: int = 5,
    distance: str = "site", overrides: Sequence[str] = (), starts: int = STARTS,
    rounds: int = ROUNDS, on_progress: Callable[[str], None] | None = None,
) -> Alternatives:
    """The optimal plan and up to `count` alternatives within `within` of every stage's
    optimum, each as far (in FTE moved) from the optimum and the earlier ones as found.

    Returns DataFrames (`.table` is alternatives.csv); bad input raises InputError, an
    infeasible scenario InfeasibleError (exit 3)."""
    from allocator.formulations import get_formulation
    from allocator.run import prepare, settings_from
    from allocator.solvers.lexicographic import solve_stages, stage_objectives

    began = time.perf_counter()
    share = parse_within(within)
    problems = []
    if count < 1:
        problems.append("--count: expected at least 1 alternative")
    if distance not in DISTANCES:
        problems.append(f"--distance '{distance}': expected one of {', '.join(DISTANCES)}")
    if starts < 1 or rounds < 1:
        problems.append("starts and rounds: expected at least 1 each")
    if problems:
        raise InputError("; ".join(problems), "alternatives")
    path = Path(scenario)
    spec, built, _ = prepare(path, list(overrides))
    if spec.model != "ops" or "x" not in built.model.var_blocks:
        raise InputError(f"alternatives speak of FTE moved between sites: model "
                         f"'{spec.model}' has no staff plan (use an ops scenario)", str(path))
    formulation = get_formulation(spec.model, str(path))
    model = built.model
    objectives = stage_objectives(model, spec.objective.order, spec.objective.mode,
                                  dict(spec.objective.weights.items()))
    settings = settings_from(spec)
    deadline = (time.monotonic() + settings.time_limit) if settings.time_limit else None
    backend = None
    if spec.solver.name == "highs":  # the search goes on in this HiGHS, from its basis
        from allocator.solvers.registry import make_backend

        backend = make_backend("highs", settings, model)
        backend.load(model)
    result = solve_stages(model, objectives, spec.solver.name, settings,
                          spec.objective.rel_tol, spec.objective.abs_tol, backend=backend)
    if result.status.is_infeasible:
        raise InfeasibleError(f"{spec.name}: no plan meets the hard constraints, so there is "
                              "no optimum to find alternatives around (allocator solve "
                              "writes the diagnosis)")
    if result.x is None or result.status is not Status.OPTIMAL:
        if result.limit is not None:
            raise StageLimit(f"{spec.name}: the stages hit the {result.limit.value} limit "
                             "before their optimum; alternatives are measured from it (raise "
                             "solver.time_limit with --set)")
        raise SolverFailure(f"{spec.name}: the stages ended {result.status.value} "
                            f"({result.message or 'no proven optimum'}); alternatives need "
                            "each stage's optimum")
    optima = [s.objective for s in result.stages]
    if on_progress is not None:
        said = ", ".join(f"{o.name} {v:,.6g}" for o, v in zip(objectives, optima, strict=True))
        on_progress(f"optimum: {said} ({time.perf_counter() - began:.1f}s)")
    # Never tighter than the run's own holds (rel_tol): within 0% is "the optimum as
    # `allocator solve` holds it", where the optimal plan itself is feasible.
    slack = max(share, spec.objective.rel_tol)
    holds = [opt + slack * abs(opt) + spec.objective.abs_tol for opt in optima]
    groups, keys = _groups(built, distance)
    n_groups = len(keys)
    search = _Search(model, objectives, holds, groups, n_groups, spec.solver,
                     getattr(backend, "highs", None))
    plans_x = [result.x]
    refs = _aggregate(result.x, groups, n_groups)[None, :]
    notes: list[str] = []
    figures = [StageFigure(o.name, opt, hold, False)
               for o, opt, hold in zip(objectives, optima, holds, strict=True)]
    for k in range(1, count + 1):
        best: tuple[float, np.ndarray] | None = None
        for start in range(starts):
            signs = _start_signs(refs, start, spec.solver.seed, k)
            for _ in range(rounds):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                search.set_distances(refs, signs)
                found = search.solve(left)
                if found is None:
                    break
                x = found[:model.num_vars]
                y = _aggregate(x, groups, n_groups)
                gap, _ = _min_distance(y, refs)
                if best is None or gap > best[0] + 1e-9:
                    best = (gap, x.copy())
                new = _resign(y, refs, signs)
                if np.array_equal(new, signs):
                    break
                signs = new
        if best is None:
            notes.append(f"time limit: {k - 1} alternatives found before it")
            break
        gap, x = best
        if gap <= 2 * ZERO_FTE * max(1, n_groups):
            notes.append(f"{k - 1} alternative{'' if k == 2 else 's'} found: no further plan "
                         f"within {100 * share:.3g}% of every stage's optimum moves FTE away "
                         f"from the {len(plans_x)} plans found")
            break
        disagreements = plan_problems(model, objectives, figures, x)
        if disagreements:  # never shown: a plan that breaks a row or its slack
            notes.append(f"alternative {k} dropped: it does not check out against the model "
                         f"({'; '.join(disagreements[:3])})")
            break
        plans_x.append(x)
        refs = np.vstack([refs, _aggregate(x, groups, n_groups)])
        if on_progress is not None:
            on_progress(f"alternative {k}: {0.5 * gap:,.2f} FTE moved from the nearest plan "
                        f"({search.solves} solves, {time.perf_counter() - began:.1f}s)")
    tables = tuple(formulation.plan_tables(built, x) for x in plans_x)
    table = _table(plans_x, objectives, optima, holds, tables, built)
    differences = _differences(tables)
    table["summary"] = _sentences(table, differences, tables)
    return Alternatives(
        name=spec.name, within=share, distance=distance, table=table, plans=tables,
        differences=differences, stages=tuple(o.name for o in objectives),
        notes=tuple(notes), seconds=time.perf_counter() - began, lps=search.solves,
        settings={"count": count, "starts": starts, "rounds": rounds,
                  "solver": spec.solver.name, "seed": spec.solver.seed})


# --- the tables --------------------------------------------------------------------------------


def _table(plans_x: list[np.ndarray], objectives: list[Objective], optima: list[float],
           holds: list[float], tables: tuple[dict[str, pd.DataFrame], ...],
           built: Any) -> pd.DataFrame:
    """alternatives.csv; distances by site (the default unit) and by site and service,
    whichever the search maximized."""
    rows: list[dict[str, Any]] = []
    site_groups, site_keys = _groups(built, "site")
    cell_groups, cell_keys = _groups(built, "cell")
    by_site = np.vstack([_aggregate(x, site_groups, len(site_keys)) for x in plans_x])
    by_cell = np.vstack([_aggregate(x, cell_groups, len(cell_keys)) for x in plans_x])
    moved = 0.5 * np.abs(by_site[:, None, :] - by_site[None, :, :]).sum(axis=2)
    moved_cells = 0.5 * np.abs(by_cell[:, None, :] - by_cell[None, :, :]).sum(axis=2)
    for k, x in enumerate(plans_x):
        plan, coverage = tables[k]["plan"], tables[k]["coverage"]
        row: dict[str, Any] = {"alternative": k, "kind": "optimal" if k == 0 else "alternative"}
        for objective, opt, hold in zip(objectives, optima, holds, strict=True):
            value = float(objective.c @ x + objective.constant)
            row[objective.name] = value
            row[f"{objective.name}_limit"] = hold
            row[f"{objective.name}_change_pct"] = (100.0 * (value - opt) / abs(opt)
                                                    if opt != 0 else 0.0 if value == 0
                                                    else math.inf)
        if "stability" in row:
            row["fte_moved_vs_baseline"] = 0.5 * row["stability"]
        row["plan_cost"] = float(plan["cost"].sum())
        base_cost = rows[0]["plan_cost"] if rows else row["plan_cost"]
        row["plan_cost_change_pct"] = (100.0 * (row["plan_cost"] - base_cost) / abs(base_cost)
                                       if base_cost else 0.0)
        row["fte"] = float(plan["fte"].sum())
        demand = float(coverage["demand"].sum())
        row["demand_served_share"] = float(coverage["served"].sum()) / demand if demand else 1.0
        row["fte_moved_vs_optimal"] = float(moved[k, 0])
        row["fte_moved_vs_nearest"] = float(moved[k, :k].min()) if k else 0.0
        row["cell_fte_moved_vs_optimal"] = float(moved_cells[k, 0])
        for j in range(len(plans_x)):
            row[f"fte_moved_vs_{j}"] = float(moved[k, j])
        row["within_slack"] = True  # checked before the plan was kept (plan_problems)
        rows.append(row)
    return pd.DataFrame(rows)


def _differences(tables: tuple[dict[str, pd.DataFrame], ...]) -> pd.DataFrame:
    """FTE by site and service of each alternative against the optimum (changed cells)."""
    keys = ["site_id", "service_id"]
    base = tables[0]["plan"].groupby(keys)["fte"].sum().rename("optimal_fte")
    parts = []
    for k, found in enumerate(tables[1:], start=1):
        now = found["plan"].groupby(keys)["fte"].sum().rename("fte")
        both = pd.concat([base, now], axis=1).fillna(0.0).reset_index()
        both["change_fte"] = np.round(both["fte"] - both["optimal_fte"], 9) + 0.0
        both = both[both["change_fte"].abs() > ZERO_FTE]
        parts.append(both.assign(alternative=k))
    columns = ["alternative", *keys, "optimal_fte", "fte", "change_fte"]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)[columns]
    return frame.sort_values(["alternative", *keys], kind="stable").reset_index(drop=True)


def site_moves(change: pd.Series) -> list[tuple[str, str, float]]:
    """Greedy pairing of FTE lost at some sites with FTE gained at others, largest first:
    'moves 6 FTE from Leeds to York'. What is left unpaired (the plan uses less or more FTE
    in all) comes with an empty partner. Ties go by site id: the words are deterministic."""
    losing = sorted(((-float(v), str(s)) for s, v in change.items() if v < -ZERO_FTE),
                    key=lambda t: (-t[0], t[1]))
    gaining = sorted(((float(v), str(s)) for s, v in change.items() if v > ZERO_FTE),
                     key=lambda t: (-t[0], t[1]))
    lost = [a for a, _ in losing]
    got = [a for a, _ in gaining]
    moves: list[tuple[str, str, float]] = []
    li = gi = 0
    while li < len(losing) and gi < len(gaining):
        amount = min(lost[li], got[gi])
        moves.append((losing[li][1], gaining[gi][1], amount))
        lost[li] -= amount
        got[gi] -= amount
        if lost[li] <= ZERO_FTE:
            li += 1
        if got[gi] <= ZERO_FTE:
            gi += 1
    moves += [(site, "", left) for left, (_, site) in zip(lost, losing, strict=True)
              if left > ZERO_FTE]
    moves += [("", site, left) for left, (_, site) in zip(got, gaining, strict=True)
              if left > ZERO_FTE]
    return sorted(moves, key=lambda m: (-round(m[2], 9), m[0], m[1]))


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _fte(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 0.05 else f"{value:.2g}"


def _pct(value: float) -> str:
    if not math.isfinite(value):
        return "more (the optimum is 0)"
    if abs(value) < 0.005:
        return "the same"
    return f"{abs(value):.2f}% {'more' if value > 0 else 'less'}"


def _sentences(table: pd.DataFrame, differences: pd.DataFrame,
               tables: tuple[dict[str, pd.DataFrame], ...]) -> list[str]:
    """How each plan differs from the optimum, in business words."""
    out = ["the optimal plan"]
    base_demand = float(tables[0]["coverage"]["demand"].sum())
    for k in range(1, len(table)):
        row = table.iloc[k]
        parts: list[str] = []
        diff = differences[differences["alternative"] == k]
        opened = diff[(diff["optimal_fte"] <= ZERO_FTE) & (diff["fte"] > ZERO_FTE)]
        closed = diff[(diff["fte"] <= ZERO_FTE) & (diff["optimal_fte"] > ZERO_FTE)]
        for verb, cells in (("keeps", opened), ("closes", closed)):
            # Sites grouped by the services they keep open (or close): the largest groups
            # are said, the rest counted; differences.csv has every cell.
            services = cells.groupby("site_id", sort=True)["service_id"].agg(
                lambda s: " and ".join(sorted(map(str, s))))
            groups = sorted(((what, sorted(map(str, where.index)))
                             for what, where in services.groupby(services, sort=True)),
                            key=lambda g: (-len(g[1]), g[0]))
            word = "open " if verb == "keeps" else ""
            for what, where in groups[:SHOWN_GROUPS]:
                listed = where[:SHOWN_SITES] + ([f"{len(where) - SHOWN_SITES} more sites"]
                                                if len(where) > SHOWN_SITES else [])
                parts.append(f"{verb} {_and(listed)} {word}for {what}")
            others = sum(len(where) for _, where in groups[SHOWN_GROUPS:])
            if others:
                parts.append(f"{verb} {others} more site{'s' if others > 1 else ''} {word}for "
                             "other services")
        site_change = diff.groupby("site_id")["change_fte"].sum()
        moves = site_moves(site_change)
        named = [m for m in moves if m[2] >= SHOWN_FTE][:SHOWN_MOVES]
        for source, target, amount in named:
            parts.append(f"moves {_fte(amount)} FTE from {source} to {target}" if source
                         and target else f"uses {_fte(amount)} FTE "
                         f"{'less at ' + source if source else 'more at ' + target}")
        rest = [m for m in moves if m not in named and m[2] >= SHOWN_FTE]
        if rest:
            pairs = "pair" if len(rest) == 1 else "pairs"
            parts.append(f"moves {_fte(sum(m[2] for m in rest))} FTE more between "
                         f"{len(rest)} other {pairs} of sites (differences.csv)")
        if not moves and not diff.empty:  # the same FTE by site, other services
            parts.append(f"moves {_fte(float(row['cell_fte_moved_vs_optimal']))} FTE between "
                         "services within sites")
        # The plan's money (the cost stage's objective where there is one; weighted or
        # service-only scenarios have none, and the money still matters in the meeting).
        parts.append(f"costs {_pct(float(row['plan_cost_change_pct']))}")
        unmet = float(base_demand * (1 - row["demand_served_share"])) - float(
            tables[0]["coverage"]["shortfall"].sum())
        if abs(unmet) < 0.005:  # said whatever the stages: coverage is what is promised
            parts.append("serves the same demand")
        else:
            parts.append(f"leaves {_fte(abs(unmet))} workload units "
                         f"{'more' if unmet > 0 else 'less'} unmet")
        if "stability" in row and pd.notna(row.get("stability")):
            parts.append(f"moves {_fte(float(row['fte_moved_vs_baseline']))} FTE against the "
                         "baseline")
        out.append(", ".join(parts) if parts else "the same plan by site")
    return out


# --- the files -------------------------------------------------------------------------------


CSS = REPORT_CSS + "td,th{vertical-align:top}\n"  # report.html's look, one stylesheet


def escape(value: Any) -> str:
    import html

    return html.escape(str(value), quote=True)


def html_page(title: str, body: str) -> str:
    """A self-contained page: inline CSS and SVG, no script, no network (as report.html)."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}"
            f"</body></html>")


def figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    """A matplotlib figure that saves text as paths: a data label never becomes markup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9,
                         "svg.hashsalt": "allocator"})  # stable ids: same input, same file
    return plt.subplots(1, ncols, figsize=(width, height))


def svg_of(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def html_table(frame: pd.DataFrame, left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{escape(c)}</th>"
                   for i, c in enumerate(frame.columns))
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f"<td class='l'>{escape(v)}</td>" if i < left or isinstance(v, str)
                        else f"<td>{escape(_number(v))}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _number(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "unlimited" if number > 0 else "-unlimited"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:,.4g}"


def _overview(found: Alternatives) -> pd.DataFrame:
    table = found.table
    columns = {"alternative": "#", "summary": "how it differs from the optimal plan"}
    frame = table[list(columns)].rename(columns=columns)
    for stage in found.stages:
        frame[f"{stage} (vs optimal)"] = [
            f"{_number(v)} ({_signed_pct(p)})" for v, p in
            zip(table[stage], table[f"{stage}_change_pct"], strict=True)]
    frame["demand served"] = [f"{v:.2%}" for v in table["demand_served_share"]]
    frame["FTE moved vs optimal"] = table["fte_moved_vs_optimal"].round(2)
    frame["FTE moved vs nearest"] = table["fte_moved_vs_nearest"].round(2)
    return frame


def _signed_pct(value: float) -> str:
    if not math.isfinite(value):
        return "from 0"
    return f"{value:+.2f}%"


def _intro(found: Alternatives) -> str:
    unit = "sites" if found.distance == "site" else "sites and services"
    return (f"Plans within {found.within:.4g} ({100 * found.within:.3g}%) of every stage's "
            f"optimum ({', '.join(found.stages)}), each as far as found from the optimal plan "
            f"and from the ones before it, in FTE moved between {unit} (half the sum of "
            f"|FTE change| by {'site' if found.distance == 'site' else 'site and service'}). "
            f"Method: max-min L1 distance by alternating LPs ({found.settings['starts']} "
            f"starts x up to {found.settings['rounds']} rounds each; {found.lps} solves in "
            f"all). Every plan is checked against the model's rows and each stage's slack.")


def alternatives_markdown(found: Alternatives) -> str:
    overview = _overview(found)
    lines = [f"# Alternatives to the optimal plan: {found.name}", "", _intro(found), ""]
    header = "| " + " | ".join(overview.columns) + " |"
    lines += [header, "|" + "---|" * len(overview.columns)]
    for row in overview.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    lines += ["", "Files: `alternatives.csv` (one row per plan: stage objectives, their "
              "limits, distances), `plan_K.csv`, `coverage_K.csv` and `budgets_K.csv` (plan 0 "
              "is the optimum), `differences.csv` (FTE by site and service against the "
              "optimum)."]
    if found.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in found.notes]]
    return "\n".join(lines) + "\n"


def _charts(found: Alternatives) -> str:
    table = found.table
    if len(table) < 2:
        return ""
    alts = table[table["alternative"] > 0]
    labels = [str(a) for a in alts["alternative"]]
    charts = []
    fig, (left, right) = figure(9, 2.6, ncols=2)
    stage = "cost" if "cost" in found.stages else found.stages[-1]
    left.bar(labels, alts[f"{stage}_change_pct"], color="#5b7fa6")
    left.set_title(f"{stage} vs optimal (%)")
    left.set_xlabel("alternative")
    left.axhline(100 * found.within, color="#d9604c", linestyle=":", label="slack")
    left.legend(loc="lower right")
    right.bar(labels, alts["fte_moved_vs_optimal"], color="#4c8c6c", label="vs optimal")
    right.plot(labels, alts["fte_moved_vs_nearest"], "o", color="#1d2733", label="vs nearest")
    right.set_title("FTE moved")
    right.set_xlabel("alternative")
    right.legend(loc="lower right")
    charts.append(svg_of(fig))
    change = (pd.concat([found.plans[0]["plan"].groupby("site_id")["fte"].sum().rename(0)]
                        + [p["plan"].groupby("site_id")["fte"].sum().rename(k)
                           for k, p in enumerate(found.plans[1:], start=1)], axis=1)
              .fillna(0.0))
    delta = change.sub(change[0], axis=0).drop(columns=0)
    largest = delta.abs().max(axis=1)
    largest = largest[largest > ZERO_FTE].sort_values(ascending=False, kind="stable")
    delta = delta.loc[largest.index[:HEAT_SITES]].sort_index()
    if not delta.empty and delta.abs().to_numpy().max() > ZERO_FTE:
        fig, ax = figure(min(9, 2 + 0.8 * delta.shape[1]), max(2.0, 0.28 * len(delta) + 1))
        bound = float(delta.abs().to_numpy().max())
        image = ax.imshow(delta.to_numpy(), cmap="RdBu", vmin=-bound, vmax=bound,
                          aspect="auto")
        ax.set_yticks(range(len(delta)), [str(s) for s in delta.index])
        ax.set_xticks(range(delta.shape[1]), [str(c) for c in delta.columns])
        ax.set_xlabel("alternative")
        for (i, j), v in np.ndenumerate(delta.to_numpy()):
            if abs(v) > 0.05:
                ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
        fig.colorbar(image, ax=ax, label="FTE vs optimal")
        charts.append("<h2>FTE by site against the optimum</h2>" + svg_of(fig))
    return "".join(charts)


def alternatives_html(found: Alternatives) -> str:
    table = found.table
    best = table.iloc[0]
    kpis = [("alternatives", str(len(table) - 1)), ("slack", f"{100 * found.within:.3g}%")]
    kpis += [(f"{s} at the optimum", f"{best[s]:,.6g}") for s in found.stages]
    kpi_html = "".join(f"<div class='kpi'><b>{escape(v)}</b><span>{escape(k)}</span></div>"
                       for k, v in kpis)
    detail = found.differences.copy()
    body = [f"<h1>Alternatives to the optimal plan: {escape(found.name)}</h1>",
            f"<p class='muted'>{escape(_intro(found))}</p>", f"<div class='kpis'>{kpi_html}</div>",
            "<h2>How each alternative differs</h2>", html_table(_overview(found), left=2),
            _charts(found)]
    if not detail.empty:
        body += ["<h2>FTE by site and service against the optimum</h2>",
                 html_table(detail.head(200), left=3)]
        if len(detail) > 200:
            body.append(f"<p class='muted'>{len(detail) - 200} more rows in "
                        "differences.csv.</p>")
    if found.notes:
        body += ["<h2>Notes</h2>",
                 "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in found.notes) + "</ul>"]
    return html_page(f"Alternatives: {found.name}", "\n".join(body))


def write_alternatives(found: Alternatives, out: str | Path, *, force: bool = False) -> Path:
    """The --out folder, whole or not at all (the run folder's atomic writer)."""
    from allocator.diff.write import refuse_other_kind
    from allocator.outputs.folder import check_target, run_folder

    target = Path(out).expanduser()
    refuse_other_kind(target, force, "alternatives.csv", "alternatives")
    check_target(target, force)
    with run_folder(target, ["csv"], force) as folder:
        folder.table("alternatives", found.table)
        for k, tables in enumerate(found.plans):
            for name in ("plan", "coverage", "budgets"):
                if name in tables:
                    folder.table(f"{name}_{k}", tables[name])
        folder.table("differences", found.differences)
        folder.text("alternatives.md", alternatives_markdown(found))
        folder.text("alternatives.html", alternatives_html(found))
    return target
