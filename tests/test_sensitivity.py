"""Shadow prices and ranges checked against published reports and against re-solves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.analysis.mps_report import mps_sensitivity
from allocator.analysis.sensitivity import highs_sensitivity
from allocator.datagen import generate_ops, write_ops_instance
from allocator.formulations.ops.data import load_ops
from allocator.formulations.ops.model import build_ops
from allocator.scenario import load_scenario
from allocator.solvers.base import SolverSettings
from allocator.solvers.highs import load_into_highs, new_highs
from allocator.solvers.lexicographic import solve_stages, stage_objectives
from tests.conftest import CASES, TINY, run_cli

TEXTBOOK = CASES / "textbook"


def _num(value):
    return math.inf if value == "inf" else float(value)


@pytest.mark.parametrize("name", ["wyndor", "wilson", "flair"])
def test_textbook_reports_reproduced(name):
    published = json.loads((TEXTBOOK / "published.json").read_text())[name]
    report = mps_sensitivity(TEXTBOOK / f"{name}.mps")
    assert report.objective == pytest.approx(published["objective"], rel=1e-9)
    variables = report.variables.reset_index(drop=True)
    for j, (_label, value, reduced, coef, inc, dec) in enumerate(published["vars"]):
        row = variables.iloc[j]
        assert row.final_value == pytest.approx(value, abs=1e-6)
        assert row.reduced_cost == pytest.approx(reduced, abs=1e-6)
        assert row.objective_coefficient == pytest.approx(coef)
        assert row.allowable_increase == pytest.approx(_num(inc), rel=1e-6)
        assert row.allowable_decrease == pytest.approx(_num(dec), rel=1e-6)
    constraints = report.constraints.reset_index(drop=True)
    for i, entry in enumerate(published.get("cons", [])):
        _label, value, price, rhs, inc, dec = entry
        row = constraints.iloc[i]
        assert row.final_value == pytest.approx(value, abs=1e-6)
        assert row.shadow_price == pytest.approx(price, abs=1e-9)
        assert row.rhs == pytest.approx(rhs)
        assert row.allowable_increase == pytest.approx(_num(inc), rel=1e-6)
        assert row.allowable_decrease == pytest.approx(_num(dec), rel=1e-6)


def test_wilson_constraints_as_computed_in_the_note():
    # published.json: "Cowhide shadow 1, range +280/-720; ProductionTime shadow 2, +160/-93.33";
    # capacities non-binding: Excel shows 1E+30 up and the slack (140, 200) down.
    cons = mps_sensitivity(TEXTBOOK / "wilson.mps").constraints.set_index("name")
    assert cons.loc["Cowhide", "shadow_price"] == pytest.approx(1)
    assert cons.loc["Cowhide", ["allowable_increase", "allowable_decrease"]].tolist() == \
        pytest.approx([280, 720])
    assert cons.loc["ProductionTime", "allowable_decrease"] == pytest.approx(93.3333333)
    assert cons.loc["CapBaseball", "allowable_increase"] == math.inf
    assert cons.loc["CapBaseball", "allowable_decrease"] == pytest.approx(140)
    assert cons.loc["CapSoftball", "allowable_decrease"] == pytest.approx(200)


def test_sensitivity_command_prints_excel_numbers(tmp_path):
    run = run_cli("sensitivity", TEXTBOOK / "wyndor.mps", "--out", tmp_path / "rep")
    assert run.code == 0, run.stderr
    assert "1E+30" in run.stdout and "36" in run.stdout
    assert (tmp_path / "rep" / "constraints.csv").exists()


def _stage_lp(scenario_path, stage_index=0):
    """A loaded and solved HiGHS LP of one ops stage, with the earlier stages held."""
    scenario = load_scenario(scenario_path)
    ops = build_ops(load_ops(scenario), scenario.policy)
    objectives = stage_objectives(ops.model, scenario.objective.order, "lexicographic", {})
    result = solve_stages(ops.model, objectives, "highs", SolverSettings())
    highs = new_highs()
    load_into_highs(highs, ops.model)
    for k, objective in enumerate(objectives[: stage_index + 1]):
        highs.changeColsCost(ops.model.num_vars, np.arange(ops.model.num_vars, dtype=np.int32),
                             objective.c)
        highs.run()
        if k < stage_index:
            nz = np.flatnonzero(objective.c)
            highs.addRow(-1e30, float(result.stages[k].hold_rhs), nz.size, nz.astype(np.int32),
                         objective.c[nz])
    return highs, ops, objectives[stage_index]


def _objective_at(highs, row, new_rhs, sens):
    lo, hi = highs.getLp().row_lower_[row], highs.getLp().row_upper_[row]
    if sens.rhs[row] == hi:
        highs.changeRowBounds(row, lo, new_rhs)
    else:
        highs.changeRowBounds(row, new_rhs, hi)
    highs.run()
    ok = highs.getModelStatus().name == "kOptimal"
    value = highs.getInfo().objective_function_value if ok else math.nan
    highs.changeRowBounds(row, lo, hi)
    highs.run()
    return value


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), stage_index=st.sampled_from([0, 1]))
def test_shadow_prices_match_finite_differences(tmp_path_factory, seed, stage_index):
    folder = tmp_path_factory.mktemp("fd")
    scenario = write_ops_instance(generate_ops(40, seed=seed), folder, "fd")
    highs, ops, _ = _stage_lp(scenario, stage_index)
    sens = highs_sensitivity(highs, "stage")
    base = sens.objective
    m = ops.model.num_rows
    rows = np.flatnonzero(sens.binding[:m] & sens.dual_unique[:m]
                          & (np.abs(sens.row_dual[:m]) > 1e-6) & (sens.range_kind[:m] == "price"))
    checked = 0
    for row in rows[:12]:
        rhs, low, high = sens.rhs[row], sens.rhs_low[row], sens.rhs_high[row]
        for end in (low, high):
            if not np.isfinite(end) or abs(end - rhs) < 1e-6:
                continue
            inside = rhs + 0.5 * (end - rhs)
            value = _objective_at(highs, row, inside, sens)
            slope = (value - base) / (inside - rhs)
            assert slope == pytest.approx(sens.row_dual[row], rel=1e-5, abs=1e-6)
            # Just beyond the end of the range, the price is different (or infeasible).
            step = 1e-3 * max(1.0, abs(end - rhs))
            beyond = end + math.copysign(step, end - rhs)
            at_end = _objective_at(highs, row, end, sens)
            past = _objective_at(highs, row, beyond, sens)
            if np.isfinite(past):
                slope_past = (past - at_end) / (beyond - end)
                assert abs(slope_past - sens.row_dual[row]) > 1e-7 * max(1, abs(slope_past))
            checked += 1
    assert checked > 0 or rows.size == 0


def test_duals_agree_across_lp_solvers():
    scenario = load_scenario(TINY.parent.parent.parent.parent / "models" / "demo.toml")
    ops = build_ops(load_ops(scenario), scenario.policy)
    objectives = stage_objectives(ops.model, ["service", "cost"], "lexicographic", {})
    results = {name: solve_stages(ops.model, objectives[:1], name, SolverSettings())
               for name in ("highs", "glop", "pdlp", "cbc")}
    highs, _, _ = _stage_lp(scenario.base_dir / "demo.toml", 0)
    sens = highs_sensitivity(highs, "service", one_sided=False)
    unique = sens.dual_unique[: ops.model.num_rows] & sens.binding[: ops.model.num_rows]
    # Where the dual is unique every solver must report it (PDLP to its tolerance).
    assert unique.sum() > 0
    reference = results["highs"].stages[0].row_dual[: ops.model.num_rows]
    for name, result in results.items():
        duals = result.stages[0].row_dual[: ops.model.num_rows]
        tol = 1e-4 if name == "pdlp" else 1e-6
        np.testing.assert_allclose(duals[unique], reference[unique], atol=tol, err_msg=name)


@pytest.mark.slow
def test_demo_run_writes_sensitivity_with_stage_and_ranges(tmp_path):
    run = run_cli("solve", TINY.parent.parent.parent.parent / "models" / "demo.toml",
                  out=tmp_path / "run")
    assert run.code == 0, run.stderr
    sens = run.table("sensitivity")
    assert set(sens["stage"]) == {"service", "cost"}
    budgets = sens[(sens["family"] == "budget") & (sens["stage"] == "service")]
    assert len(budgets) > 0 and budgets["binding"].any()
    binding = budgets[budgets["binding"]]
    assert (binding["dual"] <= 0).all()  # more money never adds shortfall
    assert (binding["rhs_low"] <= binding["rhs"]).all()
    assert (binding["rhs_high"] >= binding["rhs"]).all()


@pytest.mark.slow
def test_mip_marginals_match_a_brute_force_resolve(tmp_path):
    tables = generate_ops(40, seed=11)
    tables["budgets"]["amount"] *= 0.8  # make money bind
    scenario = write_ops_instance(tables, tmp_path / "case", "mip")
    whole = '--set=policy.assignment="whole"'
    run = run_cli("solve", scenario, whole, out=tmp_path / "run")
    assert run.code == 0, run.stderr
    marginals = run.table("marginals")
    budget = marginals[marginals["family"] == "budget"].iloc[0]
    frame = tables["budgets"].copy()
    frame.loc[frame["budget_id"].astype(str) == str(budget["labels"]), "amount"] += budget["step"]
    frame.to_csv(tmp_path / "case" / "budgets.csv", index=False)
    moved = run_cli("solve", scenario, whole, out=tmp_path / "moved")
    assert moved.code == 0, moved.stderr
    brute = (moved.summary["objectives"]["service"] - run.summary["objectives"]["service"]) \
        / budget["step"]
    assert budget["marginal_per_unit"] == pytest.approx(brute, abs=1e-6)
    sens = run.table("sensitivity")
    assert set(sens["dual_source"]) == {"fixed-integer lp"}


@pytest.mark.slow
def test_cli_budget_price_matches_a_resolve(tmp_path):
    """The service stage's analysis runs on a copy of the solved HiGHS model in a thread:
    its shadow price of the most valuable budget must predict an independent re-solve."""
    import shutil

    import pandas as pd

    root = TINY.parent.parent.parent.parent
    base = run_cli("solve", root / "models" / "demo.toml", out=tmp_path / "base")
    assert base.code == 0, base.stderr
    sens = base.table("sensitivity")
    budgets = sens[(sens["stage"] == "service") & (sens["family"] == "budget")
                   & sens["binding"] & sens["dual_unique"] & (sens["dual"].abs() > 1e-12)]
    assert len(budgets) > 0
    row = budgets.loc[budgets["dual"].abs().idxmax()]
    assert np.isfinite(row["rhs_high"]) and row["rhs_high"] > row["rhs"]
    delta = 0.25 * (row["rhs_high"] - row["rhs"])
    # The same scenario with that budget raised by delta, inside its range.
    (tmp_path / "models").mkdir()
    shutil.copy(root / "models" / "demo.toml", tmp_path / "models" / "demo.toml")
    shutil.copytree(root / "data" / "demo", tmp_path / "data" / "demo")
    table = tmp_path / "data" / "demo" / "budgets.csv"
    frame = pd.read_csv(table, dtype=str)
    hit = frame["budget_id"] == row["labels"]
    assert hit.sum() == 1
    frame.loc[hit, "amount"] = repr(float(frame.loc[hit, "amount"].iloc[0]) + float(delta))
    frame.to_csv(table, index=False)
    moved = run_cli("solve", tmp_path / "models" / "demo.toml", out=tmp_path / "moved")
    assert moved.code == 0, moved.stderr
    change = moved.summary["objectives"]["service"] - base.summary["objectives"]["service"]
    assert change == pytest.approx(row["dual"] * delta, rel=1e-6, abs=1e-9)
