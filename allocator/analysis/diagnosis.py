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

from allocator.formulations.ops import OpsModel, build_ops
from allocator.formulations.ops_data import OpsData
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
    current: float
    proposed: float

    @property
    def change(self) -> float:
        return self.proposed - self.current

    def sentence(self, esc=str) -> str:  # type: ignore[no-untyped-def]
        """Plain words; `esc` escapes what came from the data (labels, file names)."""
        name = esc(Path_name(self.source))
        where = f"{name} row {self.row}" if self.row else name
        label = esc(self.label)
        if self.family == "floor":
            return (f"{where}: the {self.current:.0%} floor at {label} cannot be met; "
                    f"at most {self.proposed:.1%} is reachable (set {self.column} to "
                    f"{self.proposed:.4f})")
        if self.family == "budget":
            return (f"{where}: +{_money(self.change)} on budget {label} "
                    f"({_money(self.current)} → {_money(self.proposed)})")
        if self.family == "capacity":
            return (f"{where}: +{self.change:.2f} FTE of room at site {label} "
                    f"({self.current:g} → {self.proposed:g})")
        if self.family == "min_staff":
            return (f"{where}: lower the minimum staffing of site {label} by "
                    f"{-self.change:.2f} FTE ({self.current:g} → {self.proposed:g})")
        if self.family == "moved":
            return f"{where}: allow {self.change:.2f} more FTE to move ({self.proposed:g})"
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


@dataclass
class Diagnosis:
    options: list[RepairOption]
    conflict: list[dict[str, Any]]
    conflict_method: str
    prices: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "options": [{
                "key": o.key, "title": o.title, "families": list(o.families), "status": o.status,
                "priced_change": None if math.isnan(o.cost) else o.cost,
                "verified_feasible": o.verified,
                "repairs": [{**r.__dict__, "change": r.change, "text": r.sentence()}
                            for r in o.repairs],
            } for o in self.options],
            "conflict_set": self.conflict, "conflict_method": self.conflict_method,
            "prices": self.prices,
        }


def Path_name(source: str) -> str:
    return source.rsplit("/", 1)[-1]


def _money(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


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
    empty = np.zeros(0, dtype=np.int32)
    rows_by_family = _elastic_rows(ops)
    for family in families:
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
        highs.addCols(k, np.full(k, prices[family]), np.zeros(k), np.full(k, 1e30), k,
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
    return "feasible", found, float(highs.getInfo().objective_function_value)


def _repairs(ops: OpsModel, found: dict[str, np.ndarray]) -> list[Repair]:
    data = ops.data
    out: list[Repair] = []
    src = data.sources

    def where(table: str, index: int) -> tuple[str, int | None]:
        loaded = src.get(table)
        if loaded is None:
            return table, None
        return loaded.source, int(index) + loaded.first_row

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
            out.append(Repair("floor", label, "targets", source, row, "min_level", level,
                              proposed))
    model = ops.model
    for family, table, column in (("budget", "budgets", "amount"),
                                  ("capacity", "sites", "capacity_fte"),
                                  ("min_staff", "sites", "min_fte")):
        if family not in found:
            continue
        block = model.con_blocks[family]
        for j, v in enumerate(found[family]):
            if v <= TOL:
                continue
            label = str(block.labels.iat[j, 0])
            frame = data.budgets if table == "budgets" else data.sites
            key = "budget_id" if table == "budgets" else "site_id"
            index = int(np.flatnonzero(frame[key].astype(str).to_numpy() == label)[0])
            current = float(frame[column].iat[index])
            if family == "min_staff":
                proposed = max(0.0, math.floor((current - v) * 100) / 100)
            else:
                step = 1.0 if family == "budget" else 0.01
                proposed = math.ceil((current + v) / step - 1e-9) * step
                proposed = round(proposed, 2)
            source, row = where(table, index)
            out.append(Repair(family, label, table, source, row, column, current, proposed))
    if "moved" in found and found["moved"].size and found["moved"][0] > TOL:
        v = float(found["moved"][0])
        out.append(Repair("moved", "max_moved_fte", "scenario", "scenario", None,
                          "policy.max_moved_fte", math.nan, v))
    return out


def apply_repairs(data: OpsData, repairs: list[Repair]) -> OpsData:
    """A copy of the data with the repairs applied (what a user would edit in the tables)."""
    import copy

    fixed = copy.copy(data)
    fixed.targets = data.targets.copy()
    fixed.sites = data.sites.copy()
    fixed.budgets = data.budgets.copy()
    for r in repairs:
        if r.table == "targets":
            site, service = r.label.split("/", 1)
            mask = (fixed.targets["site_id"] == site) & (fixed.targets["service_id"] == service)
            fixed.targets.loc[mask, "min_level"] = r.proposed
        elif r.table == "budgets":
            fixed.budgets.loc[fixed.budgets["budget_id"] == r.label, "amount"] = r.proposed
        elif r.table == "sites":
            fixed.sites.loc[fixed.sites["site_id"] == r.label, r.column] = r.proposed
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
    return {"table": table, "source": loaded.source, "row": int(hits[0]) + loaded.first_row}


def conflict_set(ops: OpsModel) -> tuple[list[dict[str, Any]], str]:
    model = ops.model
    highs = new_highs()
    load_into_highs(highs, model, relax_integers=True)
    for strategy in (6, 2):
        highs.setOptionValue("iis_strategy", strategy)
        status, iis = highs.getIis()
        if status.name == "kOk" and iis.valid_ and (len(iis.row_index_) or len(
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
            return items, "HiGHS IIS of the LP (integers relaxed)"
    # The LP relaxation may be feasible (a whole-assignment conflict): filter families.
    families = ["floor", *[f for f in ("budget", "capacity", "min_staff", "moved")
                           if f in model.con_blocks]]
    needed = list(families)
    prices = {f: 1.0 for f in (*families, "floor")}
    for family in list(needed):
        trial = tuple(f for f in families if f not in needed or f == family)
        status, _found, _cost = _solve_elastic(ops, trial, prices, 30)
        if status != "feasible":
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
    ("mix", "The cheapest mix", ("floor", "budget", "capacity", "min_staff", "moved")),
)


def diagnose(ops: OpsModel, policy: PolicyConfig, time_limit: float | None = 60) -> Diagnosis:
    prices = _prices(ops.data)
    present = set(_elastic_rows(ops)) | ({"floor"} if (ops.data.targets["min_level"] > 0).any()
                                          else set())
    options = []
    for key, title, families in OPTIONS:
        usable = tuple(f for f in families if f in present)
        option = RepairOption(key, title, usable)
        options.append(option)
        if not usable or (key != "mix" and len(usable) < len(families)):
            option.status = "not applicable (no such constraints)"
            continue
        status, found, cost = _solve_elastic(ops, usable, prices, time_limit)
        if status != "feasible":
            option.status = "cannot restore feasibility alone"
            continue
        option.repairs = _repairs(ops, found)
        option.cost = cost
        option.status = "repairs feasibility"
        option.verified = _feasible(apply_repairs(ops.data, option.repairs), policy, time_limit)
    conflict, method = conflict_set(ops)
    return Diagnosis(options, conflict, method, prices)


def diagnosis_markdown(diag: Diagnosis, title: str) -> str:
    from allocator.analysis.bottlenecks import _md_escape as esc

    lines = [f"# No plan can be made: {esc(title)}", "",
             "The hard constraints cannot all hold. Each option below is a smallest change "
             "of one kind that makes a plan possible (checked by re-solving with the change "
             "applied).", ""]
    letter = ord("A")
    for option in diag.options:
        if option.status == "not applicable (no such constraints)":
            continue
        lines.append(f"## Option {chr(letter)}: {option.title}")
        letter += 1
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
    lines += ["## Conflict set", "", f"_{esc(diag.conflict_method)}_: these cannot hold "
              "together.", ""]
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
