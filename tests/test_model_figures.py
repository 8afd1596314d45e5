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
    from allocator.formulations import get_formulation
    from allocator.scenario import load_scenario
    from allocator.solvers.base import SolverSettings, Status
    from allocator.solvers.lexicographic import solve_stages, stage_objectives

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
@pytest.mark.slow
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


# -- 2. the funding trade-off of a non-concave case --------------------------------------------
# A's slopes are 1, 9 and 2.5 (rising, then falling); B and C are concave.
NONCONCAVE_RESPONSE = """program_id,spend,value
A,0,0
A,50,50
A,100,500
A,150,625
B,0,0
B,40,280
B,100,520
B,200,720
C,0,0
C,60,300
C,120,420
"""
NONCONCAVE_PROGRAMS = "program_id,group,min_spend,max_spend\nA,g,0,\nB,g,0,\nC,h,0,\n"
NONCONCAVE_BUDGETS = "budget_id,scope,amount\ntotal,all,200\nh,group:h,90\n"


def funding_case(tmp_path: Path, programs: str, response: str, budgets: str,
                 settings: str = "") -> Path:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "programs.csv").write_text(programs)
    (folder / "response.csv").write_text(response)
    (folder / "budgets.csv").write_text(budgets)
    scenario = folder / "scenario.toml"
    scenario.write_text('model = "funding"\nname = "case"\n[tables]\nprograms = "programs.csv"\n'
                        'response = "response.csv"\nbudgets = "budgets.csv"\n' + settings)
    return scenario


def best_value(curves: dict[str, list[tuple[float, float]]], groups: dict[str, str],
               budgets: dict[str, float], total: float) -> float:
    """An independent formulation (scipy's MILP, written from the spec): each curve as a convex
    combination of two neighbouring breakpoints chosen by a binary per piece; the total spend
    at most `total`, each group's at most its budget."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    names = list(curves)
    lam, pick, rows, lo, hi = [], [], [], [], []
    n = 0
    for name in names:
        k = len(curves[name])
        lam.append(np.arange(n, n + k))
        n += k
    for name in names:
        k = len(curves[name]) - 1
        pick.append(np.arange(n, n + k))
        n += k
    spend = np.zeros(n)
    value = np.zeros(n)
    for i, name in enumerate(names):
        spend[lam[i]] = [s for s, _ in curves[name]]
        value[lam[i]] = [v for _, v in curves[name]]
    integrality = np.zeros(n)
    for i, _name in enumerate(names):
        integrality[pick[i]] = 1
        row = np.zeros(n)
        row[lam[i]] = 1
        rows.append(row), lo.append(1), hi.append(1)  # the weights sum to one
        row = np.zeros(n)
        row[pick[i]] = 1
        rows.append(row), lo.append(1), hi.append(1)  # one piece picked
        for j, col in enumerate(lam[i]):  # a breakpoint weighs only next to the piece picked
            row = np.zeros(n)
            row[col] = 1
            for q in (j - 1, j):
                if 0 <= q < len(pick[i]):
                    row[pick[i][q]] = -1
            rows.append(row), lo.append(-np.inf), hi.append(0)
    row = np.zeros(n)
    for i in range(len(names)):
        row[lam[i]] = spend[lam[i]]
    rows.append(row), lo.append(-np.inf), hi.append(total)
    for group, amount in budgets.items():
        row = np.zeros(n)
        for i, name in enumerate(names):
            if groups[name] == group:
                row[lam[i]] = spend[lam[i]]
        rows.append(row), lo.append(-np.inf), hi.append(amount)
    found = milp(-value, integrality=integrality, bounds=Bounds(0, 1),
                 constraints=LinearConstraint(np.array(rows), lo, hi),
                 options={"mip_rel_gap": 1e-12})
    assert found.status == 0
    return float(-found.fun)


@pytest.mark.slow
def test_nonconcave_tradeoff_every_sample_against_independent_solves(tmp_path):
    scenario = funding_case(tmp_path, NONCONCAVE_PROGRAMS, NONCONCAVE_RESPONSE,
                            NONCONCAVE_BUDGETS, "[policy]\nallow_nonconcave = true\n")
    run = run_cli("solve", scenario, out=tmp_path / "run")
    assert run.code == 0, run.stderr
    curve = pd.read_csv(run.out / "tradeoff.csv")
    assert len(curve) >= 20 and not curve["exact"].any()
    table = pd.read_csv(scenario.parent / "response.csv")
    curves = {p: list(zip(g["spend"], g["value"], strict=True))
              for p, g in table.groupby("program_id", sort=False)}
    groups = {"A": "g", "B": "g", "C": "h"}
    wrong = []
    for budget, value in zip(curve["budget"], curve["value"], strict=True):
        true = best_value(curves, groups, {"h": 90.0}, budget)
        if abs(true - value) > 1e-6 * max(1.0, abs(true)):
            wrong.append((budget, value, true))
    assert not wrong, wrong
    assert (np.diff(curve["value"].to_numpy()) >= -1e-9).all()
    assert curve["value"].iloc[-1] == pytest.approx(run.summary["objectives"]["value"]) or \
        curve["budget"].iloc[-1] > 200


# -- 3. the trade-off curve whatever solver found the plan -------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("solver", ["glop", "pdlp", "scip", "cbc"])
def test_tradeoff_written_for_every_solver(solver, tmp_path):
    reference = run_cli("solve", MODELS / "funding.toml", "--set", "output.report=false",
                        out=tmp_path / "highs")
    run = run_cli("solve", MODELS / "funding.toml", "--solver", solver, "--set",
                  "output.report=false", out=tmp_path / solver)
    assert reference.code == 0 and run.code == 0, run.stderr
    expected = pd.read_csv(reference.out / "tradeoff.csv")
    got = pd.read_csv(run.out / "tradeoff.csv")
    assert len(got) >= 5 and len(got) == len(expected)
    assert np.allclose(got[["budget", "value"]], expected[["budget", "value"]])
    assert not (run.out / "tradeoff.txt").exists()


# -- 4. duplicate ids: exit 2 with file, row and column, in every table ------------------------
DUPLICATES = [
    ("network", "sites.csv", "site_id"), ("network", "demand.csv", "point_id"),
    ("network", "lanes.csv", "site_id+point_id"), ("funding", "programs.csv", "program_id"),
    ("funding", "budgets.csv", "budget_id"), ("assignment", "tasks.csv", "task_id"),
    ("assignment", "resources.csv", "resource_id"),
    ("assignment", "options.csv", "task_id+resource_id"),
]


@pytest.mark.parametrize(("model", "table", "column"), DUPLICATES)
def test_duplicate_ids_are_bad_input(model, table, column, tmp_path):
    scenario = copy_model(model, tmp_path)
    path = scenario.parent / table
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")  # the first row again, at the end
    for command in (("validate", scenario), ("solve", scenario, "--out", tmp_path / "run")):
        run = run_cli(*command)
        assert run.code == 2, (command[0], run.stderr)
        assert f"{table} row {len(lines) + 1} column '{column}': duplicate" in run.stderr, \
            run.stderr
        assert "bug" not in run.stderr
    assert not (tmp_path / "run").exists()


# -- 6. infeasibility: repairs in the input's terms, each applied and re-solved ----------------
def apply_repairs(scenario: Path, repairs: list[dict], out: Path) -> Path:
    """Edit a copy of the CSVs as a user would: the file, row and column each repair names."""
    shutil.copytree(scenario.parent, out)
    edited: dict[Path, pd.DataFrame] = {}
    for repair in repairs:
        path = out / Path(repair["source"]).name
        frame = edited.setdefault(path, pd.read_csv(path, dtype=str, keep_default_na=False))
        frame.loc[repair["row"] - 2, repair["column"]] = repr(float(repair["proposed"]))
    for path, frame in edited.items():
        frame.to_csv(path, index=False)
    return out / scenario.name


def infeasible_case(model: str, tmp_path: Path) -> Path:
    scenario = copy_model(model, tmp_path)
    folder = scenario.parent
    if model == "network":  # 1,100 of capacity for 1,495 of demand
        sites = pd.read_csv(folder / "sites.csv")
        sites["capacity"] = [300, 800, 200, 100, 200, 100, 150]
        sites.to_csv(folder / "sites.csv", index=False)
    elif model == "funding":  # floors of 350 under a broadcast budget of 300
        programs = pd.read_csv(folder / "programs.csv")
        programs.loc[programs["program_id"] == "tv", "min_spend"] = 200
        programs.loc[programs["program_id"] == "radio", "min_spend"] = 150
        programs.to_csv(folder / "programs.csv", index=False)
    else:
        resources = pd.read_csv(folder / "resources.csv")
        resources["capacity"] = 1
        resources.to_csv(folder / "resources.csv", index=False)
    return scenario


@pytest.mark.slow
@pytest.mark.parametrize(("model", "keys"), [
    ("network", {"capacity", "demand", "mix"}), ("funding", {"budget", "floors", "mix"}),
    ("assignment", {"capacity", "mix"})])
def test_diagnosis_repairs_in_input_terms_work(model, keys, tmp_path):
    import json

    scenario = infeasible_case(model, tmp_path)
    run = run_cli("solve", scenario, out=tmp_path / "run")
    assert run.code == 3, run.stderr
    diagnosis = json.loads((run.out / "diagnosis.json").read_text())
    options = {o["key"]: o for o in diagnosis["options"]}
    assert set(options) == keys
    text = (run.out / "diagnosis.md").read_text()
    for key in keys:
        option = options[key]
        assert option["repairs"] and option["verified_feasible"] is True, key
        for repair in option["repairs"]:
            assert f"row {repair['row']}" in repair["text"] and repair["text"] in text
        fixed = apply_repairs(scenario, option["repairs"], tmp_path / f"fixed-{key}")
        again = run_cli("solve", fixed, "--set", "output.sensitivity=false", "--set",
                        "output.report=false", out=tmp_path / f"run-{key}")
        assert again.code == 0, (key, again.stderr)
    if model == "funding":  # the floors are offered, in programs.csv's terms
        floors = {r["id"]: r for r in options["floors"]["repairs"]}
        assert set(floors) <= {"tv", "radio"} and floors
        lowered = sum(r["current"] - r["proposed"] for r in floors.values())
        assert lowered == pytest.approx(50, abs=1e-4)
        (budget,) = options["budget"]["repairs"]
        assert budget["id"] == "broadcast" and budget["proposed"] == pytest.approx(350)


# -- 5. network capacity figures in sites.csv's terms ------------------------------------------
@pytest.mark.slow
def test_network_capacity_figures_are_those_of_sites_csv(tmp_path):
    """sensitivity.csv, marginals.csv and ladders.csv state capacity rows in sites.csv's
    terms (rhs = the capacity, activity = the load); their prices agree with re-solves
    with the capacity moved in sites.csv."""
    scenario = copy_model("network", tmp_path)
    run = run_cli("solve", scenario, "--set", "output.report=false", out=tmp_path / "run")
    assert run.code == 0, run.stderr
    base = run.summary["objectives"]["cost"]
    sens = pd.read_csv(run.out / "sensitivity.csv", dtype={"labels": str})
    rows = sens[(sens["kind"] == "constraint") & (sens["family"] == "capacity")] \
        .set_index("labels")
    sites_file = scenario.parent / "sites.csv"
    sites = pd.read_csv(sites_file, dtype={"site_id": str, "capacity": float})
    load = pd.read_csv(run.out / "sites.csv", dtype={"site_id": str}).set_index("site_id")

    def moved(site: str, capacity: float) -> float:
        changed = sites.copy()
        changed.loc[changed["site_id"] == site, "capacity"] = capacity
        changed.to_csv(sites_file, index=False)
        try:
            return library_objective(scenario)
        finally:
            sites.to_csv(sites_file, index=False)

    wrong = []
    for site, row in rows.iterrows():
        capacity = float(sites.set_index("site_id").loc[site, "capacity"])
        assert row["rhs"] == pytest.approx(capacity)
        if load.loc[site, "decision"] == "open":
            assert row["activity"] == pytest.approx(load.loc[site, "load"])
        up = moved(site, capacity + 1) - base
        stated_up = row["dual_right"] if np.isfinite(row["dual_right"]) else row["dual"]
        if row["rhs_high"] >= capacity + 1 and abs(stated_up - up) > 1e-6:
            wrong.append((site, "up", stated_up, up))
        stated_down = row["dual_left"] if np.isfinite(row["dual_left"]) else row["dual"]
        stated = np.isfinite(row["dual_left"]) or bool(row["dual_unique"])
        if stated and row["rhs_low"] <= capacity - 1:
            down = base - moved(site, capacity - 1)
            if abs(stated_down - down) > 1e-6:
                wrong.append((site, "down", stated_down, down))
    assert not wrong, wrong
    # marginals.csv: the limit is the capacity, the step moves it in sites.csv
    marginals = pd.read_csv(run.out / "marginals.csv", dtype={"labels": str})
    for _, m in marginals[marginals["family"] == "capacity"].iterrows():
        capacity = float(sites.set_index("site_id").loc[m["labels"], "capacity"])
        assert m["limit"] == pytest.approx(capacity)
        per_unit = (moved(m["labels"], capacity + m["step"]) - base) / m["step"]
        assert m["marginal_per_unit"] == pytest.approx(per_unit, abs=1e-6)
    # ladders.csv: today's rung is today's capacity, and the objective one unit into the
    # rung above today (where the fixed decisions stay optimal) is the re-solve's
    ladders = pd.read_csv(run.out / "ladders.csv", dtype={"labels": str})
    birmingham = ladders[(ladders["family"] == "capacity") & (ladders["labels"] == "Birmingham")]
    assert (birmingham["rhs_today"] == 900).all()
    today = birmingham[(birmingham["rhs_from"] <= 900) & (birmingham["rhs_to"] >= 900)
                       & (birmingham["rhs_to"] > birmingham["rhs_from"])].iloc[0]
    assert today["rhs_from"] == pytest.approx(795) and today["rhs_to"] == pytest.approx(905)
    assert moved("Birmingham", 899) - base == pytest.approx(-today["dual"] * 1, abs=1e-6)


@pytest.mark.parametrize(("cap", "amount", "worth"), [
    (50, 120, 4.0), (50, 1000, 5.0), (100, 120, 1.0), (100, 1000, 2.0), (150, 120, 0.0),
    (150, 1000, 2.0)])
def test_funding_binding_spend_cap_priced_on_its_column(cap, amount, worth, tmp_path):
    """A's curve has slopes 5 then 2; B's slope 1 prices money while the total budget binds
    (amount 120). A binding max_spend (inside a piece, at a breakpoint, or where money is
    spare) is priced by the spend column's reduced cost (in the minimized objective) as a
    re-solve with max_spend one higher in programs.csv says."""
    programs = f"program_id,group,min_spend,max_spend\nA,g,0,{cap}\nB,g,0,\n"
    response = "program_id,spend,value\nA,0,0\nA,100,500\nA,200,700\nB,0,0\nB,100,100\n"
    scenario = funding_case(tmp_path, programs, response,
                            f"budget_id,scope,amount\nall,all,{amount}\n")
    run = run_cli("solve", scenario, "--set", "output.report=false", out=tmp_path / "run")
    assert run.code == 0, run.stderr
    sens = pd.read_csv(run.out / "sensitivity.csv", dtype={"labels": str})
    spend = sens[(sens["kind"] == "variable") & (sens["family"] == "spend")].set_index("labels")
    base = run.summary["objectives"]["value"]
    (scenario.parent / "programs.csv").write_text(programs.replace(f"A,g,0,{cap}",
                                                                   f"A,g,0,{cap + 1}"))
    raised = library_objective(scenario)
    assert raised - base == pytest.approx(worth)
    assert -spend.loc["A", "reduced_cost"] == pytest.approx(raised - base)


# -- the other figures of the samples, against re-solves with the file changed ----------------
def test_funding_budget_prices_are_those_of_budgets_csv(tmp_path):
    """Each budget's price (minimized objective per unit, so value = -dual) against
    re-solves with its amount one lower and higher in budgets.csv."""
    scenario = copy_model("funding", tmp_path)
    run = run_cli("solve", scenario, "--set", "output.report=false", out=tmp_path / "run")
    assert run.code == 0, run.stderr
    base = run.summary["objectives"]["value"]
    sens = pd.read_csv(run.out / "sensitivity.csv", dtype={"labels": str})
    rows = sens[(sens["kind"] == "constraint") & (sens["family"] == "budget")] \
        .set_index("labels")
    path = scenario.parent / "budgets.csv"
    budgets = pd.read_csv(path, dtype={"budget_id": str, "amount": float})
    for k, budget in enumerate(budgets["budget_id"]):
        row = rows.loc[budget]
        worth = {}
        for step in (-1.0, 1.0):
            changed = budgets.copy()
            changed.loc[k, "amount"] += step
            changed.to_csv(path, index=False)
            worth[step] = library_objective(scenario)
        budgets.to_csv(path, index=False)
        up, down = worth[1.0] - base, base - worth[-1.0]
        right = row["dual_right"] if np.isfinite(row["dual_right"]) else row["dual"]
        left = row["dual_left"] if np.isfinite(row["dual_left"]) else row["dual"]
        assert -right == pytest.approx(up, abs=1e-6), budget
        assert -left == pytest.approx(down, abs=1e-6), budget


def test_assignment_capacity_marginals_are_those_of_resources_csv(tmp_path):
    """marginals.csv (MIP re-solves by the pipeline) against re-solves with each resource's
    capacity moved by the stated step in resources.csv; the limit is the capacity."""
    scenario = copy_model("assignment", tmp_path)
    run = run_cli("solve", scenario, "--set", "output.report=false", out=tmp_path / "run")
    assert run.code == 0, run.stderr
    marginals = pd.read_csv(run.out / "marginals.csv", dtype={"labels": str})
    capacity = marginals[marginals["family"] == "capacity"]
    assert len(capacity)
    path = scenario.parent / "resources.csv"
    resources = pd.read_csv(path, dtype={"resource_id": str, "capacity": float})
    base = library_objective(scenario)
    sign = 1.0 if run.summary["sense"] == "min" else -1.0
    for _, m in capacity.iterrows():
        k = int(np.flatnonzero(resources["resource_id"] == m["labels"])[0])
        assert m["limit"] == pytest.approx(resources.loc[k, "capacity"])
        changed = resources.copy()
        changed.loc[k, "capacity"] += m["step"]
        changed.to_csv(path, index=False)
        moved = library_objective(scenario)
        resources.to_csv(path, index=False)
        # marginals.csv is per unit of the minimized objective (README conventions)
        assert m["marginal_per_unit"] == pytest.approx(sign * (moved - base) / m["step"],
                                                       abs=1e-6), m["labels"]
