"""allocator frontier: every point (and the segments between breakpoints) against an
independent epsilon-constraint re-solve (scipy's linprog / milp on the model's arrays)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

import allocator
from allocator.errors import InputError
from allocator.negotiate.frontier import frontier
from allocator.run import prepare
from tests.conftest import run_cli
from tests.test_session import demo_copy


def epsilon_solve(scenario: Path, first: str, second: str, eps: float | None,
                  overrides: list[str] | None = None) -> float:
    """min second s.t. first <= eps, from the model's arrays alone (no allocator solver)."""
    _scenario, built, _ = prepare(scenario, overrides or [])
    m = built.model
    a, b = m.objectives[first], m.objectives[second]
    matrix = m.matrix
    rows, lo, hi = [matrix], m.row_lo, m.row_hi
    if eps is not None:
        import scipy.sparse as sp

        rows.append(sp.csr_array(a.c.reshape(1, -1)))
        lo = np.r_[lo, -np.inf]
        hi = np.r_[hi, eps - a.constant]
    import scipy.sparse as sp

    full = sp.vstack(rows).tocsr()
    if m.num_integer:
        res = milp(b.c, constraints=LinearConstraint(full, lo, hi),
                   integrality=m.integer.astype(int), bounds=Bounds(m.lb, m.ub),
                   options={"mip_rel_gap": 1e-9})
        assert res.status == 0, res.message
        return float(res.fun + b.constant)
    finite_hi, finite_lo = np.isfinite(hi), np.isfinite(lo)
    a_ub = sp.vstack([full[finite_hi], -full[finite_lo]]).tocsr()
    b_ub = np.r_[hi[finite_hi], -lo[finite_lo]]
    res = linprog(b.c, A_ub=a_ub, b_ub=b_ub, bounds=np.c_[m.lb, m.ub], method="highs")
    assert res.status == 0, res.message
    return float(res.fun + b.constant)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_copy(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def traced(demo: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("frontier") / "fr"
    return frontier(demo, "service,cost", out)


@pytest.mark.slow
def test_ends_are_the_lexicographic_optima(traced, demo: Path) -> None:
    frame = traced.frame
    assert traced.exact and frame["exact"].all()
    run = allocator.solve(demo, output__report=False, output__sensitivity=False)
    first = frame.iloc[0]
    # The first point is the run's plan: service held at its optimum within the run's
    # tolerance (rel_tol 1e-6, abs_tol 1e-9), cost the least there.
    best = run.summary["objectives"]["service"]
    assert first["service"] == pytest.approx(best * (1 + 1e-6) + 1e-9, rel=1e-9)
    assert first["cost"] == pytest.approx(run.summary["objectives"]["cost"], rel=1e-7)
    # The last point: the least cost, held as a cost-first run holds it (rel_tol 1e-6).
    last = frame.iloc[-1]
    least = epsilon_solve(demo, "service", "cost", None)
    assert least - 1e-6 <= last["cost"] <= least * (1 + 1e-6) + 1e-9 + 1e-6
    assert last["cost"] == pytest.approx(epsilon_solve(demo, "service", "cost",
                                                       last["service"]), rel=1e-7)
    # A frontier: service rises (worse) as cost falls, never the other way.
    assert (np.diff(frame["service"]) > 0).all() and (np.diff(frame["cost"]) < 0).all()


def test_points_and_segments_against_epsilon_resolves(traced, demo: Path) -> None:
    frame = traced.frame
    eps, cost = frame["service"].to_numpy(), frame["cost"].to_numpy()
    picks = sorted({1, len(frame) // 3, len(frame) // 2, len(frame) - 2})
    for k in picks:  # at breakpoints
        assert cost[k] == pytest.approx(epsilon_solve(demo, "service", "cost", eps[k]),
                                        rel=1e-7), k
    for k in picks[:3]:  # between them: the frontier is the straight segment
        mid = 0.5 * (eps[k] + eps[k + 1])
        assert np.interp(mid, eps, cost) == pytest.approx(
            epsilon_solve(demo, "service", "cost", mid), rel=1e-7), k
    # The slope written is the segment's, and changes at every breakpoint (no false kinks).
    slopes = np.diff(cost) / np.diff(eps)
    assert frame["slope_after"][:-1].to_numpy() == pytest.approx(slopes, rel=1e-6)
    assert (np.abs(np.diff(slopes)) > 1e-9 * np.abs(slopes[1:])).all()


def test_knee_and_words(traced) -> None:
    frame = traced.frame
    assert frame["knee"].sum() == 1
    k = int(np.flatnonzero(frame["knee"])[0])
    eps, cost = frame["service"].to_numpy(), frame["cost"].to_numpy()
    a = (eps - eps.min()) / (eps.max() - eps.min())
    b = (cost - cost.min()) / (cost.max() - cost.min())
    turns = np.abs(np.diff(np.arctan2(np.diff(b), np.diff(a))))
    assert k == int(np.argmax(turns)) + 1
    first = traced.sentences[0]
    rate = -(cost[1] - cost[0]) / (eps[1] - eps[0])
    assert (f"Between weighted shortfall {eps[0]:,.6g} and {eps[1]:,.6g}: each extra point of "
            f"service (one unit less of weighted shortfall) costs {rate:,.6g} more cost"
            in first)


def test_frontier_folder(traced) -> None:
    out = traced.out
    names = {p.name for p in out.iterdir()}
    assert {"frontier.csv", "frontier.svg", "frontier.html"} <= names
    page = (out / "frontier.html").read_text()
    assert "<script" not in page.lower() and not re.search(r"url\((?!#)", page)
    assert "knee" in page
    frame = pd.read_csv(out / "frontier.csv")
    assert len(frame) == len(traced.frame)


def test_mip_frontier_samples_with_gaps(case: Path) -> None:
    scenario = case / "scenario.toml"
    sets = ['policy.assignment="whole"']
    found = frontier(scenario, "service,cost", overrides=sets, samples=5)
    frame = found.frame
    assert not found.exact and (frame["kind"] == "sample").all()
    assert (frame["gap"] <= 1e-4 + 1e-12).all()
    for _, row in frame.iterrows():
        best = epsilon_solve(scenario, "service", "cost", row["epsilon"], sets)
        assert row["cost"] == pytest.approx(best, rel=1e-4, abs=1e-6)
        assert row["bound"] <= row["cost"] + 1e-6


def test_bad_objectives(case: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean 'cost'"):
        frontier(case / "scenario.toml", "service,csot")
    done = run_cli("frontier", case / "scenario.toml", "--objectives", "service",
                   out=tmp_path / "x")
    assert done.code == 2 and "name two objectives" in done.stderr


def test_cli(case: Path, tmp_path: Path) -> None:
    done = run_cli("frontier", case / "scenario.toml", "--plans", out=tmp_path / "fr")
    assert done.code == 0, done.stderr
    frame = pd.read_csv(tmp_path / "fr" / "frontier.csv")
    assert frame["exact"].all() and len(frame) >= 2
    for k, row in frame.iterrows():  # each point's plan: its cost and service
        plan = pd.read_csv(tmp_path / "fr" / f"point-{k:04d}_plan.csv")
        assert float(plan["cost"].sum()) == pytest.approx(row["cost"], rel=1e-6, abs=1e-6)
        coverage = pd.read_csv(tmp_path / "fr" / f"point-{k:04d}_coverage.csv")
        targets = pd.read_csv(case / "targets.csv")
        weighted = coverage.merge(targets, on=["site_id", "service_id"])
        service = float((weighted["shortfall"] * weighted["weight"]).sum())
        assert service <= row["service"] + 1e-6
    for _, row in frame.iterrows():
        assert row["cost"] == pytest.approx(
            epsilon_solve(case / "scenario.toml", "service", "cost", row["service"]),
            rel=1e-7, abs=1e-7)


def test_cost_against_stability(case: Path) -> None:
    """cost,stability on a case with a baseline: each point against an epsilon re-solve."""
    pd.DataFrame({"staff_id": ["007", "s2", "s3"], "site_id": ["A", "A", "B"],
                  "service_id": ["pack", "pick", "pack"], "fte": [0.0, 1.0, 1.0]}
                 ).to_csv(case / "baseline.csv", index=False)
    text = (case / "scenario.toml").read_text()
    text = text.replace('budgets = "budgets.csv"',
                        'budgets = "budgets.csv"\nbaseline = "baseline.csv"')
    text = text.replace('order = ["service", "cost"]', 'order = ["service", "cost", "stability"]')
    (case / "scenario.toml").write_text(text)
    found = frontier(case / "scenario.toml", "cost,stability")
    frame = found.frame
    assert found.exact and len(frame) >= 2
    for _, row in frame.iterrows():
        assert row["stability"] == pytest.approx(
            epsilon_solve(case / "scenario.toml", "cost", "stability", row["cost"]),
            rel=1e-7, abs=1e-7)
    assert "each FTE moved" not in found.sentences[0]  # cost first: 'each unit less of cost'
    assert "more stability (twice the FTE moved)" in found.sentences[0]


def test_force_replaces_only_an_earlier_frontier(case: Path, tmp_path: Path) -> None:
    run = allocator.solve(case / "scenario.toml", out=tmp_path / "run", output__report=False)
    assert (tmp_path / "run" / "summary.json").exists()
    with pytest.raises(InputError, match="not an earlier `allocator frontier`"):
        frontier(case / "scenario.toml", out=tmp_path / "run", force=True)
    assert run.summary["status"] == "optimal" and (tmp_path / "run" / "plan.csv").exists()
    frontier(case / "scenario.toml", out=tmp_path / "fr")
    frontier(case / "scenario.toml", out=tmp_path / "fr", force=True)  # its own: replaced
