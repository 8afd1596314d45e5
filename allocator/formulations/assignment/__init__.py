"""The assignment model (spec/more-models.md): tasks, resources, options.

`model` loads, builds and writes the tables; this module holds the plugin (and its repairs
for an infeasible instance)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from allocator.formulations.assignment.model import (
    AssignmentData,
    AssignmentModel,
    assignment_tables,
    build_assignment,
    load_assignment,
)
from allocator.formulations.base import Formulation
from allocator.scenario import Scenario


class AssignmentFormulation(Formulation[AssignmentData, AssignmentModel]):
    """spec/more-models.md, assignment: tasks, resources, options."""

    name = "assignment"

    def load(self, scenario: Scenario) -> AssignmentData:
        return load_assignment(scenario)

    def build(self, data: AssignmentData, scenario: Scenario) -> AssignmentModel:
        return build_assignment(data)

    def plan_tables(self, built: AssignmentModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
        return assignment_tables(built, x)

    def diagnose(self, built: AssignmentModel, scenario: Scenario
                 ) -> tuple[str, dict[str, Any]] | None:
        """Capacity repairs in resources.csv terms, verified by rebuilding from the changed
        table and re-solving; then the generic row repairs and conflict set."""
        from allocator.analysis.diagnosis import (
            Lever,
            changed,
            diagnosis_with_options,
            feasible,
        )

        data, model = built.data, built.model
        limit = float(scenario.solver.time_limit or 60.0)
        levers = []
        block = model.con_blocks.get("capacity")
        if block is not None:
            cap = data.resources["capacity"].to_numpy(dtype=float)
            r = data.options["r"].to_numpy()
            limited = np.flatnonzero(np.isfinite(cap) & np.isin(np.arange(len(cap)), r))
            levers += [Lever("capacity", "resources", int(k), "capacity",
                             str(data.resources["resource_id"].iloc[k]), float(cap[k]), 1.0,
                             row=block.start + i) for i, k in enumerate(limited)]

        def verify(repairs: list[dict[str, Any]]) -> bool:
            again = dataclasses.replace(
                data, resources=changed(data.resources, repairs, "resources", "capacity"))
            return feasible(build_assignment(again).model, limit)

        return diagnosis_with_options(model, scenario.name, limit, levers, data.sources,
                                      verify)
