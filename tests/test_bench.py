"""allocator bench: published optima matched, failures contained, resume, compare, outputs.

One real local Dask cluster (two single-threaded worker processes, no mock) serves the whole
module; the main run covers small netlib LPs and MIPLIB instances on every configuration
plus the cells built to fail: a solve that outlives its hard timeout, a cell process that
dies, a file that is not MPS, and a Dask worker killed mid-cell.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.bench import (
    CellStatus,
    ExpectedTable,
    Grid,
    Verdict,
    find_instances,
    load_grid,
    load_results,
    local_client,
    run_cells,
    shifted_geomean,
    summarize,
)
from allocator.bench.compare import Change, Thresholds, compare
from allocator.bench.grid import Cell, Config, Instance
from allocator.bench.report import write_outputs
from allocator.bench.runner import RESULTS
from allocator.bench.schema import COLUMNS
from allocator.bench.verify import ALTERNATE, PUBLISHED, Known, check
from allocator.errors import InputError
from tests.conftest import CASES, ROOT, TINY

NETLIB = ["afiro", "sc50a", "sc50b", "adlittle", "blend", "e226", "share2b", "kb2"]
MIPLIB = ["p0033", "flugpl", "egout", "lseu", "vpm1"]
CONFIGS = ["highs[tl=30]", "highs[method=ipm,tl=30]", "glop[tl=30]", "pdlp[tl=30]",
           "cbc[tl=30]"]

pytestmark = pytest.mark.skipif(not (CASES / "netlib").is_dir(),
                                reason="the shared benchmark cases are not beside the repo")


@pytest.fixture(scope="module")
def client():
    dask_client = local_client(workers=2)
    yield dask_client
    cluster = dask_client.cluster
    dask_client.close()
    cluster.close()


def _instances() -> list[Instance]:
    return find_instances([CASES / "netlib" / f"{n}.mps" for n in NETLIB]
                          + [CASES / "miplib" / f"{n}.mps" for n in MIPLIB])


@pytest.fixture(scope="module")
def main_run(client, tmp_path_factory):
    """Every configuration on every instance, plus five cells built to go wrong."""
    folder = tmp_path_factory.mktemp("bench")
    grid = Grid(solvers=["highs", "glop", "pdlp", "cbc"], methods=["auto", "ipm"],
                time_limits=[30.0])
    cells = grid.cells(_instances())
    afiro = next(c for c in cells if c.instance.name == "afiro" and c.config.solver == "highs")
    bogus = folder / "bogus.mps"
    bogus.write_text("this is not an MPS file\n")
    marker = folder / "worker-killed"
    faults = [
        replace(afiro, repeat=90, timeout=3.0, fault="hang-cell"),
        replace(afiro, repeat=91, fault="exit-cell"),
        replace(afiro, repeat=92, fault=f"exit-worker-once:{marker}"),
        Cell(Instance("bogus", bogus), Config("highs", time_limit=30.0), timeout=60),
        # A real solve that outlives its hard timeout: CBC with no limit on markshare1.
        Cell(Instance("markshare1", CASES / "miplib" / "markshare1.mps"), Config("cbc"),
             timeout=4.0),
    ]
    expected = ExpectedTable.beside(c.instance.path for c in cells)
    started = time.time()
    beats: list[tuple[float, str]] = []
    run = run_cells([*cells, *faults], folder / "out", expected, client=client,
                    heartbeat=2.0, on_heartbeat=lambda c: beats.append((c.elapsed, c.line())))
    return {"run": run, "cells": cells, "faults": faults, "marker": marker,
            "expected": expected, "started": started, "folder": folder, "beats": beats}


def _by_key(run) -> dict[str, dict]:
    return {row["key"]: row for row in run.rows}


def test_grid_folds_settings_a_backend_ignores():
    grid = Grid(solvers=["highs", "glop", "pdlp", "cbc"], methods=["auto", "ipm"],
                threads=[1, 2], time_limits=[30.0])
    labels = [c.label for c in grid.configs()]
    # GLOP has no interior point and no threads: its ipm and threads=2 variants are folded.
    assert "glop[tl=30]" in labels and not any(x.startswith("glop[method") for x in labels)
    assert "highs[method=ipm,threads=2,tl=30]" in labels
    assert "pdlp[threads=2,tl=30]" in labels and "cbc[threads=2,tl=30]" in labels
    assert len(labels) == len(set(labels)) == 4 + 1 + 2 + 2


@pytest.mark.slow
def test_every_proven_optimum_matches_the_published_value(main_run):
    rows = [r for r in main_run["run"].rows if r["key"] in {c.key for c in main_run["cells"]}]
    assert len(rows) == len(main_run["cells"]) == len(NETLIB + MIPLIB) * len(CONFIGS)
    optimal = [r for r in rows if r["status"] == CellStatus.OPTIMAL.value]
    assert [r for r in optimal if r["verdict"] != Verdict.CORRECT.value] == []
    for r in optimal:
        tol = 1e-6 if r["kind"] == "lp" else 1e-4
        assert r["rel_err"] <= tol, r
    # Every LP configuration proves every LP; GLOP and PDLP refuse the MIPs by name.
    lp_rows = [r for r in rows if r["instance"] in NETLIB]
    assert {r["verdict"] for r in lp_rows} == {Verdict.CORRECT.value}
    for r in rows:
        if r["instance"] in MIPLIB and r["solver"] in ("glop", "pdlp"):
            assert r["status"] == CellStatus.NOT_APPLICABLE.value
            assert "linear programs only" in r["message"]
        elif r["instance"] in MIPLIB:
            assert r["verdict"] == Verdict.CORRECT.value, r


@pytest.mark.slow
def test_e226_objective_constant_convention(main_run):
    e226 = [r for r in main_run["run"].rows if r["instance"] == "e226"]
    assert e226 and all(r["matched"] == ALTERNATE for r in e226)
    for r in e226:  # read as HiGHS reads it: the constant 7.113 is in the value
        assert r["obj_constant"] == pytest.approx(7.113)
        assert r["objective"] == pytest.approx(-18.751929066 + 7.113, rel=1e-6)
    afiro = [r for r in main_run["run"].rows if r["instance"] == "afiro"
             and r["status"] == "optimal"]
    assert all(r["matched"] == PUBLISHED for r in afiro)


@pytest.mark.slow  # the module's bench run (about 15 s)
def test_failures_cost_one_cell_each(main_run):
    rows = _by_key(main_run["run"])
    hang, exited, killed_worker, bogus, slow = (rows[c.key] for c in main_run["faults"])
    assert hang["status"] == CellStatus.TIMEOUT.value and hang["wall_s"] < 30, hang
    assert exited["status"] == CellStatus.CRASHED.value and exited["exit_code"] == 70, exited
    assert bogus["status"] == CellStatus.ERROR.value and "could not read" in bogus["message"]
    assert slow["status"] == CellStatus.TIMEOUT.value and slow["wall_s"] < 30, slow
    assert slow["verdict"] == Verdict.UNPROVEN.value
    # The worker died the first time; Dask ran the cell again and it finished.
    assert main_run["marker"].exists()
    assert killed_worker["verdict"] == Verdict.CORRECT.value
    # Every cell has its row: nothing else was lost.
    assert len(rows) == len(main_run["cells"]) + len(main_run["faults"])
    # The CBC binary went down with its cell's process group (a zombie awaiting init is dead).
    psutil = pytest.importorskip("psutil")
    leftovers = [p for p in psutil.process_iter(["name", "create_time", "status"])
                 if "cbc" in (p.info["name"] or "").lower()
                 and p.info["create_time"] >= main_run["started"]
                 and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert leftovers == []


@pytest.mark.slow  # the module's bench run (about 15 s)
def test_results_csv_is_complete_and_appended(main_run):
    path = main_run["run"].results
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert len(rows) == len(main_run["run"].rows)
    frame = load_results(path)
    solved = frame[frame["status"] == "optimal"]
    assert solved["hwm_mb"].between(10, 4000).all()  # the cell process's own peak, MiB
    # The idle process (interpreter and preloaded solvers) is below every peak, and is most
    # of a small solve's peak: both are reported.
    assert solved["base_mb"].between(10, 4000).all()
    assert (solved["base_mb"] <= solved["hwm_mb"]).all()
    assert (solved["wall_s"] >= solved["solver_s"]).all()
    assert solved["build_s"].notna().all()


@pytest.mark.slow  # the module's bench run (about 15 s)
def test_summary_outputs(main_run, tmp_path):
    frame = load_results(main_run["run"].results, main_run["expected"])
    summary = summarize(frame[frame["repeat"] == 0])
    configs = summary.configs.set_index("config")
    assert set(CONFIGS) <= set(configs.index)
    assert configs.loc["highs[tl=30]", "solved"] == len(NETLIB + MIPLIB)
    assert configs.loc["glop[tl=30]", "solved"] == len(NETLIB)
    assert configs.loc["glop[tl=30]", "not_applicable"] == len(MIPLIB)
    assert configs["wins"].sum() >= len(NETLIB)  # every LP instance has a winner
    written = write_outputs(summary, tmp_path)
    names = {p.name for p in written}
    assert {"summary.csv", "instances.csv", "summary.md", "report.html", "profile.png",
            "profile.svg"} <= names
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and "src=\"http" not in page and "<script" not in page
    assert "e226" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow  # the module's bench run (about 15 s)
def test_heartbeat_at_a_steady_interval(main_run):
    beats = main_run["beats"]
    assert len(beats) >= 3, beats
    times = np.array([t for t, _ in beats])
    # On a schedule of start + k × 2 s (the poller wakes for it), not after each cell; a
    # late beat (a busy scheduler) does not double up.
    gaps = np.diff(times)
    assert np.all(gaps > 1.0) and 1.5 <= float(np.median(gaps)) <= 4.0, times
    assert all("cells done" in line and "elapsed" in line for _, line in beats)


@pytest.mark.slow
def test_scenario_files_are_instances(client, tmp_path):
    # A scenario goes through the product's own build and is timed over every stage.
    cells = Grid(solvers=["highs", "cbc"]).cells(find_instances([TINY]))
    run = run_cells(cells, tmp_path, ExpectedTable(), client=client)
    assert [r["instance"] for r in run.rows] == ["tiny", "tiny"]
    for row in run.rows:
        assert row["status"] == "optimal" and row["verdict"] == Verdict.UNKNOWN.value
        assert row["objective"] == pytest.approx(1.0)  # the hand-checked shortfall
        assert row["build_s"] > 0
        stages = dict(item.split("=") for item in row["stages"].split(";"))
        seconds = dict(item.split("=") for item in row["stage_s"].split(";"))
        assert list(stages) == list(seconds) and len(stages) >= 2  # service, then cost
        assert float(stages["service"]) == pytest.approx(1.0)
        assert row["solver_s"] == pytest.approx(sum(map(float, seconds.values())))
    # No published optimum: the two solvers are checked against each other, stage by stage.
    frame = load_results(tmp_path / RESULTS)
    assert set(frame["verdict"]) == {Verdict.AGREED.value}
    assert "2 configurations of 2 solver(s) agree" in frame["verdict_note"].iloc[0]
    write_outputs(summarize(frame), tmp_path)  # each stage's time in the summary
    stages = (tmp_path / "summary.md").read_text().split("## Stages", 1)[1]
    assert "| tiny | service " in stages and "; cost " in stages


def test_shifted_geometric_mean():
    assert shifted_geomean(np.array([1.0, 1.0])) == pytest.approx(1.0)
    value = shifted_geomean(np.array([0.0, 100.0]))
    assert value == pytest.approx(math.sqrt(10 * 110) - 10)


@pytest.mark.slow
def test_resume_skips_finished_cells(main_run, client, tmp_path):
    source = main_run["run"].results
    folder = tmp_path / "resumed"
    folder.mkdir()
    lines = source.read_text().splitlines(keepends=True)
    dropped = 4
    # The last rows are gone and a torn half-line is left, as a crash mid-write leaves it.
    (folder / RESULTS).write_text("".join(lines[: -dropped]) + lines[-dropped][:30])
    cells = main_run["cells"]
    with pytest.raises(InputError, match="--resume"):
        run_cells(cells, folder, main_run["expected"], client=client)
    done = set(load_results(folder / RESULTS)["key"])
    submitted = cells + main_run["faults"][:2]
    run = run_cells(submitted, folder, main_run["expected"], client=client, resume=True)
    ran = {r["key"] for r in run.rows}
    missing = {c.key for c in submitted} - done
    assert ran == missing and 1 <= len(missing) <= dropped
    assert run.skipped == len(submitted) - len(missing)
    assert load_results(folder / RESULTS)["key"].is_unique


def test_verdicts():
    noswot = Known("noswot.mps", Path("noswot.mps"), -43.0, None, None, "min", "", "miplib")
    # HiGHS 1.16's answer on noswot: "optimal" at -41.
    wrong = check(noswot, CellStatus.OPTIMAL, -41.0, -41.0, "mip", 1e-4)
    assert wrong.verdict is Verdict.WRONG and "claims OPTIMAL at -41" in wrong.note
    assert check(noswot, CellStatus.OPTIMAL, -43.0, -43.0, "mip", 1e-4).verdict is \
        Verdict.CORRECT
    assert check(noswot, CellStatus.FEASIBLE, -41.0, -43.5, "mip", 1e-4).verdict is \
        Verdict.UNPROVEN
    assert check(noswot, CellStatus.FEASIBLE, -44.0, -45, "mip", 1e-4).verdict is Verdict.WRONG
    assert check(noswot, CellStatus.FEASIBLE, -41.0, -42.0, "mip", 1e-4).verdict is \
        Verdict.WRONG  # the bound -42 cuts off the optimum -43
    assert check(noswot, CellStatus.INFEASIBLE, math.nan, math.nan, "mip", 1e-4).verdict is \
        Verdict.WRONG
    assert check(noswot, CellStatus.TIMEOUT, math.nan, math.nan, "mip", 1e-4).verdict is \
        Verdict.UNPROVEN
    assert check(None, CellStatus.OPTIMAL, 1.0, 1.0, "lp", 1e-4).verdict is Verdict.UNKNOWN
    # A MIP told to stop at a 1 % gap is right within 1 %; an LP gets 1e-6.
    assert check(noswot, CellStatus.OPTIMAL, -42.7, -43, "mip", 0.01).verdict is Verdict.CORRECT
    lp = Known("x.mps", Path("x.mps"), 100.0, None, None, "min", "", "t")
    assert check(lp, CellStatus.OPTIMAL, 100.00001, 100.00001, "lp", 1e-4).verdict is \
        Verdict.CORRECT
    assert check(lp, CellStatus.OPTIMAL, 100.001, 100.001, "lp", 1e-4).verdict is Verdict.WRONG


def test_expected_notes_vouch_for_alternates_only_about_constants():
    table = ExpectedTable.load([CASES / "netlib" / "expected.csv",
                                CASES / "miplib" / "expected.csv"])
    e226 = table.lookup(CASES / "netlib" / "e226.mps")
    assert [t.value for t in e226.targets] == [-18.751929066, -11.638929066]
    # scagr7's note quotes the readme's inaccurate value: not an acceptable answer.
    assert len(table.lookup(CASES / "netlib" / "scagr7.mps").targets) == 1
    assert table.lookup(CASES / "miplib" / "mas76.mps").optimum == 40005.054
    # OR-Library's multi-instance files are not instances to match.
    gap = ExpectedTable.load([CASES / "orlib-gap" / "expected.csv"])
    assert gap.lookup(CASES / "orlib-gap" / "gap1.txt") is None


def test_grid_file(tmp_path):
    good = tmp_path / "grid.toml"
    good.write_text(
        'instances = ["cases/*.mps"]\nseeds = [0, 1]\nrepeats = 2\n'
        '[grid]\nsolver = ["highs", "cbc"]\npresolve = ["on", "off"]\ntime_limit = 5\n'
        '[[config]]\nsolver = "highs"\nmethod = "ipm"\noptions = {ipm_optimality_tolerance = '
        '1e-9}\n')
    grid = load_grid(good)
    labels = [c.label for c in grid.configs()]
    assert "cbc[presolve=off,tl=5]" in labels
    assert "highs[method=ipm,ipm_optimality_tolerance=1e-09]" in labels
    assert grid.instances == [str(tmp_path / "cases/*.mps")]
    assert len(grid.cells([Instance("a", tmp_path / "a.mps")])) == 5 * 2 * 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\nsolvr = ["highs"]\nsolver = ["hihgs"]\n[[config]]\nthreads = 2\n')
    with pytest.raises(InputError) as info:
        load_grid(bad)
    text = str(info.value)
    assert "did you mean 'solver'" in text and "did you mean 'highs'" in text
    assert "names no solver" in text


def _replicated(frame: pd.DataFrame, rng: np.random.Generator, noise: float) -> pd.DataFrame:
    """Three replicates of a run, each time scaled by independent noise of ±noise."""
    copies = []
    for repeat in range(3):
        copy = frame.copy()
        copy["repeat"] = repeat
        copy["solver_s"] = copy["solver_s"] * rng.uniform(1 - noise, 1 + noise, len(copy))
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


@pytest.mark.slow
def test_compare_sees_a_slowdown_but_not_noise(main_run, tmp_path):
    base = load_results(main_run["run"].results)
    base = base[base["key"].isin({c.key for c in main_run["cells"]})]
    rng = np.random.default_rng(5)
    old, new, noise_only = (_replicated(base, rng, 0.15) for _ in range(3))
    # Injected: HiGHS is 2 s slower everywhere, and CBC three times slower on lseu (enough to
    # move CBC's shifted geometric mean too: with times far below the 10 s shift it behaves
    # like an arithmetic mean).
    new.loc[new["config"] == "highs[tl=30]", "solver_s"] += 2.0
    lseu = (new["config"] == "cbc[tl=30]") & (new["instance"] == "lseu")
    new.loc[lseu, "solver_s"] = new.loc[lseu, "solver_s"] * 3 + 0.2
    for name, frame in (("old", old), ("new", new), ("noise", noise_only)):
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / RESULTS, index=False)
    result = compare(tmp_path / "old", tmp_path / "new")
    configs = result.configs.set_index("config")["change"]
    slow = ["highs[tl=30]", "cbc[tl=30]"]
    assert (configs[slow] == Change.SLOWER.value).all()
    assert (configs.drop(slow) == Change.SAME.value).all()
    changed = result.instances.set_index(["config", "instance"])["change"]
    assert changed[("cbc[tl=30]", "lseu")] == Change.SLOWER.value
    slower = changed[changed == Change.SLOWER.value]
    assert {c for c, _ in slower.index} == {"highs[tl=30]", "cbc[tl=30]"}
    # Two runs that differ by noise alone: nothing is called, not even on millisecond solves.
    quiet = compare(tmp_path / "old", tmp_path / "noise")
    assert set(quiet.instances["change"]) <= {Change.SAME.value, Change.UNSOLVED.value}
    assert (quiet.configs["change"] == Change.SAME.value).all()
    assert quiet.alarms.empty and not result.alarms.empty
    # A solve that turns wrong is reported whatever its speed.
    wrong = new.copy()
    flip = (wrong["config"] == "glop[tl=30]") & (wrong["instance"] == "afiro")
    wrong.loc[flip, "verdict"] = Verdict.WRONG.value
    (tmp_path / "wrong").mkdir()
    wrong.to_csv(tmp_path / "wrong" / RESULTS, index=False)
    flipped = compare(tmp_path / "old", tmp_path / "wrong", Thresholds())
    assert flipped.configs.set_index("config").loc["glop[tl=30]", "change"] == \
        Change.BECAME_WRONG.value
    # One replicate a side: no spread, so a change is only "slower?", never an alarm.
    single_new = base.copy()
    single_new.loc[single_new["config"] == "highs[tl=30]", "solver_s"] += 2.0
    (tmp_path / "single").mkdir()
    base.to_csv(tmp_path / "single" / "old.csv", index=False)
    single_new.to_csv(tmp_path / "single" / "new.csv", index=False)
    single = compare(tmp_path / "single" / "old.csv", tmp_path / "single" / "new.csv")
    assert single.one_replicate and single.alarms.empty
    assert single.configs.set_index("config").loc["highs[tl=30]", "change"] == \
        Change.SLOWER_UNCONFIRMED.value
    cli = subprocess.run([sys.executable, "-m", "allocator.bench.cli", "compare",
                          tmp_path / "old", tmp_path / "new", "--strict"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cli.returncode == 7, cli.stderr
    assert "slower" in cli.stdout and "lseu" in cli.stdout


def _bench_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allocator.bench.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=os.environ | {"COLUMNS": "200"})


@pytest.mark.slow
def test_cli_run_flags_a_wrong_answer_and_resumes(tmp_path):
    # A copy of afiro whose expected.csv publishes a wrong optimum: the solver's (right)
    # answer must come out flagged, loudly, with exit code 6.
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CASES / "netlib" / "afiro.mps", cases / "afiro.mps")
    shutil.copy(CASES / "miplib" / "p0033.mps", cases / "p0033.mps")
    (cases / "expected.csv").write_text("file,sense,optimum,source,note\n"
                                        "afiro.mps,min,-470.0,test,deliberately wrong\n"
                                        "p0033.mps,min,3089,miplib3.cat,\n")
    out = tmp_path / "out"
    run = _bench_cli(cases / "*.mps", "--solvers", "highs,glop", "--workers", "2",
                     "--out", out, "--no-progress")
    assert run.returncode == 6, run.stderr
    assert "WRONG" in run.stderr and "claims OPTIMAL at -464.75" in run.stderr
    frame = load_results(out / RESULTS)
    assert len(frame) == 4 and set(frame["verdict"]) == {"wrong", "correct", "n/a"}
    assert "WRONG ANSWERS (2)" in (out / "summary.md").read_text()
    again = _bench_cli(cases / "*.mps", "--solvers", "highs,glop", "--out", out)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = _bench_cli(cases / "*.mps", "--solvers", "highs,glop", "--out", out, "--resume",
                         "--no-fail-on-wrong", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "4 cells already" in resumed.stderr and len(load_results(out / RESULTS)) == 4


# ---------------------------------------------------------------- summaries from known times

# config -> instance -> three replicate times (or an outcome): built so that every rule of the
# summary shows. i1: HiGHS and GLOP under the 10 ms resolution (a tie), CBC 8–19× slower in
# raw time but 1.8× once the resolution is applied, in the table and the profile alike.
# i2: HiGHS wins within noise; i3: GLOP wins clearly, CBC is killed at the hard timeout once;
# i4: GLOP unproven, HiGHS wins clearly; i5: a MIP GLOP cannot take (n/a, not ranked).
KNOWN = {
    "highs": {"i1": [0.001, 0.002, 0.001], "i2": [1.0, 1.1, 0.9], "i3": [2.0, 2.1, 2.2],
              "i4": [0.3, 0.31, 0.29], "i5": [0.2, 0.2, 0.2]},
    "glop": {"i1": [0.004, 0.003, 0.005], "i2": [1.05, 0.95, 1.2], "i3": [0.5, 0.6, 0.55],
             "i4": "unproven", "i5": "n/a"},
    "cbc": {"i1": [0.017, 0.019, 0.018], "i2": [5.0, 5.5, 6.0], "i3": "timeout",
            "i4": [0.4, 0.42, 0.41], "i5": [0.3, 0.3, 0.3]},
}
LIMIT = 30.0


def _known_rows() -> list[dict]:
    rows = []
    for config, by_instance in KNOWN.items():
        for instance, times in by_instance.items():
            for repeat in range(3):
                row = dict.fromkeys(COLUMNS, "")
                row.update(key=f"{config}-{instance}-{repeat}", instance=instance, config=config,
                           solver=config, seed=0, repeat=repeat, time_limit=LIMIT,
                           timeout_s=2 * LIMIT + 30, mip_gap=1e-4, kind="lp", sense="min",
                           path=f"/nowhere/{instance}.mps", hwm_mb=120.0, base_mb=80.0,
                           objective=1.0, expected=1.0, matched="published")
                if isinstance(times, list):
                    row.update(status="optimal", verdict="correct", solver_s=times[repeat])
                elif times == "unproven":
                    row.update(status="no_solution", verdict="unproven", solver_s=LIMIT)
                elif times == "timeout" and repeat == 1:
                    row.update(status="timeout", verdict="unproven")
                elif times == "timeout":
                    row.update(status="optimal", verdict="correct", solver_s=3.0)
                else:
                    row.update(status="n/a", verdict="n/a")
                rows.append(row)
    return rows


def _write_results(rows: list[dict], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / RESULTS, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return folder / RESULTS


def test_summary_profile_and_table_agree_on_known_times(tmp_path):
    from allocator.bench.plots import profile_points
    from allocator.bench.summary import (
        LEGEND,
        RESOLUTION,
        common_instances,
        instance_matrix,
        ratios,
    )

    summary = summarize(load_results(_write_results(_known_rows(), tmp_path)))
    configs = summary.configs.set_index("config")
    common = ["i1", "i2", "i3", "i4"]  # i5 is not ranked: GLOP cannot take it
    # One outcome per instance, and they add up: CBC's timeout is a timeout, nothing else.
    outcomes = ["solved", "wrong", "disagree", "unproven", "timeout", "failed"]
    assert (configs[outcomes].sum(axis=1) == configs["instances"]).all()
    assert configs.loc["highs", ["solved", "instances"]].tolist() == [5, 5]
    assert configs.loc["glop", ["solved", "unproven", "not_applicable"]].tolist() == [3, 1, 1]
    assert configs.loc["cbc", ["solved", "timeout", "unproven", "failed"]].tolist() == \
        [4, 1, 0, 0]

    # Independently: the median of each instance's raw times, floored at the resolution;
    # the time limit for what was not solved.
    def charged(config: str, instance: str) -> float:
        times = KNOWN[config][instance]
        return max(float(np.median(times)), RESOLUTION) if isinstance(times, list) else LIMIT

    def solved(config: str, instance: str) -> bool:
        return isinstance(KNOWN[config][instance], list)

    expected_ratio = {}
    for instance in common:
        best = min(charged(c, instance) for c in KNOWN if solved(c, instance))
        for config in KNOWN:
            expected_ratio[config, instance] = (charged(config, instance) / best
                                                if solved(config, instance) else math.inf)
    table = ratios(summary.cells, common_instances(summary.cells))
    assert sorted(table.index) == common
    for (config, instance), value in expected_ratio.items():
        assert table.at[instance, config] == pytest.approx(value), (config, instance)
    assert table.at["i1", "cbc"] == pytest.approx(1.8)  # not 8–19: the resolution ties
    # wins = the profile at τ = 1; solved share = the profile's right end; sgm recomputed.
    for config in KNOWN:
        xs, ys = profile_points(table, config, tau_max=100.0)
        finite = sorted(v for (c, _), v in expected_ratio.items() if c == config
                        and math.isfinite(v))
        assert xs[1:-1] == pytest.approx(finite)  # the curve steps at the table's ratios
        wins = sum(expected_ratio[config, i] <= 1.0 for i in common)
        assert configs.loc[config, "wins"] == wins == round(ys[0] * len(common))
        assert ys[-1] == pytest.approx(sum(solved(config, i) for i in common) / len(common))
        assert configs.loc[config, "sgm_s"] == pytest.approx(
            shifted_geomean(np.array([charged(config, i) for i in common])))
    assert configs["wins"].to_dict() == {"highs": 3, "glop": 2, "cbc": 0}
    # Clear wins only where the spreads do not overlap; i1 is a tie, i2 within noise.
    wins = summary.wins.set_index("instance")
    assert wins.loc["i1", "win"] == "tie" and wins.loc["i1", "winner"] == "glop, highs"
    assert wins.loc["i2", "win"] == "within noise" and wins.loc["i2", "winner"] == "highs"
    assert wins.loc["i3", "win"] == "clear" and wins.loc["i4", "win"] == "clear"
    assert configs["clear_wins"].to_dict() == {"highs": 1, "glop": 1, "cbc": 0}
    assert "1 of 4 instances were won within noise" in summary.noise_note()
    # The matrix shows the same times: the resolution as "<0.01 s", the spread beside.
    matrix = instance_matrix(summary)
    assert matrix.at["i1", "highs"] == "<0.01 s [<0.01–<0.01] ok"
    assert matrix.at["i1", "cbc"] == "0.018 s [0.017–0.019] ok"
    assert matrix.at["i3", "cbc"] == "timeout" and matrix.at["i5", "glop"] == "n/a"
    assert matrix.at["i4", "glop"] == "unproven (no_solution)"
    assert matrix.at["i2", "winner"] == "highs (within noise)"
    # Every mark the matrix uses has a legend entry.
    marks = set()
    for text in matrix.drop(columns="winner").to_numpy().ravel():
        words = re.sub(r"(<0\.01|[\d.e+-]+) s\b", "", text).split()  # times, in s
        marks |= {w for w in words if not w.startswith(("[", "("))}
    assert marks and marks <= set(LEGEND), marks - set(LEGEND)
    # The written outputs state the resolution and carry the legend.
    write_outputs(summary, tmp_path)
    markdown = (tmp_path / "summary.md").read_text()
    assert "Timing resolution 0.01 s" in markdown and "Legend:" in markdown
    assert "| highs | 5 | 5 | 0 | 0 | 0 | 0 | 0 | 0 |" in markdown
    page = (tmp_path / "report.html").read_text()
    assert "<dt>?</dt>" in page and "within noise" in page
    # With one replicate the summary says there is no spread to judge a win by.
    single = summarize(load_results(tmp_path / RESULTS).query("repeat == 0"))
    assert single.single_repeat and "One replicate per cell" in single.noise_note()
    assert (single.configs["clear_wins"] == 0).all()


def test_disagreement_without_a_published_optimum_is_loud(tmp_path):
    rows = []
    for instance, cbc_cost in (("agreeing", 100.0), ("disputed", 105.0)):
        for config, cost in (("highs", 100.0), ("cbc", cbc_cost)):
            row = dict.fromkeys(COLUMNS, "")
            row.update(key=f"{config}-{instance}", instance=instance, config=config,
                       solver=config, seed=0, repeat=0, time_limit=30, timeout_s=90,
                       mip_gap=1e-4, kind="lp", sense="min", status="optimal",
                       verdict="unknown", solver_s=0.5, objective=1.0,
                       stages=f"service=1.0;cost={cost}", path=f"/x/{instance}/scenario.toml")
            rows.append(row)
    path = _write_results(rows, tmp_path)
    frame = load_results(path)
    verdicts = frame.set_index(["instance", "config"])["verdict"]
    assert verdicts["agreeing"].tolist() == ["agreed", "agreed"]
    assert verdicts["disputed"].tolist() == ["disagree", "disagree"]
    note = frame[frame["instance"] == "disputed"]["verdict_note"].iloc[0]
    assert "stage cost: cbc 105, highs 100" in note
    summary = summarize(frame)
    assert len(summary.wrong) == 2  # in the alarm panel, the exit code 6 and every output
    configs = summary.configs.set_index("config")
    assert configs.loc["highs", ["solved", "disagree"]].tolist() == [1, 1]
    assert "0.5 s DISAGREE" in instance_matrix_text(summary)
    write_outputs(summary, tmp_path)
    assert "DISAGREE: disputed" in (tmp_path / "summary.md").read_text()


def instance_matrix_text(summary) -> str:
    from allocator.bench.summary import instance_matrix

    return instance_matrix(summary).to_string()
