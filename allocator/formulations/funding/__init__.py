"""The funding model (spec/more-models.md): programs, response curves, budgets.

`model` loads, builds and writes the tables, `tradeoff` traces value against the total
budget; this module holds the plugin (and its repairs for an infeasible instance)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from allocator.formulations.base import Formulation
from allocator.formulations.funding.model import (
    FundingData,
    FundingModel,
    build_funding,
    funding_tables,
    load_funding,
)
from allocator.scenario import Scenario


class FundingFormulation(Formulation[FundingData, FundingModel]):
    """spec/more-models.md, funding: programs, response, budgets (and draws)."""

    name = "funding"

    def load(self, scenario: Scenario) -> FundingData:
        return load_funding(scenario)

    def build(self, data: FundingData, scenario: Scenario) -> FundingModel:
        return build_funding(data)

    def plan_tables(self, built: FundingModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
        return funding_tables(built, x)

    def diagnose(self, built: FundingModel, scenario: Scenario
                 ) -> tuple[str, dict[str, Any]] | None:
        """Repairs in budgets.csv and programs.csv terms (budgets only, spend floors only,
        the cheapest mix), each verified by rebuilding from the changed tables and
        re-solving; then the generic row repairs and conflict set. A whole program's floor
        (funded in full) is a yes/no, not a figure to lower: it shows in the conflict set."""
        from allocator.analysis.diagnosis import (
            Lever,
            changed,
            diagnosis_with_options,
            feasible,
        )

        data, model = built.data, built.model
        limit = float(scenario.solver.time_limit or 60.0)
        levers = []
        block = model.con_blocks.get("budget")
        if block is not None:
            amount = data.budgets["amount"].to_numpy(dtype=float)
            levers += [Lever("budget", "budgets", k, "amount",
                             str(data.budgets["budget_id"].iloc[k]), float(amount[k]), 1.0,
                             row=block.start + k) for k in range(len(amount))]
        low = data.programs["min_spend"].to_numpy(dtype=float)
        whole = data.programs["whole"].to_numpy(dtype=bool)
        spend = model.var_blocks["spend"].start
        levers += [Lever("floors", "programs", int(k), "min_spend",
                         str(data.programs["program_id"].iloc[k]), float(low[k]), -1.0,
                         col=spend + int(k)) for k in np.flatnonzero((low > 0) & ~whole)]

        def verify(repairs: list[dict[str, Any]]) -> bool:
            again = dataclasses.replace(
                data, budgets=changed(data.budgets, repairs, "budgets", "amount"),
                programs=changed(data.programs, repairs, "programs", "min_spend"))
            return feasible(build_funding(again).model, limit)

        return diagnosis_with_options(model, scenario.name, limit, levers, data.sources,
                                      verify)

    def extra_outputs(
        self, built: FundingModel, x: np.ndarray, deadline: float | None = None
    ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """tradeoff.csv and tradeoff.svg: value against the total budget, traced exactly.

        Traced by HiGHS whatever solver found the plan (its ranging is what traces it). If it
        cannot be traced, tradeoff.csv keeps its header and tradeoff.txt says why, so an
        empty curve is never silent."""
        from allocator.formulations.funding.tradeoff import COLUMNS, budget_tradeoff, tradeoff_svg

        files: dict[str, str] = {}
        try:
            curve = budget_tradeoff(built, x)
            why = "" if len(curve) else ("no total budget is feasible: the least and the most "
                                         "total spend could not be found")
        except Exception as exc:  # the plan stands; the missing curve is said, not hidden
            curve, why = pd.DataFrame(columns=COLUMNS), f"{type(exc).__name__}: {exc}"
        if why:
            files["tradeoff.txt"] = f"The trade-off curve could not be traced: {why}.\n"
        files["tradeoff.svg"] = tradeoff_svg(curve, built, x, why)
        return {"tradeoff": curve}, files
