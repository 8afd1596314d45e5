"""Warm start from an earlier run (allocator/warm.py), through the CLI: the warm plan is the
cold optimum, the basis is matched by business ids (not positions), and the notes' counts
are those a set difference of the two runs' column names gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.datagen import generate_ops, write_ops_instance
from tests.conftest import TINY, run_cli

QUICK = ("--set", "output.sensitivity=false", "--set", "output.report=false")
IDS = {"staff_id": str, "site_id": str, "service_id": str}


def _solve(scenario: Path, out: Path, *args: str) -> tuple[int, dict, str]:
    done = run_cli("solve", scenario, *args, out=out, timeout=240)
    assert done.code == 0, done.stderr
    return done.code, done.summary, done.stderr


def _names(folder: Path, kind: str) -> set[str]:
    frame = pd.read_parquet(folder / "basis.parquet")
    return set(frame.loc[frame["kind"] == kind, "name"])


def _cost(folder: Path, staff: pd.DataFrame) -> float:
    """The cost stage recomputed from plan.csv and the staff table (travel off home)."""
    plan = pd.read_csv(folder / "plan.csv", dtype=IDS)[["staff_id", "site_id", "fte"]]
    plan = plan.rename(columns={"fte": "plan_fte"})
    staff = staff.astype({"staff_id": str, "home_site": str})
    both = plan.merge(staff, on="staff_id")
    rate = both["cost_per_fte"] + np.where(both["site_id"] != both["home_site"],
                                           both["travel_cost"], 0.0)
    return float((both["plan_fte"] * rate).sum())


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Night 1 and night 2 of a generated instance (400 staff): on night 2, 3% of demands
    moved, 8 people gone and 8 new ones."""
    root = tmp_path_factory.mktemp("warm")
    day1 = generate_ops(400, seed=5)
    rng = np.random.default_rng(1)
    day2 = {k: v.copy() for k, v in day1.items()}
    moved = rng.choice(len(day2["targets"]), 6, replace=False)
    day2["targets"].loc[moved, "demand"] = np.round(
        day2["targets"].loc[moved, "demand"] * rng.uniform(0.85, 1.15, moved.size), 2)
    staff = day2["staff"]
    new = staff.iloc[rng.choice(len(staff), 8, replace=False)].copy()
    new["staff_id"] = [f"NEW{k}" for k in range(8)]
    day2["staff"] = pd.concat([staff.drop(index=staff.index[rng.choice(len(staff), 8,
                                                                         replace=False)]),
                               new], ignore_index=True)
    return {"one": write_ops_instance(day1, root / "day1", "warm-test"),
            "two": write_ops_instance(day2, root / "day2", "warm-test"), "root": root}


@pytest.mark.slow  # three CLI runs
def test_warm_plan_is_the_cold_optimum(nights: dict[str, Path]) -> None:
    root, store = nights["root"], nights["root"] / "store.sqlite"
    _solve(nights["one"], root / "night1", "--store", str(store), *QUICK)
    # Night 2 warm-starts by default from the store's newest successful run of the scenario.
    _code, warm, _ = _solve(nights["two"], root / "night2", "--store", str(store), *QUICK)
    _code, cold, _ = _solve(nights["two"], root / "night2-cold", "--store", str(store),
                            "--cold", *QUICK)
    notes = " ".join(warm["notes"])
    assert f"warm start from run 1 ({root / 'night1'})" in notes
    assert not any("warm" in n for n in cold["notes"])
    for stage in ("service", "cost"):
        assert warm["objectives"][stage] == pytest.approx(cold["objectives"][stage], rel=1e-9)
    # The same optimum, recomputed from each plan.csv and the input table, not the solver.
    staff = pd.read_csv(nights["two"].parent / "staff.csv", dtype={"staff_id": str})
    assert _cost(root / "night2", staff) == pytest.approx(_cost(root / "night2-cold", staff),
                                                          rel=1e-7)
    a = pd.read_csv(root / "night2" / "plan.csv", dtype=IDS)
    b = pd.read_csv(root / "night2-cold" / "plan.csv", dtype=IDS)
    both = a.merge(b, on=list(IDS), how="outer", suffixes=("_warm", "_cold")).fillna(0.0)
    assert (both["fte_warm"] - both["fte_cold"]).abs().max() < 1e-6
    # What the notes say was matched is what the two runs' column and row names share.
    for kind, word in (("column", "columns"), ("row", "rows")):
        before, after = _names(root / "night1", kind), _names(root / "night2", kind)
        if kind == "row":  # the hold rows are not model rows
            before = {n for n in before if not n.startswith("hold|")}
            after = {n for n in after if not n.startswith("hold|")}
        matched = len(before & after)
        assert f"{matched:,} of {len(after):,} {word} ({len(after - before):,} new" in notes
        assert f"{len(before - after):,} " in notes
    assert any(name.startswith("x|NEW") for name in _names(root / "night2", "column"))


@pytest.mark.slow  # three CLI runs
def test_matched_by_ids_not_positions(nights: dict[str, Path], tmp_path: Path) -> None:
    """The same data with every table's rows in another order: each column and row finds its
    old status by its ids, so both stages start optimal (no simplex iteration)."""
    folder = tmp_path / "shuffled"
    shutil.copytree(nights["one"].parent, folder)
    for name in ("staff", "targets", "sites"):
        frame = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
        frame.sample(frac=1.0, random_state=3).to_csv(folder / f"{name}.csv", index=False)
    first = nights["root"] / "night1-positions"
    _solve(nights["one"], first, "--no-store", *QUICK)
    _code, warm, _ = _solve(folder / "scenario.toml", tmp_path / "run", "--no-store",
                            "--warm-from", str(first), *QUICK)
    assert "simplex iterations by stage: service 0, cost 0" in " ".join(warm["notes"])
    assert "0 new, 0 of that run's gone" in " ".join(warm["notes"])
    a = pd.read_csv(first / "plan.csv", dtype=IDS).sort_values(list(IDS), ignore_index=True)
    b = pd.read_csv(tmp_path / "run" / "plan.csv", dtype=IDS).sort_values(list(IDS),
                                                                           ignore_index=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow  # three CLI runs
def test_whole_mode_starts_from_the_plan(tmp_path: Path) -> None:
    whole = ("--set", "policy.assignment=whole", *QUICK)
    _solve(TINY, tmp_path / "mon", "--no-store", *whole)
    _code, warm, _ = _solve(TINY, tmp_path / "tue", "--no-store", "--warm-from",
                            str(tmp_path / "mon"), *whole)
    _code, cold, _ = _solve(TINY, tmp_path / "cold", "--no-store", *whole)
    assert "given to HiGHS as a MIP start" in " ".join(warm["notes"])
    for stage in ("service", "cost"):
        assert warm["objectives"][stage] == pytest.approx(cold["objectives"][stage], rel=1e-4)


def test_warm_from_what_cannot_be_used_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    done = run_cli("solve", TINY, "--no-store", "--warm-from", empty, out=tmp_path / "a")
    assert done.code == 2 and "holds no basis.parquet" in done.stderr
    done = run_cli("solve", TINY, "--store", tmp_path / "s.sqlite", "--warm-from", "77",
                   out=tmp_path / "b")
    assert done.code == 2 and "no run 77 in the store" in done.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow  # three CLI runs
def test_a_run_of_another_scenario_is_not_used(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    _solve(TINY, tmp_path / "tiny", "--store", str(store), *QUICK)
    other = tmp_path / "other"
    shutil.copytree(TINY.parent, other)
    text = (other / "scenario.toml").read_text().replace('name = "tiny"', 'name = "other"')
    (other / "scenario.toml").write_text(text)
    _code, summary, _ = _solve(other / "scenario.toml", tmp_path / "o", "--store", str(store),
                               *QUICK)
    assert not any("warm" in n for n in summary["notes"])
    _code, again, _ = _solve(TINY, tmp_path / "tiny2", "--store", str(store), *QUICK)
    assert "warm start from run 1" in " ".join(again["notes"])


@pytest.mark.slow
def test_default_warm_start_from_a_postgresql_store(tmp_path: Path) -> None:
    """The store lookup is plain SQLAlchemy: the same on a real PostgreSQL server."""
    from tests.pg import throwaway_postgres

    with throwaway_postgres("allocator-warm-pg-") as url:
        _solve(TINY, tmp_path / "mon", "--store", url, *QUICK)
        _code, tue, _ = _solve(TINY, tmp_path / "tue", "--store", url, *QUICK)
    assert f"warm start from run 1 ({tmp_path / 'mon'})" in " ".join(tue["notes"])


def test_a_warm_start_that_does_not_help_falls_back_to_interior_point(
        nights: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a cold run would use interior point, a warm first stage gets a budget of
    simplex iterations; past it, the stage is solved cold by interior point, said in the
    notes, to the same optimum (here the model is made to look large and the budget 1)."""
    from allocator.run import solve_scenario
    from allocator.solvers import highs

    sets = ["output.sensitivity=false", "output.report=false"]
    solve_scenario(nights["one"], tmp_path / "mon", sets)
    cold = solve_scenario(nights["two"], tmp_path / "cold", sets).summary
    for name, value in (("AUTO_IPM_COLUMNS", 0), ("COUPLING_ROW_MIN", 1),
                        ("WARM_MIN_ITERATIONS", 1), ("WARM_ROW_ITERATIONS", 0.0)):
        monkeypatch.setattr(highs, name, value)
    warm = solve_scenario(nights["two"], tmp_path / "warm", sets,
                          warm_from=tmp_path / "mon").summary
    notes = " ".join(warm["notes"])
    assert "not optimal within 1 simplex iterations" in notes
    assert "solved by interior point from scratch" in notes
    for stage in ("service", "cost"):
        assert warm["objectives"][stage] == pytest.approx(cold["objectives"][stage], rel=1e-9)
