"""End-to-end solves checked against independent things: a hand-worked case, a second
formulation solved by scipy, a recomputation of every constraint from the input tables, and
the other backends."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from allocator.datagen import generate_ops, write_ops_instance
from tests.conftest import DEMO, TINY, run_cli
from tests.plan_check import check_plan
from tests.reference_lp import reference_stages

LP_SOLVERS = ["highs", "glop", "pdlp", "cbc"]
MIP_SOLVERS = ["highs", "scip", "cbc", "cpsat"]
# CP-SAT counts continuous FTE in steps of 0.01, so it may land a step away from the others.
TOLERANCE = {"pdlp": 1e-5, "cpsat": 2e-3}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gen")
    return write_ops_instance(generate_ops(30, seed=3), folder, "gen30")


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def _verify(run, scenario: Path, whole: bool = False, rel: float = 1e-6) -> None:
    """The plan satisfies every constraint, and its recomputed objectives match the summary."""
    assert run.code == 0, run.stderr
    check = check_plan(scenario, run.table("plan"), whole=whole)
    assert check.violations == []
    objectives = run.summary["plan_objectives"]
    assert _close(check.service, objectives["service"], rel)
    assert _close(check.cost, objectives["cost"], rel)


def test_tiny_hand_checked(tmp_path):
    # Worked by hand: s2 (site-bound) picks 4 units at A; 007 packs at A (weight 2 beats B's
    # weight 1); s3 packs 1 of B's 2 units. Shortfall 1; cost 160 + 100 + 50 = 310.
    run = run_cli("solve", TINY, out=tmp_path / "run")
    _verify(run, TINY)
    assert _close(run.summary["objectives"]["service"], 1.0, 1e-6)
    assert _close(run.summary["objectives"]["cost"], 310.0, 1e-5)
    plan = run.table("plan")
    assert set(plan.loc[plan["fte"] > 1e-3, "staff_id"]) == {"007", "s2", "s3"}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["tiny", "generated", "demo"])
def test_stage_optima_match_an_independent_formulation(case, generated, tmp_path):
    scenario = {"tiny": TINY, "generated": generated, "demo": DEMO}[case]
    reference = reference_stages(scenario)
    run = run_cli("solve", scenario, out=tmp_path / "run")
    _verify(run, scenario)
    for stage, value in reference.items():
        assert _close(run.summary["objectives"][stage], value, 1e-6), stage


# The agreement tests check optima and plans; the MIP's marginal re-solves and report (60+ s
# a run on the demo, tested in test_sensitivity.py) add nothing to them.
NO_EXTRAS = ["--set=output.sensitivity=false", "--set=output.report=false"]


@pytest.fixture(scope="module")
def highs_objectives(tmp_path_factory):
    """Each case's HiGHS optima, solved once for the module (the agreement tests compare
    every other solver with them; re-solving per solver cost a minute of the suite)."""
    found: dict[tuple[str, bool], dict[str, float]] = {}
    folder = tmp_path_factory.mktemp("highs")

    def objectives(scenario: Path, whole: bool = False) -> dict[str, float]:
        key = (str(scenario), whole)
        if key not in found:
            extra = ["--set=policy.assignment=\"whole\"", *NO_EXTRAS] if whole else []
            run = run_cli("solve", scenario, "--solver", "highs", *extra,
                          out=folder / f"run{len(found)}")
            assert run.code == 0, run.stderr
            found[key] = run.summary["objectives"]
        return found[key]

    return objectives


@pytest.mark.slow
@pytest.mark.parametrize("solver", LP_SOLVERS)
@pytest.mark.parametrize("case", ["tiny", "generated", "demo"])
def test_lp_backends_agree(case, solver, generated, highs_objectives, tmp_path):
    scenario = {"tiny": TINY, "generated": generated, "demo": DEMO}[case]
    base = highs_objectives(scenario)
    run = run_cli("solve", scenario, "--solver", solver, out=tmp_path / solver)
    _verify(run, scenario, rel=TOLERANCE.get(solver, 1e-6))
    for stage, value in base.items():
        assert _close(run.summary["objectives"][stage], value, TOLERANCE.get(solver, 1e-6))


@pytest.mark.slow
@pytest.mark.parametrize("solver", MIP_SOLVERS)
@pytest.mark.parametrize("case", ["tiny", "demo"])
def test_mip_backends_agree_in_whole_mode(case, solver, highs_objectives, tmp_path):
    scenario = {"tiny": TINY, "demo": DEMO}[case]
    whole = "--set=policy.assignment=\"whole\""
    # CP-SAT counts FTE in 0.01 steps; closing a 1e-4 gap on the demo takes it minutes on two
    # cores, 1e-3 takes seconds (and its tolerance below is 2e-3 anyway).
    extra = ["--set=solver.mip_gap=1e-3", "--set=solver.threads=2"] if solver == "cpsat" else []
    run = run_cli("solve", scenario, "--solver", solver, whole, *extra, *NO_EXTRAS,
                  out=tmp_path / solver)
    _verify(run, scenario, whole=True, rel=TOLERANCE.get(solver, 1e-6))
    reference = reference_stages(scenario, whole=True) if case == "tiny" else \
        highs_objectives(scenario, whole=True)
    for stage, value in reference.items():
        assert _close(run.summary["objectives"][stage], value, TOLERANCE.get(solver, 1e-4))


def _write(folder: Path, **tables: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text)
    names = "\n".join(f'{n} = "{n}.csv"' for n in tables)
    path = folder / "scenario.toml"
    path.write_text(f'model = "ops"\n[tables]\n{names}\n[objective]\norder = ["service", "cost"]\n')
    return path


@pytest.mark.slow
def test_whole_and_fractional_differ(tmp_path):
    # One person, two sites each needing half a person: split serves both, whole serves one.
    scenario = _write(
        tmp_path / "case",
        sites="site_id,region\nA,r\nB,r\n",
        staff="staff_id,home_site,skills,fte,cost_per_fte\nann,A,pick,1,10\n",
        targets="site_id,service_id,demand\nA,pick,0.5\nB,pick,0.5\n",
    )
    frac = run_cli("solve", scenario, out=tmp_path / "frac")
    whole = run_cli("solve", scenario, "--set", 'policy.assignment="whole"', out=tmp_path / "w")
    _verify(frac, scenario)
    _verify(whole, scenario, whole=True)
    assert _close(frac.summary["objectives"]["service"], 0.0, 1e-6)
    assert _close(whole.summary["objectives"]["service"], 0.5, 1e-6)
    assert whole.table("plan")["site_id"].nunique() == 1


@pytest.mark.slow
def test_lexicographic_order_holds(tmp_path):
    # Serving costs 1,000 per unit of demand; a shortfall unit weighs 1. Lexicographic
    # service-first must still serve; a weighted sum with equal weights must not.
    scenario = _write(
        tmp_path / "case",
        sites="site_id\nA\n",
        staff="staff_id,home_site,skills,fte,cost_per_fte\nbob,A,pick,1,1000\n",
        targets="site_id,service_id,demand\nA,pick,1\n",
    )
    lex = run_cli("solve", scenario, out=tmp_path / "lex")
    _verify(lex, scenario)
    assert _close(lex.summary["objectives"]["service"], 0.0, 1e-9)
    assert _close(lex.summary["objectives"]["cost"], 1000.0, 1e-6)
    weighted = run_cli("solve", scenario, "--set", 'objective.mode="weighted"',
                       out=tmp_path / "weighted")
    assert weighted.code == 0, weighted.stderr
    assert _close(weighted.summary["objectives"]["weighted"], 1.0, 1e-9)
    # And reversing the order puts cost first: nobody is paid, all demand is short.
    rev = run_cli("solve", scenario, "--set", 'objective.order=["cost","service"]',
                  out=tmp_path / "rev")
    assert _close(rev.summary["objectives"]["cost"], 0.0, 1e-9)
    assert _close(rev.summary["objectives"]["service"], 1.0, 1e-9)


@pytest.mark.slow
def test_stability_keeps_yesterdays_plan(tmp_path):
    first = run_cli("solve", DEMO, out=tmp_path / "day1")
    assert first.code == 0
    demo_dir = tmp_path / "demo"
    shutil.copytree(DEMO.parent.parent / "data" / "demo", demo_dir / "data" / "demo")
    (demo_dir / "models").mkdir()
    text = DEMO.read_text().replace("[tables]", f'[tables]\nbaseline = "{tmp_path}/day1/plan.csv"')
    text = text.replace('order = ["service", "cost"]', 'order = ["service", "cost", "stability"]')
    scenario = demo_dir / "models" / "demo.toml"
    scenario.write_text(text)
    second = run_cli("solve", scenario, out=tmp_path / "day2")
    assert second.code == 0, second.stderr
    # Same data, same optimum: the cheapest plan within tolerance is yesterday's (moved ~ 0).
    assert second.summary["objectives"]["stability"] <= 1e-3
    a = first.table("plan").set_index(["staff_id", "site_id", "service_id"])["fte"]
    b = second.table("plan").set_index(["staff_id", "site_id", "service_id"])["fte"]
    assert (a.reindex(a.index.union(b.index), fill_value=0)
            - b.reindex(a.index.union(b.index), fill_value=0)).abs().max() <= 1e-3


@pytest.mark.slow
def test_same_input_same_plan(tmp_path):
    a = run_cli("solve", DEMO, out=tmp_path / "a")
    b = run_cli("solve", DEMO, out=tmp_path / "b")
    pd.testing.assert_frame_equal(a.table("plan"), b.table("plan"))


def test_capability_mismatch_is_refused_with_an_alternative(tmp_path):
    glop = run_cli("solve", TINY, "--solver", "glop", "--set", 'policy.assignment="whole"',
                   out=tmp_path / "g")
    assert glop.code == 2
    assert "integer" in glop.stderr and "scip" in glop.stderr
    cpsat = run_cli("solve", TINY, "--solver", "cpsat", out=tmp_path / "c")
    assert cpsat.code == 2 and "glop" in cpsat.stderr
    assert not (tmp_path / "g").exists() and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_settings_a_backend_cannot_honour_are_said_not_dropped(tmp_path):
    run = run_cli("solve", TINY, "--solver", "glop", "--set", 'solver.method="ipm"',
                  "--set", "solver.threads=2", out=tmp_path / "g")
    assert run.code == 0, run.stderr
    notes = " ".join(run.summary["notes"])
    assert "solver.method = 'ipm' is not a method of GLOP" in notes
    assert "solver.threads = 2 is ignored" in notes
    assert "solver.method = 'ipm'" in run.stderr + run.stdout  # printed, not only filed
    honoured = run_cli("solve", TINY, "--solver", "highs", "--set", 'solver.method="ipm"',
                       out=tmp_path / "h")
    assert not any("ignored" in n or "not a method" in n for n in honoured.summary["notes"])


@pytest.mark.slow
def test_time_limit_still_writes_the_best_plan(tmp_path):
    scenario = write_ops_instance(generate_ops(8000, seed=5), tmp_path / "big", "big")
    run = run_cli("solve", scenario, "--time-limit", "4", "--set", 'policy.assignment="whole"',
                  "--set", "output.sensitivity=false", "--set", "output.report=false",
                  out=tmp_path / "run")
    assert run.code in (4, 5), run.stderr  # this MIP needs far longer than 4 s to prove
    summary = run.summary
    # The limit covers the whole run; HiGHS checks its clock between nodes, and a loaded
    # machine adds a little: a few seconds of slack, not minutes.
    assert summary["seconds"]["load"] + summary["seconds"]["build"] + \
        summary["seconds"]["solve"] <= 4 + 5
    if run.code == 5:
        assert summary["status"] == "feasible"
        check = check_plan(scenario, run.table("plan"), whole=True)
        assert check.violations == []
    if run.code == 4:
        assert not (tmp_path / "run" / "plan.csv").exists()
