"""A second, independent formulation of the ops model for small cases: plain loops over the
input rows into dense arrays, solved with scipy (``linprog`` / ``milp``). Slow and simple on
purpose; it exists to check allocator's stage optima, not to be fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from tests.plan_check import _num, read_inputs


def reference_stages(scenario: Path, whole: bool = False, rel_tol: float = 1e-6,
                     abs_tol: float = 1e-9) -> dict[str, float]:
    t = read_inputs(scenario)
    sites, staff, targets = t["sites"], t["staff"], t["targets"]
    services = t.get("services")
    svc_ids = list(services["service_id"]) if services is not None else list(
        targets["service_id"].unique())
    skill = ({r.service_id: (r.skill if isinstance(r.skill, str) else r.service_id)
              for r in services.itertuples()} if services is not None and "skill" in services
             else {k: k for k in svc_ids})
    prod = (dict(zip(services["service_id"], _num(services, "productivity", 1.0), strict=True))
            if services is not None else dict.fromkeys(svc_ids, 1.0))
    region = dict(zip(sites["site_id"], sites["region"].fillna("all") if "region" in sites
                      else ["all"] * len(sites), strict=True))
    demand, floor, weight = (_num(targets, "demand", 0).tolist(),
                             _num(targets, "min_level", 0).tolist(),
                             _num(targets, "weight", 1).tolist())
    fte = _num(staff, "fte", 0).tolist()
    cost = _num(staff, "cost_per_fte", 0).tolist()
    travel = _num(staff, "travel_cost", 0).tolist()
    mobility = (staff["mobility"].fillna("region").tolist() if "mobility" in staff
                else ["region"] * len(staff))
    triples = []  # (staff row, target row, unit cost)
    for i, person in enumerate(staff.itertuples()):
        skills = {s.strip() for s in person.skills.split(";")}
        for j, target in enumerate(targets.itertuples()):
            if skill[target.service_id] not in skills:
                continue
            home, site = person.home_site, target.site_id
            if mobility[i] == "site" and site != home:
                continue
            if mobility[i] == "region" and region[site] != region[home]:
                continue
            triples.append((i, j, cost[i] + (travel[i] if site != home else 0.0)))
    nx, nt = len(triples), len(targets)
    pairs = sorted({(i, targets.site_id.iloc[j]) for i, j, _ in triples}) if whole else []
    nz = len(pairs)
    n = nx + nt + nz
    rows, lo, hi = [], [], []

    def row() -> np.ndarray:
        r = np.zeros(n)
        rows.append(r)
        return r

    for i in range(len(staff)):
        r = row()
        for e, (ii, _, _) in enumerate(triples):
            if ii == i:
                r[e] = 1
        lo.append(-np.inf)
        hi.append(fte[i])
    for j in range(nt):
        r = row()
        for e, (_, jj, _) in enumerate(triples):
            if jj == j:
                r[e] = prod[targets.service_id.iloc[j]]
        r[nx + j] = 1
        lo.append(demand[j])
        hi.append(np.inf)
    cap = _num(sites, "capacity_fte", np.nan).tolist()
    low = _num(sites, "min_fte", 0).tolist()
    for s, site in enumerate(sites["site_id"]):
        r = row()
        for e, (_, j, _) in enumerate(triples):
            if targets.site_id.iloc[j] == site:
                r[e] = 1
        lo.append(low[s])
        hi.append(cap[s] if np.isfinite(cap[s]) else np.inf)
    if "budgets" in t:
        for b in t["budgets"].itertuples():
            r = row()
            scope = b.scope.strip()
            for e, (_, j, c) in enumerate(triples):
                site = targets.site_id.iloc[j]
                inside = (scope == "all" or scope == f"site:{site}"
                          or scope == f"region:{region[site]}")
                if inside:
                    r[e] = c
            lo.append(-np.inf)
            hi.append(float(b.amount))
    for p, (i, site) in enumerate(pairs):
        for e, (ii, j, _) in enumerate(triples):
            if ii == i and targets.site_id.iloc[j] == site:
                r = row()
                r[e], r[nx + nt + p] = 1, -fte[i]
                lo.append(-np.inf)
                hi.append(0)
    for i in range(len(staff)):
        r = row()
        for p, (ii, _) in enumerate(pairs):
            if ii == i:
                r[nx + nt + p] = 1
        lo.append(-np.inf)
        hi.append(1)
    lb = np.zeros(n)
    ub = np.concatenate([[fte[i] for i, _, _ in triples],
                         [(1 - floor[j]) * demand[j] for j in range(nt)], np.ones(nz)])
    integrality = np.concatenate([np.zeros(nx + nt), np.ones(nz)])
    c_service = np.concatenate([np.zeros(nx), weight, np.zeros(nz)])
    c_cost = np.concatenate([[c for _, _, c in triples], np.zeros(nt + nz)])
    a = np.array(rows)
    out = {}
    for name, c in (("service", c_service), ("cost", c_cost)):
        res = milp(c, constraints=LinearConstraint(a, lo, hi), bounds=Bounds(lb, ub),
                   integrality=integrality, options={"mip_rel_gap": 1e-9})
        assert res.status == 0, res.message
        out[name] = float(res.fun)
        a = np.vstack([a, c])
        lo.append(-np.inf)
        hi.append(res.fun + rel_tol * abs(res.fun) + abs_tol)
    return out
