"""Decomposition, continued (a file of its own so that the test workers share the load):
whole mode by price-and-branch against monolithic HiGHS, the time limit inside a pricing
round, and master_prices.csv with tomorrow's warm start. The same independent references as
tests/test_decompose.py: the monolithic solve, the plan checker from the CSV inputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.datagen import SIZES, generate_ops, write_ops_instance
from allocator.decompose import solve_decomposed
from allocator.decompose.entry import Request, close, connect
from allocator.formulations import get_formulation
from allocator.run import prepare
from allocator.solvers.base import SolverSettings, Status
from allocator.solvers.lexicographic import solve_stages, stage_objectives
from tests.conftest import run_cli
from tests.plan_check import check_plan
from tests.test_decompose import _instance


@pytest.fixture(scope="module")
def client() -> Any:
    """Two worker processes on a real LocalCluster, as `--decompose` starts them."""
    dask_client, cluster = connect(Request("regions", None, 2))
    yield dask_client
    close(dask_client, cluster)



# --- whole mode: price-and-branch ------------------------------------------------------------

def _whole(path: Path, client: Any) -> tuple[Any, ...]:
    scenario, built, _ = prepare(path, ['policy.assignment="whole"'])
    model = built.model
    assert model.num_integer > 0
    objectives = stage_objectives(model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights))
    rel_tol, abs_tol = scenario.objective.rel_tol, scenario.objective.abs_tol
    mono = solve_stages(model, objectives, "highs", SolverSettings(mip_gap=1e-9), rel_tol,
                        abs_tol)
    result, info = solve_decomposed(model, objectives, client=client, workers=2,
                                    rel_tol=rel_tol, abs_tol=abs_tol)
    return built, model, mono, result, info, rel_tol


@pytest.mark.parametrize(("seed", "budgets"), [(0, "nested"), (1, "site"), (2, "site")])
def test_whole_mode_certificate_brackets_the_monolithic_optimum(
        tmp_path: Path, client: Any, seed: int, budgets: str) -> None:
    """Whole mode decomposed: a whole plan (every integer column whole, every row met by the
    independent checker), and its first stage's certificate brackets the monolithic MIP's:
    lower bound <= what HiGHS found, upper bound >= HiGHS's proven bound; the gap said is the
    one the bounds give, and "optimal" only within the MIP gap."""
    path = _instance(tmp_path, "tiny", seed, budgets)  # small: minutes (docs/decompose.md)
    built, model, mono, result, info, rel_tol = _whole(path, client)
    assert mono.status is Status.OPTIMAL and result.x is not None, result.message
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
    first, log = mono.stages[0], info.stages[0]
    scale = max(1.0, abs(first.objective))
    assert log.lower_bound <= first.objective + 1e-7 * scale
    assert log.upper_bound >= first.bound - 1e-7 * scale
    for stage, s in zip(info.stages, result.stages, strict=True):
        assert stage.whole and stage.as_json()["method"] == "price-and-branch"
        assert stage.lower_bound <= stage.relaxation + 1e-7 * max(1.0, abs(stage.relaxation))
        assert stage.relaxation <= stage.upper_bound + 1e-7 * max(1.0, abs(stage.upper_bound))
        gap = abs(stage.upper_bound - stage.lower_bound) / max(abs(stage.upper_bound), 1e-9)
        assert stage.gap == pytest.approx(gap, rel=1e-6, abs=1e-12)
        assert (s.status is Status.OPTIMAL) == (stage.gap <= max(rel_tol, 1e-4))
    x = result.x
    assert np.allclose(x[model.integer], np.round(x[model.integer]), atol=0)
    plan = get_formulation("ops").plan_tables(built, x)["plan"]
    assert check_plan(path, plan, whole=True).violations == []
    assert any("price-and-branch" in note for note in result.notes)


@pytest.mark.slow
def test_cli_whole_mode_decomposed(tmp_path: Path) -> None:
    """`--decompose regions` in whole mode runs price-and-branch (it used to fall back to the
    monolithic solve): the folder, both bounds and the gap in summary.json, a whole plan."""
    path = _instance(tmp_path, "tiny", 1, "site")
    run = run_cli("solve", path, "--no-store", "--decompose", "regions", "--set",
                  'policy.assignment="whole"', out=tmp_path / "dw")
    assert run.code in (0, 5), run.stderr
    deco = run.summary["decomposition"]
    assert all(s["method"] == "price-and-branch" for s in deco["stages"])
    for stage in deco["stages"]:
        assert stage["lower_bound"] <= stage["upper_bound"] + 1e-9 * abs(stage["upper_bound"])
    assert (run.code == 0) == all(s["status"] == "optimal" for s in deco["stages"])
    assert any("price-and-branch" in note for note in run.summary["notes"])
    assert check_plan(path, run.table("plan"), whole=True).violations == []


@pytest.mark.slow
def test_whole_mode_keeps_the_time_limit(tmp_path: Path) -> None:
    """Small in whole mode: each pricing round of seven block MIPs takes seconds, the stage
    far longer than the limit. The run ends by the limit (plus the cluster's start and stop),
    no block MIP starts past it, and the run says what it has: exit 4 or 5, never a hang."""
    path = _instance(tmp_path, "small", 1, "site")
    limit = 10.0
    started = time.monotonic()
    run = run_cli("solve", path, "--no-store", "--decompose", "regions", "--time-limit",
                  str(limit), "--set", 'policy.assignment="whole"', out=tmp_path / "dw")
    elapsed = time.monotonic() - started
    assert run.code in (4, 5), run.stderr
    seconds = run.summary["seconds"]
    assert seconds["total"] - seconds.get("write", 0.0) < limit + 6.0, seconds
    assert elapsed < limit + 20.0
    stage = run.summary["decomposition"]["stages"][0]
    assert stage["status"] in ("time limit, no solution", "feasible")


@pytest.mark.slow
def test_master_prices_file_and_tomorrows_warm_start(tmp_path: Path) -> None:
    """master_prices.csv holds every linking row's price per stage; in the first stage they
    are the monolithic duals of the same rows (a cold HiGHS solve, matched by label). The next
    decomposed run of the scenario starts from them (the run store's last run, by default),
    says so, and still reaches the monolithic optimum."""
    tables = generate_ops(SIZES["small"], 0, "nested")
    day1 = write_ops_instance(tables, tmp_path / "day1")
    first = run_cli("solve", day1, "--decompose", "regions", out=tmp_path / "run1")
    assert first.code == 0, first.stderr
    prices = pd.read_csv(tmp_path / "run1" / "master_prices.csv")
    assert list(prices.columns) == ["stage", "row", "kind", "price"]
    assert set(prices["stage"]) == {"service", "cost"}
    assert (prices.loc[prices["kind"] == "hold", "row"] == "hold[service]").all()
    scenario, built, _ = prepare(day1, [])
    model = built.model
    objectives = stage_objectives(model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights))
    mono = solve_stages(model, objectives, "highs", SolverSettings())
    from allocator.core.checks import row_label

    dual = {row_label(model, i): float(mono.stages[0].row_dual[i])
            for i in range(model.num_rows)}
    service = prices[prices["stage"] == "service"]
    assert service["price"].to_numpy() == pytest.approx(
        np.array([dual[r] for r in service["row"]]), abs=1e-7)
    # tomorrow: demand moved, the same scenario file: warm from the store's last run
    targets = tables["targets"].copy()
    targets["demand"] *= 1 + np.random.default_rng(3).uniform(-0.02, 0.02, len(targets))
    targets.to_csv(day1.parent / "targets.csv", index=False)
    second = run_cli("solve", day1, "--decompose", "regions", out=tmp_path / "run2")
    assert second.code == 0, second.stderr
    notes = " ".join(second.summary["notes"])
    assert "the decomposition's master started from its prices" in notes, notes
    assert "stage 'service' started from earlier prices" in notes
    _, built2, _ = prepare(day1, [])
    mono2 = solve_stages(built2.model, stage_objectives(
        built2.model, scenario.objective.order, scenario.objective.mode,
        dict(scenario.objective.weights)), "highs", SolverSettings())
    for stage in mono2.stages:
        assert second.summary["objectives"][stage.name] == pytest.approx(
            stage.objective, rel=scenario.objective.rel_tol * 2, abs=1e-9)
    assert check_plan(day1, second.table("plan")).violations == []
