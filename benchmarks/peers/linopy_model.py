"""The service-stage LP in linopy: one dimension per index set, groupby-sums for the rows.

The eligible triples form one dimension ``e`` (linopy is dense over its dimensions, so a
staff x site x service cube would be mostly empty); each family is a ``groupby(...).sum()``
of ``x`` over that dimension. Budgets are one scalar constraint each: a groupby over budget
members would pad every budget row to the size of the company-wide one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from floor import Sets


def _series(values: np.ndarray, index: np.ndarray | pd.Index, name: str) -> xr.DataArray:
    return xr.DataArray(values, coords=[pd.Index(index, name=name)])


def build(d: Sets):
    import linopy

    m = linopy.Model()
    n_e, n_t = d.i.size, d.n_targets
    e = pd.RangeIndex(n_e, name="e")
    targets = pd.RangeIndex(n_t, name="t")
    x = m.add_variables(lower=0, upper=_series(d.fte[d.i], e, "e"), name="x")
    u = m.add_variables(lower=0, upper=_series((1 - d.floor) * d.demand, targets, "t"),
                        name="shortfall")

    staff = xr.DataArray(d.i, coords=[e], name="staff")
    used = np.unique(d.i)
    m.add_constraints(x.groupby(staff).sum() <= _series(d.fte[used], used, "staff"),
                      name="availability")

    target = xr.DataArray(d.t, coords=[e], name="t")
    served = (_series(d.p, e, "e") * x).groupby(target).sum()
    have = np.unique(d.t)
    if have.size < n_t:  # targets nobody can serve: shortfall alone
        served = served.reindex(t=targets)
    m.add_constraints(served + u >= _series(d.demand, targets, "t"), name="coverage")

    site = xr.DataArray(d.s, coords=[e], name="site")
    per_site = x.groupby(site).sum()
    present = np.zeros(d.n_sites, dtype=bool)
    present[d.s] = True
    cap_sites = np.flatnonzero(np.isfinite(d.capacity) & present)
    if cap_sites.size:
        m.add_constraints(per_site.sel(site=cap_sites)
                          <= _series(d.capacity[cap_sites], cap_sites, "site"), name="capacity")
    min_sites = np.flatnonzero((d.min_fte > 0) & present)
    if min_sites.size:
        m.add_constraints(per_site.sel(site=min_sites)
                          >= _series(d.min_fte[min_sites], min_sites, "site"), name="min_staff")

    spend = _series(d.cost, e, "e") * x
    for b in range(d.n_budgets):
        members = d.member_s[d.member_b == b]
        in_scope = np.flatnonzero(np.isin(d.s, members))
        m.add_constraints(spend.isel(e=in_scope).sum() <= d.budget_amount[b], name=f"budget_{b}")

    m.add_objective((_series(d.weight, targets, "t") * u).sum())
    return m


def hand_over(m):
    """linopy's direct route into highspy (no LP file written)."""
    h = m.to_highspy()
    h.setOptionValue("output_flag", False)
    return h


def solve(h, method: str = "ipm") -> float:
    h.setOptionValue("threads", 1)
    h.setOptionValue("solver", method)
    h.run()
    return float(h.getInfo().objective_function_value)
