"""negotiate.session: edits by business ids, checked with the nearest valid name, and every
figure of an edited solve against a cold `allocator.solve` of the edited table on disk."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from allocator.negotiate.session import Session, edits_from, parse_edit
from tests.conftest import DEMO, ROOT

DEMO_DATA = ROOT / "data" / "demo"


def demo_copy(folder: Path) -> Path:
    """models/demo.toml and its tables in `folder` (the tables beside the scenario)."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in DEMO_DATA.glob("*.csv"):
        shutil.copy(table, folder / table.name)
    text = DEMO.read_text().replace("../data/demo/", "")
    (folder / "scenario.toml").write_text(text)
    return folder / "scenario.toml"


def read_raw(path: Path) -> pd.DataFrame:
    """A table as text (ids like 007 stay as written), to edit like a person would."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def cold(scenario: Path, table: str, change: Callable[[pd.DataFrame], pd.DataFrame],
         folder: Path, **settings: object) -> allocator.Run:
    """A cold run of `scenario` with `table`.csv edited on disk by `change` (pandas)."""
    case = folder / "case"
    if case.exists():
        shutil.rmtree(case)
    shutil.copytree(scenario.parent, case)
    path = case / f"{table}.csv"
    change(read_raw(path)).to_csv(path, index=False)
    chosen: dict[str, object] = {"output__report": False, "output__sensitivity": False,
                                 **settings}
    return allocator.solve(case / scenario.name, **chosen)


def set_cell(key: dict[str, str], column: str, value: float
             ) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        mask = np.ones(len(frame), dtype=bool)
        for k, v in key.items():
            mask &= frame[k].eq(v).to_numpy()
        assert mask.sum() == 1
        frame.loc[mask, column] = repr(float(value))
        return frame
    return change


def assert_matches(point, run: allocator.Run, rel: float = 1e-7) -> None:
    """Every figure of a session point against the cold run's folder."""
    assert point.status == run.summary["status"]
    for stage, value in run.summary["objectives"].items():
        assert point.objectives[stage] == pytest.approx(value, rel=rel, abs=1e-6), stage
    plan_cost = float(run.plan["cost"].sum())
    assert point.cost == pytest.approx(plan_cost, rel=1e-6)
    coverage = run.coverage
    assert point.shortfall == pytest.approx(float(coverage["shortfall"].sum()), rel=1e-6,
                                            abs=1e-6)
    spent = run.budgets.set_index("budget_id")["spent"]
    for bid, used in point.budget_use.items():
        assert used == pytest.approx(float(spent[bid]), rel=1e-6, abs=1e-3), bid


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_copy(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def session(demo: Path) -> Session:
    return Session(demo)


def test_unedited_point_is_the_cold_run(session: Session, demo: Path, tmp_path: Path) -> None:
    point = session.solve()
    run = cold(demo, "budgets", lambda f: f, tmp_path)
    assert_matches(point, run)
    # The binding budget of the demo (South) carries a price in the service stage.
    prices = {b.label: b.dual for b in point.binding if b.stage == "service"
              and b.family == "budget"}
    assert prices["B-SOU"] < 0  # more money, less shortfall


@pytest.mark.parametrize("amount", [2.6e6, 4.4e6])
def test_budget_cell_edit_against_cold_run(session: Session, demo: Path, tmp_path: Path,
                                           amount: float) -> None:
    point = session.solve([parse_edit(f"budgets[B-SOU].amount={amount}")])
    run = cold(demo, "budgets", set_cell({"budget_id": "B-SOU"}, "amount", amount), tmp_path)
    assert_matches(point, run)
    assert point.budget_limit["B-SOU"] == amount


def test_region_scaled_demand_against_cold_run(session: Session, demo: Path,
                                               tmp_path: Path) -> None:
    point = session.solve(edits_from(["targets[region=North].demand*1.15"]))
    sites = read_raw(demo.parent / "sites.csv")
    north = set(sites.loc[sites["region"] == "North", "site_id"])

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame["site_id"].isin(north)
        frame.loc[rows, "demand"] = (frame.loc[rows, "demand"].astype(float) * 1.15).map(repr)
        return frame

    assert_matches(point, cold(demo, "targets", change, tmp_path))


def test_two_id_cell_and_site_filter(session: Session, demo: Path, tmp_path: Path) -> None:
    edits = edits_from(["targets[Leeds,picking].demand=30", "sites[Leeds].capacity_fte*0.9"])
    point = session.solve(edits)
    case = tmp_path / "two"
    shutil.copytree(demo.parent, case)
    targets = read_raw(case / "targets.csv")
    targets.loc[(targets["site_id"] == "Leeds") & (targets["service_id"] == "picking"),
                "demand"] = "30"
    targets.to_csv(case / "targets.csv", index=False)
    sites = read_raw(case / "sites.csv")
    rows = sites["site_id"] == "Leeds"
    sites.loc[rows, "capacity_fte"] = (sites.loc[rows, "capacity_fte"].astype(float)
                                       * 0.9).map(repr)
    sites.to_csv(case / "sites.csv", index=False)
    run = allocator.solve(case / "scenario.toml", output__report=False,
                          output__sensitivity=False)
    assert_matches(point, run)


def test_warm_start_from_the_previous_basis(session: Session) -> None:
    session.solve([parse_edit("budgets[B-SOU].amount=3.1e6")])
    warm = session.solve([parse_edit("budgets[B-SOU].amount=3.2e6")])
    cold_point = session.solve([parse_edit("budgets[B-SOU].amount=3.2e6")], warm=False)
    assert warm.warm and not cold_point.warm
    assert warm.iterations < cold_point.iterations
    for stage, value in cold_point.objectives.items():
        assert warm.objectives[stage] == pytest.approx(value, rel=1e-9)


def test_plans_on_request(session: Session) -> None:
    point = session.solve([parse_edit("budgets[B-SOU].amount=3e6")], plans=True)
    assert point.tables is not None
    plan = point.tables["plan"]
    assert float(plan["cost"].sum()) == pytest.approx(point.cost, rel=1e-6)
    assert session.solve().tables is None


@pytest.mark.parametrize("text, words", [
    ("budget[B-SOU].amount=1", "no table 'budget' in this scenario; did you mean 'budgets'?"),
    ("budgets[B-SUO].amount=1", "no budget_id 'B-SUO' in budgets; did you mean 'B-SOU'?"),
    ("budgets[B-SOU].amout=1", "'amout' is no column of budgets (numeric: amount); did you "
                               "mean 'amount'?"),
    ("budgets[B-SOU].scope=1", "'scope' is not a numeric column of budgets"),
    ("budgets[B-SOU].amount=-5", "amount must be >= 0; this edit gives -5"),
    ("targets[Leeds].demand=3", "named by 2 id(s) (site_id, service_id), e.g. "
                                "targets[Leeds,picking]"),
    ("targets[regio=North].demand*2", "no column 'regio' to filter targets by; did you mean "
                                      "'region'?"),
    ("targets[region=Nord].demand*2", "no targets row has region 'Nord'"),
    ("targets[Leeds,picking].min_level=1.5", "min_level must be <= 1"),
])
def test_bad_edits_name_the_nearest_valid(session: Session, text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        session.solve(edits_from([text]))
    assert words in str(caught.value)


@pytest.mark.parametrize("text, words", [
    ("budgets.amount=3", "'=' sets one cell, so name its row"),
    ("budgets[B-SOU].amount", "no '=' or '*'"),
    ("budgets[B-SOU].amount=lots", "'lots' is not a number"),
    ("budgets[B-SOU]amount=3", "expected TABLE[ID].COLUMN=VALUE"),
    ("targets[region=North].demand=3", "a filter [COL=VALUE] selects several rows"),
])
def test_bad_syntax(text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_edit(text)
    assert words in str(caught.value)


def test_every_problem_at_once(session: Session) -> None:
    with pytest.raises(InputError) as caught:
        session.check(edits_from(["budgets[B-SUO].amount=1", "sites[Leds].capacity_fte=3"]))
    assert len(caught.value.problems) == 2
    assert "did you mean 'Leeds'?" in str(caught.value)


def test_edits_leave_the_session_tables_alone(session: Session) -> None:
    before = session.tables["budgets"].copy()
    session.solve([parse_edit("budgets[B-SOU].amount=1e6")])
    pd.testing.assert_frame_equal(session.tables["budgets"], before)


def test_funding_model_edit_reloads_through_its_checks(tmp_path: Path) -> None:
    """Another formulation: the edited table is reloaded through the model's own load."""
    case = tmp_path / "funding"
    case.mkdir()
    for table in (ROOT / "data" / "funding").glob("*.csv"):
        shutil.copy(table, case / table.name)
    text = (ROOT / "models" / "funding.toml").read_text().replace("../data/funding/", "")
    (case / "scenario.toml").write_text(text)
    session = Session(case / "scenario.toml")
    point = session.solve([parse_edit("budgets[marketing].amount=700")])
    run = cold(case / "scenario.toml", "budgets",
               set_cell({"budget_id": "marketing"}, "amount", 700), tmp_path)
    assert point.objectives["value"] == pytest.approx(run.summary["objectives"]["value"],
                                                      rel=1e-7)
    assert point.budget_use["marketing"] <= 700 + 1e-6
