"""The ops formulation (spec/ops-model.md): validated tables -> labeled sparse model.

Everything is keyed by integer codes and built with merges and numpy arrays: one call per
variable or constraint family, never a Python object per term. Labels are categorical so a
million-row block costs a code array, not a million strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel, RhsLinks
from allocator.formulations.base import DataBacked
from allocator.formulations.ops.data import OpsData
from allocator.scenario import PolicyConfig


@dataclass
class OpsModel(DataBacked[OpsData]):
    """The model plus the tables that map its columns back to the business."""

    model: LinearModel
    triples: pd.DataFrame  # one row per x column: i, s, k, t codes, cost, productivity
    data: OpsData
    moved_constant: float = 0.0
    scenario: Any = None  # the settings the analyses read (hiring cost, ladder span)


def _cat(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=categories)


def eligible_triples(data: OpsData) -> pd.DataFrame:
    """(staff i, site s, service k, target t) where the skill matches and mobility allows."""
    sites, staff, services, targets = data.sites, data.staff, data.services, data.targets
    site_code = pd.Series(np.arange(len(sites)), index=sites["site_id"].to_numpy())
    region_code, _ = pd.factorize(sites["region"])
    service_code = pd.Series(np.arange(len(services)), index=services["service_id"].to_numpy())

    st = pd.DataFrame({
        "i": np.arange(len(staff)),
        "h": site_code.loc[staff["home_site"].to_numpy()].to_numpy(),
        "mobility": staff["mobility"].to_numpy(),
        "skill": staff["skills"].astype(str).str.split(";").to_numpy(),
    }).explode("skill")
    st["skill"] = st["skill"].str.strip()
    st = st[st["skill"] != ""].drop_duplicates(["i", "skill"])
    st["rh"] = region_code[st["h"].to_numpy()]
    sv = pd.DataFrame({"k": np.arange(len(services)), "skill": services["skill"].to_numpy()})
    ik = st.merge(sv, on="skill")[["i", "h", "rh", "mobility", "k"]]

    tg = pd.DataFrame({
        "t": np.arange(len(targets)),
        "s": site_code.loc[targets["site_id"].to_numpy()].to_numpy(),
        "k": service_code.loc[targets["service_id"].to_numpy()].to_numpy(),
    })
    tg["rs"] = region_code[tg["s"].to_numpy()]
    parts = []
    by_site = ik[ik["mobility"] == "site"]
    parts.append(by_site.merge(tg, left_on=["k", "h"], right_on=["k", "s"]))
    by_region = ik[ik["mobility"] == "region"]
    parts.append(by_region.merge(tg, left_on=["k", "rh"], right_on=["k", "rs"]))
    anywhere = ik[ik["mobility"] == "any"]
    parts.append(anywhere.merge(tg, on="k"))
    e = pd.concat(parts, ignore_index=True)[["i", "s", "k", "t", "h"]]
    e = e.sort_values(["i", "s", "k"], kind="stable").reset_index(drop=True)
    cost = staff["cost_per_fte"].to_numpy()[e["i"].to_numpy()]
    travel = staff["travel_cost"].to_numpy()[e["i"].to_numpy()]
    e["cost"] = cost + np.where(e["s"].to_numpy() != e["h"].to_numpy(), travel, 0.0)
    e["p"] = services["productivity"].to_numpy()[e["k"].to_numpy()]
    # The triples live as long as the run: int32 codes halve what they hold beside the model.
    return e.astype({c: np.int32 for c in ("i", "s", "k", "t", "h")})


def build_ops(data: OpsData, policy: PolicyConfig) -> OpsModel:
    sites, staff, services, targets = data.sites, data.staff, data.services, data.targets
    site_ids = pd.Index(sites["site_id"])
    staff_ids = pd.Index(staff["staff_id"])
    service_ids = pd.Index(services["service_id"])
    e = eligible_triples(data)
    i, s, k, t = (e[c].to_numpy() for c in ("i", "s", "k", "t"))
    fte = staff["fte"].to_numpy()
    m = LinearModel("ops")

    x_labels = pd.DataFrame({"staff_id": _cat(i, staff_ids), "site_id": _cat(s, site_ids),
                             "service_id": _cat(k, service_ids)})
    x = m.add_variables("x", x_labels, 0.0, fte[i])
    xcol = x.start + np.arange(len(e))

    demand = targets["demand"].to_numpy()
    floor = targets["min_level"].to_numpy()
    t_site = site_ids.get_indexer(targets["site_id"])
    t_service = service_ids.get_indexer(targets["service_id"])
    t_labels = pd.DataFrame({"site_id": _cat(t_site, site_ids),
                             "service_id": _cat(t_service, service_ids)})
    u = m.add_variables("shortfall", t_labels, 0.0, (1.0 - floor) * demand)
    ucol = u.start + np.arange(len(targets))

    # availability[i]: only staff with at least one eligible triple get a row.
    staff_used, row_i = np.unique(i, return_inverse=True)
    m.add_constraints("availability", pd.DataFrame({"staff_id": _cat(staff_used, staff_ids)}),
                      row_i, xcol, np.ones(len(e)), hi=fte[staff_used],
                      description="FTE of a staff member used across sites and services")

    # coverage[s,k]: productivity * x + shortfall >= demand.
    m.add_constraints(
        "coverage", t_labels,
        np.concatenate([t, np.arange(len(targets))]), np.concatenate([xcol, ucol]),
        np.concatenate([e["p"].to_numpy(), np.ones(len(targets))]), lo=demand,
        description="workload served plus shortfall meets demand",
    )

    cap = sites["capacity_fte"].to_numpy(dtype=float)
    has_cap = np.isfinite(cap)
    site_has_x = np.zeros(len(sites), dtype=bool)
    site_has_x[s] = True
    cap_sites = np.flatnonzero(has_cap & site_has_x)
    if cap_sites.size:
        pos = np.full(len(sites), -1)
        pos[cap_sites] = np.arange(cap_sites.size)
        keep = pos[s] >= 0
        m.add_constraints("capacity", pd.DataFrame({"site_id": _cat(cap_sites, site_ids)}),
                          pos[s][keep], xcol[keep], np.ones(int(keep.sum())), hi=cap[cap_sites],
                          description="FTE a site can hold")

    lo_site = sites["min_fte"].to_numpy(dtype=float)
    min_sites = np.flatnonzero(lo_site > 0)
    if min_sites.size:
        pos = np.full(len(sites), -1)
        pos[min_sites] = np.arange(min_sites.size)
        keep = pos[s] >= 0
        m.add_constraints("min_staff", pd.DataFrame({"site_id": _cat(min_sites, site_ids)}),
                          pos[s][keep], xcol[keep], np.ones(int(keep.sum())),
                          lo=lo_site[min_sites], description="least FTE a site must have")

    budgets = data.budgets
    if len(budgets):
        members = data.budget_sites
        assert members is not None  # load_ops fills it wherever budgets exist
        b_pos = pd.Series(np.arange(len(budgets)), index=budgets["budget_id"].to_numpy())
        mem = pd.DataFrame({"b": b_pos.loc[members["budget_id"].to_numpy()].to_numpy(),
                            "s": site_ids.get_indexer(members["site_id"])}).drop_duplicates()
        terms = mem.merge(pd.DataFrame({"s": s, "e": np.arange(len(e))}), on="s")
        m.add_constraints(
            "budget", pd.DataFrame({"budget_id": budgets["budget_id"].astype(object)}),
            terms["b"].to_numpy(), xcol[terms["e"].to_numpy()],
            e["cost"].to_numpy()[terms["e"].to_numpy()], hi=budgets["amount"].to_numpy(),
            description="money spent in the budget's scope",
        )

    if policy.assignment == "whole":
        # int64: the triple codes are int32, and staff x sites can pass 2**31.
        pairs, pair_of = np.unique(i.astype(np.int64) * len(sites) + s, return_inverse=True)
        pi, ps = pairs // len(sites), pairs % len(sites)
        z = m.add_variables("assign", pd.DataFrame({"staff_id": _cat(pi, staff_ids),
                                                    "site_id": _cat(ps, site_ids)}),
                            0.0, 1.0, integer=True)
        zcol = z.start + np.arange(len(pairs))
        n = len(e)
        m.add_constraints(
            "whole_link", x_labels, np.concatenate([np.arange(n), np.arange(n)]),
            np.concatenate([xcol, zcol[pair_of]]), np.concatenate([np.ones(n), -fte[i]]),
            hi=0.0, description="work only where assigned",
        )
        one_staff, one_row = np.unique(pi, return_inverse=True)
        m.add_constraints("one_site", pd.DataFrame({"staff_id": _cat(one_staff, staff_ids)}),
                          one_row, zcol, np.ones(len(pairs)), hi=1.0,
                          description="nobody split across sites")

    objectives = {"service": {"shortfall": targets["weight"].to_numpy()},
                  "cost": {"x": e["cost"].to_numpy()}}
    moved_constant = 0.0
    if data.baseline is not None and (len(data.baseline) or data.keep_stability):
        moved_constant = _stability(m, data, e, x_labels, xcol, fte, policy)
        objectives["stability"] = {"moved_up": np.ones(len(e)), "moved_down": np.ones(len(e))}
    for name, terms in objectives.items():
        m.set_objective(name, terms, moved_constant if name == "stability" else 0.0)
    # A person's FTE also bounds their x and moved_up columns and limits their whole_link
    # rows: the analyses price one more FTE by moving them all (analysis.links).
    m.rhs_links = RhsLinks("availability", "x", ("moved_up",), "whole_link", "assign")
    return OpsModel(m, e, data, moved_constant)


def _stability(
    m: LinearModel, data: OpsData, e: pd.DataFrame, x_labels: pd.DataFrame, xcol: np.ndarray,
    fte: np.ndarray, policy: PolicyConfig,
) -> float:
    """x - x0 = up - down on every triple; baseline FTE on triples no longer possible is moved
    for sure and enters as a constant."""
    base = data.baseline
    assert base is not None
    key = pd.MultiIndex.from_arrays([x_labels["staff_id"].astype(str),
                                     x_labels["site_id"].astype(str),
                                     x_labels["service_id"].astype(str)])
    bkey = pd.MultiIndex.from_arrays([base["staff_id"], base["site_id"], base["service_id"]])
    where = key.get_indexer(bkey)
    x0 = np.zeros(len(e))
    found = where >= 0
    np.add.at(x0, where[found], base["fte"].to_numpy()[found])
    constant = float(base["fte"].to_numpy()[~found].sum())
    n = len(e)
    i = e["i"].to_numpy()
    up = m.add_variables("moved_up", x_labels, 0.0, fte[i])
    down = m.add_variables("moved_down", x_labels, 0.0, x0)
    rows = np.tile(np.arange(n), 3)
    cols = np.concatenate([xcol, up.start + np.arange(n), down.start + np.arange(n)])
    vals = np.concatenate([np.ones(n), -np.ones(n), np.ones(n)])
    m.add_constraints("stability", x_labels, rows, cols, vals, lo=x0, hi=x0,
                      description="change against the baseline plan")
    if policy.max_moved_fte is not None:
        m.add_constraints(
            "moved", pd.DataFrame({"limit": ["max_moved_fte"]}), np.zeros(2 * n, dtype=int),
            np.concatenate([up.start + np.arange(n), down.start + np.arange(n)]),
            np.ones(2 * n), hi=2 * policy.max_moved_fte - constant,
            description="FTE moved against the baseline",
        )
    return constant
