"""Business language (issue 12, item 7): units on every figure, no internal rows as
sentences, one cost figure, the plan as totals, no float noise in any CSV of the run."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from allocator.analysis.figures import round_sig
from allocator.formulations.ops.bottlenecks import NOT_SENTENCES
from tests.test_figures import FAST, _set_cell, copy_demo, solve


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    where = tmp_path_factory.mktemp("words")
    scenario = copy_demo(where / "case")
    summary = solve(scenario, where / "run")
    return where / "run", summary


def _text(page: str) -> str:
    page = re.sub(r"<svg.*?</svg>", " ", page, flags=re.S)
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.slow
def test_report_speaks_in_units(demo):
    run, _summary = demo
    text = _text((run / "report.html").read_text())
    assert "Weighted shortfall = unmet workload" in text
    coverage = pd.read_csv(run / "coverage.csv")
    share = coverage["served"].sum() / coverage["demand"].sum()
    assert f"{share:.1%} demand served" in text
    assert "unmet workload (units)" in text
    plan = pd.read_csv(run / "plan.csv")
    cost = f"{plan['cost'].sum():,.0f}"
    assert f"{cost} plan cost (money)" in text
    assert "cost (cost stage)" not in text  # one cost figure
    # The plan as totals by site and service, not staff rows.
    assert "FTE by site and service" in text and "all sites" in text
    section = text[text.index("The plan: FTE by site and service"):text.index("Coverage by")]
    assert not any(staff in section for staff in plan["staff_id"])
    # Money whole, with separators: no "-1e-06" headroom, no six decimals.
    assert "e-0" not in text and "3,650,000" in text
    assert "Hull" in text and "care" in text  # the top hire in words


def test_no_internal_rows_as_sentences(demo):
    run, _summary = demo
    table = pd.read_csv(run / "bottlenecks.csv", dtype={"labels": str})
    assert not table["family"].isin(list(NOT_SENTENCES)).any()
    md = (run / "bottlenecks.md").read_text()
    for word in ("stage_hold", "whole_link", "stability[", "hold 1"):
        assert word not in md
    assert "Weighted shortfall = unmet workload" in md
    assert "holding service at its best level" in md


@pytest.mark.slow
def test_no_float_noise_in_any_csv(demo):
    run, _summary = demo
    for path in sorted(run.glob("*.csv")):
        text = path.read_text()
        assert not re.search(r"\d\.\d*(9999999|0000000)\d", text), path.name
        assert not re.search(r"(?<![\w.e])-0(?![.\de])", text), path.name


def test_round_sig_keeps_figures_and_drops_noise():
    values = np.array([23.299999999999997, -0.0, 3650000.0, -2.642706131078224e-05, np.inf])
    got = round_sig(values)
    assert got[0] == 23.3 and str(got[1]) == "0.0" and got[2] == 3650000.0
    assert got[3] == pytest.approx(values[3], rel=1e-11) and np.isinf(got[4])


def test_changes_against_the_baseline_by_site_and_service(tmp_path):
    day1 = copy_demo(tmp_path / "day1case")
    solve(day1, tmp_path / "day1", *FAST)
    scenario = copy_demo(tmp_path / "case")
    text = scenario.read_text().replace(
        "[tables]", f'[tables]\nbaseline = "{tmp_path}/day1/plan.csv"').replace(
        'order = ["service", "cost"]', 'order = ["service", "stability"]')
    scenario.write_text(text)
    _set_cell(scenario, "budgets", "budget_id", "B-SOU", "amount", 3_900_000)
    solve(scenario, tmp_path / "run", "output.sensitivity=false")
    changes = pd.read_csv(tmp_path / "run" / "changes.csv")
    plan = pd.read_csv(tmp_path / "run" / "plan.csv")
    base = pd.read_csv(tmp_path / "day1" / "plan.csv")
    key = ["site_id", "service_id"]
    want = (plan.groupby(key)["fte"].sum().sub(base.groupby(key)["fte"].sum(), fill_value=0))
    got = changes.set_index(key)["change_fte"]
    assert np.allclose(got.reindex(want.index).to_numpy(), want.to_numpy(), atol=1e-8)
    assert (got.abs() > 1e-6).any()
    assert "Changes against the baseline" in (tmp_path / "run" / "report.html").read_text()
