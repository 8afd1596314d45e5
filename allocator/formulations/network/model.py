"""The network model (spec/more-models.md): which sites to keep open, and who each serves.

The capacitated facility location problem, linked by site. The decision is written as
``closed_s = 1 - open_s`` (binary), so that the capacity row reads
``sum_p f_sp + cap_s closed_s <= cap_s``: for a site kept open its right-hand side is the
capacity in sites.csv and its activity the load, so its price, range, ladder and marginal
are in the file's terms (a capacity of 795..905, not a row limit of -105..5). The
relaxation is the same as with ``sum_p f_sp <= cap_s open_s``; the fixed costs of every
candidate site are the objective's constant, minus ``fixed_s closed_s``. A site with no
site ships only if open: ``sum_p f_sp + M closed_s <= M`` with M past any plan (so that
moving a closed site's capacity row lets it ship nothing: its capacity is worth nothing
until it opens, as in a re-solve with sites.csv changed). The spec's
per-lane rows ``f_sp <= d_p open_s`` are left out on purpose: they are implied once the
sites are decided (a lane cannot carry more than its point's demand, ``sum_s f_sp = d_p``),
so the optimum is the same, but they carry each demand figure as a coefficient in every
lane of its point. A demand's price read from its row (sensitivity.csv, ladders) then moved
the row alone while every lane still held the old figure: the price of a demand nobody can
change (Liverpool 10.14 where one more unit costs 3.46). Without them the demand figure is
the demand row's right-hand side and nothing else (flows have no upper bound of their own),
so the row's dual, its range and its left/right prices are those of demand.csv. HiGHS's
cuts recover what the LP relaxation loses (OR-Library cap41...cap134 solve as fast; capb
faster).

With ``policy.single_source`` each point is served by one site: the flow is then ``d_p y_sp``
with ``y_sp`` binary, so the model keeps one column per lane (no flow column beside it),
``y_sp + closed_s <= 1`` links it, and every row stays integer-friendly for CP-SAT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel
from allocator.errors import Problem
from allocator.formulations.base import DataBacked
from allocator.formulations.tabular import cat, explicit_sense, read_tables, sort_ids
from allocator.scenario import Scenario
from allocator.tables.readers import LoadedTable
from allocator.tables.schema import Col, Schema, check_reference

SCHEMAS: dict[str, Schema] = {
    "sites": Schema("sites", (
        Col("site_id"),
        Col("fixed_cost", "float", min=0),
        Col("capacity", "float", min=0, nullable=True),  # empty: no limit
        Col("status", "choice", required=False, default="free",
            choices=("open", "closed", "free")),
    ), unique=("site_id",)),
    "demand": Schema("demand", (
        Col("point_id"),
        Col("demand", "float", min=0),
    ), unique=("point_id",)),
    "lanes": Schema("lanes", (
        Col("site_id"),
        Col("point_id"),
        Col("unit_cost", "float", min=0),
        Col("distance", "float", required=False, min=0, nullable=True),
    ), unique=("site_id", "point_id")),
}
REQUIRED = ("sites", "demand", "lanes")
OPEN = 0.5  # a binary above this is 1
ZERO_FLOW = 1e-9  # below this a flow is solver noise


@dataclass
class NetworkData:
    """Validated tables; `lanes` holds only the usable lanes (positive demand, within
    max_distance, site not closed), with integer codes s (site) and p (point)."""

    sites: pd.DataFrame
    demand: pd.DataFrame
    lanes: pd.DataFrame
    single_source: bool
    sources: dict[str, LoadedTable] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class NetworkModel(DataBacked[NetworkData]):
    model: LinearModel
    data: NetworkData


def load_network(scenario: Scenario) -> NetworkData:
    """Read and validate sites, demand and lanes; every problem reported at once."""
    explicit_sense(scenario, "network", "min")
    found = read_tables(scenario, SCHEMAS, REQUIRED, lower_columns=("status",))
    sites, demand, lanes = (found.frames[n] for n in REQUIRED)
    site_ids, point_ids = pd.Index(sites["site_id"]), pd.Index(demand["point_id"])
    lane_table = found.loaded["lanes"]
    check_reference(lane_table, lanes, "site_id", site_ids, "site", found.problems)
    check_reference(lane_table, lanes, "point_id", point_ids, "demand point", found.problems)
    if site_ids.has_duplicates or point_ids.has_duplicates:
        found.raise_if_any()  # reported by the schema (row, column); ids must index below

    usable = np.ones(len(lanes), dtype=bool)
    limit = scenario.policy.max_distance
    if limit is not None:
        if "distance" not in lane_table.frame.columns:
            found.problems.append(Problem(
                lane_table.source, f"policy.max_distance = {limit:g} needs a distance column "
                "in the lanes table", None, "distance"))
        else:
            distance = lanes["distance"].to_numpy(dtype=float)
            raw = lane_table.frame["distance"].astype(object)
            empty = (raw.isna() | raw.astype(str).str.strip().eq("")).to_numpy()
            found.report("lanes", empty, "distance", f"empty cell; policy.max_distance = "
                         f"{limit:g} needs every lane's distance")
            usable &= ~(distance > limit)

    # Lanes with a bad reference are already reported; leaving them out lets the check
    # below still name every stranded point in the same report.
    s = site_ids.get_indexer(lanes["site_id"])
    p = point_ids.get_indexer(lanes["point_id"])
    usable &= (s >= 0) & (p >= 0)
    status = sites["status"].to_numpy().astype(str)
    d = demand["demand"].to_numpy(dtype=float)
    within = usable.copy()
    usable &= (status[s] != "closed") & (d[p] > 0)
    served = np.zeros(len(demand), dtype=bool)
    served[p[usable]] = True
    reachable = np.zeros(len(demand), dtype=bool)
    reachable[p[within]] = True
    stranded = (d > 0) & ~served
    found.report("demand", stranded & reachable, "point_id", "this point has demand but only "
                 "sites with status = closed have a lane to it", demand["point_id"])
    found.report("demand", stranded & ~reachable, "point_id", "this point has demand but no "
                 "lane serves it" + (f" within max_distance {limit:g}" if limit is not None
                                     else ""), demand["point_id"])
    found.raise_if_any()

    kept = lanes[usable].assign(s=s[usable], p=p[usable]).reset_index(drop=True)
    data = NetworkData(sites, demand, kept, scenario.policy.single_source, found.loaded)
    dropped = int((~within).sum())
    if dropped and limit is not None:
        data.warnings.append(f"{dropped} lanes longer than max_distance {limit:g} left out")
    cap = sites["capacity"].to_numpy(dtype=float)
    if np.isfinite(cap).all() and cap[status != "closed"].sum() < d.sum() - 1e-9:
        data.warnings.append(
            f"the sites not closed hold {cap[status != 'closed'].sum():g} and the points "
            f"demand {d.sum():g}: no plan can serve them all")
    return data


def build_network(data: NetworkData) -> NetworkModel:
    """One call per family: closed, flow (or serve), demand, capacity, link/open_only."""
    sites, demand, lanes = data.sites, data.demand, data.lanes
    site_ids, point_ids = pd.Index(sites["site_id"]), pd.Index(demand["point_id"])
    s, p = lanes["s"].to_numpy(), lanes["p"].to_numpy()
    d = demand["demand"].to_numpy(dtype=float)
    n = len(lanes)
    m = LinearModel("network")

    status = sites["status"].to_numpy().astype(str)
    shut = m.add_variables("closed", pd.DataFrame({"site_id": site_ids.astype(object)}),
                           (status == "closed").astype(float),
                           (status != "open").astype(float), integer=True)
    ccol = shut.start + np.arange(len(sites))
    lane_labels = pd.DataFrame({"site_id": cat(s, site_ids), "point_id": cat(p, point_ids)})
    # `unit` is the flow a column stands for: the flow itself, or d_p when it means "serves".
    if data.single_source:
        lane = m.add_variables("serve", lane_labels, 0.0, 1.0, integer=True)
        unit = d[p]
    else:  # no upper bound: the demand row bounds a flow, and the demand figure stays its own
        lane = m.add_variables("flow", lane_labels, 0.0, np.inf)
        unit = np.ones(n)
    lcol = lane.start + np.arange(n)

    points = np.flatnonzero(d > 0)
    row_of = np.full(len(demand), -1)
    row_of[points] = np.arange(points.size)
    m.add_constraints("demand", pd.DataFrame({"point_id": cat(points, point_ids)}), row_of[p],
                      lcol, unit if not data.single_source else np.ones(n),
                      lo=1.0 if data.single_source else d[points],
                      hi=1.0 if data.single_source else d[points],
                      description="each point's demand served in full")

    cap = sites["capacity"].to_numpy(dtype=float)
    candidate = status != "closed"
    limited = np.flatnonzero(np.isfinite(cap) & candidate)
    if limited.size:
        pos = np.full(len(sites), -1)
        pos[limited] = np.arange(limited.size)
        keep = pos[s] >= 0
        m.add_constraints(
            "capacity", pd.DataFrame({"site_id": cat(limited, site_ids)}),
            np.concatenate([pos[s][keep], np.arange(limited.size)]),
            np.concatenate([lcol[keep], ccol[limited]]),
            np.concatenate([unit[keep], cap[limited]]), hi=cap[limited],
            description="flow out of a site within its capacity, none if closed")

    if data.single_source:  # y_sp + closed_s <= 1: no demand figure in it
        m.add_constraints("link", lane_labels, np.tile(np.arange(n), 2),
                          np.concatenate([lcol, ccol[s]]),
                          np.concatenate([np.ones(n), np.ones(n)]), hi=1.0,
                          description="a point is served only from an open site")
    else:  # every site that may open ships only if open, whatever its capacity row says
        free = np.flatnonzero(candidate & np.isin(np.arange(len(sites)), s))
        pos = np.full(len(sites), -1)
        pos[free] = np.arange(free.size)
        keep = pos[s] >= 0
        reach = 2.0 * float(d.sum()) + 1.0
        m.add_constraints(
            "open_only", pd.DataFrame({"site_id": cat(free, site_ids)}),
            np.concatenate([pos[s][keep], np.arange(free.size)]),
            np.concatenate([lcol[keep], ccol[free]]),
            np.concatenate([np.ones(int(keep.sum())), np.full(free.size, reach)]),
            hi=reach, description="a closed site ships nothing (the limit, twice all demand, "
            "is past any plan)")

    fixed = sites["fixed_cost"].to_numpy(dtype=float)
    m.set_objective("cost", {"closed": -fixed, lane.name: lanes["unit_cost"].to_numpy() * unit},
                    constant=float(fixed.sum()))
    return NetworkModel(m, data)


def network_tables(built: NetworkModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
    """plan (flows by lane), sites (open or closed, load, cost) and points (who serves them)."""
    data, model = built.data, built.model
    sites, demand, lanes = data.sites, data.demand, data.lanes
    s, p = lanes["s"].to_numpy(), lanes["p"].to_numpy()
    d = demand["demand"].to_numpy(dtype=float)
    if data.single_source:
        flow = np.where(x[model.var_blocks["serve"].slice] > OPEN, d[p], 0.0)
    else:
        flow = np.clip(x[model.var_blocks["flow"].slice], 0.0, None)
        flow = np.where(flow > ZERO_FLOW * np.maximum(1.0, d[p]), flow, 0.0)
    cost = flow * lanes["unit_cost"].to_numpy()
    used = flow > 0
    plan = sort_ids(pd.DataFrame({
        "site_id": lanes["site_id"].to_numpy()[used],
        "point_id": lanes["point_id"].to_numpy()[used],
        "flow": flow[used], "share": flow[used] / d[p[used]], "cost": cost[used],
    }), ["site_id", "point_id"])

    is_open = x[model.var_blocks["closed"].slice] < OPEN
    fixed = sites["fixed_cost"].to_numpy(dtype=float)
    load = np.bincount(s, weights=flow, minlength=len(sites))
    cap = sites["capacity"].to_numpy(dtype=float)
    site_table = sort_ids(pd.DataFrame({
        "site_id": sites["site_id"].to_numpy(), "status": sites["status"].to_numpy(),
        "decision": np.where(is_open, "open", "closed"), "capacity": cap, "load": load,
        "utilization": np.divide(load, cap, out=np.full(len(sites), np.nan),
                                 where=np.isfinite(cap) & (cap > 0)),
        "fixed_cost": np.where(is_open, fixed, 0.0),
        "flow_cost": np.bincount(s, weights=cost, minlength=len(sites)),
    }), ["site_id"])

    served = np.bincount(p, weights=flow, minlength=len(demand))
    point_table = sort_ids(pd.DataFrame({
        "point_id": demand["point_id"].to_numpy(), "demand": d, "served": served,
        "sites": np.bincount(p[used], minlength=len(demand)),
        "cost": np.bincount(p, weights=cost, minlength=len(demand)),
    }), ["point_id"])
    return {"plan": plan, "sites": site_table, "points": point_table}
