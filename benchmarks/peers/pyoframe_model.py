"""The service-stage LP in pyoframe: DataFrame-indexed variables, ``sum_by`` and ``map``.

Variables are indexed by polars frames of integer codes (staff ``i``, site ``s``, service
``k``); pyoframe writes every variable and constraint into HiGHS (through pyoptinterface) as
it is assigned to the model, so building is the hand-over.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from floor import Sets


def build(d: Sets, method: str = "ipm"):
    import pyoframe as pf

    m = pf.Model("highs")
    m.params.output_flag = False
    m.params.threads = 1
    if method in ("simplex", "ipm", "pdlp"):
        m.params.solver = method
    triples = pl.DataFrame({"i": d.i, "s": d.s, "k": d.k})
    targets = pl.DataFrame({"s": d.t_site, "k": d.t_service})
    m.x = pf.Variable(triples, lb=0, ub=pf.Param(triples.with_columns(ub=d.fte[d.i])))
    m.shortfall = pf.Variable(
        targets, lb=0, ub=pf.Param(targets.with_columns(ub=(1 - d.floor) * d.demand)))

    used = np.unique(d.i)
    m.availability = m.x.sum_by("i") <= pf.Param(pl.DataFrame({"i": used, "fte": d.fte[used]}))

    served = (pf.Param(triples.with_columns(p=d.p)) * m.x).sum_by("s", "k")
    m.coverage = (m.shortfall + served.keep_extras()
                  >= pf.Param(targets.with_columns(demand=d.demand)))

    present = np.zeros(d.n_sites, dtype=bool)
    present[d.s] = True
    per_site = m.x.sum_by("s")
    cap_sites = np.flatnonzero(np.isfinite(d.capacity) & present)
    if cap_sites.size:
        m.capacity = per_site.drop_extras() <= pf.Param(
            pl.DataFrame({"s": cap_sites, "cap": d.capacity[cap_sites]}))
    min_sites = np.flatnonzero((d.min_fte > 0) & present)
    if min_sites.size:
        m.min_staff = per_site.drop_extras() >= pf.Param(
            pl.DataFrame({"s": min_sites, "lo": d.min_fte[min_sites]}))

    members = pl.DataFrame({"s": d.member_s, "b": d.member_b})
    spend = (pf.Param(triples.with_columns(cost=d.cost)) * m.x).sum_by("s")
    m.budget = spend.map(members) <= pf.Param(
        pl.DataFrame({"b": np.arange(d.n_budgets), "amount": d.budget_amount}))

    m.minimize = (pf.Param(targets.with_columns(w=d.weight)) * m.shortfall).sum()
    return m


def hand_over(m):
    """Nothing left to do: the rows are in HiGHS already."""
    return m


def solve(m, method: str = "ipm") -> float:
    m.optimize()
    return float(m.objective.value)
