"""`allocator alternatives`: every plan checked by the independent plan checker, every figure
of alternatives.csv recomputed from the plan files and the input tables, the words checked
against the numbers, the page opened in Chromium."""

from __future__ import annotations

import filecmp
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.negotiate.alternatives import find_alternatives, parse_within, write_alternatives
from tests.conftest import DEMO, run_cli
from tests.plan_check import check_plan
from tests.test_report import CHROMIUM, _open_in_chromium

WITHIN = 0.01
COUNT = 3
IDS = {"staff_id": str, "site_id": str, "service_id": str, "budget_id": str}


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=IDS, keep_default_na=False,
                       na_values=[""])


@pytest.fixture(scope="module")
def demo_alternatives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alt") / "alternatives"
    run = run_cli("alternatives", DEMO, "--within", "1%", "--count", str(COUNT), out=out)
    assert run.code == 0, run.stderr
    return out


@pytest.fixture(scope="module")
def demo_optimum(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Each stage's optimum from a cold, ordinary solve (not the alternatives' own)."""
    run = allocator.solve(DEMO, tmp_path_factory.mktemp("cold") / "run", output__report=False,
                          output__sensitivity=False)
    return {k: float(v) for k, v in run.objectives.items() if v is not None}


def _site_fte(plan: pd.DataFrame) -> pd.Series:
    return plan.groupby("site_id")["fte"].sum()


@pytest.mark.slow
def test_every_alternative_is_feasible_and_within_the_slack(demo_alternatives, demo_optimum):
    table = _read(demo_alternatives, "alternatives")
    assert list(table["alternative"]) == list(range(COUNT + 1))
    for k in table["alternative"]:
        plan = _read(demo_alternatives, f"plan_{k}")
        check = check_plan(DEMO, plan)
        assert check.violations == [], (k, check.violations[:5])
        row = table.iloc[k]
        # The stage objectives recomputed from plan.csv and the input tables...
        assert row["service"] == pytest.approx(check.service, rel=1e-6, abs=1e-6)
        assert row["cost"] == pytest.approx(check.cost, rel=1e-7)
        assert row["plan_cost"] == pytest.approx(plan["cost"].sum(), rel=1e-9)
        assert row["fte"] == pytest.approx(plan["fte"].sum(), rel=1e-9)
        # ... within 1% of the optimum of a cold solve (the limits say so too).
        for stage in ("service", "cost"):
            limit = demo_optimum[stage] * (1 + WITHIN) + 1e-6
            assert row[f"{stage}_limit"] == pytest.approx(limit, rel=1e-6)
            recomputed = check.service if stage == "service" else check.cost
            assert recomputed <= limit * (1 + 1e-7), (k, stage, recomputed, limit)
            change = 100 * (row[stage] - demo_optimum[stage]) / demo_optimum[stage]
            assert row[f"{stage}_change_pct"] == pytest.approx(change, abs=1e-3)
        coverage = _read(demo_alternatives, f"coverage_{k}")
        assert row["demand_served_share"] == pytest.approx(
            coverage["served"].sum() / coverage["demand"].sum(), rel=1e-9)
    # The optimum is plan 0: its stage values are the cold solve's.
    assert table.loc[0, "service"] == pytest.approx(demo_optimum["service"], rel=1e-5)
    assert table.loc[0, "cost"] == pytest.approx(demo_optimum["cost"], rel=1e-6)


def test_distances_recomputed_from_the_plans(demo_alternatives):
    table = _read(demo_alternatives, "alternatives")
    sites = pd.concat([_site_fte(_read(demo_alternatives, f"plan_{k}")).rename(k)
                       for k in table["alternative"]], axis=1).fillna(0.0)
    cells = pd.concat([_read(demo_alternatives, f"plan_{k}")
                       .groupby(["site_id", "service_id"])["fte"].sum().rename(k)
                       for k in table["alternative"]], axis=1).fillna(0.0)
    for k in table["alternative"]:
        for j in table["alternative"]:
            moved = 0.5 * (sites[k] - sites[j]).abs().sum()
            assert table.loc[k, f"fte_moved_vs_{j}"] == pytest.approx(moved, abs=1e-6)
        assert table.loc[k, "fte_moved_vs_optimal"] == pytest.approx(
            0.5 * (sites[k] - sites[0]).abs().sum(), abs=1e-6)
        assert table.loc[k, "cell_fte_moved_vs_optimal"] == pytest.approx(
            0.5 * (cells[k] - cells[0]).abs().sum(), abs=1e-6)
        if k:
            nearest = min(0.5 * (sites[k] - sites[j]).abs().sum() for j in range(k))
            assert table.loc[k, "fte_moved_vs_nearest"] == pytest.approx(nearest, abs=1e-6)
            # They differ, from the optimum and from each other: at least 1 FTE on the demo.
            assert nearest > 1.0
    # differences.csv is each alternative's FTE by site and service against the optimum.
    differences = _read(demo_alternatives, "differences")
    for k in range(1, COUNT + 1):
        mine = differences[differences["alternative"] == k].set_index(
            ["site_id", "service_id"])["change_fte"]
        expected = (cells[k] - cells[0])
        expected = expected[expected.abs() > 1e-6]
        pd.testing.assert_series_equal(mine.sort_index(), expected.sort_index(),
                                       check_names=False, atol=1e-6)


def test_the_words_match_the_numbers(demo_alternatives):
    table = _read(demo_alternatives, "alternatives")
    sites = {k: _site_fte(_read(demo_alternatives, f"plan_{k}")) for k in table["alternative"]}
    cells = {k: _read(demo_alternatives, f"plan_{k}").groupby(["site_id", "service_id"])[
        "fte"].sum() for k in table["alternative"]}
    assert table.loc[0, "summary"] == "the optimal plan"
    for k in range(1, COUNT + 1):
        words = table.loc[k, "summary"]
        change = sites[k].sub(sites[0], fill_value=0.0)
        for amount, source, target in re.findall(
                r"moves ([0-9.]+) FTE from (.+?) to (.+?)(?:,|$)", words):
            assert change[source] <= -float(amount) + 0.05, (words, source)
            assert change[target] >= float(amount) - 0.05, (words, target)
        for where, services in re.findall(r"keeps (.+?) open for (.+?)(?:,|$)", words):
            for site in re.split(r", | and ", where):
                if re.fullmatch(r"\d+ more sites", site):
                    continue
                for service in services.split(" and "):
                    assert cells[0].get((site, service), 0.0) <= 1e-6
                    assert cells[k].get((site, service), 0.0) > 1e-6
        cost = re.search(r"costs ([0-9.]+)% (more|less)", words)
        assert cost is not None, words
        pct = float(cost.group(1)) * (1 if cost.group(2) == "more" else -1)
        assert pct == pytest.approx(table.loc[k, "cost_change_pct"], abs=0.006)
        plan_cost = _read(demo_alternatives, f"plan_{k}")["cost"].sum()
        optimal_cost = _read(demo_alternatives, "plan_0")["cost"].sum()
        assert table.loc[k, "plan_cost_change_pct"] == pytest.approx(
            100 * (plan_cost - optimal_cost) / optimal_cost, abs=1e-6)
    markdown = (demo_alternatives / "alternatives.md").read_text()
    for words in table["summary"]:
        assert words in markdown


def test_same_input_same_files_and_the_library_returns_frames(demo_alternatives, tmp_path):
    found = find_alternatives(DEMO, within="1%", count=COUNT)
    assert isinstance(found.table, pd.DataFrame) and len(found.plans) == COUNT + 1
    write_alternatives(found, tmp_path / "again")
    names = sorted(p.name for p in demo_alternatives.iterdir() if p.name[0] != ".")
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir() if p.name[0] != ".")
    _same, mismatch, errors = filecmp.cmpfiles(demo_alternatives, tmp_path / "again", names,
                                               shallow=False)
    assert mismatch == [] and errors == []


def test_whole_assignment_alternatives_check_out(case):
    found = find_alternatives(case / "scenario.toml", within="20%", count=2,
                              overrides=['policy.assignment="whole"'])
    assert len(found.table) >= 2
    for k, tables in enumerate(found.plans):
        check = check_plan(case / "scenario.toml", tables["plan"], whole=True)
        assert check.violations == [], (k, check.violations)
        assert found.table.loc[k, "service"] <= found.table.loc[0, "service_limit"] + 1e-9
        assert check.service == pytest.approx(found.table.loc[k, "service"], abs=1e-6)


def test_no_room_says_so(case):
    found = find_alternatives(case / "scenario.toml", within=0, count=3)
    # The tiny case has one optimal plan by site: nothing else holds every stage exactly.
    assert len(found.table) == 1
    assert found.notes and "0 alternatives found" in found.notes[0]


def test_bad_input_is_refused_with_its_exit_code(case, tmp_path):
    assert parse_within("1%") == pytest.approx(0.01) and parse_within("0.02") == 0.02
    bad = run_cli("alternatives", case / "scenario.toml", "--within", "lots", "--count", "0",
                  out=tmp_path / "x")
    assert bad.code == 2 and "--within 'lots'" in bad.stderr
    assert not (tmp_path / "x").exists()
    count = run_cli("alternatives", case / "scenario.toml", "--count", "0", out=tmp_path / "x")
    assert count.code == 2 and "--count" in count.stderr
    network = run_cli("alternatives", DEMO.parent / "network.toml", out=tmp_path / "x")
    assert network.code == 2 and "model 'network'" in network.stderr
    (case / "targets.csv").write_text("site_id,service_id,demand,min_level,weight\n"
                                      "A,pick,4,1.0,1\nA,pack,1,0,2\nB,pack,2,1.0,1\n")
    (case / "budgets.csv").write_text("budget_id,scope,amount\nall,all,200\n")
    infeasible = run_cli("alternatives", case / "scenario.toml", out=tmp_path / "x")
    assert infeasible.code == 3 and "no plan meets" in infeasible.stderr
    assert not (tmp_path / "x").exists()
    limited = run_cli("alternatives", DEMO, "--set", "solver.time_limit=1e-6",
                      out=tmp_path / "x")
    assert limited.code == 4 and "time limit" in limited.stderr
    assert not (tmp_path / "x").exists()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep")
    exists = run_cli("alternatives", DEMO, "--force", out=tmp_path / "x")
    assert exists.code == 2 and (tmp_path / "x" / "mine.txt").read_text() == "keep"


def test_help_lists_the_exit_codes():
    shown = run_cli("alternatives", "--help")
    assert shown.code == 0 and "Exit codes" in shown.stdout and "3 infeasible" in shown.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_page_opens_in_chromium(demo_alternatives, tmp_path):
    page = demo_alternatives / "alternatives.html"
    text = page.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//|url\((?!#)", text)  # no network
    errors, body = _open_in_chromium(page, tmp_path / "shot.png")
    assert errors == []
    assert "How each alternative differs" in body and "FTE by site against the optimum" in body
    table = _read(demo_alternatives, "alternatives")
    assert table.loc[1, "summary"][:40] in body
    assert (tmp_path / "shot.png").stat().st_size > 10_000
    if Path("/tmp/keep-alt-shot").exists():
        shutil.copy(tmp_path / "shot.png", "/tmp/keep-alt-shot/alternatives.png")
    assert np.isfinite(table["fte_moved_vs_optimal"]).all()


def test_stability_stage_is_held_and_said_in_fte_moved(case):
    (case / "baseline.csv").write_text("staff_id,site_id,service_id,fte\n007,A,pick,1\n"
                                       "s2,A,pick,2\ns3,B,pack,1\n")
    scenario = case / "scenario.toml"
    scenario.write_text(scenario.read_text().replace(
        "[tables]", '[tables]\nbaseline = "baseline.csv"').replace(
        'order = ["service", "cost"]', 'order = ["service", "cost", "stability"]'))
    found = find_alternatives(scenario, within="25%", count=2)
    assert len(found.table) >= 2 and "against the baseline" in found.table.loc[1, "summary"]
    baseline = pd.read_csv(case / "baseline.csv", dtype=IDS).set_index(
        ["staff_id", "site_id", "service_id"])["fte"]
    table = found.table
    for k, tables in enumerate(found.plans):
        plan = tables["plan"].set_index(["staff_id", "site_id", "service_id"])["fte"]
        both = plan.index.union(baseline.index)
        moved = (plan.reindex(both, fill_value=0.0)
                 - baseline.reindex(both, fill_value=0.0)).abs().sum()
        assert table.loc[k, "stability"] == pytest.approx(moved, abs=1e-6)  # the model's unit
        assert table.loc[k, "fte_moved_vs_baseline"] == pytest.approx(moved / 2, abs=1e-6)
        assert moved <= table.loc[0, "stability_limit"] + 1e-6
        check = check_plan(scenario, tables["plan"].reset_index(drop=True))
        assert check.violations == []


def test_opposite_signs_of_two_plans_leave_the_search_feasible(case):
    """With fixed signs, two earlier plans' rows can ask for opposite moves: the distance
    variable is free, so the LP stays feasible (it was infeasible when t >= 0)."""
    scenario = case / "scenario.toml"
    found = find_alternatives(scenario, within="10%", count=3)
    assert len(found.table) == 4
    assert (found.table.loc[1:, "fte_moved_vs_nearest"] > 0.01).all()
    for tables in found.plans:
        assert check_plan(scenario, tables["plan"]).violations == []
