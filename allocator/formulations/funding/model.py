"""The funding model (spec/more-models.md): a budget spread over programs with diminishing
returns.

Each program's response curve is piecewise linear; spend is split into segment columns
``delta_pk`` (one per piece of the curve, bounded by its width) with
``spend_p = sum_k delta_pk`` and value ``v_p0 + sum_k slope_pk delta_pk``. When every curve
is concave the slopes fall from one piece to the next, so a maximizing LP fills the pieces
in order by itself: no integers, and the duals of the budget rows are the marginal value of
money. A curve that is not concave is an input error (naming the program and the rows of the
breakpoint where the slope rises) unless ``policy.allow_nonconcave``: then those programs
alone get binary ordering columns ``w_pk`` (piece k full before k+1 starts), a MIP.

Two additions to the spec make capital budgeting (OR-Library mknap1) expressible without
bending the model: a ``whole`` program is funded all or nothing (spend 0 or its full
``max_spend``: a project), and an optional ``draws`` table says how much of a budget a unit
of a program's spend draws (a project's spend phased over several years' budgets); without
it every program in a budget's scope draws 1 per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel
from allocator.errors import Problem
from allocator.formulations.base import DataBacked
from allocator.formulations.tabular import (
    BOOL_CHOICES,
    TableSet,
    as_bool,
    cat,
    explicit_sense,
    read_tables,
    sort_ids,
)
from allocator.scenario import Scenario
from allocator.tables.readers import LoadedTable
from allocator.tables.schema import Col, Schema, check_reference

SCHEMAS: dict[str, Schema] = {
    "programs": Schema("programs", (
        Col("program_id"),
        Col("group", required=False, default="default"),
        Col("min_spend", "float", required=False, default=0.0, min=0),
        Col("max_spend", "float", required=False, min=0, nullable=True),  # empty: the curve's end
        Col("whole", "choice", required=False, default="false", choices=BOOL_CHOICES),
    ), unique=("program_id",)),
    "response": Schema("response", (
        Col("program_id"),
        Col("spend", "float", min=0),
        Col("value", "float"),
    )),  # (program_id, spend) unique: checked in _curves, on the numbers (10 and 10.0 clash)
    "budgets": Schema("budgets", (
        Col("budget_id"),
        Col("scope"),
        Col("amount", "float", min=0),
    ), unique=("budget_id",), allow_empty=True),
    "draws": Schema("draws", (
        Col("program_id"),
        Col("budget_id"),
        Col("rate", "float", min=0),
    ), unique=("program_id", "budget_id"), allow_empty=True),
}
REQUIRED = ("programs", "response")
SLOPE_TOL = 1e-9  # relative: a slope rising by less than this is rounding, not a convexity
FULL = 1e-7  # relative: a segment filled to within this of its width is full


@dataclass
class FundingData:
    """Validated tables, with the curves cut into pieces.

    `segments` has one row per piece of a curve (to its last breakpoint; max_spend bounds
    the spend column, see _curves): the
    program code `p`, `start` spend, `width`, `slope`, and `ordered` (the program's curve is
    not concave there, so the piece needs a binary). `members` lists (budget code `b`,
    program code `p`, `rate`) for every program a budget covers.
    """

    programs: pd.DataFrame
    budgets: pd.DataFrame
    segments: pd.DataFrame
    members: pd.DataFrame
    upper: np.ndarray  # highest spend per program: max_spend capped by the curve's last point
    base_value: np.ndarray  # value at spend 0
    sources: dict[str, LoadedTable] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class FundingModel(DataBacked[FundingData]):
    model: LinearModel
    data: FundingData

    @property
    def total_budget_rows(self) -> np.ndarray:
        """Model rows of the budgets that cap all spend one for one (scope all, no draws):
        the rows the trade-off curve replaces by a total budget it varies."""
        block = self.model.con_blocks.get("budget")
        if block is None:
            return np.zeros(0, dtype=np.int64)
        members, n = self.data.members, len(self.data.programs)
        plain = members.groupby("b").agg(count=("p", "size"), ones=("rate", lambda r: (
            r == 1.0).all()))
        full = plain.index[(plain["count"] == n) & plain["ones"]].to_numpy()
        return block.start + np.asarray(full, dtype=np.int64)


def _curves(found: TableSet, programs: pd.DataFrame, response: pd.DataFrame,
            allow_nonconcave: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Cut each curve into pieces, checking that it starts at spend 0 and is concave."""
    program_ids = pd.Index(programs["program_id"])
    table = found.loaded["response"]
    ok = response["program_id"].isin(program_ids).to_numpy() & response["spend"].notna() \
        .to_numpy() & response["value"].notna().to_numpy()
    bp = pd.DataFrame({"p": program_ids.get_indexer(response["program_id"]),
                       "spend": response["spend"].to_numpy(dtype=float),
                       "value": response["value"].to_numpy(dtype=float),
                       "row": np.arange(len(response)) + table.first_row})[ok]
    twice = bp.duplicated(["p", "spend"], keep="first").to_numpy()
    if twice.any():
        mask = np.zeros(len(response), dtype=bool)
        mask[bp["row"].to_numpy()[twice] - table.first_row] = True
        found.report("response", mask, "spend", "the program already has a breakpoint at "
                     "this spend; give each spend once", found.raw("response", "spend"))
        bp = bp[~twice]
    bp = bp.sort_values(["p", "spend"], kind="stable").reset_index(drop=True)
    has_curve = np.isin(np.arange(len(programs)), bp["p"].to_numpy())
    found.report("programs", ~has_curve, "program_id",
                 "no breakpoint in the response table: give its curve (at least spend 0)",
                 programs["program_id"])
    first = ~bp["p"].duplicated().to_numpy()
    late = first & (bp["spend"].to_numpy() > 0)
    if late.any():
        rows = bp["row"].to_numpy()[late] - table.first_row
        mask = np.zeros(len(response), dtype=bool)
        mask[rows] = True
        found.report("response", mask, "spend", "a curve must start at spend 0 (the value "
                     "of the program unfunded); this is the program's first breakpoint",
                     found.raw("response", "spend"))

    same = bp["p"].to_numpy()[1:] == bp["p"].to_numpy()[:-1]
    start = bp["spend"].to_numpy()[:-1][same]
    width = bp["spend"].to_numpy()[1:][same] - start
    rise = bp["value"].to_numpy()[1:][same] - bp["value"].to_numpy()[:-1][same]
    # A repeated spend (width 0) is already reported as a duplicate; its slope is left NaN.
    slope = np.divide(rise, width, out=np.full(width.size, np.nan), where=width > 0)
    seg = pd.DataFrame({"p": bp["p"].to_numpy()[:-1][same], "start": start, "width": width,
                        "slope": slope, "row": bp["row"].to_numpy()[:-1][same],
                        "end_row": bp["row"].to_numpy()[1:][same]})
    # The piece after a rising slope: its start is the breakpoint where concavity fails.
    prev_same = np.r_[False, seg["p"].to_numpy()[1:] == seg["p"].to_numpy()[:-1]]
    prev_slope = np.r_[np.nan, slope[:-1]]
    rises = prev_same & (slope > prev_slope + SLOPE_TOL * np.maximum(
        1.0, np.maximum(np.abs(slope), np.abs(np.nan_to_num(prev_slope)))))
    if rises.any() and not allow_nonconcave:
        names = program_ids.to_numpy()
        for k in np.flatnonzero(rises):
            before, at, after = (int(seg[c].iloc[i]) for c, i in
                                 (("row", k - 1), ("row", k), ("end_row", k)))
            found.problems.append(Problem(
                table.source,
                f"the response curve of program '{names[seg['p'].iloc[k]]}' is not concave at "
                f"spend {seg['start'].iloc[k]:g} (breakpoint rows {before}, {at}, {after}): "
                f"its slope rises from {prev_slope[k]:.6g} to {slope[k]:.6g} per unit of "
                "spend. Fix the breakpoints, or set policy.allow_nonconcave = true to solve "
                "it as a MIP", at, "value"))
    rising_program = np.zeros(len(programs), dtype=bool)
    rising_program[seg["p"].to_numpy()[rises]] = True
    seg["ordered"] = rising_program[seg["p"].to_numpy()]

    last = np.full(len(programs), 0.0)
    np.maximum.at(last, bp["p"].to_numpy(), bp["spend"].to_numpy())
    cap = programs["max_spend"].to_numpy(dtype=float)
    upper = np.where(np.isnan(cap), last, np.minimum(cap, last))
    base = np.zeros(len(programs))
    base[bp["p"].to_numpy()[first]] = bp["value"].to_numpy()[first]
    # The pieces are the whole curve, not clipped at max_spend: the cap is the spend
    # column's bound alone, so a binding cap's price is that column's reduced cost (a clipped
    # piece would hold the same bound and take the price, leaving spend at 0).
    seg = seg[seg["width"] > 0].reset_index(drop=True)
    return seg, upper, base


def _members(found: TableSet, programs: pd.DataFrame, budgets: pd.DataFrame,
             draws: pd.DataFrame | None) -> pd.DataFrame:
    """(budget b, program p, rate) for each program a budget's scope covers."""
    members = pd.DataFrame({"b": pd.Series(dtype=np.int64), "p": pd.Series(dtype=np.int64),
                            "rate": pd.Series(dtype=float)})
    if len(budgets) == 0:
        if draws is not None and len(draws):
            found.report("draws", np.ones(len(draws), dtype=bool), "budget_id",
                         "draws name budgets, and the scenario has no budgets", draws["budget_id"])
        return members
    scope = budgets["scope"].astype(str).str.strip()
    kind = scope.str.partition(":")[0].str.strip().str.lower()
    ref = scope.str.partition(":")[2].str.strip()
    is_all = (kind.eq("all") & ref.eq("")).to_numpy()
    is_group = (kind.eq("group") & ref.isin(programs["group"])).to_numpy()
    found.report("budgets", ~(is_all | is_group) & budgets["scope"].notna().to_numpy(),
                 "scope", "expected 'all' or 'group:<a group of programs>'", budgets["scope"])
    groups = programs["group"].to_numpy()
    parts = []
    for b in np.flatnonzero(is_all):
        parts.append(pd.DataFrame({"b": b, "p": np.arange(len(programs))}))
    for b in np.flatnonzero(is_group):
        parts.append(pd.DataFrame({"b": b, "p": np.flatnonzero(groups == ref.iloc[b])}))
    if not parts:
        return members
    members = pd.concat(parts, ignore_index=True)
    members["rate"] = 1.0
    if draws is not None and len(draws):
        program_ids, budget_ids = pd.Index(programs["program_id"]), pd.Index(budgets["budget_id"])
        table = found.loaded["draws"]
        check_reference(table, draws, "program_id", program_ids, "program", found.problems)
        check_reference(table, draws, "budget_id", budget_ids, "budget", found.problems)
        key = pd.MultiIndex.from_arrays([members["b"], members["p"]])
        where = key.get_indexer(pd.MultiIndex.from_arrays(
            [budget_ids.get_indexer(draws["budget_id"]),
             program_ids.get_indexer(draws["program_id"])]))
        known = draws["program_id"].isin(program_ids).to_numpy() & draws["budget_id"].isin(
            budget_ids).to_numpy()
        found.report("draws", known & (where < 0), "budget_id",
                     "the program is not in this budget's scope, so it cannot draw on it",
                     draws["budget_id"])
        hit = where >= 0
        rate = members["rate"].to_numpy(copy=True)
        rate[where[hit]] = draws["rate"].to_numpy(dtype=float)[hit]
        members["rate"] = rate
    return members


def load_funding(scenario: Scenario) -> FundingData:
    """Read and validate programs, response curves, budgets and draws; all problems at once."""
    explicit_sense(scenario, "funding", "max")
    found = read_tables(scenario, SCHEMAS, REQUIRED, lower_columns=("whole",))
    programs, response = found.frames["programs"], found.frames["response"]
    programs["whole"] = as_bool(programs["whole"])
    budgets = found.frames.get("budgets", pd.DataFrame(
        {"budget_id": pd.Series(dtype=object), "scope": pd.Series(dtype=object),
         "amount": pd.Series(dtype=float)}))
    check_reference(found.loaded["response"], response, "program_id",
                    pd.Index(programs["program_id"]), "program", found.problems)
    if programs["program_id"].duplicated().any() or budgets["budget_id"].duplicated().any():
        found.raise_if_any()  # reported by the schema (row, column); ids must index below
    segments, upper, base = _curves(found, programs, response,
                                    scenario.policy.allow_nonconcave)
    low = programs["min_spend"].to_numpy(dtype=float)
    high = programs["max_spend"].to_numpy(dtype=float)
    found.report("programs", high < low, "max_spend", "below min_spend",
                 found.raw("programs", "max_spend"))
    found.report("programs", (low > upper) & ~(high < low), "min_spend",
                 "above the last breakpoint of the program's response curve",
                 found.raw("programs", "min_spend"))
    members = _members(found, programs, budgets, found.frames.get("draws"))
    found.raise_if_any()

    data = FundingData(programs, budgets, segments, members, upper, base, found.loaded)
    ordered = int(segments.loc[segments["ordered"], "p"].nunique())
    if ordered:
        data.warnings.append(
            f"{ordered} programs have non-concave response curves: solved as a MIP with "
            "binary segment ordering (policy.allow_nonconcave)")
    return data


def build_funding(data: FundingData) -> FundingModel:
    """Families: spend, segment, whole (binary), order (binary); rows curve, whole,
    fill/order, budget; one stage "value", maximized."""
    programs, seg, members = data.programs, data.segments, data.members
    program_ids = pd.Index(programs["program_id"])
    n = len(programs)
    whole = programs["whole"].to_numpy(dtype=bool)
    low = programs["min_spend"].to_numpy(dtype=float)
    m = LinearModel("funding", maximize=True)
    labels = pd.DataFrame({"program_id": program_ids.astype(object)})
    x = m.add_variables("spend", labels, np.where(whole, 0.0, low), data.upper)
    xcol = x.start + np.arange(n)

    p = seg["p"].to_numpy()
    width = seg["width"].to_numpy()
    seg_labels = pd.DataFrame({"program_id": cat(p, program_ids),
                               "from_spend": seg["start"].to_numpy()})
    delta = m.add_variables("segment", seg_labels, 0.0, width)
    dcol = delta.start + np.arange(len(seg))
    m.add_constraints("curve", labels, np.concatenate([np.arange(n), p]),
                      np.concatenate([xcol, dcol]),
                      np.concatenate([np.ones(n), -np.ones(len(seg))]), lo=0.0, hi=0.0,
                      description="spend is the sum of the curve's pieces")

    if whole.any():
        wp = np.flatnonzero(whole)
        z = m.add_variables("fund", labels.iloc[wp], (low[wp] > 0).astype(float), 1.0,
                            integer=True)
        k = np.arange(wp.size)
        m.add_constraints("whole", labels.iloc[wp], np.tile(k, 2),
                          np.concatenate([xcol[wp], z.start + k]),
                          np.concatenate([np.ones(wp.size), -data.upper[wp]]), lo=0.0, hi=0.0,
                          description="a whole program is funded in full or not at all")

    ordered = seg["ordered"].to_numpy(dtype=bool)
    nxt = np.flatnonzero(ordered[:-1] & (p[1:] == p[:-1])) if len(seg) else np.zeros(0, int)
    if nxt.size:  # piece k full (w = 1) before piece k+1 may start
        w = m.add_variables("order", seg_labels.iloc[nxt], 0.0, 1.0, integer=True)
        wcol = w.start + np.arange(nxt.size)
        k = np.arange(nxt.size)
        m.add_constraints("fill", seg_labels.iloc[nxt], np.tile(k, 2),
                          np.concatenate([dcol[nxt], wcol]),
                          np.concatenate([np.ones(nxt.size), -width[nxt]]), lo=0.0,
                          description="a piece is full when the next one is open")
        m.add_constraints("order", seg_labels.iloc[nxt + 1], np.tile(k, 2),
                          np.concatenate([dcol[nxt + 1], wcol]),
                          np.concatenate([np.ones(nxt.size), -width[nxt + 1]]), hi=0.0,
                          description="a piece starts only after the one before is full")

    budgets = data.budgets
    if len(budgets):
        m.add_constraints("budget", pd.DataFrame({"budget_id": budgets["budget_id"]
                                                  .astype(object)}),
                          members["b"].to_numpy(), xcol[members["p"].to_numpy()],
                          members["rate"].to_numpy(), hi=budgets["amount"].to_numpy(),
                          description="money drawn from the budget")
    m.set_objective("value", {"segment": -seg["slope"].to_numpy()},
                    constant=-float(data.base_value.sum()))
    return FundingModel(m, data)


def funding_tables(built: FundingModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
    """plan (spend and value per program), groups, and budgets (amount, drawn, headroom)."""
    data, model = built.data, built.model
    programs, seg = data.programs, data.segments
    n = len(programs)
    spend = np.clip(x[model.var_blocks["spend"].slice], 0.0, None)
    filled = x[model.var_blocks["segment"].slice]
    p = seg["p"].to_numpy()
    value = data.base_value + np.bincount(p, weights=seg["slope"].to_numpy() * filled,
                                          minlength=n)
    # Marginal value: the slope of the first piece not yet full (none past the last).
    open_piece = filled < seg["width"].to_numpy() * (1.0 - FULL)
    marginal = np.full(n, np.nan)
    first_open = seg[open_piece].drop_duplicates("p")
    marginal[first_open["p"].to_numpy()] = first_open["slope"].to_numpy()
    plan = sort_ids(pd.DataFrame({
        "program_id": programs["program_id"].to_numpy(), "group": programs["group"].to_numpy(),
        "spend": spend, "value": value, "marginal_value": marginal,
        "min_spend": programs["min_spend"].to_numpy(), "max_spend": data.upper,
    }), ["program_id"])
    groups = plan.groupby("group", sort=True, as_index=False)[["spend", "value"]].sum()

    budgets, members = data.budgets, data.members
    drawn = np.bincount(members["b"].to_numpy(),
                        weights=members["rate"].to_numpy() * spend[members["p"].to_numpy()],
                        minlength=len(budgets))
    amount = budgets["amount"].to_numpy(dtype=float)
    budget_table = sort_ids(pd.DataFrame({
        "budget_id": budgets["budget_id"].to_numpy(), "scope": budgets["scope"].to_numpy(),
        "amount": amount, "spent": drawn, "headroom": amount - drawn,
    }), ["budget_id"])
    return {"plan": plan, "groups": groups, "budgets": budget_table}
