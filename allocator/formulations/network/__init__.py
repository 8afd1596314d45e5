"""The network model (spec/more-models.md): sites, demand, lanes.

`model` loads, builds and writes the tables; this module holds the plugin (and its repairs
for an infeasible instance)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from allocator.formulations.base import Formulation
from allocator.formulations.network.model import (
    NetworkData,
    NetworkModel,
    build_network,
    load_network,
    network_tables,
)
from allocator.scenario import Scenario


class NetworkFormulation(Formulation[NetworkData, NetworkModel]):
    """spec/more-models.md, network: sites, demand, lanes."""

    name = "network"

    def load(self, scenario: Scenario) -> NetworkData:
        return load_network(scenario)

    def build(self, data: NetworkData, scenario: Scenario) -> NetworkModel:
        return build_network(data)

    def plan_tables(self, built: NetworkModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
        return network_tables(built, x)


    def diagnose(self, built: NetworkModel, scenario: Scenario
                 ) -> tuple[str, dict[str, Any]] | None:
        """Repairs in sites.csv and demand.csv terms (capacity only, serve less demand, the
        cheapest mix), each verified by rebuilding from the changed tables and re-solving;
        then the generic row repairs and conflict set."""
        from allocator.analysis.diagnosis import (
            Lever,
            changed,
            diagnosis_with_options,
            feasible,
        )

        data, model = built.data, built.model
        limit = float(scenario.solver.time_limit or 60.0)
        ccol = model.var_blocks["closed"].start
        levers = []
        cap = data.sites["capacity"].to_numpy(dtype=float)
        block = model.con_blocks.get("capacity")
        if block is not None:
            limited = np.flatnonzero(np.isfinite(cap) & (data.sites["status"].to_numpy()
                                                         .astype(str) != "closed"))
            levers += [Lever("capacity", "sites", int(site), "capacity",
                             str(data.sites["site_id"].iloc[site]), float(cap[site]), 1.0,
                             row=block.start + k, guard=ccol + int(site))
                       for k, site in enumerate(limited)]
        d = data.demand["demand"].to_numpy(dtype=float)
        if not data.single_source:  # there the demand row counts sites, not units
            rows = model.con_blocks["demand"]
            levers += [Lever("demand", "demand", int(point), "demand",
                             str(data.demand["point_id"].iloc[point]), float(d[point]), -1.0,
                             row=rows.start + k)
                       for k, point in enumerate(np.flatnonzero(d > 0))]

        def verify(repairs: list[dict[str, Any]]) -> bool:
            sites = changed(data.sites, repairs, "sites", "capacity")
            demand = changed(data.demand, repairs, "demand", "demand")
            served = demand["demand"].to_numpy(dtype=float)
            lanes = data.lanes[served[data.lanes["p"].to_numpy()] > 0].reset_index(drop=True)
            again = dataclasses.replace(data, sites=sites, demand=demand, lanes=lanes)
            return feasible(build_network(again).model, limit)

        return diagnosis_with_options(model, scenario.name, limit, levers, data.sources,
                                      verify)
