"""Decomposed runs on tables partitioned by region (the client never builds the model),
against the monolithic solve of the same instance written as CSV.

Independent references: the monolithic HiGHS optimum of the CSV instance, the independent
plan checker (tests/plan_check.py, which re-reads the CSVs), the in-memory block search
(`find_blocks`, for the linking rows), and budgets recomputed here from plan.csv.
"""

from __future__ import annotations

import json
import os
import signal
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
from allocator.solvers.base import SolverSettings, Status
from allocator.solvers.lexicographic import solve_stages, stage_objectives
from tests.conftest import run_cli
from tests.plan_check import check_plan


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
    scenario, built, _ = prepare(csv, [])
    objectives = stage_objectives(built.model, scenario.objective.order,
                                  scenario.objective.mode, dict(scenario.objective.weights))
    mono = solve_stages(built.model, objectives, "highs", SolverSettings(),
                        scenario.objective.rel_tol, scenario.objective.abs_tol)
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
    scenario, built, _ = prepare(csv, ["policy.assignment=whole"])
    objectives = stage_objectives(built.model, scenario.objective.order,
                                  scenario.objective.mode, dict(scenario.objective.weights))
    mono = solve_stages(built.model, objectives, "highs", SolverSettings(),
                        scenario.objective.rel_tol, scenario.objective.abs_tol)
    return scenario, built, mono


@pytest.mark.slow
def test_lost_worker_rebuilds_from_its_partitions(tmp_path: Path, client: Any) -> None:
    """A worker killed (SIGKILL) mid-iteration: its owner is made again from the same recipe
    on a live worker (it reads its parts again and comes back cut), and the run still
    reaches the monolithic optimum."""
    csv, parted = _pair(tmp_path, "small", 0, "nested")
    scenario, _, mono = _monolithic(csv)
    killed: list[int] = []

    def kill(pool: Any, stage: str, iteration: int) -> None:
        if stage == "service" and iteration == 3 and not killed:
            address = pool.where[0]
            pid = client.run(os.getpid, workers=[address])[address]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    solved = solve_partitioned(load_scenario(parted, []), client=client, workers=2,
                               on_iteration=kill)
    assert killed and solved.decomposition["rebuilds"] >= 1
    assert solved.result.status is Status.OPTIMAL, solved.result.message
    for m, d in zip(mono.stages, solved.result.stages, strict=True):
        assert d.objective == pytest.approx(m.objective, rel=scenario.objective.rel_tol)
    assert check_plan(csv, solved.tables["plan"]).violations == []
    client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_cli_partitioned_run_and_the_same_folder_monolithic(tmp_path: Path) -> None:
    """End to end: `generate --partitioned`, then `solve --decompose regions` (its own
    LocalCluster) and `solve` (the folders read whole, monolithic) on the same scenario."""
    made = run_cli("generate", "--size", "tiny", "--seed", "1", "--partitioned",
                   out=tmp_path / "data")
    assert made.code == 0, made.stderr
    scenario = tmp_path / "data" / "scenario.toml"
    assert (tmp_path / "data" / "staff").is_dir()
    mono = run_cli("solve", scenario, "--no-store", out=tmp_path / "mono")
    dw = run_cli("solve", scenario, "--no-store", "--decompose", "regions", "--workers", "2",
                 out=tmp_path / "dw")
    assert mono.code == 0 and dw.code == 0, dw.stderr
    files = {p.name for p in (tmp_path / "dw").iterdir()}
    assert {"plan.csv", "coverage.csv", "sites.csv", "budgets.csv", "master_prices.csv",
            "summary.json", "run.log"} <= files
    summary = json.loads((tmp_path / "dw" / "summary.json").read_text())
    for name, value in mono.summary["objectives"].items():
        assert summary["objectives"][name] == pytest.approx(value, rel=1e-6)
    assert summary["inputs"]["staff"]["rows"] == mono.summary["inputs"]["staff"]["rows"]
    assert summary["model_size"]["columns"] == mono.summary["model_size"]["columns"]
    assert any("partitioned tables" in n for n in summary["notes"])
    from allocator.outputs.summary import RunSummary

    RunSummary.model_validate(summary)
    # tomorrow's run starts from these prices; a monolithic run says it cannot use them
    again = run_cli("solve", scenario, "--no-store", "--decompose", "regions", "--warm-from",
                    tmp_path / "dw", out=tmp_path / "dw2")
    assert again.code == 0, again.stderr
    notes = " ".join(again.summary["notes"])
    assert "started from its prices (master_prices.csv)" in notes
    assert "linking rows matched by label" in notes
    for name, value in mono.summary["objectives"].items():
        assert again.summary["objectives"][name] == pytest.approx(value, rel=1e-6)
    plain = run_cli("solve", scenario, "--no-store", "--warm-from", tmp_path / "dw",
                    out=tmp_path / "mono2")
    assert plain.code == 0, plain.stderr
    assert "not used" in " ".join(plain.summary["notes"])


def test_bad_parts_are_named_by_file_and_row(tmp_path: Path) -> None:
    """A bad cell in one region's part and a person written in two regions' parts: both
    reported at once, by part file and row, exit 2, nothing written; the monolithic read of
    the same folders names the part file and row too."""
    _, parted = _pair(tmp_path, "tiny", 0, "nested")
    staff = parted.parent / "staff"
    files = sorted(staff.rglob("*.parquet"))
    first = pd.read_parquet(files[0]).astype({"fte": str})
    first.loc[1, "fte"] = "lots"
    first.to_parquet(files[0], index=False)
    second = pd.read_parquet(files[1])
    twin = second.iloc[[0]].copy()
    twin["staff_id"] = first.loc[0, "staff_id"]
    twin["home_site"] = second.loc[0, "home_site"]
    pd.concat([second, twin], ignore_index=True).to_parquet(files[1], index=False)
    run = run_cli("solve", parted, "--no-store", "--decompose", "regions",
                  out=tmp_path / "dw")
    assert run.code == 2, run.stderr
    assert f"{files[0]} row 3 column 'fte'" in run.stderr
    assert "appear in more than one part" in run.stderr and str(files[1]) in run.stderr
    assert not (tmp_path / "dw").exists()
    mono = run_cli("solve", parted, "--no-store", out=tmp_path / "mono")
    assert mono.code == 2 and f"{files[0]} row 3 column 'fte'" in mono.stderr


def test_generate_force_leaves_a_users_folder_alone(tmp_path: Path) -> None:
    """`generate --partitioned --force` replaces its own parts, never a user's folder that
    happens to be called staff."""
    out = tmp_path / "data"
    assert run_cli("generate", "--size", "tiny", "--partitioned", out=out).code == 0
    assert run_cli("generate", "--size", "tiny", "--seed", "2", "--partitioned", "--force",
                   out=out).code == 0
    mine = out / "staff" / "notes.txt"
    mine.write_text("mine")
    again = run_cli("generate", "--size", "tiny", "--partitioned", "--force", out=out)
    assert again.code == 2 and "did not write" in again.stderr
    assert mine.read_text() == "mine"


def _sensitivity_pair(tmp: Path, seed: int, budgets: str,
                      client: Any) -> tuple[Path, Any, pd.DataFrame, pd.DataFrame]:
    csv, parted = _pair(tmp, "small", seed, budgets)
    mono = run_cli("solve", csv, "--no-store", out=tmp / "mono")
    assert mono.code == 0, mono.stderr
    full = pd.read_csv(tmp / "mono" / "sensitivity.csv", dtype={"labels": str})
    solved = solve_partitioned(load_scenario(parted, []), client=client, workers=2)
    return parted, solved, full[full["kind"] == "constraint"], solved.tables["sensitivity"]


@pytest.mark.parametrize(("seed", "budgets"), [
    (0, "nested"), pytest.param(1, "site", marks=pytest.mark.slow)])
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


@pytest.mark.slow
def test_cli_polish_splits_fewer_people(tmp_path: Path) -> None:
    """`--polish` end to end on partitioned tables: the same objectives, a plan the checker
    accepts, and no more people split across sites than without it."""
    csv, parted = _pair(tmp_path, "small", 1, "site")
    plain = run_cli("solve", parted, "--no-store", "--decompose", "regions",
                    out=tmp_path / "plain")
    polished = run_cli("solve", parted, "--no-store", "--decompose", "regions", "--polish",
                       out=tmp_path / "polished")
    assert plain.code == 0 and polished.code == 0, polished.stderr
    before, after = plain.summary["plan_objectives"], polished.summary["plan_objectives"]
    assert after["service"] == pytest.approx(before["service"], rel=1e-9)  # held exactly
    assert after["cost"] <= before["cost"] * (1 + 1e-9)
    plan = polished.table("plan")
    assert check_plan(csv, plan).violations == []

    def split(frame: pd.DataFrame) -> int:
        return int((frame.groupby("staff_id")["site_id"].nunique() > 1).sum()
                   + (frame.groupby("staff_id").size() > 1).sum())

    assert split(plan) <= split(plain.table("plan"))
    assert len(plan) <= len(plain.table("plan"))


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
def test_infeasible_shared_rows_are_diagnosed_and_the_repair_holds(tmp_path: Path) -> None:
    """A company budget far below what the regions' minimum staffing costs: every region
    has a plan, the shared rows do not fit. diagnosis.json lists the limits to move; moved
    as it says (in the tables) the run is feasible: checked by solving again."""
    _, parted = _pair(tmp_path, "small", 0, "nested")
    budgets = pd.read_parquet(parted.parent / "budgets.parquet")
    budgets.loc[budgets["budget_id"] == "B-all", "amount"] = 1000.0
    budgets.to_parquet(parted.parent / "budgets.parquet", index=False)
    run = run_cli("solve", parted, "--no-store", "--decompose", "regions", out=tmp_path / "x")
    assert run.code == 3, run.stderr
    story = json.loads((tmp_path / "x" / "diagnosis.json").read_text())
    assert story["kind"] == "linking" and "budget[B-all]" in [r["row"] for r in story["rows"]]
    assert "budget[B-all]" in (tmp_path / "x" / "diagnosis.md").read_text()
    assert "cannot all be met" in run.summary["message"]
    for row in story["rows"]:  # every change here is a limit to raise (rows over their limit)
        assert row["change"] < 0
        family, key = row["row"].removesuffix("]").split("[")
        margin = 1e-6 * abs(row["change"]) + 1e-6
        if family == "budget":
            budgets.loc[budgets["budget_id"] == key, "amount"] -= row["change"] - margin
        else:
            assert family == "availability"
            for part in (parted.parent / "staff").rglob("*.parquet"):
                staff = pd.read_parquet(part)
                if (staff["staff_id"] == key).any():
                    staff.loc[staff["staff_id"] == key, "fte"] -= row["change"] - margin
                    staff.to_parquet(part, index=False)
    budgets.to_parquet(parted.parent / "budgets.parquet", index=False)
    again = run_cli("solve", parted, "--no-store", "--decompose", "regions",
                    out=tmp_path / "y")
    assert again.code == 0, again.stderr


@pytest.mark.slow
def test_a_region_without_a_plan_is_diagnosed_on_its_own(tmp_path: Path) -> None:
    """One site's minimum staffing above every person its region could send: that region
    is named, and its owner's ops diagnosis (repairs verified by a re-solve of the region)
    is in diagnosis.md and .json."""
    _, parted = _pair(tmp_path, "small", 1, "site")
    part = sorted((parted.parent / "sites").rglob("*.parquet"))[2]
    region = part.parent.name.split("=", 1)[1]
    sites = pd.read_parquet(part)
    sites.loc[0, "min_fte"] = 5000.0
    sites.to_parquet(part, index=False)
    run = run_cli("solve", parted, "--no-store", "--decompose", "regions", out=tmp_path / "x")
    assert run.code == 3, run.stderr
    story = json.loads((tmp_path / "x" / "diagnosis.json").read_text())
    assert story["kind"] == "regions" and [r["region"] for r in story["regions"]] == [region]
    assert f"region {region}" in run.summary["message"]
    options = story["regions"][0]["options"]
    assert any(o["verified_feasible"] for o in options)
    assert str(sites.loc[0, "site_id"]) in (tmp_path / "x" / "diagnosis.md").read_text()


def test_a_part_no_worker_would_read_is_refused(tmp_path: Path) -> None:
    """Staff in a region folder that no site has, and a targets file outside any region
    folder: their rows would be read by no worker, so the run refuses them by file."""
    _, parted = _pair(tmp_path, "tiny", 2, "nested")
    staff = sorted((parted.parent / "staff").rglob("*.parquet"))[0]
    stray = parted.parent / "staff" / "region=Atlantis" / "part-0.parquet"
    stray.parent.mkdir()
    stray.write_bytes(staff.read_bytes())
    loose = parted.parent / "targets" / "extra.parquet"
    loose.write_bytes(sorted((parted.parent / "targets").rglob("*.parquet"))[0].read_bytes())
    run = run_cli("solve", parted, "--no-store", "--decompose", "regions", out=tmp_path / "x")
    assert run.code == 2, run.stderr
    assert f"{stray}: is in region=Atlantis, a region no site" in run.stderr
    assert f"{loose}: is not in a region=<R> folder" in run.stderr
    assert not (tmp_path / "x").exists()


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


@pytest.mark.slow
def test_review_cases_duplicates_strays_and_empty_regions(tmp_path: Path) -> None:
    """A target written in two parts of one region is refused with both places; a file that
    is not Parquet in a table folder is refused (decomposed and monolithic alike); a
    region whose targets part is gone is solved, its people idle, as monolithic does."""
    _, parted = _pair(tmp_path, "small", 0, "nested")
    targets = sorted((parted.parent / "targets").rglob("*.parquet"))
    first = pd.read_parquet(targets[0])
    second = targets[0].with_name("part-1.parquet")
    first.iloc[[0]].to_parquet(second, index=False)
    run = run_cli("solve", parted, "--no-store", "--decompose", "regions", out=tmp_path / "a")
    assert run.code == 2, run.stderr
    assert f"{second} row 2 column 'site_id': duplicate target" in run.stderr
    assert f"also in {targets[0]} row 2" in run.stderr
    second.unlink()
    stray = parted.parent / "staff" / "notes.csv"
    stray.write_text("a,b\n")
    for extra in ((), ("--decompose", "regions")):
        run = run_cli("solve", parted, "--no-store", *extra, out=tmp_path / "b")
        assert run.code == 2 and f"{stray}: is in the folder of table 'staff'" in run.stderr
    stray.unlink()
    gone = targets[-1]
    gone.unlink()
    gone.parent.rmdir()
    mono = run_cli("solve", parted, "--no-store", out=tmp_path / "mono")
    dw = run_cli("solve", parted, "--no-store", "--decompose", "regions", out=tmp_path / "dw")
    assert mono.code == 0 and dw.code == 0, dw.stderr
    for name, value in mono.summary["objectives"].items():
        assert dw.summary["objectives"][name] == pytest.approx(value, rel=1e-6)


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


def test_region_folders_are_matched_by_their_decoded_name(tmp_path: Path) -> None:
    """`region=North East` (as Spark writes it) and `region=North%20East` are one region."""
    from allocator.tables.partitioned import region_parts

    for name in ("region=North East", "region=North%20East"):
        where = tmp_path / name.split("=")[1] / name
        where.mkdir(parents=True)
        pd.DataFrame({"a": [1]}).to_parquet(where / "part-0.parquet")
        assert [p.path for p in region_parts(where.parent, "North East")] == \
            [where / "part-0.parquet"]
