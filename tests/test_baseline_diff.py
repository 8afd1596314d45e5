"""A run with a baseline compares itself with it (issue 14: "a run with a baseline includes
the same comparison against its baseline automatically"), checked against the two plans."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.conftest import run_cli

KEYS = ["staff_id", "site_id", "service_id"]


def test_a_run_with_a_baseline_writes_the_moves_against_it(case: Path, tmp_path: Path) -> None:
    day1 = run_cli("solve", case / "scenario.toml", "--no-store", out=tmp_path / "day1")
    assert day1.code == 0, day1.stderr
    staff = case / "staff.csv"  # s3 works half time tonight: someone covers packing at B
    staff.write_text(staff.read_text().replace("s3,B,pack,1,", "s3,B,pack,0.5,"))
    scenario = case / "scenario.toml"
    scenario.write_text(scenario.read_text().replace(
        "[tables]", f'[tables]\nbaseline = "{tmp_path / "day1" / "plan.csv"}"').replace(
        'order = ["service", "cost"]', 'order = ["service", "cost", "stability"]'))
    day2 = run_cli("solve", scenario, "--no-store", out=tmp_path / "day2")
    assert day2.code == 0, day2.stderr
    moves = pd.read_csv(tmp_path / "day2" / "baseline_moves.csv", dtype=dict.fromkeys(KEYS, str))
    a = pd.read_csv(tmp_path / "day1" / "plan.csv", dtype=dict.fromkeys(KEYS, str))
    b = pd.read_csv(tmp_path / "day2" / "plan.csv", dtype=dict.fromkeys(KEYS, str))
    both = a.groupby(KEYS)["fte"].sum().to_frame("fte_a").join(
        b.groupby(KEYS)["fte"].sum().to_frame("fte_b"), how="outer").fillna(0.0)
    both["delta"] = both["fte_b"] - both["fte_a"]
    changed = both[both["delta"].abs() > 1e-9]
    assert not changed.empty  # the demand change moved someone
    got = moves.set_index(KEYS).sort_index()
    assert sorted(got.index) == sorted(changed.index)
    pd.testing.assert_series_equal(got["delta"].sort_index(), changed["delta"].sort_index(),
                                   check_names=False, atol=1e-6)
    assert (tmp_path / "day2" / "baseline_diff.md").is_file()
    assert not [n for n in day2.summary["notes"] if "was not written" in n]
    # the files belong to the run: listed in its marker, so --force may replace the folder
    assert "baseline_moves.csv" in (tmp_path / "day2" / ".allocator-run").read_text()
