"""hiring.csv (issue 12, item 5): the value of one more FTE hired at a site with a skill,
checked by re-solving with that hire added to staff.csv as a new staff row."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from allocator.formulations.ops.data import load_ops
from allocator.formulations.ops.hiring import hire_costs, normalized_skills
from allocator.scenario import load_scenario
from tests.test_figures import FAST, copy_demo, solve

TOP = 3


@pytest.fixture(scope="module")
def demo_hiring(tmp_path_factory):
    work = tmp_path_factory.mktemp("hiring")
    scenario = copy_demo(work / "case")
    solve(scenario, work / "run")
    return scenario, pd.read_csv(work / "run" / "hiring.csv", keep_default_na=False,
                                 na_values=[""])


def _service_with_hire(scenario, work, row: pd.Series, fte: float) -> float:
    """The service optimum with a new staff row (site, skill, cost, `fte`) in staff.csv."""
    case = work / f"case-{row['site_id']}-{row['skill']}-{fte!r}"
    shutil.copytree(scenario.parent.parent, case)
    if fte == 0:
        return float(solve(case / "models" / "demo.toml", case / "run", *FAST)
                     ["objectives"]["service"])
    path = case / "data" / "demo" / "staff.csv"
    staff = pd.read_csv(path, dtype=str, keep_default_na=False)
    hire = {c: "" for c in staff.columns}
    hire.update(staff_id="HIRE-TEST", home_site=row["site_id"], skills=row["skill"],
                fte=repr(fte), cost_per_fte=repr(float(row["cost_per_fte"])), mobility="site",
                travel_cost="0")
    pd.concat([staff, pd.DataFrame([hire])]).to_csv(path, index=False)
    summary = solve(case / "models" / "demo.toml", case / "run", *FAST)
    return float(summary["objectives"]["service"])


@pytest.mark.slow
def test_most_valuable_hire_is_customer_care_at_hull(demo_hiring):
    _scenario, table = demo_hiring
    top = table.iloc[0]
    assert (top["site_id"], top["skill"]) == ("Hull", "care")
    assert top["value_per_fte"] == pytest.approx(3.0, rel=1e-9)
    assert top["value_kind"] == "exact"
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert table["value_per_fte"].is_monotonic_decreasing


@pytest.mark.slow
def test_top_hires_match_resolves_and_change_past_their_range(demo_hiring, tmp_path):
    scenario, table = demo_hiring
    base = _service_with_hire(scenario, tmp_path, table.iloc[0], 0.0)
    for _, row in table[table["value_kind"] == "exact"].head(TOP).iterrows():
        stated, holds = float(row["value_per_fte"]), float(row["holds_up_to_fte"])
        step = min(0.1, holds / 2)
        got = (base - _service_with_hire(scenario, tmp_path, row, step)) / step
        assert got == pytest.approx(stated, rel=1e-6, abs=1e-9), (row["site_id"], row["skill"])
        at_end = _service_with_hire(scenario, tmp_path, row, holds)
        past = _service_with_hire(scenario, tmp_path, row, holds + 0.05)
        beyond = (at_end - past) / 0.05
        assert abs(beyond - stated) > 1e-6 * max(1.0, stated), (row["site_id"], row["skill"])


def test_hire_cost_is_the_regional_median_and_settable():
    from tests.conftest import DEMO

    data = load_ops(load_scenario(DEMO))
    cand = pd.DataFrame({"site_id": ["Hull"], "region": ["North"], "skill": ["care"]})
    got = hire_costs(data, cand)
    staff = data.staff
    region = data.sites.set_index("site_id")["region"]
    mine = staff[staff["skills"].map(lambda s: "care" in s.split(";"))
                 & (staff["home_site"].map(region) == "North")]
    assert got["cost_per_fte"].iloc[0] == pytest.approx(mine["cost_per_fte"].median())
    assert "median" in got["cost_basis"].iloc[0]
    fixed = hire_costs(data, cand, 50000)
    assert fixed["cost_per_fte"].iloc[0] == 50000


def test_skill_sets_are_normalized():
    assert normalized_skills("pick;care") == normalized_skills(" care ; pick;") == "care;pick"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 17])
def test_generated_instances_hires_match_resolves(tmp_path, seed):
    """The same check on generated instances whose money binds: the top exact hires, by
    re-solving with the hire as a new staff row of a small FTE step."""
    from allocator.datagen import generate_ops, write_ops_instance

    tables = generate_ops(40, seed=seed)
    tables["budgets"]["amount"] *= 0.8
    scenario = write_ops_instance(tables, tmp_path / "case", f"gen{seed}")
    base = solve(scenario, tmp_path / "case" / "run")["objectives"]["service"]
    table = pd.read_csv(tmp_path / "case" / "run" / "hiring.csv", dtype={"site_id": str},
                        keep_default_na=False, na_values=[""])
    exact = table[(table["value_kind"] == "exact") & table["holds_up_to_fte"].notna()]
    checked = 0
    for k, (_, row) in enumerate(exact.head(2).iterrows()):
        case = tmp_path / f"hire{k}"
        shutil.copytree(tmp_path / "case", case, ignore=shutil.ignore_patterns("run"))
        staff = pd.read_csv(case / "staff.csv", dtype=str, keep_default_na=False)
        step = min(0.1, float(row["holds_up_to_fte"]) / 2)
        hire = dict.fromkeys(staff.columns, "")
        hire.update(staff_id="HIRE-TEST", home_site=row["site_id"], skills=row["skill"],
                    fte=repr(step), cost_per_fte=repr(float(row["cost_per_fte"])),
                    mobility="site", travel_cost="0")
        pd.concat([staff, pd.DataFrame([hire])]).to_csv(case / "staff.csv", index=False)
        after = solve(case / scenario.name, case / "run", *FAST)["objectives"]["service"]
        assert (base - after) / step == pytest.approx(float(row["value_per_fte"]), rel=1e-6,
                                                      abs=1e-9), row.to_dict()
        checked += 1
    assert checked >= 1 or table["value_per_fte"].max() <= 1e-9
