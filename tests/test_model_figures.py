"""The figures of the assignment, network and funding models, checked by re-solves that change
the input a user would change (demand.csv, budgets.csv, sites.csv) or by an independent
formulation: a price is the price of an input, a curve is the best value at each budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli

MODELS = ROOT / "models"
DATA = ROOT / "data"


def copy_model(name: str, tmp_path: Path, settings: str = "") -> Path:
    """models/<name>.toml with its data folder copied beside it, for inputs to be edited."""
    folder = tmp_path / name
    shutil.copytree(DATA / name, folder)
    text = (MODELS / f"{name}.toml").read_text().replace(f"../data/{name}/", "")
    scenario = folder / "scenario.toml"
    scenario.write_text(text + settings)
    return scenario


def library_objective(scenario: Path, overrides: list[str] | None = None) -> float:
    """The optimum (in the scenario's own sense) by the library path: load, build, solve."""
    from allocator.analysis.stages import solve_stages, stage_objectives
    from allocator.formulations import get_formulation
    from allocator.scenario import load_scenario
    from allocator.solvers.base import SolverSettings, Status

    sc = load_scenario(scenario, overrides or [])
    formulation = get_formulation(sc.model)
    built = formulation.build(formulation.load(sc), sc)
    objectives = stage_objectives(built.model, sc.objective.order, sc.objective.mode, {})
    result = solve_stages(built.model, objectives, "highs",
                          SolverSettings(threads=1, mip_gap=1e-9))
    assert result.status is Status.OPTIMAL, result.message
    sign = -1.0 if built.model.maximize else 1.0
    return sign * result.stages[0].objective


# -- 1. network demand prices ----------------------------------------------------------------
def test_network_demand_prices_are_those_of_demand_csv(tmp_path):
    """Every demand point of the sample: the stated price (dual, and left/right where given)
    against re-solves with that point's demand one unit lower and higher in demand.csv."""
    scenario = copy_model("network", tmp_path)
    run = run_cli("solve", scenario, "--set", "output.report=false", out=tmp_path / "run")
    assert run.code == 0, run.stderr
    sens = pd.read_csv(run.out / "sensitivity.csv", dtype={"labels": str})
    rows = sens[(sens["kind"] == "constraint") & (sens["family"] == "demand")]
    demand_file = scenario.parent / "demand.csv"
    demand = pd.read_csv(demand_file, dtype={"point_id": str})
    base = run.summary["objectives"]["cost"]
    assert len(rows) == len(demand) == 18
    wrong = []
    for k, point in enumerate(demand["point_id"]):
        row = rows[rows["labels"] == point].iloc[0]
        moved = {}
        for step in (-1.0, 1.0):
            changed = demand.copy()
            changed.loc[k, "demand"] += step
            changed.to_csv(demand_file, index=False)
            moved[step] = library_objective(scenario)
        demand.to_csv(demand_file, index=False)
        up, down = moved[1.0] - base, base - moved[-1.0]
        stated_up = row["dual_right"] if np.isfinite(row["dual_right"]) else row["dual"]
        stated_down = row["dual_left"] if np.isfinite(row["dual_left"]) else row["dual"]
        if row["rhs_high"] >= row["rhs"] + 1 and abs(stated_up - up) > 1e-6:
            wrong.append((point, "up", stated_up, up))
        if row["rhs_low"] <= row["rhs"] - 1 and abs(stated_down - down) > 1e-6:
            wrong.append((point, "down", stated_down, down))
        if bool(row["dual_unique"]):
            assert row["dual_left"] == pytest.approx(row["dual"])
    assert not wrong, wrong
