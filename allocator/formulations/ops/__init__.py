"""The ops model (spec/ops-model.md): budgets, staff, sites and service targets.

One package: `data` loads and checks the tables, `model` builds the LP/MIP, `tables` turns
a solution into plan.csv and the rest, `bottlenecks` and `hiring` say what limits the plan in
business words, `diagnosis` explains an infeasible instance. This module holds the plugin the
pipeline sees, and is the only one that imports the others."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from allocator.formulations.base import Formulation, ReportWords
from allocator.formulations.ops.data import OpsData, load_ops
from allocator.formulations.ops.model import OpsModel, build_ops
from allocator.scenario import Scenario


class OpsFormulation(Formulation[OpsData, OpsModel]):
    """spec/ops-model.md: budgets, staff, sites and service targets."""

    name = "ops"

    def load(self, scenario: Scenario) -> OpsData:
        return load_ops(scenario)

    def build(self, data: OpsData, scenario: Scenario) -> OpsModel:
        built = build_ops(data, scenario.policy)
        built.scenario = scenario
        return built

    def extra_outputs(
        self, built: OpsModel, x: np.ndarray, deadline: float | None = None
    ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """hiring.csv: the value of one more FTE hired at each site and skill."""
        scenario = built.scenario
        if scenario is None or not scenario.output.sensitivity:
            return {}, {}
        from allocator.formulations.ops.hiring import MAX_NONZEROS, hiring_table

        if built.model.nnz > MAX_NONZEROS:  # its stages would be solved a second time
            return {}, {"hiring.txt": (
                f"hiring.csv not written: the model has {built.model.nnz:,} nonzeros, more "
                f"than {MAX_NONZEROS:,}, and pricing new hires re-solves each stage; "
                "bottlenecks.md still says where to hire among today's staff\n")}

        if deadline is not None and time.monotonic() >= deadline:
            return {}, {"hiring.txt": "hiring.csv not written: the run's time limit was "
                                      "reached before new hires could be priced\n"}
        table = hiring_table(
            built, x, list(scenario.objective.order), scenario.objective.mode,
            dict(scenario.objective.weights), scenario.objective.rel_tol,
            scenario.objective.abs_tol, getattr(scenario.output, "hiring_cost", "median"),
            deadline=deadline)
        if table.attrs.get("stopped"):
            return {"hiring": table}, {"hiring.txt": (
                "hiring.csv: the run's time limit stopped the pricing of new hires; the rows "
                f"not reached ({table.attrs['stopped']}) keep their estimates or no value\n")}
        return {"hiring": table}, {}

    def plan_tables(self, built: OpsModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
        from allocator.formulations.ops.tables import plan_tables

        return plan_tables(built, x)

    def bottlenecks(
        self, built: OpsModel, sensitivity: pd.DataFrame, tables: dict[str, pd.DataFrame],
        title: str, ladders: pd.DataFrame | None,
    ) -> tuple[str, pd.DataFrame] | None:
        from allocator.formulations.ops.bottlenecks import bottlenecks_markdown

        coverage = tables.get("coverage")
        weighted = None
        if coverage is not None and not coverage.empty:
            targets = built.data.targets
            weight = pd.Series(targets["weight"].to_numpy(dtype=float), index=pd.MultiIndex.
                               from_arrays([targets["site_id"].astype(str),
                                            targets["service_id"].astype(str)]))
            key = pd.MultiIndex.from_arrays([coverage["site_id"].astype(str),
                                             coverage["service_id"].astype(str)])
            weighted = float((weight.reindex(key).to_numpy()
                              * coverage["shortfall"].to_numpy(dtype=float)).sum())
        return bottlenecks_markdown(sensitivity, built.data, tables["sites"], title, ladders,
                                    moved_constant=built.moved_constant, coverage=coverage,
                                    hiring=tables.get("hiring"), service_value=weighted)

    def report_words(self) -> ReportWords:
        from allocator.formulations.ops import bottlenecks as words

        return ReportWords(stage_scale=words.STAGE_SCALE,
                           stage_notes={"service": words.WEIGHTED_SHORTFALL,
                                        "weighted": words.WEIGHTED_SHORTFALL},
                           sentence=words.sentence, what_if=words.what_if_sentences,
                           hiring=words.hiring_sentences)

    def input_tables(self, built: OpsModel) -> dict[str, pd.DataFrame]:
        data = built.data
        tables = {"budgets": data.budgets, "staff": data.staff, "sites": data.sites,
                  "targets": data.targets}
        return {name: frame for name, frame in tables.items() if frame is not None}

    def diagnose(
        self, built: OpsModel, scenario: Scenario
    ) -> tuple[str, dict[str, Any]] | None:
        from allocator.formulations.ops.diagnosis import diagnose, diagnosis_markdown

        limit = scenario.solver.time_limit or 120.0
        diag = diagnose(built, scenario.policy, limit)
        return diagnosis_markdown(diag, scenario.name), diag.to_json()
