"""An independent checker: recompute every constraint of a plan from the input tables.

Deliberately shares no code with allocator's formulation: it reads the CSVs itself, applies
the defaults of data-contract.md itself and loops in plain pandas, so a bug in the model
builder cannot hide here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TOL = 1e-6


@dataclass
class Check:
    violations: list[str]
    service: float  # sum of weight * shortfall, recomputed
    cost: float  # sum of (cost_per_fte + travel away from home) * fte, recomputed
    moved: float | None = None


def read_inputs(scenario: Path) -> dict[str, pd.DataFrame]:
    spec = tomllib.loads(scenario.read_text())
    base = scenario.parent
    tables = {}
    for name, path in spec["tables"].items():
        tables[name] = pd.read_csv(base / path, dtype=str, keep_default_na=False,
                                   na_values=[""])
    return tables


def _num(frame: pd.DataFrame, col: str, default: float) -> pd.Series:
    if col not in frame:
        return pd.Series(default, index=frame.index, dtype=float)
    return pd.to_numeric(frame[col]).fillna(default).astype(float)


def check_plan(scenario: Path, plan: pd.DataFrame, whole: bool = False) -> Check:
    t = read_inputs(scenario)
    sites, staff, targets = t["sites"], t["staff"], t["targets"]
    services = t.get("services")
    if services is None:
        ids = targets["service_id"].unique()
        services = pd.DataFrame({"service_id": ids, "skill": ids})
    skill_of = dict(zip(services["service_id"], services.get("skill", services["service_id"])
                        .fillna(services["service_id"]), strict=True))
    prod_of = dict(zip(services["service_id"], _num(services, "productivity", 1.0), strict=True))
    region_of = dict(zip(sites["site_id"], sites.get("region", pd.Series("all", index=sites.index))
                         .fillna("all"), strict=True))
    st = staff.set_index("staff_id")
    fte = _num(staff, "fte", 0).set_axis(staff["staff_id"])
    cost = _num(staff, "cost_per_fte", 0).set_axis(staff["staff_id"])
    travel = _num(staff, "travel_cost", 0).set_axis(staff["staff_id"])
    mobility = (st["mobility"].fillna("region") if "mobility" in st
                else pd.Series("region", index=st.index))
    v: list[str] = []
    plan = plan.astype({"staff_id": str, "site_id": str, "service_id": str})
    if (plan["fte"] < -TOL).any():
        v.append("negative fte in plan")
    total_cost = 0.0
    target_keys = set(zip(targets["site_id"], targets["service_id"], strict=True))
    for row in plan.itertuples(index=False):
        sid, site, service, x = row.staff_id, row.site_id, row.service_id, row.fte
        home = st.at[sid, "home_site"]
        skills = {s.strip() for s in str(st.at[sid, "skills"]).split(";")}
        if skill_of[service] not in skills:
            v.append(f"{sid} lacks skill for {service}")
        if (site, service) not in target_keys:
            v.append(f"{sid} works at {site}/{service}, which has no target")
        mob = mobility[sid]
        wrong_site = mob == "site" and site != home
        wrong_region = mob == "region" and region_of[site] != region_of[home]
        if wrong_site or wrong_region:
            v.append(f"{sid} ({mob}) may not work at {site}")
        unit = cost[sid] + (travel[sid] if site != home else 0.0)
        total_cost += unit * x
        if abs(row.cost - unit * x) > TOL * max(1.0, abs(unit * x)):
            v.append(f"plan cost of {sid}/{site}/{service} is {row.cost}, expected {unit * x}")
    used = plan.groupby("staff_id")["fte"].sum()
    for sid, x in used.items():
        if x > fte[sid] + TOL:
            v.append(f"{sid} works {x} > available {fte[sid]}")
    if whole:
        n_sites = plan[plan["fte"] > TOL].groupby("staff_id")["site_id"].nunique()
        for sid in n_sites[n_sites > 1].index:
            v.append(f"{sid} split across sites in whole mode")
    site_fte = plan.groupby("site_id")["fte"].sum()
    cap = _num(sites, "capacity_fte", np.nan).set_axis(sites["site_id"])
    low = _num(sites, "min_fte", 0.0).set_axis(sites["site_id"])
    for site in sites["site_id"]:
        have = float(site_fte.get(site, 0.0))
        if np.isfinite(cap[site]) and have > cap[site] + TOL:
            v.append(f"site {site} holds {have} > capacity {cap[site]}")
        if have < low[site] - TOL:
            v.append(f"site {site} has {have} < min_fte {low[site]}")
    work = plan.assign(w=plan["fte"] * plan["service_id"].map(prod_of)).groupby(
        ["site_id", "service_id"])["w"].sum()
    service_obj = 0.0
    demand = _num(targets, "demand", 0)
    floor = _num(targets, "min_level", 0)
    weight = _num(targets, "weight", 1)
    for j, (site, service) in enumerate(zip(targets["site_id"], targets["service_id"],
                                            strict=True)):
        served = min(float(work.get((site, service), 0.0)), demand[j])
        if served < floor[j] * demand[j] - TOL * max(1.0, demand[j]):
            v.append(f"{site}/{service} served {served} below floor {floor[j] * demand[j]}")
        service_obj += weight[j] * (demand[j] - served)
    if "budgets" in t:
        site_cost: dict[str, float] = {}
        for row in plan.itertuples(index=False):
            site_cost[row.site_id] = site_cost.get(row.site_id, 0.0) + row.cost
        for row in t["budgets"].itertuples(index=False):
            scope = row.scope.strip()
            if scope == "all":
                members = set(sites["site_id"])
            elif scope.startswith("region:"):
                members = {s for s, r in region_of.items() if r == scope[7:].strip()}
            else:
                members = {scope[5:].strip()}
            spent = sum(site_cost.get(s, 0.0) for s in members)
            if spent > float(row.amount) + TOL * max(1.0, float(row.amount)):
                v.append(f"budget {row.budget_id} spends {spent} > {row.amount}")
    return Check(v, service_obj, total_cost)
