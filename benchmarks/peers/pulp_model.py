"""The service-stage LP in PuLP: a dict of variables keyed by (staff, site, service), lpSum.

This is how the PuLP documentation writes such models: keys grouped with plain dicts, one
``lpSum`` per constraint. PuLP 3.3 hands the model to HiGHS through highspy one column and
one row at a time (``HiGHS.buildSolverModel``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from floor import Sets


def build(d: Sets):
    import pulp

    prob = pulp.LpProblem("ops_service", pulp.LpMinimize)
    keys = list(zip(d.i.tolist(), d.s.tolist(), d.k.tolist(), strict=True))
    x = pulp.LpVariable.dicts("x", keys, lowBound=0)
    fte = d.fte.tolist()
    for key in keys:
        x[key].upBound = fte[key[0]]
    target_keys = list(zip(d.t_site.tolist(), d.t_service.tolist(), strict=True))
    cap_u = ((1 - d.floor) * d.demand).tolist()
    u = pulp.LpVariable.dicts("shortfall", target_keys, lowBound=0)
    for n, key in enumerate(target_keys):
        u[key].upBound = cap_u[n]

    by_staff, by_target, by_site = defaultdict(list), defaultdict(list), defaultdict(list)
    p, cost = d.p.tolist(), d.cost.tolist()
    for n, key in enumerate(keys):
        by_staff[key[0]].append(key)
        by_target[(key[1], key[2])].append((p[n], key))
        by_site[key[1]].append((cost[n], key))

    for i, members in by_staff.items():
        prob += pulp.lpSum(x[key] for key in members) <= fte[i], f"availability_{i}"
    demand = d.demand.tolist()
    for n, key in enumerate(target_keys):
        served = pulp.lpSum(coef * x[k] for coef, k in by_target.get(key, []))
        prob += served + u[key] >= demand[n], f"coverage_{key[0]}_{key[1]}"
    for s in np.flatnonzero(np.isfinite(d.capacity)).tolist():
        if s in by_site:
            prob += (pulp.lpSum(x[key] for _, key in by_site[s]) <= float(d.capacity[s]),
                     f"capacity_{s}")
    for s in np.flatnonzero(d.min_fte > 0).tolist():
        if s in by_site:
            prob += (pulp.lpSum(x[key] for _, key in by_site[s]) >= float(d.min_fte[s]),
                     f"min_staff_{s}")
    members = defaultdict(list)
    for b, s in zip(d.member_b.tolist(), d.member_s.tolist(), strict=True):
        members[b].append(s)
    for b in range(d.n_budgets):
        spend = pulp.lpSum(c * x[key] for s in members[b] for c, key in by_site.get(s, []))
        prob += spend <= float(d.budget_amount[b]), f"budget_{b}"
    weight = d.weight.tolist()
    prob += pulp.lpSum(weight[n] * u[key] for n, key in enumerate(target_keys))
    return prob


def hand_over(prob, method: str = "ipm"):
    """What `prob.solve(pulp.HiGHS())` does before it runs HiGHS."""
    import pulp

    options = {"solver": method} if method in ("simplex", "ipm", "pdlp") else {}
    solver = pulp.HiGHS(msg=False, threads=1, **options)
    solver.createAndConfigureSolver(prob)
    solver.buildSolverModel(prob)
    return prob


def solve(prob, method: str = "ipm") -> float:
    prob.solverModel.run()
    return float(prob.solverModel.getInfo().objective_function_value)
