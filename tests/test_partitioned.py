"""Decomposed runs on tables partitioned by region (the client never builds the model),
against the monolithic solve of the same instance written as CSV.

Independent references: the monolithic HiGHS optimum of the CSV instance, the independent
plan checker (tests/plan_check.py, which re-reads the CSVs), the in-memory block search
(`find_blocks`, for the linking rows), and budgets recomputed here from plan.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.datagen import SIZES, generate_ops, write_ops_instance
from allocator.decompose import entry, find_blocks
from allocator.decompose.partitioned import solve_partitioned
from allocator.run import prepare
from allocator.scenario import load_scenario
from allocator.solvers.base import Status
from allocator.solvers.lexicographic import stage_objectives
from tests.conftest import run_cli
from tests.plan_check import check_plan
from tests.test_decompose import killer, monolithic_stages


@pytest.fixture(scope="module")
def client() -> Any:
    """Two worker processes on a real LocalCluster, as `--decompose` starts them."""
    dask_client, cluster = entry.connect(entry.Request("regions", None, 2))
    yield dask_client
    entry.close(dask_client, cluster)


@pytest.fixture(autouse=True)
def _regions() -> Any:
    entry.request("regions")
    yield
    entry.request("off")


def _pair(tmp: Path, size: str, seed: int, budgets: str) -> tuple[Path, Path]:
    """The same generated instance as CSV files and as partitioned Parquet."""
    tables = generate_ops(SIZES[size], seed, budgets)
    csv = write_ops_instance(tables, tmp / "csv", f"{size}-{seed}")
    parted = write_ops_instance(tables, tmp / "parts", f"{size}-{seed}", partitioned=True)
    return csv, parted


def _monolithic(csv: Path) -> tuple[Any, Any, Any]:
    scenario, built, _, mono = monolithic_stages(csv)
    assert mono.status is Status.OPTIMAL
    return scenario, built, mono


def _budgets_from_plan(csv: Path, plan: pd.DataFrame) -> pd.Series:
    """Each budget's spending recomputed from plan.csv and the input CSVs."""
    sites = pd.read_csv(csv.parent / "sites.csv", dtype=str)
    budgets = pd.read_csv(csv.parent / "budgets.csv", dtype={"budget_id": str, "scope": str})
    by_site = plan.groupby(plan["site_id"].astype(str))["cost"].sum()
    spent = {}
    for budget_id, scope in zip(budgets["budget_id"], budgets["scope"], strict=True):
        kind, _, ref = scope.partition(":")
        members = (sites["site_id"] if kind == "all" else
                   sites.loc[sites["region"] == ref, "site_id"] if kind == "region" else
                   pd.Series([ref]))
        spent[budget_id] = float(by_site.reindex(members).fillna(0.0).sum())
    return pd.Series(spent)


@pytest.mark.parametrize(("size", "seed", "budgets"), [
    ("tiny", 0, "nested"), ("tiny", 1, "site"),
    ("small", 0, "nested"), pytest.param("small", 1, "site", marks=pytest.mark.slow),
    pytest.param("small", 2, "nested", marks=pytest.mark.slow),
])
def test_partitioned_matches_monolithic(tmp_path: Path, client: Any, size: str, seed: int,
                                        budgets: str) -> None:
    """Each worker reads its regions; the optimum is the monolithic one within rel_tol, the
    monolithic optimum lies inside the certificate, every row holds (checked from the CSVs),
    and the linking rows are the ones the in-memory block search finds."""
    csv, parted = _pair(tmp_path, size, seed, budgets)
    scenario, built, mono = _monolithic(csv)
    solved = solve_partitioned(load_scenario(parted, []), client=client, workers=2)
    result, deco = solved.result, solved.decomposition
    assert result.status is Status.OPTIMAL, result.message
    rel_tol = scenario.objective.rel_tol
    for m, d, log in zip(mono.stages, result.stages, deco["stages"], strict=True):
        scale = max(1.0, abs(m.objective))
        assert abs(d.objective - m.objective) <= rel_tol * scale, (m.name, d.objective)
        assert log["lower_bound"] <= m.objective + 1e-9 * scale
        assert m.objective <= log["upper_bound"] + 1e-9 * scale
    assert solved.size["columns"] == built.model.num_vars
    assert solved.size["nonzeros"] == built.model.nnz
    assert solved.size["rows"] == built.model.num_rows
    found = find_blocks(built.model)
    if len(found.block_cols) > 1:  # tiny is one block to the search (3 sites), 2+ regions here
        assert deco["linking_rows"] == found.linking.size
    assert deco["blocks"] == pd.read_csv(csv.parent / "sites.csv")["region"].nunique()
    plan = solved.tables["plan"]
    check = check_plan(csv, plan)
    assert check.violations == []
    service = next(s for s in result.stages if s.name == "service")
    assert check.service == pytest.approx(service.final_value, rel=1e-6, abs=1e-6)
    # budgets.csv: each budget's spending, summed over regions, as recomputed from the plan
    table = solved.tables["budgets"].set_index("budget_id")
    expected = _budgets_from_plan(csv, plan)
    assert np.allclose(table.loc[expected.index, "spent"], expected, rtol=1e-9, atol=1e-3)
    assert len(solved.tables["coverage"]) == len(pd.read_csv(csv.parent / "targets.csv"))
    assert len(solved.tables["sites"]) == len(pd.read_csv(csv.parent / "sites.csv"))


@pytest.mark.slow
def test_partitioned_whole_mode_brackets_the_monolithic_optimum(tmp_path: Path,
                                                                 client: Any) -> None:
    """Whole mode on partitions: price-and-branch, a whole plan the checker accepts, and a
    first-stage certificate around the monolithic MIP's bounds."""
    csv, parted = _pair(tmp_path, "tiny", 0, "nested")
    _, _, mono = _monolithic_whole(csv)
    solved = solve_partitioned(load_scenario(parted, ["policy.assignment=whole"]),
                               client=client, workers=2)
    assert solved.result.status.has_solution, solved.result.message
    first = solved.decomposition["stages"][0]
    m = mono.stages[0]
    scale = max(1.0, abs(m.objective))
    assert first["lower_bound"] <= m.objective + 1e-6 * scale
    assert first["upper_bound"] >= m.bound - 1e-6 * scale
    plan = solved.tables["plan"]
    assert check_plan(csv, plan, whole=True).violations == []


def _monolithic_whole(csv: Path) -> tuple[Any, Any, Any]:
    scenario, built, _, mono = monolithic_stages(csv, ["policy.assignment=whole"])
    return scenario, built, mono


@pytest.mark.slow
def test_lost_worker_rebuilds_from_its_partitions(tmp_path: Path, client: Any) -> None:
    """A worker killed (SIGKILL) mid-iteration: its owner is made again from the same recipe
    on a live worker (it reads its parts again and comes back cut), and the run still
    reaches the monolithic optimum."""
    csv, parted = _pair(tmp_path, "small", 0, "nested")
    scenario, _, mono = _monolithic(csv)
    kill, killed = killer(client)
    solved = solve_partitioned(load_scenario(parted, []), client=client, workers=2,
                               on_iteration=kill)
    assert killed and solved.decomposition["rebuilds"] >= 1
    assert solved.result.status is Status.OPTIMAL, solved.result.message
    for m, d in zip(mono.stages, solved.result.stages, strict=True):
        assert d.objective == pytest.approx(m.objective, rel=scenario.objective.rel_tol)
    assert check_plan(csv, solved.tables["plan"]).violations == []
    client.wait_for_workers(2, timeout=60)


def _sensitivity_pair(tmp: Path, seed: int, budgets: str,
                      client: Any) -> tuple[Path, Any, pd.DataFrame, pd.DataFrame]:
    csv, parted = _pair(tmp, "small", seed, budgets)
    mono = run_cli("solve", csv, "--no-store", out=tmp / "mono")
    assert mono.code == 0, mono.stderr
    full = pd.read_csv(tmp / "mono" / "sensitivity.csv", dtype={"labels": str})
    solved = solve_partitioned(load_scenario(parted, []), client=client, workers=2)
    return parted, solved, full[full["kind"] == "constraint"], solved.tables["sensitivity"]


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "budgets"), [(0, "nested"), (1, "site")])
def test_partitioned_duals_are_the_monolithic_duals(tmp_path: Path, client: Any, seed: int,
                                                    budgets: str) -> None:
    """sensitivity.csv of a partitioned run: every row the monolithic LP prices uniquely
    (block rows priced by their block at the master's prices, linking rows and holds by the
    master) has the monolithic dual; activity is the plan's."""
    _, solved, full, part = _sensitivity_pair(tmp_path, seed, budgets, client)
    both = part.merge(full, on=["stage", "family", "labels"], suffixes=("", "_mono"))
    assert len(both) == len(full) == len(part)
    unique = both[both["dual_unique_mono"].astype(bool)]
    assert len(unique) > 500 and {"master", "block at master prices"} <= set(
        unique["dual_source"])
    assert np.allclose(unique["dual"], unique["dual_mono"], rtol=1e-6, atol=1e-6)
    # each person's FTE used, as stated, is what plan.csv gives them
    used = solved.tables["plan"].groupby("staff_id")["fte"].sum()
    stated = part[(part["family"] == "availability") & (part["stage"] == "cost")]
    assert np.allclose(stated["activity"], used.reindex(stated["labels"]).fillna(0.0),
                       atol=1e-8)


@pytest.mark.slow
def test_partitioned_budget_price_is_a_re_solve(tmp_path: Path, client: Any) -> None:
    """The service stage's price of the binding regional budget with the largest price, as
    a partitioned run states it, against a re-solve with that budget raised (partitioned
    again, within the monolithic range of that price)."""
    parted, _, full, part = _sensitivity_pair(tmp_path, 0, "nested", client)
    rows = part[(part["stage"] == "service") & (part["family"] == "budget")
                & part["binding"]].merge(
        full[full["dual_unique"].astype(bool)], on=["stage", "family", "labels"],
        suffixes=("", "_mono"))
    row = rows.loc[rows["dual"].abs().idxmax()]
    assert abs(row["dual"]) > 1e-9
    step = float(min(1000.0, 0.5 * (row["rhs_high_mono"] - row["rhs"])))
    assert step > 0
    before = solve_partitioned(load_scenario(parted, []), client=client, workers=2)
    budgets = pd.read_parquet(parted.parent / "budgets.parquet")
    budgets.loc[budgets["budget_id"] == row["labels"], "amount"] += step
    budgets.to_parquet(parted.parent / "budgets.parquet", index=False)
    after = solve_partitioned(load_scenario(parted, []), client=client, workers=2)
    moved = (after.result.stages[0].objective - before.result.stages[0].objective) / step
    assert moved == pytest.approx(row["dual"], rel=1e-4, abs=1e-7)


def test_polish_gives_a_vertex_as_good_as_the_mix(tmp_path: Path) -> None:
    """`polish_block` on a mix of six of a block's vertices: the result keeps the block's
    rows, its share of every linking row and of the held stage exactly, is no worse in the
    last stage, and is a vertex (columns strictly between their bounds <= the rows)."""
    from allocator.decompose.master import block_data
    from allocator.decompose.worker import BlockOwner, polish_block

    csv, _ = _pair(tmp_path, "small", 0, "nested")
    scenario, built, _ = prepare(csv, [])
    model = built.model
    objectives = stage_objectives(model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights))
    part = find_blocks(model)
    data = block_data(model, part, objectives)[0]
    owner = BlockOwner([data])
    rng = np.random.default_rng(0)
    made = [owner.price(stage, rng.uniform(0, 5e4, part.linking.size))[0]
            for stage in ("cost", "cost", "service", "service", "cost", "service")]
    assert all(p.id >= 0 for p in made)
    x = np.mean([owner.blocks[0].proposal(p.id) for p in made], axis=0)
    y = polish_block(data, x, ["service", "cost"])
    tol = 1e-6
    activity = data.rows @ y
    assert np.all(activity >= data.row_lo - tol) and np.all(activity <= data.row_hi + tol)
    assert np.all(y >= data.lb - tol) and np.all(y <= data.ub + tol)
    assert np.allclose(data.linking @ y, data.linking @ x, atol=1e-6)
    assert data.objectives["service"] @ y == pytest.approx(data.objectives["service"] @ x,
                                                          rel=1e-9, abs=1e-6)
    assert data.objectives["cost"] @ y <= data.objectives["cost"] @ x + 1e-6
    # A vertex: the columns strictly between their bounds are independent in the rows that
    # hold them (the block's rows, its linking rows, the held stage); the mix is not one.
    system = np.vstack([data.rows.toarray(), data.linking.toarray(),
                        data.objectives["service"][None, :]])

    def is_vertex(point: np.ndarray) -> bool:
        inside = np.flatnonzero((point > data.lb + 1e-7) & (point < data.ub - 1e-7))
        return bool(np.linalg.matrix_rank(system[:, inside]) == inside.size)

    assert is_vertex(y)
    assert not is_vertex(x)


def test_in_memory_decomposition_polishes_too(tmp_path: Path) -> None:
    """`--polish` on an in-memory decomposition (CSV tables): the plan stays within the
    certificate and passes the independent checker."""
    from allocator.decompose import solve_decomposed
    from allocator.formulations import get_formulation

    csv, _ = _pair(tmp_path, "small", 2, "nested")
    scenario, built, mono = _monolithic(csv)
    objectives = stage_objectives(built.model, scenario.objective.order,
                                  scenario.objective.mode, dict(scenario.objective.weights))
    result, info = solve_decomposed(built.model, objectives, workers=2, polish=True)
    assert result.status is Status.OPTIMAL and info.polished
    assert any("polished to a vertex" in n for n in result.notes)
    for m, d in zip(mono.stages, result.stages, strict=True):
        assert d.final_value == pytest.approx(m.objective, rel=2e-6)
    plan = get_formulation("ops").plan_tables(built, result.x)["plan"]
    assert check_plan(csv, plan).violations == []


@pytest.mark.slow
def test_the_files_do_not_depend_on_how_regions_are_packed(tmp_path: Path) -> None:
    """One owner or three: the same plan, tables and sensitivity, to the last digit (the
    master takes proposals in block order, sums run in block order)."""
    _, parted = _pair(tmp_path, "small", 1, "nested")
    one = solve_partitioned(load_scenario(parted, []), client=None, workers=1)
    three = solve_partitioned(load_scenario(parted, []), client=None, workers=3)
    assert one.tables.keys() == three.tables.keys()
    for name in one.tables:
        pd.testing.assert_frame_equal(one.tables[name], three.tables[name], check_exact=True)
    assert one.prices == three.prices


def test_polish_with_a_loose_tolerance_keeps_its_better_plan(tmp_path: Path) -> None:
    """With rel_tol 1e-3 the master stops early and polishing can beat its upper bound:
    the plan is written (not refused as 'does not check out'), and the certificate takes
    the plan's value, still above the Lagrangian bound."""
    csv, parted = _pair(tmp_path, "small", 0, "nested")
    solved = solve_partitioned(load_scenario(parted, ["objective.rel_tol=1e-3"]),
                               client=None, workers=2, polish=True)
    assert solved.result.status is Status.OPTIMAL, solved.result.message
    last = solved.decomposition["stages"][-1]
    assert last["lower_bound"] <= solved.result.stages[-1].final_value + 1e-6 * abs(
        last["lower_bound"])
    assert solved.result.stages[-1].objective == pytest.approx(
        solved.result.stages[-1].final_value, rel=1e-9)
    assert check_plan(csv, solved.tables["plan"]).violations == []


@pytest.mark.slow
@pytest.mark.parametrize(("amount", "expected"), [(4563047.0, Status.OPTIMAL),
                                                  (4563001.37, Status.INFEASIBLE)])
def test_a_region_budget_at_the_edge_of_feasible(tmp_path: Path, amount: float,
                                                 expected: Status) -> None:
    """2,500 staff (seed 1144), region R03's budget at the least amount that solves (the
    monolithic diagnosis's proposal) and 1e-5 below it, found by a sweep. Below the edge
    the region's block, priced at costs of 9e14, ended 'unknown' and the run ended in an
    error (exit 1); its block is now solved again with its costs scaled and without
    presolve. Agrees with monolithic on both sides, and on the optimum."""
    tables = generate_ops(2500, seed=1144)
    budgets = tables["budgets"]
    budgets.loc[budgets["budget_id"] == "B-R03", "amount"] = amount
    csv = write_ops_instance(tables, tmp_path / "csv", "edge")
    parted = write_ops_instance(tables, tmp_path / "parts", "edge", partitioned=True)
    _, _, _, mono = monolithic_stages(csv)
    assert mono.status is expected
    solved = solve_partitioned(load_scenario(parted, []), client=None, workers=2)
    assert solved.result.status is expected, solved.result.message
    if expected is Status.OPTIMAL:
        for name, value in mono.objectives.items():
            assert solved.result.objectives[name] == pytest.approx(value, rel=1e-6)
