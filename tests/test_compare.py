"""`allocator compare`: every figure of compare.csv recomputed from each run's plan.csv,
coverage.csv and input tables with pandas, prices against a re-solve, the input differences
against the edits made, the page opened in Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from allocator.negotiate.compare import compare, compare_html, compare_runs
from tests.conftest import DEMO, TINY, run_cli
from tests.plan_check import check_plan
from tests.test_report import CHROMIUM, _open_in_chromium

IDS = {"staff_id": str, "site_id": str, "service_id": str, "budget_id": str}


def _variant(root: Path, name: str, edits: dict[str, tuple[str, str]]) -> Path:
    folder = root / name
    shutil.copytree(TINY.parent, folder)
    for file, (old, new) in edits.items():
        path = folder / file
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
    return folder / "scenario.toml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cmp")
    base = _variant(root, "base", {})
    cut = _variant(root, "cut", {"budgets.csv": ("all,all,1000", "all,all,250"),
                                 "targets.csv": ("A,pick,4,", "A,pick,5,")})
    hired = _variant(root, "hired", {"staff.csv": ("s3,B,pack,1,", "s3,B,pack,2,")})
    run = allocator.solve(hired, root / "hired-run", output__report=False)  # a run folder
    assert run.exit_code == 0
    out = root / "out"
    done = run_cli("compare", base, cut, root / "hired-run", out=out)
    assert done.code == 0, done.stderr
    return {"base": base, "cut": cut, "hired": hired, "out": out, "root": root,
            "run_base": out / "runs" / "base", "run_cut": out / "runs" / "cut",
            "run_hired": root / "hired-run"}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=IDS, keep_default_na=False, na_values=[""])


def _side(setup: dict[str, Path]) -> pd.DataFrame:
    return _read(setup["out"] / "compare.csv")


def _value(side: pd.DataFrame, section: str, item: str, run: str) -> object:
    found = side[(side["section"] == section) & (side["item"] == item)]
    assert len(found) == 1, (section, item)
    return found.iloc[0][run]


RUNS = (("base", "run_base", "base"), ("cut", "run_cut", "cut"),
        ("hired-run", "run_hired", "hired"))


@pytest.mark.slow
def test_the_figures_are_recomputed_from_each_run(setup):
    side = _side(setup)
    assert list(side.columns) == ["section", "item", "unit", "base", "cut", "hired-run"]
    for name, folder_key, scenario_key in RUNS:
        folder = setup[folder_key]
        plan, coverage = _read(folder / "plan.csv"), _read(folder / "coverage.csv")
        check = check_plan(setup[scenario_key], plan)
        assert check.violations == []
        def num(section: str, item: str, name: str = name) -> float:
            return float(_value(side, section, item, name))  # type: ignore[arg-type]

        # stage objectives: the service stage recomputed from the plan and the input tables
        assert num("stage objective", "service") == pytest.approx(check.service, rel=1e-5,
                                                                  abs=1e-6)
        assert num("stage objective", "cost") == pytest.approx(check.cost, rel=1e-5)
        assert num("plan", "cost") == pytest.approx(plan["cost"].sum(), rel=1e-9)
        assert num("plan", "FTE") == pytest.approx(plan["fte"].sum(), rel=1e-9)
        targets = _read(setup[scenario_key].parent / "targets.csv")
        demand = targets["demand"].astype(float).sum()
        assert num("plan", "demand") == pytest.approx(demand)
        work = plan.merge(_read(setup[scenario_key].parent / "services.csv"), on="service_id")
        work = (work["fte"] * work["productivity"].astype(float)).groupby(
            [work["site_id"], work["service_id"]]).sum()
        served = sum(min(work.get((r.site_id, r.service_id), 0.0), float(r.demand))
                     for r in targets.itertuples())
        shares = side[(side["section"] == "plan") & (side["item"] == "demand served")]
        assert float(shares[shares["unit"] == "share"].iloc[0][name]) == pytest.approx(
            served / demand, rel=1e-7)
        assert num("plan", "unmet workload") == pytest.approx(demand - served, abs=1e-6)
        # coverage by site and by site x service, from coverage.csv with pandas
        site = coverage.groupby("site_id")[["served", "demand"]].sum()
        for site_id, row in site.iterrows():
            assert num("coverage by site", site_id) == pytest.approx(
                row["served"] / row["demand"], abs=1e-8)
        for row in coverage.itertuples():
            assert num("coverage", f"{row.site_id} / {row.service_id}") == pytest.approx(
                row.served / row.demand, abs=1e-8)  # coverage.csv: rounded to 1e-9
        # budget use from plan.csv's cost, amount from the input table, headroom between
        amount = float(_read(setup[scenario_key].parent / "budgets.csv")["amount"].iloc[0])
        assert num("budget amount", "all") == pytest.approx(amount)
        assert num("budget use", "all") == pytest.approx(plan["cost"].sum(), rel=1e-9)
        assert num("budget headroom", "all") == pytest.approx(amount - plan["cost"].sum(),
                                                              abs=1e-6)


def test_binding_budget_price_agrees_with_a_re_solve(setup, tmp_path):
    side = _side(setup)
    price = float(_value(side, "binding (service stage)", "budget all", "cut"))
    assert pd.isna(_value(side, "binding (service stage)", "budget all", "base"))  # slack
    # Independent: the same scenario re-solved cold with one unit more of the budget.
    raised = _variant(tmp_path, "raised", {"budgets.csv": ("all,all,1000", "all,all,251"),
                                           "targets.csv": ("A,pick,4,", "A,pick,5,")})
    before = allocator.solve(setup["cut"], tmp_path / "a", output__report=False)
    after = allocator.solve(raised, tmp_path / "b", output__report=False)
    assert before.exit_code == after.exit_code == 0
    change = after.objectives["service"] - before.objectives["service"]
    assert price == pytest.approx(change, rel=1e-6)  # one more unit of money
    assert price < 0  # more money, less shortfall


def test_the_inputs_that_differ_are_the_edits(setup):
    changes = _read(setup["out"] / "compare_inputs.csv")
    found = {(r.run, r.table, str(r.key), r.column, str(r.value_a), str(r.value_b))
             for r in changes.itertuples()}
    assert found == {("cut", "budgets", "all", "amount", "1000", "250"),
                     ("cut", "targets", "A pick", "demand", "4", "5"),
                     ("hired-run", "staff", "s3", "fte", "1", "2")}
    side = _side(setup)  # rows changed against the first, by table
    assert _value(side, "input", "budgets", "cut") == 1
    assert _value(side, "input", "targets", "cut") == 1
    assert _value(side, "input", "budgets", "hired-run") == 0
    assert _value(side, "input", "staff", "hired-run") == 1
    assert _value(side, "input", "staff", "base") == 0
    markdown = (setup["out"] / "compare.md").read_text()
    assert "lowered amount of all by 75%" in markdown


@pytest.mark.slow
def test_two_runs_get_the_diff_engines_detail(setup, tmp_path):
    found = compare([setup["run_base"], setup["run_cut"]], tmp_path / "two")
    assert found.diff is not None
    for name in ("compare.csv", "diff.md", "diff.html", "moves.csv", "coverage_diff.csv"):
        assert (tmp_path / "two" / name).is_file(), name
    moves = _read(tmp_path / "two" / "moves.csv")
    a, b = _read(setup["run_base"] / "plan.csv"), _read(setup["run_cut"] / "plan.csv")
    keys = ["staff_id", "site_id", "service_id"]
    delta = b.groupby(keys)["fte"].sum().sub(a.groupby(keys)["fte"].sum(), fill_value=0.0)
    delta = delta[delta.abs() > 1e-7]
    assert moves.set_index(keys)["delta"].sort_index().to_dict() == pytest.approx(
        delta.sort_index().to_dict())
    # the same runs, the same page (the figures and the pictures are deterministic)
    again = compare_runs([setup["run_base"], setup["run_cut"]])
    assert compare_html(again) == (tmp_path / "two" / "compare.html").read_text()
    # three or more: no pairwise detail, and the library returns frames
    three = compare_runs([setup["run_base"], setup["run_cut"], setup["run_hired"]])
    assert three.diff is None and isinstance(three.kpis, pd.DataFrame) and len(three.kpis) == 3
    assert list(three.kpis["run"]) == ["base", "cut", "hired-run"]


@pytest.mark.slow
def test_force_replaces_a_comparison_but_nothing_else(setup, tmp_path):
    out = tmp_path / "again"
    compare([setup["run_base"], setup["cut"]], out)
    assert (out / "runs" / "cut" / "plan.csv").is_file()  # the scenario solved inside
    with pytest.raises(InputError, match="exists; use --force"):
        compare([setup["run_base"], setup["cut"]], out)
    (out / "runs" / "mine").mkdir()
    (out / "runs" / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="did not write"):
        compare([setup["run_base"], setup["cut"]], out, force=True)
    assert (out / "runs" / "mine" / "notes.txt").read_text() == "keep"
    shutil.rmtree(out / "runs" / "mine")
    compare([setup["run_base"], setup["run_cut"]], out, force=True)  # a comparison: replaced
    assert not (out / "runs").exists() and (out / "compare.csv").is_file()


def test_bad_items_are_all_said_at_once(setup, tmp_path):
    broken = _variant(tmp_path, "broken", {"staff.csv": ("fte", "ftee")})
    bad = run_cli("compare", setup["run_base"], tmp_path / "nowhere.toml", tmp_path,
                  out=tmp_path / "x")
    assert bad.code == 2
    assert "nowhere.toml" in bad.stderr and "not found" in bad.stderr
    assert "not a run folder" in bad.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError, match="ftee") as caught:
        compare([setup["run_base"], broken], tmp_path / "x")
    assert any("staff.csv" in str(p) for p in caught.value.problems)
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError, match="at least two"):
        compare([setup["run_base"]], tmp_path / "x")
    shown = run_cli("compare", "--help")
    assert shown.code == 0 and "Exit codes" in shown.stdout


def test_an_infeasible_scenario_is_compared_as_such(setup, tmp_path):
    hopeless = _variant(tmp_path, "hopeless", {
        "targets.csv": ("A,pick,4,0.5,1", "A,pick,4,1.0,1"),
        "budgets.csv": ("all,all,1000", "all,all,200")})
    (hopeless.parent / "targets.csv").write_text(
        "site_id,service_id,demand,min_level,weight\nA,pick,4,1.0,1\nA,pack,1,0,2\n"
        "B,pack,2,1.0,1\n")
    found = compare([setup["run_base"], hopeless], tmp_path / "inf")
    assert list(found.kpis["status"]) == ["optimal", "infeasible"]
    assert any("infeasible" in n and "diagnosis" in n for n in found.notes)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_page_opens_in_chromium(setup, tmp_path):
    page = setup["out"] / "compare.html"
    text = page.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//|url\((?!#)", text)
    assert text.count("<svg") >= 2  # the KPI bars and the coverage heat maps
    errors, body = _open_in_chromium(page, tmp_path / "shot.png")
    assert errors == []
    for heading in ("Key figures", "Coverage by site and service", "Side by side",
                    "Inputs that differ from base"):
        assert heading in body
    if Path("/tmp/keep-alt-shot").exists():
        shutil.copy(tmp_path / "shot.png", "/tmp/keep-alt-shot/compare.png")


def test_the_scenarios_solved_are_recorded_by_their_final_folders(tmp_path: Path) -> None:
    """compare records each scenario it solves in the run store, as `allocator solve` does,
    naming the folder the run ends in (OUT/runs/<name>, not the temporary one it was written
    to): the store's status and objectives are those of that folder's summary.json.
    --no-store records nothing."""
    import json

    base = _variant(tmp_path / "in", "base", {})
    cut = _variant(tmp_path / "in", "cut", {"budgets.csv": ("all,all,1000", "all,all,250")})
    out = tmp_path / "cmp"
    run = run_cli("compare", base, cut, out=out)
    assert run.code == 0, run.stderr
    listed = run_cli("runs", "list", "--last", "0", "--json")
    assert listed.code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(Path(r["folder"]) for r in rows) == sorted(
        [out / "runs" / "base", out / "runs" / "cut"])
    for row in rows:
        summary = json.loads((Path(row["folder"]) / "summary.json").read_text())
        assert row["status"] == summary["status"]
        shown = json.loads(run_cli("runs", "show", str(row["id"]), "--json").stdout)
        assert shown["objectives"] == pytest.approx(summary["objectives"])
    again = run_cli("compare", base, cut, "--no-store", out=tmp_path / "cmp2")
    assert again.code == 0, again.stderr
    assert len(json.loads(run_cli("runs", "list", "--last", "0", "--json").stdout)) == 2
    # what-ifs are recorded, but tonight's solve of the scenario does not start from one
    tonight = run_cli("solve", base, out=tmp_path / "tonight")
    assert tonight.code == 0, tonight.stderr
    assert not any("warm start" in note for note in tonight.summary["notes"]), \
        tonight.summary["notes"]


@pytest.mark.slow
def test_a_comparison_failing_after_its_solves_says_so_in_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenarios were solved and recorded under OUT/runs/<name>, then the comparison
    failed, so OUT was never written: the store's rows said 'optimal' at folders that do
    not exist. Now they say failed, and why."""
    import json

    from allocator.negotiate import compare as module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk caught fire")

    store = tmp_path / "runs.sqlite"
    module.compare([TINY, DEMO], tmp_path / "cmp", store=str(store))  # yesterday's: kept
    monkeypatch.setattr(module, "compare_runs", broken)
    with pytest.raises(RuntimeError, match="caught fire"):
        module.compare([TINY, DEMO], tmp_path / "cmp", store=str(store), force=True)
    assert (tmp_path / "cmp" / "compare.csv").is_file()  # the earlier comparison stays
    rows = json.loads(run_cli("runs", "list", "--store", store, "--json").stdout)
    assert len(rows) == 4
    newest, earlier = rows[:2], rows[2:]  # newest first
    for row in newest:
        assert row["status"] == "failed" and row["what_if"], row
        assert "comparison that then failed (the disk caught fire)" in row["reason"]
    for row in earlier:  # the same folders, an earlier comparison's: left as they were
        assert row["status"] == "optimal" and Path(row["folder"]).is_dir(), row
