"""The floor: the ops LP built by hand in numpy from the tables, handed to highspy directly.

This is the least work any Python engine can do for this model: read the five CSV files with
pandas (typed), compute the eligible (staff, site, service) triples with array operations, lay
out the constraint matrix as CSR family by family, and hand it to HiGHS with one ``addCols``
and one ``addRows``. No labels, no validation, no output tables.

The model is the allocator's, row for row and column for column (same families, same order,
same bounds), so that solver times and objectives can be compared one to one; the worker's
``check`` configuration compares the two entry by entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HIGHS_INF = 1e30


@dataclass
class Sets:
    """Index sets and per-entry data, all integer codes (the peers are built from these too)."""

    n_staff: int
    n_sites: int
    n_services: int
    n_targets: int
    n_budgets: int
    # eligible triples, sorted by (i, s, k): staff, site, service, target, cost, productivity
    i: np.ndarray
    s: np.ndarray
    k: np.ndarray
    t: np.ndarray
    cost: np.ndarray
    p: np.ndarray
    fte: np.ndarray  # per staff
    t_site: np.ndarray  # per target
    t_service: np.ndarray
    demand: np.ndarray
    floor: np.ndarray
    weight: np.ndarray
    capacity: np.ndarray  # per site, inf where none
    min_fte: np.ndarray
    budget_amount: np.ndarray  # per budget
    member_b: np.ndarray  # (budget, site) membership pairs, sorted by budget then site
    member_s: np.ndarray


@dataclass
class FloorModel:
    n_cols: int
    n_rows: int
    lb: np.ndarray
    ub: np.ndarray
    c_service: np.ndarray
    c_cost: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    budget_start: int  # first budget row


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """The five CSV files, ids as text and amounts as floats (no validation)."""
    folder = Path(folder)
    ids = {"site_id": str, "region": str, "service_id": str, "skill": str, "staff_id": str,
           "home_site": str, "skills": str, "mobility": str, "budget_id": str, "scope": str}
    return {name: pd.read_csv(folder / f"{name}.csv", dtype=ids)
            for name in ("sites", "services", "staff", "targets", "budgets")}


def _codes(values: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """Position of each value in `universe` (all values must be present)."""
    order = np.argsort(universe)
    return order[np.searchsorted(universe[order], values)]


def _group_offsets(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order by key and CSR-style offsets of each key's run in that order."""
    order = np.argsort(keys, kind="stable")
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=starts[1:])
    return order, starts


def _ragged(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs (start, count): the owner of each element and its absolute position."""
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.zeros(counts.size, dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    pos = np.arange(int(counts.sum()), dtype=np.int64) - first[owner] + starts[owner]
    return owner, pos


def eligible(tables: dict[str, pd.DataFrame]) -> Sets:
    """Eligible triples and per-family data, with numpy only (string ids turned to codes)."""
    sites, services, staff = tables["sites"], tables["services"], tables["staff"]
    targets, budgets = tables["targets"], tables["budgets"]
    site_ids = sites["site_id"].to_numpy(dtype=str)
    service_ids = services["service_id"].to_numpy(dtype=str)
    n_sites, n_svc, n_staff = site_ids.size, service_ids.size, len(staff)
    region_names, region = np.unique(sites["region"].to_numpy(dtype=str), return_inverse=True)

    home = _codes(staff["home_site"].to_numpy(dtype=str), site_ids)
    skills = np.char.add(np.char.add(";", staff["skills"].to_numpy(dtype=str)), ";")
    has = np.zeros((n_staff, n_svc), dtype=bool)
    for k, skill in enumerate(services["skill"].to_numpy(dtype=str)):
        has[:, k] = np.char.find(skills, f";{skill};") >= 0

    t_site = _codes(targets["site_id"].to_numpy(dtype=str), site_ids)
    t_svc = _codes(targets["service_id"].to_numpy(dtype=str), service_ids)
    n_t = t_site.size
    target_of = np.full((n_sites, n_svc), -1, dtype=np.int64)
    target_of[t_site, t_svc] = np.arange(n_t)

    # Candidate sites per staff member: home only, every site of the home region, or all.
    by_region, region_start = _group_offsets(region, region_names.size)
    mobility = staff["mobility"].to_numpy(dtype=str)
    rh = region[home]
    count = np.where(mobility == "site", 1, np.where(
        mobility == "any", n_sites, region_start[rh + 1] - region_start[rh]))
    owner, pos = _ragged(np.zeros(n_staff, dtype=np.int64), count)
    mob = mobility[owner]
    site = np.where(mob == "site", home[owner], np.where(
        mob == "any", pos, by_region[np.minimum(region_start[rh[owner]] + pos, n_sites - 1)]))
    # (candidate pair x service): skill held and target present; row-major keeps (i, s, k).
    pair, k = np.nonzero(has[owner] & (target_of[site] >= 0))
    i, s = owner[pair], site[pair]
    t = target_of[s, k]
    cost_i = staff["cost_per_fte"].to_numpy(dtype=float)
    travel = staff["travel_cost"].to_numpy(dtype=float)
    cost = cost_i[i] + np.where(s != home[i], travel[i], 0.0)

    b_ids = budgets["budget_id"].to_numpy(dtype=str)
    scope = budgets["scope"].to_numpy(dtype=str)
    kind = np.char.partition(scope, ":")
    pairs_b, pairs_s = [], []
    for b in range(b_ids.size):
        what, ref = kind[b, 0], kind[b, 2]
        if what == "all":
            members = np.arange(n_sites)
        elif what == "region":
            r = np.flatnonzero(region_names == ref)[0]
            members = np.sort(by_region[region_start[r]:region_start[r + 1]])
        else:
            members = _codes(np.array([ref]), site_ids)
        pairs_b.append(np.full(members.size, b))
        pairs_s.append(members)
    capacity = sites["capacity_fte"].to_numpy(dtype=float)
    return Sets(
        n_staff=n_staff, n_sites=n_sites, n_services=n_svc, n_targets=n_t,
        n_budgets=b_ids.size, i=i, s=s, k=k, t=t, cost=cost,
        p=services["productivity"].to_numpy(dtype=float)[k],
        fte=staff["fte"].to_numpy(dtype=float), t_site=t_site, t_service=t_svc,
        demand=targets["demand"].to_numpy(dtype=float),
        floor=targets["min_level"].to_numpy(dtype=float),
        weight=targets["weight"].to_numpy(dtype=float),
        capacity=np.where(np.isnan(capacity), np.inf, capacity),
        min_fte=sites["min_fte"].to_numpy(dtype=float),
        budget_amount=budgets["amount"].to_numpy(dtype=float),
        member_b=np.concatenate(pairs_b) if pairs_b else np.zeros(0, dtype=np.int64),
        member_s=np.concatenate(pairs_s) if pairs_s else np.zeros(0, dtype=np.int64),
    )


def build(d: Sets) -> FloorModel:
    """Columns x (triples) then u (targets); rows availability, coverage, capacity,
    min_staff, budget, in the allocator's order; CSR assembled family by family."""
    n_e, n_t = d.i.size, d.n_targets
    x = np.arange(n_e, dtype=np.int64)
    indptr_parts, index_parts, value_parts, lo_parts, hi_parts = [], [], [], [], []
    nnz = 0

    def family(counts: np.ndarray, cols: np.ndarray, vals: np.ndarray, lo, hi) -> None:
        nonlocal nnz
        indptr_parts.append(nnz + np.cumsum(counts))
        index_parts.append(cols)
        value_parts.append(vals)
        lo_parts.append(np.broadcast_to(lo, counts.shape))
        hi_parts.append(np.broadcast_to(hi, counts.shape))
        nnz += int(counts.sum())

    # availability: triples are sorted by staff, so the block is CSR as it stands.
    per_staff = np.bincount(d.i, minlength=d.n_staff)
    used = per_staff > 0
    family(per_staff[used], x, np.ones(n_e), -np.inf, d.fte[used])
    # coverage: x grouped by target (ascending), then that target's shortfall column.
    rows = np.concatenate([d.t, np.arange(n_t)])
    order = np.argsort(rows, kind="stable")
    cols = np.concatenate([x, n_e + np.arange(n_t)])[order]
    vals = np.concatenate([d.p, np.ones(n_t)])[order]
    family(np.bincount(rows, minlength=n_t), cols, vals, d.demand, np.inf)
    # capacity and min_staff: x grouped by site.
    by_s, s_start = _group_offsets(d.s, d.n_sites)
    per_site = np.diff(s_start)
    cap_sites = np.flatnonzero(np.isfinite(d.capacity) & (per_site > 0))
    min_sites = np.flatnonzero(d.min_fte > 0)
    for rows_sites, lo, hi in ((cap_sites, -np.inf, d.capacity[cap_sites]),
                               (min_sites, d.min_fte[min_sites], np.inf)):
        if rows_sites.size:
            c = per_site[rows_sites]
            _, p = _ragged(s_start[rows_sites], c)
            family(c, by_s[p], np.ones(p.size), lo, hi)
    budget_start = sum(part.size for part in indptr_parts)
    # budget: x at each member site, with its cost.
    if d.n_budgets:
        c_member = per_site[d.member_s]
        _owner, p = _ragged(s_start[d.member_s], c_member)
        counts = np.bincount(d.member_b, weights=c_member, minlength=d.n_budgets).astype(np.int64)
        family(counts, by_s[p], d.cost[by_s[p]], -np.inf, d.budget_amount)

    ub_u = (1.0 - d.floor) * d.demand
    c_service = np.concatenate([np.zeros(n_e), d.weight])
    c_cost = np.concatenate([d.cost, np.zeros(n_t)])
    return FloorModel(
        n_cols=n_e + n_t, n_rows=budget_start + d.n_budgets,
        lb=np.zeros(n_e + n_t), ub=np.concatenate([d.fte[d.i], ub_u]),
        c_service=c_service, c_cost=c_cost,
        row_lo=np.concatenate(lo_parts), row_hi=np.concatenate(hi_parts),
        indptr=np.concatenate([[0], *indptr_parts]).astype(np.int32),
        indices=np.concatenate(index_parts).astype(np.int32),
        data=np.concatenate(value_parts).astype(float), budget_start=budget_start,
    )


def new_highs(method: str = "auto", threads: int = 1, seed: int = 0):
    """A silent Highs with the allocator's settings (threads 1, seed 0) and a method."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", seed)
    if threads:
        h.setOptionValue("threads", threads)
    if method in ("simplex", "ipm", "pdlp"):
        h.setOptionValue("solver", method)
    elif method in ("dual", "primal"):
        h.setOptionValue("solver", "simplex")
        h.setOptionValue("simplex_strategy", 1 if method == "dual" else 4)
    return h


def hand_over(h, m: FloorModel, c: np.ndarray | None = None) -> None:
    """One addCols (no entries), one addRows from CSR."""
    empty = np.zeros(0, dtype=np.int32)
    cost = m.c_service if c is None else c
    h.addCols(m.n_cols, cost, m.lb, np.minimum(m.ub, HIGHS_INF), 0, empty, empty, np.zeros(0))
    h.addRows(m.n_rows, np.maximum(m.row_lo, -HIGHS_INF), np.minimum(m.row_hi, HIGHS_INF),
              m.data.size, m.indptr, m.indices, m.data)


def solve_lexicographic(h, m: FloorModel, rel_tol: float = 1e-6, abs_tol: float = 1e-9):
    """Service stage, hold it, cost stage; returns per-stage (objective, run seconds)."""
    import time

    stages = []
    for name, c in (("service", m.c_service), ("cost", m.c_cost)):
        if name == "cost":
            h.changeColsCost(m.n_cols, np.arange(m.n_cols, dtype=np.int32), c)
        start = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - start
        status = h.modelStatusToString(h.getModelStatus())
        obj = float(h.getInfo().objective_function_value)
        stages.append({"name": name, "objective": obj, "seconds": seconds, "status": status})
        if name == "service":
            nz = np.flatnonzero(c).astype(np.int32)
            hold = obj + rel_tol * abs(obj) + abs_tol
            h.addRow(-HIGHS_INF, hold, nz.size, nz, c[nz])
    return stages
