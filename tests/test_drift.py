"""`allocator runs drift`: two nights of a generated tiny instance (day 2: demands changed,
staff added and removed, budgets cut by 30%) recorded in SQLite and in a real PostgreSQL
server; what drift says is checked against the two run folders' summary.json and
bottlenecks.csv."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from allocator.api import read_output_table
from allocator.diff import next_day
from allocator.store.drift import constraint_name, flag_runs
from tests.conftest import run_cli
from tests.pg import throwaway_postgres


@pytest.fixture(scope="module")
def day_scenarios(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("drift")
    gen = run_cli("generate", "--size", "tiny", "--seed", "1", out=root / "day1")
    assert gen.code == 0, gen.stderr
    day2 = next_day(root / "day1" / "scenario.toml", root / "day2", seed=3,
                    demand_change=0.3, budget_scale=0.7)
    return root / "day1" / "scenario.toml", day2.scenario


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with throwaway_postgres("allocator-drift-pg-") as url:
        yield url


@pytest.fixture(scope="module", params=[
    "sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def nights(request: pytest.FixtureRequest, day_scenarios: tuple[Path, Path],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """The two nights solved through the CLI into a store of each kind: (url, run folders)."""
    root = tmp_path_factory.mktemp(f"nights-{request.param}")
    url = str(root / "runs.sqlite") if request.param == "sqlite" else \
        request.getfixturevalue("pg_server")
    folders = []
    for i, scenario in enumerate(day_scenarios, start=1):
        out = root / f"run{i}"
        done = run_cli("solve", scenario, "--store", url, out=out)
        assert done.code == 0, done.stderr
        folders.append(out)
    return url, folders


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
def test_drift_answers_from_the_store(nights: tuple[str, list[Path]], tmp_path: Path) -> None:
    url, folders = nights
    done = run_cli("runs", "drift", "--store", url, "--scenario", "tiny-seed1",
                   "--objective-jump", "0.01", "--json", out=tmp_path / "drift")
    assert done.code == 0, done.stderr
    said = json.loads(done.stdout)
    runs = read_output_table(tmp_path / "drift" / "runs.csv")
    assert list(runs["folder"]) == [str(f) for f in folders]  # oldest first
    summaries = [_summary(f) for f in folders]
    for (_, row), summary in zip(runs.iterrows(), summaries, strict=True):
        for stage, value in summary["objectives"].items():
            assert row[f"objective_{stage}"] == pytest.approx(value, rel=1e-12)
        assert row["solve_seconds"] == pytest.approx(summary["seconds"]["solve"])
    # the bottleneck of each night is the first row of its bottlenecks.csv
    tops = [read_output_table(f / "bottlenecks.csv") for f in folders]
    bottlenecks = read_output_table(tmp_path / "drift" / "bottlenecks.csv")
    for (_, row), top in zip(bottlenecks.iterrows(), tops, strict=True):
        assert (row["family"], row["labels"]) == (top["family"].iloc[0], top["labels"].iloc[0])
    first = [constraint_name(t["family"].iloc[0], t["labels"].iloc[0]) for t in tops]
    assert first[0] != first[1], "this instance's bottleneck moves on day 2"
    assert any(f"the bottleneck moved from {first[0]} to {first[1]}" in s
               for s in said["sentences"])
    # shadow prices: each night's top rows, by business labels
    shadow = read_output_table(tmp_path / "drift" / "shadow_prices.csv").set_index("run_id")
    for run_id, top in zip(runs["run_id"], tops, strict=True):
        for row in top.head(15).itertuples(index=False):
            name = constraint_name(row.family, row.labels, row.stage)
            assert shadow.loc[run_id, name] == pytest.approx(row.dual)
    # flags: an objective more than 1% from the median of the runs before
    want = {f"objective_{stage}" for stage, value in summaries[1]["objectives"].items()
            if abs(value - summaries[0]["objectives"][stage]) > 0.01 * abs(
                summaries[0]["objectives"][stage])}
    flags = read_output_table(tmp_path / "drift" / "flags.csv")
    assert set(flags.loc[flags["what"].str.startswith("objective_"), "what"]) == want
    assert want and set(flags["run_id"].astype(int)) <= {int(runs["run_id"].iloc[1])}
    # a plot per series, each a well-formed SVG
    svgs = sorted((tmp_path / "drift").glob("*.svg"))
    names = {p.name for p in svgs}
    assert {"solve_seconds.svg", "objective_service.svg", "objective_cost.svg"} <= names
    assert any(n.startswith("shadow_") for n in names)
    for path in svgs:
        assert ET.parse(path).getroot().tag.endswith("svg")


def test_drift_filters_and_terminal(nights: tuple[str, list[Path]]) -> None:
    url, _ = nights
    none = run_cli("runs", "drift", "--store", url, "--scenario", "no-such", "--json")
    # a misspelt scenario is refused, not an empty drift that reads as "nothing moved"
    assert none.code == 2 and "no run of scenario 'no-such'" in none.stderr
    assert "tiny-seed1" in none.stderr
    last = run_cli("runs", "drift", "--store", url, "--last", "1")
    assert last.code == 0, last.stderr
    assert "drift (1 runs)" in last.stdout and "the bottleneck was" in last.stdout


def test_flag_rule() -> None:
    """A run twice as slow as the median of the runs before it is flagged; a 3 ms solve
    after 1 ms ones is not news (min_seconds); objectives against their history."""
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    runs = pd.DataFrame({
        "run_id": [1, 2, 3, 4, 5], "scenario": "s", "status": "optimal",
        "started_at": [start + dt.timedelta(days=i) for i in range(5)],
        "solve_seconds": [10.0, 12.0, 11.0, 25.0, 0.003],
        "objective_cost": [100.0, 101.0, 99.0, 100.0, 140.0]})
    flags = flag_runs(runs, slow_factor=2.0, min_seconds=0.5, objective_jump=0.25)
    assert list(zip(flags["run_id"], flags["what"], strict=True)) == [
        (4, "solve_seconds"), (5, "objective_cost")]
    assert flags["ratio"].iloc[0] == pytest.approx(25.0 / 11.0)
    assert flags["ratio"].iloc[1] == pytest.approx(0.4)


@pytest.mark.slow
def test_compare_what_ifs_are_marked_and_not_counted_as_nights(
        day_scenarios: tuple[Path, Path], tmp_path: Path) -> None:
    """A comparison's solves (from the CLI and from Python) are recorded as what-ifs: `runs
    list` marks them, `runs drift` leaves them out of the nights unless --what-ifs."""
    from allocator.negotiate.compare import compare

    day1, day2 = day_scenarios
    store = tmp_path / "runs.sqlite"
    night = run_cli("solve", day1, "--store", store, out=tmp_path / "night")
    assert night.code == 0, night.stderr
    cut = run_cli("compare", day1, day2, "--store", store, "--set", "solver.time_limit=60",
                  out=tmp_path / "cmp")
    assert cut.code == 0, cut.stderr
    compare([day1, day2], tmp_path / "cmp-api", store=str(store))

    listed = json.loads(run_cli("runs", "list", "--store", store, "--json").stdout)
    assert len(listed) == 5
    marked = {Path(r["folder"]).parent.parent.name if r["what_if"] else Path(r["folder"]).name
              for r in listed}
    assert marked == {"night", "cmp", "cmp-api"}
    assert sum(r["what_if"] for r in listed) == 4
    table = subprocess.run([sys.executable, "-m", "allocator.cli", "runs", "list", "--store",
                            str(store)], env={**os.environ, "COLUMNS": "400"},
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert table.count("(what-if: compare)") == 4

    name = _summary(tmp_path / "night")["name"]
    nights_only = json.loads(run_cli("runs", "drift", "--store", store, "--scenario", name,
                                     "--json").stdout)
    assert [Path(r["folder"]).name for r in nights_only["runs"]] == ["night"]
    every = json.loads(run_cli("runs", "drift", "--store", store, "--scenario", name,
                               "--what-ifs", "--json").stdout)
    assert len(every["runs"]) == 1 + sum(
        r["what_if"] and r["scenario"] == name for r in listed)
    assert len(every["runs"]) > 1
