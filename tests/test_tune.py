"""allocator bench tune: on instances built so that one setting is far faster, it finds that
setting, re-checks it against the default on fresh seeds, and writes a best.toml that
`allocator solve --solver-settings` accepts.

The instances: supply to sites with a shortfall penalty, two links per supplier, and one
budget row over every shipment, binding. On that long coupling row each dual simplex
iteration prices the whole row, so HiGHS's dual simplex (what `method = auto` picks at this
size) takes about four times as long as interior point (measured here: 0.34 s against 1.29 s
on the larger one). The tune runs through the real CLI on a real Dask LocalCluster, budgeted
by a count of runs.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from allocator.bench.settings_file import settings_overrides
from allocator.bench.summary import shifted_geomean
from allocator.bench.tune import (
    candidates,
    criterion_value,
    default_space,
    halving_rounds,
    load_space,
    parse_budget,
    planned_runs,
)
from allocator.errors import InputError
from allocator.scenario import load_scenario
from tests.conftest import ROOT, TINY, run_cli

SPACE = """\
# the method axis only: four candidates, two halving rounds at eta 2
[highs]
method = ["auto", "dual", "primal", "ipm"]
presolve = ["auto"]
"""


def coupling_lp(path: Path, suppliers: int, sites: int, seed: int) -> None:
    """Write the LP described in the module docstring as MPS (HiGHS's own writer)."""
    import highspy

    rng = np.random.default_rng(seed)
    links = 2
    n = suppliers * links
    site = np.concatenate([rng.choice(sites, links, replace=False) for _ in range(suppliers)])
    supply = rng.uniform(0.5, 1.0, suppliers)
    demand = rng.uniform(10, 40, sites)
    demand *= supply.sum() * 0.9 / demand.sum()  # 90 % of the supply: capacity is not it
    ship = np.arange(n)
    rows = sp.vstack([
        sp.csr_matrix((np.ones(n), (ship // links, ship)), shape=(suppliers, n + sites)),
        sp.hstack([sp.csr_matrix((np.ones(n), (site, ship)), shape=(sites, n)),
                   sp.identity(sites, format="csr")]),  # shipments + shortfall >= demand
        sp.hstack([sp.csr_matrix(rng.uniform(1, 10, (1, n))), sp.csr_matrix((1, sites))]),
    ]).tocsr()
    inf = highspy.kHighsInf
    lower = np.concatenate([np.full(suppliers, -inf), demand, [-inf]])
    # The budget pays for about half the demand at the mean cost: binding.
    upper = np.concatenate([supply, np.full(sites, inf), [0.5 * demand.sum() * 5.5]])
    cost = np.concatenate([rng.uniform(0, 0.01, n), rng.uniform(5, 15, sites)])
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.addVars(n + sites, np.zeros(n + sites), np.full(n + sites, inf))
    highs.changeColsCost(n + sites, np.arange(n + sites, dtype=np.int32), cost)
    highs.addRows(rows.shape[0], lower, upper, rows.nnz, rows.indptr[:-1].astype(np.int32),
                  rows.indices.astype(np.int32), rows.data)
    highs.writeModel(str(path))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    coupling_lp(folder / "coupled_a.mps", 4000, 400, 1)
    coupling_lp(folder / "coupled_b.mps", 3000, 300, 2)
    (folder / "space.toml").write_text(SPACE)
    out = folder / "out"
    # 36 runs: baseline 3, round 1 3 × 3, round 2 2 × 3 × 2, re-check 2 × 3 × 2 (the
    # budget check counts 39: it does not know that round 1 reuses the baseline).
    proc = subprocess.run(
        [sys.executable, "-m", "allocator.cli", "bench", "tune", folder / "coupled_a.mps",
         folder / "coupled_b.mps", TINY, "--solver", "highs", "--budget", "40 runs",
         "--space", folder / "space.toml", "--eta", "2", "--confirm", "2", "--workers", "2",
         "--out", out, "--heartbeat", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    return {"proc": proc, "out": out, "folder": folder}


@pytest.mark.slow  # a real tune: about 20 s on a quiet 2-core machine
def test_tune_finds_interior_point_and_rechecks_it(tuned):
    proc, out = tuned["proc"], tuned["out"]
    assert proc.returncode == 0, proc.stderr + proc.stdout
    best = tomllib.loads((out / "best.toml").read_text())
    assert best == {"solver": {"name": "highs", "method": "ipm"}}
    assert "Use highs[method=ipm]" in proc.stdout
    rounds = pd.read_csv(out / "tune.csv")
    assert set(rounds["candidate"]) == {"highs", "highs[method=dual]", "highs[method=primal]",
                                        "highs[method=ipm]"}
    fate = rounds.set_index("candidate")["fate"]
    assert fate["highs[method=ipm]"] == "winner"
    assert fate.str.startswith("dropped after round").sum() == 3
    # Every run is in results.csv; the re-check ran both sides on seeds the search never used.
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 3 + 9 + 12 + 12
    recheck = results[results["seed"] >= 1000]
    assert set(recheck["config"]) == {"highs", "highs[method=ipm]"}
    assert recheck.groupby("config").size().to_dict() == {"highs": 6, "highs[method=ipm]": 6}
    # Verified as the bench verifies: every method proves the same optimum on each instance
    # (no published one here), and on the scenario every stage agrees with the default's.
    optimal = results[results["status"] == "optimal"]
    spread = optimal.groupby("instance")["objective"].agg(lambda s: s.max() - s.min())
    assert (spread <= 1e-6 * optimal.groupby("instance")["objective"].max().abs().clip(1)).all()
    tiny = optimal[optimal["instance"] == "tiny"]
    assert tiny["stages"].nunique() >= 1 and tiny["stages"].str.contains("service=").all()
    # The gain is real on the coupled instances: re-check medians, computed from the raw rows.
    coupled = recheck[recheck["instance"].str.startswith("coupled")]
    medians = coupled.groupby("config")["solver_s"].median()
    assert medians["highs"] > 1.5 * medians["highs[method=ipm]"], medians
    page = (out / "report.html").read_text()
    assert "successive halving" in page.lower() and "highs[method=primal]" in page
    assert "<script" not in page and "Re-check on fresh seeds" in page
    assert "cells done" in proc.stderr  # heartbeat lines: the log shows progress


@pytest.mark.slow
def test_best_toml_is_accepted_by_solve(tuned, tmp_path):
    best = tuned["out"] / "best.toml"
    quick = ("--set", "output.report=false", "--no-store", "--cold")
    tuned_run = run_cli("solve", TINY, "--solver-settings", best, *quick,
                        out=tmp_path / "tuned")
    assert tuned_run.code == 0, tuned_run.stderr
    assert tuned_run.summary["solver"]["method"] == "ipm"
    # The same optimum as a solve with the scenario's own settings (a cold re-solve).
    plain = run_cli("solve", TINY, *quick, out=tmp_path / "plain")
    assert plain.code == 0, plain.stderr
    for stage, value in plain.summary["objectives"].items():
        assert tuned_run.summary["objectives"][stage] == pytest.approx(value, rel=1e-6, abs=1e-6)
    # A --set on the command line still wins over the file (it comes after it).
    scenario = load_scenario(TINY, [*settings_overrides(best), 'solver.method="dual"'])
    assert scenario.solver.method == "dual" and scenario.solver.name == "highs"


def test_bad_settings_file_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[solver]\nmethd = "ipm"\n[solver.options]\n"a.b" = 1\n')
    run = run_cli("solve", TINY, "--solver-settings", bad, "--no-store", out=tmp_path / "x")
    assert run.code == 2
    assert "did you mean 'method'" in run.stderr and "'a.b'" in run.stderr
    assert not (tmp_path / "x").exists()
    (tmp_path / "none.toml").write_text('[grid]\nsolver = "highs"\n')
    with pytest.raises(InputError, match="no \\[solver\\] section"):
        settings_overrides(tmp_path / "none.toml")
    good = tmp_path / "good.toml"
    good.write_text('[solver]\nname = "highs"\npresolve = false\n[solver.options]\n'
                    '"separating/maxrounds" = 0\nsimplex_scale_strategy = 2\n')
    assert settings_overrides(good) == [
        'solver.name="highs"', "solver.presolve=false",
        "solver.options.separating/maxrounds=0", "solver.options.simplex_scale_strategy=2"]


def test_search_space_per_backend(tmp_path):
    highs = default_space("highs", spare_threads=1)
    lp = [c.label for c in candidates("highs", highs, {"lp"})]
    mip = [c.label for c in candidates("highs", highs, {"mip"})]
    assert lp[0] == mip[0] == "highs"  # the default comes first
    assert len(lp) == 4 * 2 and any("method=ipm" in c for c in lp)
    assert not any("method" in c for c in mip)  # HiGHS's method does nothing on a MIP
    assert len(mip) == 2 * 2 * 2 and "highs[mip_heuristic_effort=0.3]" in mip
    threads = default_space("highs", spare_threads=4)
    assert any(a.name == "threads" and a.values == (1, 4) for a in threads)
    assert len(candidates("cbc", default_space("cbc", 1), {"mip"})) == 2 * 3 * 2
    space = tmp_path / "space.toml"
    space.write_text('[highs]\nmethod = ["ipm", "dual"]\n[highs.options]\n'
                     'simplex_scale_strategy = ["default", 4]\n')
    changed = candidates("highs", load_space(space, "highs", highs), {"lp"})
    assert [c.label for c in changed][:2] == ["highs", "highs[method=ipm]"]
    assert "highs[method=dual,presolve=off,simplex_scale_strategy=4]" in [c.label
                                                                          for c in changed]
    space.write_text('[highs]\nmethods = ["ipm"]\npresolve = ["sometimes"]\n')
    with pytest.raises(InputError) as info:
        load_space(space, "highs", highs)
    assert "did you mean 'method'" in str(info.value) and "sometimes" in str(info.value)


def test_budget_and_rounds(tmp_path):
    assert parse_budget("30m").seconds == 1800 and parse_budget("1h30m").seconds == 5400
    assert parse_budget("90s").seconds == 90 and parse_budget("40 runs").runs == 40
    with pytest.raises(InputError, match="not a duration"):
        parse_budget("soon")
    assert halving_rounds(8, 3) == [(8, 1), (3, 3)]
    assert halving_rounds(4, 2) == [(4, 1), (2, 2)]
    assert planned_runs(4, 2, 3, 2) == 3 * (4 + 4 + 4)
    times = pd.Series([0.5, 2.0, 30.0])
    assert criterion_value(times, "max") == 30.0  # the slowest instance: a nightly deadline
    assert criterion_value(times, "sgm") == pytest.approx(shifted_geomean(times.to_numpy()))
    assert criterion_value(pd.Series([1.0, math.inf]), "sgm") == math.inf  # disqualified
    run = run_cli("bench", "tune", TINY, "--budget", "5 runs", "--out", tmp_path / "t")
    assert run.code == 2 and "too small" in run.stderr, run.stderr
    assert not (tmp_path / "t").exists()
