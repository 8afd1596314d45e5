"""Plan tables of the ops model (data-contract.md outputs), computed from the solution vector.

Figures are rounded so the files read as numbers, not float noise: FTE and workload to
FTE_DECIMALS decimals (1e-9, well inside the solver's feasibility tolerance of 1e-7 and the
stages' hold tolerance, so every constraint still holds as checked), money to
MONEY_DECIMALS; no -0. The plan is not polished: FTE a hold tolerance lets move (a later
stage may use the `rel_tol` slack of an earlier one) stays as the solver left it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.formulations.ops.model import OpsModel

ZERO = 1e-9  # below this an FTE is solver noise, not an allocation
FTE_DECIMALS = 9
MONEY_DECIMALS = 6


def _r(values: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded, and -0 made 0."""
    return np.round(np.asarray(values, dtype=float), decimals) + 0.0


def _sort(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sort by the ids as text, so plans diff cleanly from one night to the next."""
    order = frame[keys].astype(str).sort_values(keys, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def plan_tables(ops: OpsModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
    data, e, model = ops.data, ops.triples, ops.model
    xv = np.clip(x[model.var_blocks["x"].slice], 0.0, None)
    xv = _r(np.where(xv > ZERO, xv, 0.0), FTE_DECIMALS)
    sites, staff, services, targets = data.sites, data.staff, data.services, data.targets
    i, s, k, t = (e[c].to_numpy() for c in ("i", "s", "k", "t"))
    cost = _r(e["cost"].to_numpy() * xv, MONEY_DECIMALS)

    used = xv > 0
    plan = pd.DataFrame({
        "staff_id": staff["staff_id"].to_numpy()[i[used]],
        "site_id": sites["site_id"].to_numpy()[s[used]],
        "service_id": services["service_id"].to_numpy()[k[used]],
        "fte": xv[used],
        "cost": cost[used],
    })
    plan = _sort(plan, ["staff_id", "site_id", "service_id"])

    work = np.bincount(t, weights=e["p"].to_numpy() * xv, minlength=len(targets))
    demand = targets["demand"].to_numpy()
    served = np.minimum(work, demand)
    coverage = pd.DataFrame({
        "site_id": targets["site_id"].to_numpy(), "service_id": targets["service_id"].to_numpy(),
        "demand": demand, "served": _r(served, FTE_DECIMALS),
        "shortfall": _r(demand - served, FTE_DECIMALS),
        "served_share": _r(np.divide(served, demand, out=np.ones_like(demand),
                                     where=demand > 0), FTE_DECIMALS),
    })
    coverage = _sort(coverage, ["site_id", "service_id"])

    site_fte = np.bincount(s, weights=xv, minlength=len(sites))
    site_cost = np.bincount(s, weights=cost, minlength=len(sites))
    site_table = pd.DataFrame({
        "site_id": sites["site_id"].to_numpy(), "fte": _r(site_fte, FTE_DECIMALS),
        "capacity_fte": sites["capacity_fte"].to_numpy(), "min_fte": sites["min_fte"].to_numpy(),
        "cost": _r(site_cost, MONEY_DECIMALS),
    })
    site_table = _sort(site_table, ["site_id"])

    budgets = data.budgets
    if len(budgets):
        spent_by_site = pd.Series(site_cost, index=sites["site_id"].to_numpy())
        assert data.budget_sites is not None  # load_ops fills it wherever budgets exist
        members = data.budget_sites.drop_duplicates()
        members = members.assign(spent=spent_by_site.loc[members["site_id"].to_numpy()].to_numpy())
        spent = members.groupby("budget_id")["spent"].sum()
        spent_col = spent.reindex(budgets["budget_id"].to_numpy()).fillna(0.0).to_numpy()
        budget_table = pd.DataFrame({
            "budget_id": budgets["budget_id"].to_numpy(), "scope": budgets["scope"].to_numpy(),
            "amount": budgets["amount"].to_numpy(), "spent": _r(spent_col, MONEY_DECIMALS),
            "headroom": _r(budgets["amount"].to_numpy() - spent_col, MONEY_DECIMALS),
        })
        budget_table = _sort(budget_table, ["budget_id"])
    else:
        budget_table = pd.DataFrame(columns=["budget_id", "scope", "amount", "spent", "headroom"])
    out = {"plan": plan, "coverage": coverage, "budgets": budget_table, "sites": site_table}
    if data.baseline is not None and (len(data.baseline) or data.keep_stability):
        out["changes"] = _changes(plan, data.baseline)
    return out


def _changes(plan: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """FTE by site and service against the baseline plan (changes.csv)."""
    keys = ["site_id", "service_id"]
    before = baseline.assign(**{k: baseline[k].astype(str) for k in keys}).groupby(keys)[
        "fte"].sum().rename("baseline_fte")
    after = plan.assign(**{k: plan[k].astype(str) for k in keys}).groupby(keys)["fte"].sum() \
        .rename("plan_fte")
    both = pd.concat([before, after], axis=1).fillna(0.0).reset_index()
    both["change_fte"] = both["plan_fte"] - both["baseline_fte"]
    for column in ("baseline_fte", "plan_fte", "change_fte"):
        both[column] = _r(both[column].to_numpy(), FTE_DECIMALS)
    return _sort(both, keys)
