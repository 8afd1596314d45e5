"""`allocator diff A B`: two nights of a generated tiny instance (day 2: a few demands changed,
staff added and removed, budgets cut), solved through the CLI and recorded in a store; every
figure of the diff checked against the two run folders' own tables, recomputed here."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.api import read_output_table
from allocator.diff import next_day
from allocator.diff.daygen import NextDay
from tests.conftest import run_cli, run_cli_fresh

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEYS = ["staff_id", "site_id", "service_id"]


@dataclass
class Nights:
    day1: Path  # run folders
    day2: Path
    change: NextDay
    store: str
    scenario1: Path


def make_nights(root: Path, store: str, seed: int = 5) -> Nights:
    """Day 1 generated, day 2 = day 1 with 2 demands changed by 30%, 2 staff removed, 2
    added and budgets cut by 10%; both solved through the CLI into `store`."""
    gen = run_cli("generate", "--size", "tiny", "--seed", str(seed), out=root / "day1")
    assert gen.code == 0, gen.stderr
    scenario1 = root / "day1" / "scenario.toml"
    change = next_day(scenario1, root / "day2", seed=seed, demand_change=0.3,
                      budget_scale=0.9)
    for scenario, out in ((scenario1, root / "run1"), (change.scenario, root / "run2")):
        solved = run_cli("solve", scenario, "--store", store, out=out)
        assert solved.code == 0, solved.stderr
    return Nights(root / "run1", root / "run2", change, store, scenario1)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    root = tmp_path_factory.mktemp("nights")
    return make_nights(root, str(root / "runs.sqlite"))


@pytest.fixture(scope="module")
def diffed(nights: Nights, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diff") / "d"
    done = run_cli("diff", nights.day1, nights.day2, out=out)
    assert done.code == 0, done.stderr
    assert "moves" in done.stdout and "written:" in done.stdout
    return out


def _read(path: Path) -> pd.DataFrame:
    return read_output_table(path)


@pytest.mark.slow
def test_moves_are_the_plans_difference(nights: Nights, diffed: Path) -> None:
    """moves.csv against a by-hand outer join of the two plan.csv files."""
    a = pd.read_csv(nights.day1 / "plan.csv", dtype=str).astype({"fte": float})
    b = pd.read_csv(nights.day2 / "plan.csv", dtype=str).astype({"fte": float})
    both = a[[*KEYS, "fte"]].merge(b[[*KEYS, "fte"]], on=KEYS, how="outer",
                                   suffixes=("_a", "_b")).fillna({"fte_a": 0, "fte_b": 0})
    both["delta"] = both["fte_b"] - both["fte_a"]
    want = both[both["delta"].abs() > 1e-7].sort_values(KEYS).reset_index(drop=True)
    got = pd.read_csv(diffed / "moves.csv", dtype={k: str for k in KEYS})
    assert list(got.columns[:6]) == ["staff_id", "site_id", "service_id", "fte_a", "fte_b",
                                     "delta"]
    got = got.sort_values(KEYS).reset_index(drop=True)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got[KEYS], want[KEYS])
    np.testing.assert_allclose(got[["fte_a", "fte_b", "delta"]].to_numpy(),
                               want[["fte_a", "fte_b", "delta"]].to_numpy(), atol=1e-9)
    moved = want["delta"].abs().sum() / 2
    assert f"{moved:,.4g} FTE moved" in (diffed / "diff.md").read_text()
    # people who disappear: every removed staff member who worked on day 1
    gone = set(nights.change.staff_removed) & set(a["staff_id"])
    assert gone and gone <= set(got.loc[got["fte_b"] == 0, "staff_id"])
    assert set(got.loc[got["category"] == "staff removed", "staff_id"]) == gone
    came = set(nights.change.staff_added) & set(b["staff_id"])
    assert set(got.loc[got["category"] == "staff added", "staff_id"]) == came


def test_coverage_budgets_objectives(nights: Nights, diffed: Path) -> None:
    cov = _read(diffed / "coverage_diff.csv").set_index(["site_id", "service_id"])
    for side, folder in (("a", nights.day1), ("b", nights.day2)):
        own = _read(folder / "coverage.csv").set_index(["site_id", "service_id"])
        for col in ("demand", "served", "shortfall"):
            np.testing.assert_allclose(cov.loc[own.index, f"{col}_{side}"], own[col])
    np.testing.assert_allclose(cov["shortfall_delta"], cov["shortfall_b"] - cov["shortfall_a"])
    bud = _read(diffed / "budgets_diff.csv").set_index("budget_id")
    for side, folder in (("a", nights.day1), ("b", nights.day2)):
        own = _read(folder / "budgets.csv").set_index("budget_id")
        for col in ("amount", "spent", "headroom"):
            np.testing.assert_allclose(bud.loc[own.index, f"{col}_{side}"], own[col])
    objectives = _read(diffed / "objectives.csv").set_index("stage")
    for side, run in (("a", nights.day1), ("b", nights.day2)):
        summary = pd.read_json(run / "summary.json", typ="series")
        for stage, value in summary["objectives"].items():
            assert objectives.loc[stage, side] == pytest.approx(value, rel=1e-12)


def test_inputs_by_business_ids_with_causes(nights: Nights, diffed: Path) -> None:
    tables = _read(diffed / "inputs_diff.csv").set_index("table")
    assert tables.loc["targets", "status"] == "changed"
    assert tables.loc["staff", "status"] == "changed"
    assert tables.loc["sites", "status"] == "same"
    changes = _read(diffed / "input_changes.csv")
    demand = changes[(changes["table"] == "targets") & (changes["column"] == "demand")]
    want = nights.change.demands_changed.sort_values(["site_id", "service_id"])
    got = demand.sort_values(["site_id", "service_id"])
    assert list(got["site_id"]) == list(want["site_id"])
    assert list(got["service_id"]) == list(want["service_id"])
    assert list(got["row_b"].astype(int)) == list(want["row"])  # the file's row numbers
    np.testing.assert_allclose(got["value_a"].astype(float), want["demand_a"])
    np.testing.assert_allclose(got["value_b"].astype(float), want["demand_b"])
    staff = changes[changes["table"] == "staff"]
    assert set(staff.loc[staff["change"] == "removed", "staff_id"]) == \
        set(nights.change.staff_removed)
    assert set(staff.loc[staff["change"] == "added", "staff_id"]) == \
        set(nights.change.staff_added)
    assert (changes.loc[changes["table"] == "budgets", "column"] == "amount").all()
    # the cause sits next to the change it explains, by business ids
    cov = _read(diffed / "coverage_diff.csv")
    for row in want.itertuples(index=False):
        cause = cov.loc[(cov["site_id"] == row.site_id) & (cov["service_id"] == row.service_id),
                        "cause"].iloc[0]
        assert f"targets.csv row {row.row}" in cause
        verb = "raised" if row.demand_b > row.demand_a else "lowered"
        assert f"{verb} demand of {row.site_id} {row.service_id}" in cause
    bud = _read(diffed / "budgets_diff.csv")
    assert bud["cause"].str.contains("budgets.csv row").all()
    md = (diffed / "diff.md").read_text()
    assert "## The story" in md and f"targets.csv row {want['row'].iloc[0]}" in md


def test_waterfalls_add_up(nights: Nights, diffed: Path) -> None:
    cost = _read(diffed / "waterfall_cost.csv")
    plan_a, plan_b = (_read(f / "plan.csv") for f in (nights.day1, nights.day2))
    assert cost["value"].iloc[0] == pytest.approx(plan_a["cost"].sum())
    assert cost["value"].iloc[-1] == pytest.approx(plan_b["cost"].sum())
    steps = cost[cost["kind"] == "change"]["value"].sum()
    assert steps == pytest.approx(plan_b["cost"].sum() - plan_a["cost"].sum(), abs=1e-6)
    moves = _read(diffed / "moves.csv")
    added = moves.loc[moves["category"] == "staff added", "cost_delta"].sum()
    assert cost.set_index("step")["value"].get("staff added", 0.0) == pytest.approx(added)
    known = {"cost A", "cost B", "staff added", "staff removed", "staff changes",
             "demand changes", "site changes", "service changes", "budget changes",
             "re-planning"}
    assert set(cost["step"]) <= known
    short = _read(diffed / "waterfall_shortfall.csv")
    cov_a, cov_b = (_read(f / "coverage.csv") for f in (nights.day1, nights.day2))
    assert short["value"].iloc[0] == pytest.approx(cov_a["shortfall"].sum())
    assert short["value"].iloc[-1] == pytest.approx(cov_b["shortfall"].sum())
    assert short[short["kind"] == "change"]["value"].sum() == pytest.approx(
        cov_b["shortfall"].sum() - cov_a["shortfall"].sum())


def test_constraints_diff_from_sensitivity(nights: Nights, diffed: Path) -> None:
    keys = ["stage", "family", "labels"]

    def rows(folder: Path) -> pd.DataFrame:
        s = _read(folder / "sensitivity.csv")
        s = s[s["kind"] == "constraint"][[*keys, "binding", "dual"]]
        s["binding"] = s["binding"].astype(str).str.lower() == "true"
        return s.set_index(keys)

    a, b = rows(nights.day1), rows(nights.day2)
    both = a.merge(b, how="outer", left_index=True, right_index=True, suffixes=("_a", "_b"))
    bind = both["binding_a"].fillna(False).astype(bool) != \
        both["binding_b"].fillna(False).astype(bool)
    price = (both["dual_a"].fillna(0) - both["dual_b"].fillna(0)).abs() > 1e-9 * np.maximum(
        1, np.maximum(both["dual_a"].abs().fillna(0), both["dual_b"].abs().fillna(0)))
    want = set(both.index[bind | price])
    got = _read(diffed / "constraints_diff.csv")
    assert set(map(tuple, got[keys].fillna("").to_numpy())) == {
        tuple("" if pd.isna(v) else v for v in k) for k in want}
    assert want
    # a changed target's coverage rows name it as their cause (labels 'site/service')
    for row in nights.change.demands_changed.itertuples(index=False):
        hits = got[(got["family"] == "coverage")
                   & (got["labels"] == f"{row.site_id}/{row.service_id}")]
        assert hits["cause"].str.contains(f"targets.csv row {row.row} ").all()


@pytest.mark.slow
def test_store_ids_and_determinism(nights: Nights, diffed: Path, tmp_path: Path) -> None:
    again = run_cli_fresh("diff", "1", "2", "--store", nights.store, out=tmp_path / "d")
    assert again.code == 0, again.stderr
    for name in ("moves.csv", "coverage_diff.csv", "input_changes.csv", "diff.md",
                 "diff.html"):
        assert (tmp_path / "d" / name).read_bytes() == (diffed / name).read_bytes(), name


def test_bad_usage(nights: Nights, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    refused = run_cli("diff", nights.day1, nights.day2, out=mine, timeout=60)
    assert refused.code == 2 and (mine / "notes.txt").read_text() == "mine"
    missing = run_cli("diff", tmp_path / "nothing", nights.day2, "--store", nights.store,
                      out=tmp_path / "d", timeout=60)
    assert missing.code == 2 and "nothing" in missing.stderr
    assert not (tmp_path / "d").exists()
    assert "Exit codes" in run_cli("diff", "--help").stdout


def test_baseline_diff(nights: Nights, tmp_path: Path) -> None:
    """A run compares itself with its baseline: a run folder's plan (that whole run) or a
    plan file alone (its plan only)."""
    from allocator.diff import diff_runs, write_baseline_diff

    diff = write_baseline_diff(nights.day2, nights.day1 / "plan.csv", out=tmp_path / "b")
    assert diff is not None and (tmp_path / "b" / "diff.html").is_file()
    pd.testing.assert_frame_equal(diff.moves, diff_runs(nights.day1, nights.day2).moves)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copyfile(nights.day1 / "plan.csv", lone / "yesterday.csv")
    alone = write_baseline_diff(nights.day2, lone / "yesterday.csv", out=tmp_path / "c")
    assert alone is not None
    assert alone.moves[KEYS].equals(diff.moves[KEYS])
    assert any("plan file" in n for n in alone.notes)
    # as the pipeline calls it: the baseline found from the run's recorded `baseline` table,
    # the files written into the run folder being written (prefixed), complete at commit
    from allocator.outputs.folder import run_folder

    summary = json.loads((nights.day2 / "summary.json").read_text())
    summary["inputs"]["baseline"] = {"source": str(nights.day1 / "plan.csv"), "rows": 1,
                                     "sha256_16": "x"}
    with run_folder(tmp_path / "run", ("csv",), False) as folder:
        for name in ("plan.csv", "coverage.csv", "budgets.csv", "sensitivity.csv"):
            shutil.copyfile(nights.day2 / name, folder.tmp / name)
        inside = write_baseline_diff(folder.tmp, into=folder, summary=summary)
    assert inside is not None
    assert (tmp_path / "run" / "baseline_moves.csv").read_bytes() == \
        (tmp_path / "b" / "moves.csv").read_bytes()
    assert (tmp_path / "run" / "baseline_diff.html").is_file()
    assert write_baseline_diff(nights.day2) is None  # no baseline table: nothing to compare


def test_input_changed_since_the_run(nights: Nights, tmp_path: Path) -> None:
    """A file rewritten after the run: its rows are the file as it is now, and diff.md says
    so (the table-level verdict still comes from the hashes the runs recorded)."""
    targets = nights.scenario1.parent / "targets.csv"
    kept = targets.read_bytes()
    try:
        frame = pd.read_csv(targets, dtype=str)
        frame.loc[0, "weight"] = "9.5"
        frame.to_csv(targets, index=False)
        done = run_cli("diff", nights.day1, nights.day2, out=tmp_path / "d")
        assert done.code == 0, done.stderr
        md = (tmp_path / "d" / "diff.md").read_text()
        assert f"{targets} changed since the run read it" in md
        assert "changed since the run read it" in done.stdout
    finally:
        targets.write_bytes(kept)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_diff_html_in_chromium(diffed: Path, tmp_path: Path) -> None:
    from tests.test_report import _open_in_chromium

    errors, text = _open_in_chromium(diffed / "diff.html", tmp_path / "shot.png")
    assert errors == []
    assert "Cost by cause" in text and "Shortfall by cause" in text
    html = (diffed / "diff.html").read_text()
    assert html.count("<figure class='waterfall'") == 2 and html.count("<svg") >= 2
    assert "<script" not in html.lower() and "src=" not in html and "href=\"http" not in html


@pytest.mark.slow
def test_funding_plan_diff(tmp_path: Path) -> None:
    """funding: what its tables allow. The total budget cut by 20%: plan_diff.csv against the
    two plan.csv files, budgets_diff.csv, the budgets.csv row as the input change."""
    root = Path(__file__).resolve().parents[1]
    scenario = (root / "models" / "funding.toml").read_text()
    data = root / "data" / "funding"
    budgets = pd.read_csv(data / "budgets.csv", dtype=str)
    total = budgets["amount"].astype(float).idxmax()
    budgets.loc[total, "amount"] = str(float(budgets.loc[total, "amount"]) * 0.8)
    (tmp_path / "in").mkdir()
    budgets.to_csv(tmp_path / "in" / "budgets.csv", index=False)
    (tmp_path / "cut.toml").write_text(
        scenario.replace("../data/funding/programs.csv", str(data / "programs.csv"))
        .replace("../data/funding/response.csv", str(data / "response.csv"))
        .replace("../data/funding/budgets.csv", str(tmp_path / "in" / "budgets.csv")))
    for name, path in (("a", root / "models" / "funding.toml"), ("b", tmp_path / "cut.toml")):
        done = run_cli("solve", path, "--no-store", out=tmp_path / name)
        assert done.code == 0, done.stderr
    diffed = run_cli("diff", tmp_path / "a", tmp_path / "b", out=tmp_path / "d")
    assert diffed.code == 0, diffed.stderr
    got = _read(tmp_path / "d" / "plan_diff.csv").set_index("program_id")
    a = _read(tmp_path / "a" / "plan.csv").set_index("program_id")
    b = _read(tmp_path / "b" / "plan.csv").set_index("program_id")
    delta = (b["spend"] - a["spend"])
    moved = delta[delta.abs() > 1e-7]
    assert len(moved) and set(got.index) >= set(moved.index)
    np.testing.assert_allclose(got.loc[moved.index, "spend_delta"], moved)
    assert not (tmp_path / "d" / "moves.csv").exists()
    changes = _read(tmp_path / "d" / "input_changes.csv")
    assert list(changes["budget_id"]) == [budgets.loc[total, "budget_id"]]
    assert "model funding" in (tmp_path / "d" / "diff.md").read_text()
    assert (tmp_path / "d" / "budgets_diff.csv").is_file()


def test_against_a_run_without_plan(nights: Nights, tmp_path: Path) -> None:
    """B infeasible (no plan tables): the objectives say so, nothing is invented."""
    from allocator.diff import diff_runs

    folder = tmp_path / "infeasible"
    folder.mkdir()
    summary = json.loads((nights.day2 / "summary.json").read_text())
    summary.update(status="infeasible", exit_code=3, objectives={})
    (folder / "summary.json").write_text(json.dumps(summary))
    diff = diff_runs(nights.day1, folder)
    assert diff.moves.empty and diff.objectives["b"].isna().all()
    assert any("has no service objective (status infeasible)" in s for s in diff.story)
    assert any("no plan in" in n for n in diff.notes)


def test_same_values_only_when_every_column_and_value_is_the_same(tmp_path: Path) -> None:
    """'same values' (hashes differ, rows and values do not) is a claim: a column dropped,
    or a site id written "01" for "1", is a change, not the same values."""
    from allocator.diff.inputs import diff_inputs
    from allocator.tables.readers import read_table

    def record(path: Path) -> dict:
        table = read_table("staff", str(path), path.parent)
        return {"inputs": {"staff": {"source": str(path), "rows": len(table.frame),
                                     "sha256_16": table.digest}}}

    a = tmp_path / "a.csv"
    a.write_text("staff_id,home_site,fte,notes\nE1,1,1.0,x\nE2,2,0.5,y\n")
    same = tmp_path / "same.csv"
    same.write_text("staff_id,home_site,fte,notes\nE1,1,1.00,x\nE2,2,0.50,y\n")
    dropped = tmp_path / "dropped.csv"
    dropped.write_text("staff_id,home_site,fte\nE1,1,1.0\nE2,2,0.5\n")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("staff_id,home_site,fte,notes\nE1,01,1.0,x\nE2,2,0.5,y\n")
    status = {other.stem: diff_inputs(record(a), record(other)).tables.set_index("table")
              .loc["staff", "status"] for other in (same, dropped, renamed)}
    assert status == {"same": "same values", "dropped": "changed", "renamed": "changed"}
