"""Why no plan exists, and what to change: elastic repairs and a conflict set, in input terms.

Each repair option makes some hard families elastic (a violation column per row, priced) and
minimizes the priced violation; the answer is turned into edits of the input tables, rounded
in the safe direction, and checked by re-solving the repaired instance. The conflict set is
HiGHS's IIS of the LP (integers relaxed) or, failing that, a deletion filter over families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from allocator.analysis.diagnosis import IIS_SAFETY_SECONDS
from allocator.formulations.ops.data import OpsData
from allocator.formulations.ops.model import OpsModel, build_ops
from allocator.scenario import PolicyConfig
from allocator.solvers.highs import load_into_highs, new_highs

TOL = 1e-7


@dataclass
class Repair:
    family: str
    label: str
    table: str
    source: str
    row: int | None
    column: str
    current: Any
    proposed: Any
    money: float = 0.0  # what the change costs, in money (see Diagnosis.prices)
    alone: bool = True  # the option changes only this kind of input
    extra: dict[str, Any] = field(default_factory=dict)  # a hire's site, skill, cost

    @property
    def change(self) -> float:
        if self.family == "mobility":
            return math.nan
        return self.proposed - self.current

    def sentence(self, esc=str) -> str:
        """Plain words; `esc` escapes what came from the data (labels, file names)."""
        name = esc(Path_name(self.source))
        where = f"{name} row {self.row}" if self.row else name
        label = esc(self.label)
        if self.family == "floor" and not self.alone:
            # Other changes of the option (more budget, room, hires) are what make this
            # level reachable: it is a setting, not the most the tables allow.
            if self.proposed <= 0:
                return (f"{where}: drop the {self.current:.0%} floor at {label} (set "
                        f"{self.column} to 0), with this option's other changes")
            return (f"{where}: lower the {self.current:.0%} floor at {label} to "
                    f"{self.proposed:.1%} (set {self.column} to {self.proposed:.4f}), with "
                    "this option's other changes")
        if self.family == "floor":
            return (f"{where}: the {self.current:.0%} floor at {label} cannot be met; "
                    f"at most {self.proposed:.1%} is reachable with today's budgets, room "
                    f"and staff (set {self.column} to {self.proposed:.4f})")
        if self.family == "hire":
            return (f"{where}: hire {self.proposed:.2f} FTE with skill "
                    f"{esc(self.extra.get('skill', ''))} at {esc(self.extra.get('site', ''))} "
                    f"(new staff row, {_money(self.extra.get('cost_per_fte', 0.0))} per FTE: "
                    f"{_money(self.money)} a year)")
        if self.family == "mobility":
            return (f"{where}: let {label} work away from home (mobility {esc(self.current)} "
                    f"→ {esc(self.proposed)}; {self.extra.get('fte_away', 0.0):.2f} FTE away, "
                    f"travel {_money(self.money)})")
        if self.family == "budget":
            paid = self.extra.get("for_hires", 0.0)
            why = f", of which {_money(paid)} pays the hires" if paid > 0 else ""
            return (f"{where}: +{_money(self.change)} on budget {label} "
                    f"({_money(self.current)} → {_money(self.proposed)}{why})")
        if self.family == "capacity":
            return (f"{where}: +{self.change:.2f} FTE of room at site {label} "
                    f"({self.current:g} → {self.proposed:g})")
        if self.family == "min_staff":
            return (f"{where}: lower the minimum staffing of site {label} by "
                    f"{-self.change:.2f} FTE ({self.current:g} → {self.proposed:g})")
        if self.family == "moved":
            return (f"{where}: allow {self.change:.2f} more FTE to move (set "
                    f"policy.max_moved_fte from {self.current:g} to {self.proposed:g})")
        return f"{where}: {self.column} {self.current:g} → {self.proposed:g}"


@dataclass
class RepairOption:
    key: str
    title: str
    families: tuple[str, ...]
    status: str = "not tried"
    repairs: list[Repair] = field(default_factory=list)
    cost: float = math.nan
    verified: bool | None = None

    @property
    def money(self) -> float:
        """The option's price in money: the sum of its repairs' (Diagnosis.prices)."""
        return float(sum(r.money for r in self.repairs)) if self.repairs else math.nan

    def summary(self) -> str:
        """One line: what the option changes and what it costs."""
        kinds: dict[str, int] = {}
        for r in self.repairs:
            kinds[r.family] = kinds.get(r.family, 0) + 1
        what = {"floor": "service floor", "budget": "budget", "capacity": "site capacity",
                "min_staff": "minimum staffing", "moved": "move limit", "hire": "hire",
                "mobility": "travel permission"}
        parts = [f"{n} {what.get(k, k)}{'s' if n > 1 else ''}" for k, n in kinds.items()]
        return f"{self.title}: {', '.join(parts)}; price {_money(self.money)}"


@dataclass
class Diagnosis:
    options: list[RepairOption]
    conflict: list[dict[str, Any]]
    conflict_method: str
    prices: dict[str, float]
    summary: str = ""  # the conflict set in one or two sentences

    @property
    def recommended(self) -> RepairOption | None:
        """The checked option with the lowest price in money (fewest changes on a tie)."""
        good = [o for o in self.options if o.repairs and o.verified is True
                and not math.isnan(o.money)]
        if not good:
            return None
        return min(good, key=lambda o: (round(o.money, 2), len(o.repairs)))

    def recommendation(self) -> str:
        best = self.recommended
        if best is None:
            return "no repair option was checked feasible: see diagnosis.md"
        changes = "; ".join(r.sentence() for r in best.repairs[:3])
        more = f"; and {len(best.repairs) - 3} more (diagnosis.md)" if len(
            best.repairs) > 3 else ""
        return f"recommended repair: {best.summary()} ({changes}{more})"

    def to_json(self) -> dict[str, Any]:
        best = self.recommended
        return {
            "summary": self.summary,
            "recommended": None if best is None else best.key,
            "recommendation": self.recommendation(),
            "options": [{
                "key": o.key, "title": o.title, "families": list(o.families), "status": o.status,
                "priced_change": None if math.isnan(o.cost) else o.cost,
                "price_money": None if math.isnan(o.money) else o.money,
                "verified_feasible": o.verified,
                "repairs": [{**r.__dict__, "change": None if math.isnan(r.change) else
                             r.change, "text": r.sentence()} for r in o.repairs],
            } for o in self.options],
            "conflict_set": self.conflict, "conflict_method": self.conflict_method,
            "prices": self.prices,
        }


def Path_name(source: str) -> str:
    return source.rsplit("/", 1)[-1]


def _money(value: float) -> str:
    """Money in whole units with thousands separators."""
    if value is None or not np.isfinite(value):
        return "unknown"
    return f"{round(float(value)) + 0:,}"


# -- the elastic model -------------------------------------------------------------------------
def _elastic_rows(ops: OpsModel) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per family: (model rows, direction) where direction +1 means the rhs may rise."""
    out = {}
    for family, direction in (("budget", 1.0), ("capacity", 1.0), ("min_staff", -1.0),
                              ("moved", 1.0)):
        block = ops.model.con_blocks.get(family)
        if block is not None:
            out[family] = (np.arange(block.start, block.start + block.size), np.full(
                block.size, direction))
    return out


def _prices(data: OpsData) -> dict[str, float]:
    """Money per unit of each change, so the mix compares like with like (documented)."""
    cost = float(np.median(data.staff["cost_per_fte"])) if len(data.staff) else 1.0
    productivity = float(np.median(data.services["productivity"])) if len(
        data.services) else 1.0
    return {"budget": 1.0, "capacity": cost, "min_staff": cost, "moved": cost,
            "floor": cost / max(productivity, 1e-9)}


def _solve_elastic(ops: OpsModel, families: tuple[str, ...], prices: dict[str, float],
                   time_limit: float | None) -> tuple[str, dict[str, np.ndarray], float]:
    """Minimize priced violation with `families` elastic; returns violations per family."""
    model = ops.model
    highs = new_highs()
    ub = model.ub.copy()
    floors = np.array([], dtype=int)
    u = model.var_blocks["shortfall"]
    targets = ops.data.targets
    demand = targets["demand"].to_numpy()
    if "floor" in families:
        floors = np.flatnonzero(targets["min_level"].to_numpy() > 0)
        ub[u.start + floors] = demand[floors]
    load_into_highs(highs, model, np.zeros(model.num_vars), ub=ub)
    if time_limit:
        highs.setOptionValue("time_limit", float(time_limit))
    columns: dict[str, tuple[int, int]] = {}
    extras: dict[str, Any] = {}
    empty = np.zeros(0, dtype=np.int32)
    rows_by_family = _elastic_rows(ops)
    for family in families:
        if family == "hire":
            cand, cost, (starts, index, values) = _hire_columns(ops)
            k = len(cand)
            if k == 0:
                continue
            start = highs.getNumCol()
            highs.addCols(k, cost, np.zeros(k), np.full(k, 1e30), index.size, starts, index,
                          values)
            columns[family] = (start, k)
            extras["_hire"] = cand.assign(cost_per_fte=cost)
            continue
        if family == "floor":
            if floors.size == 0:
                continue
            start = highs.getNumCol()
            k = floors.size
            highs.addCols(k, np.full(k, prices["floor"]), np.zeros(k), np.full(k, 1e30), 0,
                          empty, empty, np.zeros(0))
            # shortfall - violation <= (1 - floor) * demand
            starts = np.arange(0, 2 * k, 2, dtype=np.int32)
            index = np.empty(2 * k, dtype=np.int32)
            index[0::2] = u.start + floors
            index[1::2] = start + np.arange(k)
            values = np.tile([1.0, -1.0], k)
            level = targets["min_level"].to_numpy()[floors]
            highs.addRows(k, np.full(k, -1e30), (1 - level) * demand[floors], 2 * k, starts,
                          index, values)
            columns[family] = (start, k)
            continue
        if family not in rows_by_family:
            continue
        rows, direction = rows_by_family[family]
        k = rows.size
        start = highs.getNumCol()
        # Column j has one entry, -direction at its row: the row's rhs moves by +direction*v.
        # The moves row counts 2 per FTE moved: its price per FTE is half a unit's.
        per_unit = prices[family] * (0.5 if family == "moved" else 1.0)
        highs.addCols(k, np.full(k, per_unit), np.zeros(k), np.full(k, 1e30), k,
                      np.arange(k, dtype=np.int32), rows.astype(np.int32), -direction)
        columns[family] = (start, k)
    highs.run()
    status = highs.modelStatusToString(highs.getModelStatus())
    if highs.getModelStatus().name != "kOptimal" and not (
            highs.getModelStatus().name == "kTimeLimit" and highs.getInfo().primal_solution_status
            == 2):
        return status, {}, math.nan
    x = np.asarray(highs.getSolution().col_value)
    found = {family: x[start:start + k] for family, (start, k) in columns.items()}
    found["_floors"] = floors
    found.update(extras)
    return "feasible", found, float(highs.getInfo().objective_function_value)


def _hire_columns(ops: OpsModel) -> tuple[pd.DataFrame, np.ndarray, tuple[np.ndarray, ...]]:
    """A new hire per target (site, service): mobility site, the skill of the service, paid
    the median of that skill in the site's region (allocator.formulations.ops.hiring). Columns in
    CSC form: coverage (productivity), capacity and minimum staffing of the site (1), and the
    move limit where there is one (1: a hire's work is all added to yesterday's plan). Budgets
    are left out: a hire comes with the money to pay for it (the option raises the budgets
    of the site's scopes by the hires' pay)."""
    from allocator.formulations.ops.hiring import _site_terms, candidates_of, hire_costs

    cand = candidates_of(ops.data)
    if cand.empty:
        return cand, np.zeros(0), (np.zeros(1, dtype=np.int32), np.zeros(0, dtype=np.int32),
                                   np.zeros(0))
    first = cand.drop_duplicates("c").reset_index(drop=True)
    setting = getattr(getattr(getattr(ops, "scenario", None), "output", None), "hiring_cost",
                      "median")
    costs = hire_costs(ops.data, first, setting)["cost_per_fte"].to_numpy(dtype=float)
    cost = costs[cand["c"].to_numpy()]
    terms = _site_terms(ops)
    cov = ops.model.con_blocks["coverage"].start
    s = cand["s"].to_numpy()
    rows = [cov + cand["t"].to_numpy(), terms["cap"][s], terms["min"][s]]
    vals = [cand["p"].to_numpy(dtype=float), np.ones(len(cand)), np.ones(len(cand))]
    moved = ops.model.con_blocks.get("moved")
    if moved is not None:  # a hire is not in yesterday's plan: all their work is moved in
        rows.append(np.full(len(cand), moved.start))
        vals.append(np.ones(len(cand)))
    col = np.tile(np.arange(len(cand)), len(rows))
    row = np.concatenate(rows)
    val = np.concatenate(vals)
    keep = row >= 0
    order = np.argsort(col[keep], kind="stable")
    index = row[keep][order].astype(np.int32)
    counts = np.bincount(col[keep], minlength=len(cand))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return cand, cost, (starts, index, val[keep][order])


def _repairs(ops: OpsModel, found: dict[str, Any],
             prices: dict[str, float] | None = None) -> list[Repair]:
    prices = prices or {}
    alone = len([k for k in found if not k.startswith("_")]) == 1  # one kind of change
    data = ops.data
    out: list[Repair] = []
    src = data.sources

    def where(table: str, index: int) -> tuple[str, int | None]:
        loaded = src.get(table)
        if loaded is None:
            return table, None
        return loaded.source, int(loaded.row_of(index))

    if "floor" in found:
        floors = found["_floors"]
        targets = data.targets
        for pos, v in zip(floors, found["floor"], strict=True):
            if v <= TOL:
                continue
            demand = float(targets["demand"].iat[pos])
            level = float(targets["min_level"].iat[pos])
            reachable = max(0.0, level - v / demand)
            proposed = math.floor(reachable * 1e4) / 1e4  # round down: safe
            source, row = where("targets", pos)
            label = f"{targets['site_id'].iat[pos]}/{targets['service_id'].iat[pos]}"
            given_up = (level - proposed) * demand  # workload units the floor no longer asks
            out.append(Repair("floor", label, "targets", source, row, "min_level", level,
                              proposed, money=given_up * prices.get("floor", 1.0),
                              alone=alone))
    pay_by_budget: dict[str, float] = {}
    if "hire" in found and "_hire" in found:
        cand = found["_hire"].assign(fte=found["hire"])
        cand = cand[cand["fte"] > TOL]
        staff_source, _row = where("staff", 0)
        members = data.budget_sites if data.budget_sites is not None else pd.DataFrame(
            {"budget_id": [], "site_id": []})
        for (site, skill), group in cand.groupby(["site_id", "skill"], sort=True):
            fte = math.ceil(float(group["fte"].sum()) * 100 - 1e-6) / 100  # round up: safe
            cost_per_fte = float(group["cost_per_fte"].iloc[0])
            pay = fte * cost_per_fte
            out.append(Repair("hire", f"{site}/{skill}", "staff", staff_source, None, "fte",
                              0.0, fte, money=pay, alone=alone, extra={
                                  "site": str(site), "skill": str(skill),
                                  "cost_per_fte": cost_per_fte,
                                  "staff_id": f"HIRE-{site}-{skill}"}))
            for b in members.loc[members["site_id"].astype(str) == str(site),
                                 "budget_id"].astype(str).unique():
                pay_by_budget[b] = pay_by_budget.get(b, 0.0) + pay
    model = ops.model
    if pay_by_budget and "budget" not in found and "budget" in model.con_blocks:
        found = {**found, "budget": np.zeros(model.con_blocks["budget"].size)}
    for family, table, column in (("budget", "budgets", "amount"),
                                  ("capacity", "sites", "capacity_fte"),
                                  ("min_staff", "sites", "min_fte")):
        if family not in found:
            continue
        block = model.con_blocks[family]
        for j, v in enumerate(found[family]):
            v = float(max(v, 0.0))
            label = str(block.labels.iat[j, 0])
            paid = pay_by_budget.get(label, 0.0) if family == "budget" else 0.0
            if v <= TOL and paid <= 0:
                continue
            frame = data.budgets if table == "budgets" else data.sites
            key = "budget_id" if table == "budgets" else "site_id"
            index = int(np.flatnonzero(frame[key].astype(str).to_numpy() == label)[0])
            current = float(frame[column].iat[index])
            if family == "min_staff":
                proposed = max(0.0, math.floor((current - v) * 100) / 100)
            else:
                step = 1.0 if family == "budget" else 0.01
                proposed = math.ceil((current + v + paid) / step - 1e-9) * step
                proposed = round(proposed, 2)
            source, row = where(table, index)
            unit = prices.get(family, 1.0)
            money = (abs(proposed - current) - paid) * unit
            out.append(Repair(family, label, table, source, row, column, current, proposed,
                              money=max(money, 0.0), alone=alone,
                              extra={"for_hires": paid} if paid else {}))
    if "moved" in found and found["moved"].size and found["moved"][0] > TOL:
        # The row counts additions plus removals (2 per FTE moved) against 2 × the limit
        # less the moves certain before any choice: the limit itself rises by half the
        # row's violation, rounded up to what a user writes.
        block = ops.model.con_blocks["moved"]
        current = (float(ops.model.row_hi[block.start]) + ops.moved_constant) / 2.0
        proposed = round(math.ceil((current + float(found["moved"][0]) / 2.0) / 0.01 - 1e-9)
                         * 0.01, 2)
        out.append(Repair("moved", "max_moved_fte", "scenario", "scenario", None,
                          "policy.max_moved_fte", current, proposed,
                          money=(proposed - current) * prices.get("moved", 1.0), alone=alone))
    return out


def repaired_policy(policy: PolicyConfig, repairs: list[Repair]) -> PolicyConfig:
    """The policy with the repairs' scenario settings applied (a higher move limit)."""
    for r in repairs:
        if r.family == "moved":
            policy = policy.model_copy(update={"max_moved_fte": float(r.proposed)})
    return policy


def apply_repairs(data: OpsData, repairs: list[Repair]) -> OpsData:
    """A copy of the data with the repairs applied (what a user would edit in the tables)."""
    import copy

    fixed = copy.copy(data)
    fixed.targets = data.targets.copy()
    fixed.sites = data.sites.copy()
    fixed.budgets = data.budgets.copy()
    fixed.staff = data.staff.copy()
    hires = []
    for r in repairs:
        if r.family == "hire":
            row = {c: (fixed.staff[c].iloc[0] if len(fixed.staff) else None)
                   for c in fixed.staff.columns}
            row.update(staff_id=r.extra["staff_id"], home_site=r.extra["site"],
                       skills=r.extra["skill"], fte=float(r.proposed),
                       cost_per_fte=float(r.extra["cost_per_fte"]), mobility="site",
                       travel_cost=0.0)
            hires.append(row)
            continue
        if r.family == "mobility":
            fixed.staff.loc[fixed.staff["staff_id"].astype(str) == r.label, "mobility"] = \
                r.proposed
            continue
        if r.table == "targets":
            site, service = r.label.split("/", 1)
            mask = (fixed.targets["site_id"] == site) & (fixed.targets["service_id"] == service)
            fixed.targets.loc[mask, "min_level"] = r.proposed
        elif r.table == "budgets":
            fixed.budgets.loc[fixed.budgets["budget_id"] == r.label, "amount"] = r.proposed
        elif r.table == "sites":
            fixed.sites.loc[fixed.sites["site_id"] == r.label, r.column] = r.proposed
    if hires:
        fixed.staff = pd.concat([fixed.staff, pd.DataFrame(hires)], ignore_index=True)
    return fixed


def _feasible(data: OpsData, policy: PolicyConfig, time_limit: float | None) -> bool | None:
    ops = build_ops(data, policy)
    highs = new_highs()
    load_into_highs(highs, ops.model)
    if time_limit:
        highs.setOptionValue("time_limit", float(time_limit))
    highs.run()
    name = highs.getModelStatus().name
    if name == "kOptimal":
        return True
    if name == "kInfeasible":
        return False
    return None if highs.getInfo().primal_solution_status != 2 else True


# -- the conflict set --------------------------------------------------------------------------
def _row_origin(ops: OpsModel, row: int) -> dict[str, Any]:
    for block in ops.model.con_blocks.values():
        if block.start <= row < block.start + block.size:
            label = "/".join(map(str, block.labels.iloc[row - block.start].tolist()))
            return {"family": block.name, "labels": label, **_input_row(ops, block.name, label)}
    return {"family": "?", "labels": str(row)}


def _input_row(ops: OpsModel, family: str, label: str) -> dict[str, Any]:
    data = ops.data
    table, key = {"budget": ("budgets", "budget_id"), "capacity": ("sites", "site_id"),
                  "min_staff": ("sites", "site_id"), "availability": ("staff", "staff_id"),
                  "coverage": ("targets", None)}.get(family, (None, None))
    if table is None or table not in data.sources:
        return {}
    frame = getattr(data, table)
    if key is None:
        site, service = label.split("/", 1)
        hits = np.flatnonzero(((frame["site_id"] == site) & (frame["service_id"] == service))
                              .to_numpy())
    else:
        hits = np.flatnonzero(frame[key].astype(str).to_numpy() == label)
    if hits.size == 0:
        return {"table": table}
    loaded = data.sources[table]
    return {"table": table, "source": loaded.source, "row": int(loaded.row_of(hits[0]))}


def conflict_set(ops: OpsModel,
                 time_limit: float | None = None) -> tuple[list[dict[str, Any]], str]:
    model = ops.model
    highs = new_highs()
    load_into_highs(highs, model, relax_integers=True)
    import time

    limit = IIS_SAFETY_SECONDS if time_limit is None else min(IIS_SAFETY_SECONDS,
                                                               max(1.0, time_limit))
    ends = time.monotonic() + limit  # one stop for both strategies
    for strategy in (6, 2):
        highs.setOptionValue("iis_strategy", strategy)
        highs.setOptionValue("iis_time_limit", max(0.5, ends - time.monotonic()))
        status, iis = highs.getIis()
        # a warning with the clock run out: the time limit, a partial reduction
        stopped = status.name == "kWarning" and time.monotonic() >= ends - 0.1 * limit
        partial = status.name == "kWarning" and not stopped
        if status.name in ("kOk", "kWarning") and iis.valid_ and (len(iis.row_index_) or len(
                iis.col_index_)):
            items = [_row_origin(ops, int(r)) for r in iis.row_index_]
            u = model.var_blocks["shortfall"]
            for c, bound in zip(iis.col_index_, iis.col_bound_, strict=True):
                c = int(c)
                if int(bound) == 2:
                    continue  # a lower bound of zero is not a business constraint
                if u.start <= c < u.start + u.size:
                    t = c - u.start
                    targets = ops.data.targets
                    label = f"{targets['site_id'].iat[t]}/{targets['service_id'].iat[t]}"
                    origin = _input_row(ops, "coverage", label)
                    items.append({"family": "floor", "labels": label, **origin,
                                  "column": "min_level"})
                else:
                    block = next(b for b in model.var_blocks.values()
                                 if b.start <= c < b.start + b.size)
                    label = "/".join(map(str, block.labels.iloc[c - block.start].tolist()))
                    staff_id = str(block.labels.iat[c - block.start, 0])
                    origin = _input_row(ops, "availability", staff_id) if block.name == "x" \
                        else {}
                    items.append({"family": "fte of" if block.name == "x" else
                                  f"bound of {block.name}", "labels": label, **origin})
            if stopped:
                return items, (f"HiGHS IIS of the LP (integers relaxed), stopped at its {limit:g} "
                               "s safety limit: an infeasible set, not fully reduced")
            if partial:
                return items, ("HiGHS IIS of the LP (integers relaxed), with a warning from "
                               "HiGHS: an infeasible set, perhaps not fully reduced")
            return items, "HiGHS IIS of the LP (integers relaxed)"
    # The LP relaxation may be feasible (a whole-assignment conflict): filter families.
    families = ["floor", *[f for f in ("budget", "capacity", "min_staff", "moved")
                           if f in model.con_blocks]]
    needed = list(families)
    prices = {f: 1.0 for f in (*families, "floor")}
    for family in list(needed):
        trial = tuple(f for f in families if f not in needed or f == family)
        outcome, _found, _cost = _solve_elastic(ops, trial, prices, 30)
        if outcome != "feasible":
            continue
        # Relaxing `family` (with those already dropped) restores feasibility: keep it out.
        needed.remove(family)
    if needed == families:
        return [{"family": f} for f in families], "deletion filter over families (no subset)"
    return [{"family": f} for f in families if f not in needed], \
        "deletion filter over families"


# -- the whole diagnosis -----------------------------------------------------------------------
OPTIONS = (
    ("floors", "Relax service floors only", ("floor",)),
    ("budget", "Add budget only", ("budget",)),
    ("capacity", "Add site capacity only", ("capacity",)),
    ("min_staff", "Lower minimum staffing only", ("min_staff",)),
    ("moves", "Allow more FTE to move (policy.max_moved_fte) only", ("moved",)),
    ("hire", "Hire new staff (with the money to pay them)", ("hire",)),
    ("travel", "Let staff travel to other sites", ("mobility",)),
    ("mix", "The cheapest mix", ("floor", "budget", "capacity", "min_staff", "moved", "hire")),
)
WIDER = {"site": "region", "region": "any"}  # one step of mobility more


def _travel(ops: OpsModel, policy: PolicyConfig, time_limit: float | None,
            ) -> tuple[str, list[Repair], float]:
    """Let staff work one step further from home (mobility site -> region, region -> any):
    the fewest FTE away from home, travel cost first (travel_cost per FTE away, plus 1 per
    FTE so that free travel is still not spread thin), checked like the other options."""
    import copy

    data = ops.data
    staff = data.staff
    wide = copy.copy(data)
    wide.staff = staff.copy()
    wide.staff["mobility"] = staff["mobility"].map(lambda m: WIDER.get(str(m), str(m)))
    if (wide.staff["mobility"] == staff["mobility"]).all():
        return "not applicable (everyone may work anywhere)", [], math.nan
    built = build_ops(wide, policy)
    e0, e1 = ops.triples, built.triples
    n_s, n_k = len(data.sites) + 1, len(data.services) + 1

    def keys(e: pd.DataFrame) -> np.ndarray:
        return (e["i"].to_numpy(np.int64) * n_s + e["s"].to_numpy()) * n_k + e["k"].to_numpy()

    new = ~np.isin(keys(e1), keys(e0))
    x = built.model.var_blocks["x"]
    i1 = e1["i"].to_numpy()
    travel = staff["travel_cost"].to_numpy(dtype=float)[i1]
    c = np.zeros(built.model.num_vars)
    c[x.start + np.flatnonzero(new)] = travel[new] + 1.0
    highs = new_highs()
    load_into_highs(highs, built.model, c)
    if time_limit:
        highs.setOptionValue("time_limit", float(time_limit))
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return "cannot restore feasibility alone", [], math.nan
    value = np.asarray(highs.getSolution().col_value)[x.start:x.start + x.size]
    used = new & (value > TOL)
    loaded = data.sources.get("staff")
    out = []
    for i in np.unique(i1[used]):
        mine = used & (i1 == i)
        away = float(value[mine].sum())
        money = float((value[mine] * travel[mine]).sum())
        row = None if loaded is None else int(np.asarray(loaded.row_of(int(i))).reshape(-1)[0])
        out.append(Repair("mobility", str(staff["staff_id"].iat[i]), "staff",
                          loaded.source if loaded is not None else "staff", row, "mobility",
                          str(staff["mobility"].iat[i]), str(wide.staff["mobility"].iat[i]),
                          money=money, extra={"fte_away": away}))
    return "repairs feasibility", out, float(sum(r.money for r in out))


def diagnose(ops: OpsModel, policy: PolicyConfig, time_limit: float | None = 60) -> Diagnosis:
    prices = _prices(ops.data)
    present = set(_elastic_rows(ops)) | ({"floor"} if (ops.data.targets["min_level"] > 0).any()
                                          else set()) | {"hire", "mobility"}
    options = []
    for key, title, families in OPTIONS:
        usable = tuple(f for f in families if f in present)
        option = RepairOption(key, title, usable)
        options.append(option)
        if not usable or (key != "mix" and len(usable) < len(families)):
            option.status = "not applicable (no such constraints)"
            continue
        if key == "travel":
            option.status, option.repairs, option.cost = _travel(ops, policy, time_limit)
        else:
            status, found, cost = _solve_elastic(ops, usable, prices, time_limit)
            if status != "feasible":
                option.status = "cannot restore feasibility alone"
                continue
            option.repairs = _repairs(ops, found, prices)
            option.cost = cost
            option.status = "repairs feasibility"
        if option.repairs:
            option.verified = _feasible(apply_repairs(ops.data, option.repairs),
                                        repaired_policy(policy, option.repairs),
                                        time_limit)
    conflict, method = conflict_set(ops, time_limit)
    return Diagnosis(options, conflict, method, prices, conflict_summary(ops, conflict))


def conflict_summary(ops: OpsModel, conflict: list[dict[str, Any]]) -> str:
    """The conflict set in one or two sentences: what must hold, and the limits in the way,
    with the figures from the input tables."""
    data = ops.data
    needs: list[str] = []
    limits: list[str] = []
    sites = data.sites.set_index(data.sites["site_id"].astype(str))
    budgets = data.budgets.set_index(data.budgets["budget_id"].astype(str)) if len(
        data.budgets) else None
    targets = data.targets.assign(key=data.targets["site_id"].astype(str) + "/"
                                  + data.targets["service_id"].astype(str)).set_index("key")
    staff = data.staff.set_index(data.staff["staff_id"].astype(str))
    seen: set[tuple[str, str]] = set()
    for item in conflict:
        family, label = str(item.get("family")), str(item.get("labels", ""))
        if (family, label) in seen:
            continue
        seen.add((family, label))
        if family == "floor" and label in targets.index:
            t = targets.loc[label]
            site, service = label.split("/", 1)
            needs.append(f"{site} must serve at least {float(t['min_level']):.0%} of its "
                         f"{float(t['demand']):g} units of {service} demand")
        elif family == "min_staff" and label in sites.index:
            needs.append(f"{label} must have at least {float(sites.at[label, 'min_fte']):g} "
                         "FTE")
        elif family == "coverage":
            continue  # the floor or the demand it holds is said through its target
        elif family == "budget" and budgets is not None and label in budgets.index:
            scope = str(budgets.at[label, "scope"])
            scope = "" if scope in (label, "all") else f" ({scope})"
            limits.append(f"the budget {label}{scope} is {_money(budgets.at[label, 'amount'])}")
        elif family == "capacity" and label in sites.index:
            limits.append(f"{label} holds at most "
                          f"{float(sites.at[label, 'capacity_fte']):g} FTE")
        elif family in ("availability", "fte of"):
            who = label.split("/", 1)[0]
            if who in staff.index and ("fte", who) not in seen:
                seen.add(("fte", who))
                limits.append(f"{who} has {float(staff.at[who, 'fte']):g} FTE")
        elif family == "moved":
            limits.append("the move limit (policy.max_moved_fte)")
    if not needs and not limits:
        return "The hard constraints cannot all hold (see the conflict set below)."

    def listed(parts: list[str], most: int = 3) -> str:
        shown = parts[:most]
        more = f" and {len(parts) - most} more" if len(parts) > most else ""
        return (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else
                shown[0]) + more

    if needs and limits:
        return f"{listed(needs)}, but {listed(limits)}."[0].upper() + \
            f"{listed(needs)}, but {listed(limits)}."[1:]
    text = listed(needs or limits)
    return f"{text[0].upper()}{text[1:]}: these cannot all hold."


def diagnosis_markdown(diag: Diagnosis, title: str) -> str:
    from allocator.formulations.ops.bottlenecks import _md_escape as esc

    lines = [f"# No plan can be made: {esc(title)}", "", esc(diag.summary), ""]
    best = diag.recommended
    letters = {}
    letter = ord("A")
    for option in diag.options:
        if option.status.startswith("not applicable"):
            continue
        letters[option.key] = chr(letter)
        letter += 1
    if best is not None:
        lines += [f"**Recommended: Option {letters[best.key]}, {esc(best.summary())}** (the "
                  "cheapest option in money that was checked to solve).", ""]
    lines += ["Each option below is a smallest change of its kind that makes a plan possible "
              "(checked by re-solving with the change applied), priced in money: budget "
              "added at face value, hires at their yearly pay, travel at travel_cost per FTE "
              "away, and room, minimum staffing, moves and floors at the prices listed at the "
              "end.", ""]
    for option in diag.options:
        if option.key not in letters:
            continue
        price = "" if math.isnan(option.money) else f" (price {_money(option.money)})"
        lines.append(f"## Option {letters[option.key]}: {option.title}{price}")
        if not option.repairs:
            lines += ["", f"_{option.status}_", ""]
            continue
        check = {True: "checked: the repaired instance solves",
                 False: "warning: still infeasible after rounding",
                 None: "not checked (time limit)"}[option.verified]
        lines += ["", f"_{check}_", ""]
        lines += [f"- {r.sentence(esc)}" for r in option.repairs[:50]]
        if len(option.repairs) > 50:
            lines.append(f"- ... and {len(option.repairs) - 50} more (diagnosis.json)")
        lines.append("")
    lines += ["## Conflict set", "", esc(diag.summary), "",
              f"_{esc(diag.conflict_method)}_: these rows cannot hold together.", ""]
    for item in diag.conflict[:60]:
        where = (f" ({esc(Path_name(item['source']))} row {item['row']})"
                 if item.get("row") else "")
        lines.append(f"- {esc(item.get('family'))} {esc(item.get('labels', ''))}{where}")
    prices = ", ".join(f"{k} {v:,.2f}" for k, v in diag.prices.items())
    lines += ["", f"Prices used to compare kinds of change in the cheapest mix (money per "
              f"unit): {esc(prices)}.", ""]
    return "\n".join(lines)


def diagnosis_frame(diag: Diagnosis) -> pd.DataFrame:
    rows = [{"option": o.key, **{k: v for k, v in r.__dict__.items()}, "change": r.change}
            for o in diag.options for r in o.repairs]
    return pd.DataFrame(rows)
