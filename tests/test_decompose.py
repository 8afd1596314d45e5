"""Decomposed (Dantzig-Wolfe on a real Dask LocalCluster) against monolithic HiGHS.

Each claim is checked against something the decomposition does not compute: the monolithic
optimum of the same model (a cold HiGHS solve), the generator's own sites.csv (regions), and
the independent plan checker (tests/plan_check.py), which re-reads the CSV inputs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.datagen import SIZES, generate_ops, write_ops_instance
from allocator.decompose import find_blocks, solve_decomposed
from allocator.decompose.entry import Request, close, connect, wanted
from allocator.formulations import get_formulation
from allocator.run import prepare
from allocator.solvers.base import SolverSettings, Status
from allocator.solvers.lexicographic import solve_stages, stage_objectives
from tests.conftest import run_cli
from tests.plan_check import check_plan


@pytest.fixture(scope="module")
def client() -> Any:
    """Two worker processes on a real LocalCluster, as `--decompose` starts them."""
    dask_client, cluster = connect(Request("regions", None, 2))
    yield dask_client
    close(dask_client, cluster)


def _instance(tmp: Path, size: str, seed: int, budgets: str) -> Path:
    return write_ops_instance(generate_ops(SIZES[size], seed, budgets),
                              tmp / f"{size}-{seed}-{budgets}")


def _both(path: Path, client: Any, workers: int = 2, **kw: Any) -> tuple[Any, ...]:
    scenario, built, _ = prepare(path, [])
    model = built.model
    objectives = stage_objectives(model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights))
    rel_tol = scenario.objective.rel_tol
    mono = solve_stages(model, objectives, "highs", SolverSettings(), rel_tol,
                        scenario.objective.abs_tol)
    result, info = solve_decomposed(model, objectives, client=client, workers=workers,
                                    rel_tol=rel_tol, abs_tol=scenario.objective.abs_tol, **kw)
    return scenario, built, mono, result, info, rel_tol


def _agree(path: Path, built: Any, mono: Any, result: Any, info: Any, rel_tol: float) -> None:
    assert mono.status is Status.OPTIMAL
    assert result.status is Status.OPTIMAL, result.message
    for m, d, log in zip(mono.stages, result.stages, info.stages, strict=True):
        scale = max(1.0, abs(m.objective))
        # objectives within rel_tol; the monolithic optimum inside the certificate
        assert abs(d.objective - m.objective) <= rel_tol * scale, (m.name, m.objective,
                                                                   d.objective)
        assert log.lower_bound <= m.objective + 1e-9 * scale, (m.name, log.lower_bound)
        assert m.objective <= log.upper_bound + 1e-9 * scale, (m.name, log.upper_bound)
        assert log.gap <= rel_tol
    # every row, recomputed from the CSV inputs by the independent checker
    plan = get_formulation("ops").plan_tables(built, result.x)["plan"]
    check = check_plan(path, plan)
    assert check.violations == []
    service = next(s for s in result.stages if s.name == "service")
    assert check.service == pytest.approx(service.final_value, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(("size", "seed", "budgets"), [
    ("tiny", 0, "nested"), ("tiny", 1, "site"), ("tiny", 2, "nested"),
    ("small", 0, "nested"), ("small", 1, "site"),
    # the master's first prices sit at its penalty: HiGHS refused a block's 6e13 costs and
    # the run ended "infeasible" (fixed by solving such a block with its objective scaled)
    ("small", 2, "nested"),
])
def test_decomposed_matches_monolithic(tmp_path: Path, client: Any, size: str, seed: int,
                                       budgets: str) -> None:
    path = _instance(tmp_path, size, seed, budgets)
    _, built, mono, result, info, rel_tol = _both(path, client)
    _agree(path, built, mono, result, info, rel_tol)
    assert info.workers == 2 and info.bytes_sent > 0


@pytest.mark.slow
def test_stability_stage_with_a_moved_limit(tmp_path: Path, client: Any) -> None:
    """Yesterday's plan as baseline, demand moved +-2%, max_moved_fte: three stages (the
    stability stage's `moved` row is one more linking row), each within rel_tol."""
    tables = generate_ops(SIZES["small"], 0, "nested")
    first = write_ops_instance(tables, tmp_path / "day1")
    _, built, _ = prepare(first, [])
    objectives = stage_objectives(built.model, ["service", "cost"], "lexicographic", {})
    x = solve_stages(built.model, objectives, "highs", SolverSettings()).x
    plan = get_formulation("ops").plan_tables(built, x)["plan"]
    rng = np.random.default_rng(1)
    targets = tables["targets"].copy()
    targets["demand"] = (targets["demand"] * (1 + rng.uniform(-0.02, 0.02, len(targets))))
    path = write_ops_instance({**tables, "targets": targets}, tmp_path / "day2")
    plan[["staff_id", "site_id", "service_id", "fte"]].to_csv(path.parent / "baseline.csv",
                                                             index=False)
    text = path.read_text().replace('[tables]\n', '[tables]\nbaseline = "baseline.csv"\n')
    text = text.replace('order = ["service", "cost"]', 'order = ["service", "cost", "stability"]')
    path.write_text(text + "\n[policy]\nmax_moved_fte = 40\n")
    _, built2, mono, result, info, rel_tol = _both(path, client)
    assert [s.name for s in result.stages] == ["service", "cost", "stability"]
    assert "moved" in {b for b in built2.model.con_blocks}
    _agree(path, built2, mono, result, info, rel_tol)
    moved = 0.5 * result.stages[-1].final_value
    assert moved <= 40 + 1e-6


@pytest.mark.slow
def test_warm_prices_from_yesterday(tmp_path: Path, client: Any) -> None:
    """Demand moved +-2% and started from yesterday's prices (matched by row label): the
    first iteration already has yesterday's Lagrangian point, the optimum is today's."""
    tables = generate_ops(SIZES["small"], 0, "nested")
    day1 = write_ops_instance(tables, tmp_path / "day1")
    _, _, _, _, info1, _ = _both(day1, client)
    targets = tables["targets"].copy()
    rng = np.random.default_rng(7)
    targets["demand"] = targets["demand"] * (1 + rng.uniform(-0.02, 0.02, len(targets)))
    day2 = write_ops_instance({**tables, "targets": targets}, tmp_path / "day2")
    assert info1.all_prices["cost"]["hold[service]"] != 0  # the hold row's price is kept too
    _, built, mono, result, info, rel_tol = _both(day2, client, warm_prices=info1.all_prices)
    _agree(day2, built, mono, result, info, rel_tol)
    assert all(np.isfinite(s.history[0][1]) for s in info.stages)  # a bound from the start


def test_master_prices_are_the_monolithic_duals(tmp_path: Path, client: Any) -> None:
    """The master's prices of the linking rows (summary.json's `prices`: the price of a
    mobile person's hour, of the company's money) are the monolithic solve's duals of the
    same rows in the first stage (no hold row there to share the price with)."""
    path = _instance(tmp_path, "small", 0, "nested")
    _, built, mono, _, info, _ = _both(path, client)
    part = find_blocks(built.model)
    first = info.stages[0]
    assert first.prices is not None and np.any(first.prices != 0)
    assert first.prices == pytest.approx(mono.stages[0].row_dual[part.linking], abs=1e-7)
    shown = info.as_json()["prices"][first.name]
    assert shown and all(p["row"].startswith(("availability[", "budget[")) for p in shown)
    assert abs(shown[0]["price"]) == pytest.approx(float(np.abs(first.prices).max()))


def test_infeasible_through_a_linking_row(tmp_path: Path, client: Any) -> None:
    """Every block feasible alone, the company budget impossible: the penalty columns stay
    positive at every penalty, and the decomposed solve says infeasible (as HiGHS does)."""
    tables = generate_ops(SIZES["small"], 0, "nested")
    tables["budgets"].loc[tables["budgets"]["scope"] == "all", "amount"] = 1.0
    path = write_ops_instance(tables, tmp_path / "infeasible")
    _, _, mono, result, info, _ = _both(path, client)
    assert mono.status.is_infeasible
    assert result.status is Status.INFEASIBLE and result.x is None
    assert info.stages[0].status is Status.INFEASIBLE


@pytest.mark.parametrize(("seed", "budgets"), [(0, "nested"), (1, "site"), (2, "nested"),
                                               (3, "site"), (4, "nested")])
def test_blocks_are_the_regions(tmp_path: Path, seed: int, budgets: str) -> None:
    """On small, the blocks found from the matrix are the generator's regions, and only a few
    rows link them (the company budget and staff who may work anywhere)."""
    path = _instance(tmp_path, "small", seed, budgets)
    _, built, _ = prepare(path, [])
    model = built.model
    part = find_blocks(model)
    sites = pd.read_csv(path.parent / "sites.csv", dtype=str)
    region_of = dict(zip(sites["site_id"], sites["region"], strict=True))
    x = model.var_blocks["x"]
    site_of_col = x.labels["site_id"].astype(str).to_numpy()
    regions_seen = []
    for cols in part.block_cols:
        mine = cols[(cols >= x.start) & (cols < x.start + x.size)] - x.start
        regions = {region_of[s] for s in site_of_col[mine]}
        assert len(regions) == 1  # a block never mixes regions
        regions_seen.append(regions.pop())
    assert sorted(regions_seen) == sorted(sites["region"].unique())
    staff = pd.read_csv(path.parent / "staff.csv", dtype=str)
    anywhere = int((staff["mobility"] == "any").sum())
    assert 1 <= part.linking.size <= anywhere + 1  # the company budget + the `any` staff
    assert part.linking.size <= 0.01 * model.num_rows


def test_auto_decides() -> None:
    from allocator.core.model import LinearModel

    model = LinearModel()
    model.add_variables("x", pd.DataFrame({"a": [1, 2]}))
    assert not wanted(model, Request("off", "tcp://x:1"))
    assert wanted(model, Request("regions"))
    assert wanted(model, Request("auto", "tcp://x:1"))
    assert not wanted(model, Request("auto"))  # small model, no scheduler


@pytest.mark.slow
def kill_worker(client: Any, address: str) -> int:
    """SIGKILL the Dask worker process at `address`; its pid."""
    pid = client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)
    return pid


def killer(client: Any, stage: str = "service", iteration: int = 3) -> tuple[Any, list[int]]:
    """An `on_iteration` hook that kills the first owner's worker once, at that iteration,
    and the list its pid lands in."""
    killed: list[int] = []

    def kill(pool: Any, at_stage: str, at_iteration: int) -> None:
        if at_stage == stage and at_iteration == iteration and not killed:
            killed.append(kill_worker(client, pool.where[0]))

    return kill, killed


def test_lost_worker_is_rebuilt(tmp_path: Path, client: Any) -> None:
    """A worker killed (SIGKILL) mid-iteration: its blocks start again on a live worker and
    the run still reaches the monolithic optimum."""
    path = _instance(tmp_path, "small", 0, "nested")
    kill, killed = killer(client)
    _, built, mono, result, info, rel_tol = _both(path, client, on_iteration=kill)
    assert killed and info.rebuilds >= 1
    _agree(path, built, mono, result, info, rel_tol)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the other tests


@pytest.mark.slow
def test_worker_lost_while_the_plan_is_gathered(tmp_path: Path, client: Any) -> None:
    """A worker killed after the last stage converged, before the plan is combined: the
    proposals it held are gone, so the last stage is priced again and the plan still
    reaches the monolithic optimum."""
    path = _instance(tmp_path, "small", 1, "site")
    killed: list[int] = []
    pools: list[Any] = []

    def remember(pool: Any, stage: str, iteration: int) -> None:
        if not pools:
            pools.append(pool)

    def kill(stage: Any) -> None:
        if stage.name == "cost" and not killed:
            killed.append(kill_worker(client, pools[0].where[-1]))
            time.sleep(1.0)

    _, built, mono, result, info, rel_tol = _both(path, client, on_iteration=remember,
                                                  on_stage=kill)
    assert killed and info.rebuilds >= 1
    _agree(path, built, mono, result, info, rel_tol)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_cli_decompose_writes_the_run_folder(tmp_path: Path) -> None:
    """`allocator solve --decompose regions` on its own LocalCluster: the same run folder as
    a monolithic run, summary.json with both bounds, and the same optimum."""
    path = _instance(tmp_path, "tiny", 0, "nested")
    mono = run_cli("solve", path, "--no-store", out=tmp_path / "mono")
    dw = run_cli("solve", path, "--no-store", "--decompose", "regions", "--workers", "2",
                 out=tmp_path / "dw")
    assert mono.code == 0 and dw.code == 0, dw.stderr
    files = {p.name for p in (tmp_path / "mono").iterdir()} - {"basis.parquet"}
    assert files <= {p.name for p in (tmp_path / "dw").iterdir()}
    summary = json.loads((tmp_path / "dw" / "summary.json").read_text())
    deco = summary["decomposition"]
    assert deco["workers"] == 2 and deco["scheduler"].startswith("tcp://")
    for stage in deco["stages"]:
        opt = mono.summary["objectives"][stage["name"]]
        assert stage["lower_bound"] <= opt + 1e-9 * max(1, abs(opt)) <= stage["upper_bound"] \
            + 2e-9 * max(1, abs(opt))
        assert summary["objectives"][stage["name"]] == pytest.approx(opt, rel=1e-6)
    assert check_plan(path, dw.table("plan")).violations == []
    assert np.isfinite(summary["stages"][0]["bound"])
    from allocator.outputs.summary import RunSummary

    RunSummary.model_validate(summary)  # the decomposition field is in the published schema


@pytest.mark.slow
def test_cli_auto_with_a_scheduler(tmp_path: Path, client: Any) -> None:
    """`--decompose auto --scheduler tcp://...`: a small model decomposes because a cluster
    was named, on that cluster's workers."""
    path = _instance(tmp_path, "tiny", 1, "site")
    address = client.scheduler.address
    run = run_cli("solve", path, "--no-store", "--decompose", "auto", "--scheduler", address,
                  out=tmp_path / "dw")
    assert run.code == 0, run.stderr
    assert run.summary["decomposition"]["scheduler"] == address
    assert run.summary["decomposition"]["mode"] == "auto"
    assert check_plan(path, run.table("plan")).violations == []


@pytest.mark.slow
def test_medium_matches_monolithic(tmp_path: Path, client: Any) -> None:
    """Medium (200k columns, 20 regions): the 20 regions are found with 30 linking rows, and
    the decomposed optimum is the monolithic one within rel_tol (about 3 minutes here)."""
    path = _instance(tmp_path, "medium", 0, "nested")
    _, built, mono, result, info, rel_tol = _both(path, client)
    sites = pd.read_csv(path.parent / "sites.csv", dtype=str)
    assert info.blocks == sites["region"].nunique()
    _agree(path, built, mono, result, info, rel_tol)



@pytest.mark.slow
@pytest.mark.parametrize(("staff", "seed", "amount", "expected"), [
    (800, 9335, 9348379.0, Status.OPTIMAL), (800, 9335, 9348285.52, Status.INFEASIBLE),
    (2500, 7747, 29189069.0, Status.OPTIMAL), (2500, 7747, 29188777.11, Status.INFEASIBLE)])
def test_a_company_budget_at_the_edge_of_feasible(tmp_path: Path, staff: int, seed: int,
                                                  amount: float, expected: Status) -> None:
    """The company budget at the least amount that solves (the monolithic diagnosis's
    proposal, rounded up to 1) and 1e-5 below it, found by a sweep of generated instances.
    800 staff: the master's penalty costs (8e8) beside costs of 30 ended 'unknown' after
    HiGHS's presolve, and the run crashed (exit 1) on both sides. 2,500 staff, below the
    edge: at a penalty of 9e12 rounding priced a column already in the master as improving,
    it was added again every iteration, and the stage stopped at 500 iterations with no
    answer (exit 4). Now both agree with monolithic on both sides, and on the optimum."""
    tables = generate_ops(staff, seed=seed)
    budgets = tables["budgets"]
    budgets.loc[budgets["budget_id"] == "B-all", "amount"] = amount
    scenario_path = write_ops_instance(tables, tmp_path / "edge", "edge")
    scenario, built, objectives, mono = monolithic_stages(scenario_path)
    assert mono.status is expected
    result, _ = solve_decomposed(built.model, objectives, client=None, workers=2,
                                 rel_tol=scenario.objective.rel_tol,
                                 abs_tol=scenario.objective.abs_tol)
    assert result.status is expected, result.message
    if expected is Status.OPTIMAL:
        for name, value in mono.objectives.items():
            assert result.objectives[name] == pytest.approx(value, rel=1e-6)


@pytest.mark.slow
def test_a_block_that_hits_a_solve_error_is_solved_again() -> None:
    """Found by the agreement sweep (case 31: 6,000 staff, site budgets, weighted mode): at
    the first prices HiGHS ended one block with 'Solve error', and the in-memory decomposed
    run failed (exit 1) where monolithic and partitioned solved. The block is now solved
    again as for 'unknown' (costs scaled, then without presolve), and the run reaches the
    monolithic optimum."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        scenario_path = write_ops_instance(generate_ops(6000, seed=8030, budgets="site"),
                                           Path(tmp) / "w", "w")
        weighted = ['objective.mode="weighted"',
                    "objective.weights={service = 100000.0, cost = 1.0, stability = 1000.0}"]
        scenario, built, objectives, mono = monolithic_stages(scenario_path, weighted)
    result, _ = solve_decomposed(built.model, objectives, client=None, workers=2,
                                 rel_tol=scenario.objective.rel_tol,
                                 abs_tol=scenario.objective.abs_tol)
    assert result.status is Status.OPTIMAL, result.message
    for name, value in mono.objectives.items():
        assert result.objectives[name] == pytest.approx(value, rel=1e-6)


def monolithic_stages(scenario_path: Path, overrides: list[str] | None = None) -> tuple[Any, ...]:
    """The independent reference: the scenario built and solved stage by stage by HiGHS on
    one machine (scenario, built model, objectives, result; its status not judged here)."""
    scenario, built, _ = prepare(scenario_path, overrides or [])
    objectives = stage_objectives(built.model, scenario.objective.order,
                                  scenario.objective.mode, dict(scenario.objective.weights))
    mono = solve_stages(built.model, objectives, "highs", SolverSettings(),
                        scenario.objective.rel_tol, scenario.objective.abs_tol)
    return scenario, built, objectives, mono
