"""`allocator partition`: a user's tables (CSV here) as Parquet partitioned by region.

Independent references: the raw CSV files read by pandas (which rows, which region folder),
the monolithic run of the original scenario, and the independent plan checker run against
the original CSV inputs on the plan the decomposed run made from the written parts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from allocator.formulations.ops.bottlenecks import fmt
from tests.conftest import DEMO, ROOT, CliRun, run_cli
from tests.plan_check import check_plan

DEMO_DATA = ROOT / "data" / "demo"
TABLES = ("sites", "services", "staff", "targets", "budgets")


def _demo_copy(folder: Path, baseline: pd.DataFrame | None = None) -> Path:
    """The demo's tables and a scenario naming them, in `folder` (the tests edit them)."""
    folder.mkdir(parents=True)
    for name in TABLES:
        shutil.copy(DEMO_DATA / f"{name}.csv", folder / f"{name}.csv")
    text = DEMO.read_text().replace("../data/demo/", "")
    if baseline is not None:
        baseline.to_csv(folder / "baseline.csv", index=False)
        text = text.replace('budgets = "budgets.csv"',
                            'budgets = "budgets.csv"\nbaseline = "baseline.csv"')
    scenario = folder / "scenario.toml"
    scenario.write_text(text)
    return scenario


def _read_parts(folder: Path) -> pd.DataFrame:
    """Every part of a written table with the region its folder names (pandas only)."""
    frames = []
    for part in sorted(folder.glob("region=*/part-0.parquet")):
        frame = pd.read_parquet(part)
        frames.append(frame.assign(_folder=part.parent.name.removeprefix("region=")))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_partitioned_tables_hold_every_row_in_its_region_and_solve_as_the_original(
        tmp_path: Path) -> None:
    """Every row of sites, staff and targets is written once, in the folder of its site's
    region (recomputed from the raw CSVs); a decomposed run on the parts reaches the
    original scenario's monolithic optimum, and its plan checks out against the original
    CSV inputs; a baseline comes along and still gives the same stability stage; its
    bottlenecks.md states the monolithic prices."""
    first = run_cli("solve", DEMO, "--no-store", out=tmp_path / "day1")
    assert first.code == 0, first.stderr
    yesterday = first.table("plan")[["staff_id", "site_id", "service_id", "fte"]]
    yesterday = yesterday.iloc[: len(yesterday) // 2]  # a different plan than today's best
    scenario = _demo_copy(tmp_path / "csv", yesterday)
    text = scenario.read_text().replace('order = ["service", "cost"]',
                                        'order = ["service", "cost", "stability"]')
    scenario.write_text(text + '\n[store]\nurl = "runs.db"\n')

    made = run_cli("partition", scenario, out=tmp_path / "parts")
    assert made.code == 0, made.stderr
    assert "4 regions" in made.stdout and "staff 449 rows" in made.stdout
    parts = tmp_path / "parts"
    raw = {name: pd.read_csv(tmp_path / "csv" / f"{name}.csv", dtype=str)
           for name in (*TABLES, "baseline")}
    region = dict(zip(raw["sites"]["site_id"], raw["sites"]["region"], strict=True))
    for name, site_column in (("sites", "site_id"), ("staff", "home_site"),
                              ("targets", "site_id")):
        written = _read_parts(parts / name)
        assert len(written) == len(raw[name])
        assert (written["_folder"] == written[site_column].map(region)).all(), name
        keys = ["site_id"] if name == "sites" else \
            ["staff_id"] if name == "staff" else ["site_id", "service_id"]
        mine = written.sort_values(keys).reset_index(drop=True)
        theirs = raw[name].sort_values(keys).reset_index(drop=True)
        assert mine[keys].astype(str).equals(theirs[keys])
        for column in ("fte", "demand", "capacity_fte", "cost_per_fte"):
            if column in theirs:
                assert mine[column].to_numpy() == pytest.approx(
                    pd.to_numeric(theirs[column]).to_numpy(), nan_ok=True), (name, column)
    for name in ("services", "budgets", "baseline"):
        assert len(pd.read_parquet(parts / f"{name}.parquet")) == len(raw[name])
    written_scenario = (parts / "scenario.toml").read_text()
    assert 'staff = "staff"' in written_scenario and 'baseline = "baseline.parquet"' in \
        written_scenario
    assert str(tmp_path / "csv" / "runs.db") in written_scenario  # records where it did

    original = run_cli("solve", scenario, "--no-store", out=tmp_path / "mono")
    decomposed = run_cli("solve", parts / "scenario.toml", "--no-store", "--decompose",
                         "regions", "--workers", "2", out=tmp_path / "dw")
    whole = run_cli("solve", parts / "scenario.toml", "--no-store", out=tmp_path / "whole")
    assert original.code == 0, original.stderr
    assert decomposed.code == 0, decomposed.stderr
    assert whole.code == 0, whole.stderr  # the parts read whole: the very same numbers,
    for name, value in original.summary["objectives"].items():  # rows in region order
        assert whole.summary["objectives"][name] == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert set(original.summary["objectives"]) == {"service", "cost", "stability"}
    for name, value in original.summary["objectives"].items():
        assert decomposed.summary["objectives"][name] == pytest.approx(value, rel=1e-6,
                                                                      abs=1e-6)
    check = check_plan(scenario, decomposed.table("plan"))
    assert check.violations == []
    said = decomposed.summary["objectives"]
    # The stability stage may use each earlier stage's rel_tol (1e-6) of slack.
    assert check.service == pytest.approx(said["service"], rel=2e-6, abs=1e-6)
    assert check.cost == pytest.approx(said["cost"], rel=2e-6)
    keys = ["staff_id", "site_id", "service_id"]
    both = decomposed.table("plan")[[*keys, "fte"]].merge(
        yesterday.astype({k: str for k in keys}), on=keys, how="outer",
        suffixes=("", "_before")).fillna(0.0)
    moved = 0.5 * (both["fte"] - both["fte_before"]).abs().sum()
    assert moved == pytest.approx(said["stability"] / 2, rel=1e-6, abs=1e-6)
    _diff_reads_the_parts(tmp_path, parts)
    _bottlenecks_are_the_monolithic_prices(tmp_path, scenario, original, decomposed)


def test_partition_refuses_bad_tables_all_at_once_and_writes_nothing(tmp_path: Path) -> None:
    scenario = _demo_copy(tmp_path / "csv")
    staff = (tmp_path / "csv" / "staff.csv").read_text().splitlines()
    head = staff[0].split(",")
    cells = staff[3].split(",")
    cells[head.index("fte")] = "lots"
    staff[3] = ",".join(cells)
    (tmp_path / "csv" / "staff.csv").write_text("\n".join(staff) + "\n")
    targets = pd.read_csv(tmp_path / "csv" / "targets.csv", dtype=str)
    targets.loc[5, "site_id"] = "NOWHERE"
    targets.to_csv(tmp_path / "csv" / "targets.csv", index=False)

    done = run_cli("partition", scenario, out=tmp_path / "parts")
    assert done.code == 2
    said = " ".join(done.stderr.split())
    assert "staff.csv" in said and "row 4" in said and "fte" in said
    assert "targets.csv" in said and "NOWHERE" in said
    assert not (tmp_path / "parts").exists() or not any((tmp_path / "parts").iterdir())


@pytest.mark.slow
def test_partition_never_replaces_an_input_or_what_it_did_not_write(tmp_path: Path) -> None:
    scenario = _demo_copy(tmp_path / "csv")
    # Headers as an export writes them: mapped to the contract's names in the parts.
    sites = (tmp_path / "csv" / "sites.csv").read_text().splitlines()
    sites[0] = sites[0].replace("site_id", "Site ID").replace("capacity_fte", "Capacity (FTE)")
    (tmp_path / "csv" / "sites.csv").write_text("\n".join(sites) + "\n")
    before = {p.name: p.read_bytes() for p in (tmp_path / "csv").iterdir()}

    into_inputs = run_cli("partition", scenario, "--force", out=tmp_path / "csv")
    assert into_inputs.code == 2
    assert "is an input of this scenario" in " ".join(into_inputs.stderr.split())
    assert {p.name: p.read_bytes() for p in (tmp_path / "csv").iterdir()} == before

    parts = tmp_path / "parts"
    assert run_cli("partition", scenario, out=parts).code == 0
    assert {"site_id", "capacity_fte"} <= set(_read_parts(parts / "sites").columns)
    (parts / "notes.txt").write_text("mine")
    again = run_cli("partition", scenario, out=parts)
    assert again.code == 2 and "--force" in again.stderr
    forced = run_cli("partition", scenario, "--force", out=parts)
    assert forced.code == 0, forced.stderr
    assert (parts / "notes.txt").read_text() == "mine"
    assert not [p for p in parts.iterdir() if p.name.startswith(".")]  # no temporary left

    import allocator  # the Python API: the same function, InputError as the CLI's exit 2
    from allocator.errors import InputError

    with pytest.raises(InputError, match="--force"):
        allocator.partition(scenario, parts)
    assert allocator.partition(scenario, parts, force=True).rows["staff"] == 449

    (parts / "staff" / "readme.md").write_text("a user's file")
    foreign = run_cli("partition", scenario, "--force", out=parts)
    assert foreign.code == 2 and "not what an earlier partition wrote" in \
        " ".join(foreign.stderr.split())
    assert (parts / "staff" / "readme.md").read_text() == "a user's file"

    # A link to the input folder; a folder inside an input folder (parts read again):
    # refused, --force or not.
    (tmp_path / "link").symlink_to(tmp_path / "csv")
    refused = run_cli("partition", scenario, "--force", out=tmp_path / "link")
    assert refused.code == 2 and "is an input" in " ".join(refused.stderr.split())
    assert {p.name: p.read_bytes() for p in (tmp_path / "csv").iterdir()} == before
    staff_parts = sorted(p.read_bytes() for p in (parts / "staff").rglob("*.parquet"))
    (parts / "staff" / "readme.md").unlink()
    nested = run_cli("partition", parts / "scenario.toml", "--force", out=parts / "staff")
    assert nested.code == 2 and "inside the input folder" in " ".join(nested.stderr.split())
    assert sorted(p.read_bytes() for p in (parts / "staff").rglob("*")
                  if p.is_file()) == staff_parts

    # A scenario.toml and tables partition did not write: --force leaves them.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "scenario.toml").write_text('model = "ops"\n')
    (tmp_path / "other" / "budgets.parquet").write_bytes(b"not ours")
    kept = run_cli("partition", scenario, "--force", out=tmp_path / "other")
    assert kept.code == 2 and "not what an earlier partition wrote" in \
        " ".join(kept.stderr.split())
    assert (tmp_path / "other" / "budgets.parquet").read_bytes() == b"not ours"


def test_a_store_turned_off_stays_off(tmp_path: Path) -> None:
    scenario = _demo_copy(tmp_path / "csv")
    scenario.write_text(scenario.read_text() + '\n[store]\nurl = "off"\n')
    assert run_cli("partition", scenario, out=tmp_path / "parts").code == 0
    written = (tmp_path / "parts" / "scenario.toml").read_text()
    assert written.startswith("# Written by allocator partition")
    assert 'url = "off"' in written


def _bottlenecks_are_the_monolithic_prices(tmp_path: Path, scenario: Path, original: CliRun,
                                           decomposed: CliRun) -> None:
    """bottlenecks.md of the decomposed run: every price it states is the monolithic run's
    dual of the same row (where that dual is unique), no range is stated, and the service
    stage's first budget price is what a re-solve with that budget moved gives."""
    said = decomposed.table("bottlenecks")
    assert len(said) and (said["range_kind"] == "marginal").all()
    assert said["holds_from"].isna().all() and said["holds_to"].isna().all()
    text = (tmp_path / "dw" / "bottlenecks.md").read_text()
    assert "how far a price holds is not computed" in text
    assert "this price holds from" not in text and "each extra" not in text
    mono = original.table("sensitivity")
    mono = mono[mono["kind"] == "constraint"].set_index(["stage", "family", "labels"])
    assert (said["kind"] == "constraint").all()  # no people lines: no uniqueness to check
    checked = 0
    for row in said.itertuples():
        theirs = mono.loc[(row.stage, row.family, str(row.labels))]
        assert bool(theirs["binding"])
        if bool(theirs["dual_unique"]):
            assert row.dual == pytest.approx(theirs["dual"], rel=1e-6, abs=1e-9)
            checked += 1
    assert checked >= 1
    first = said[(said["stage"] == "service") & (said["family"] == "budget")].iloc[0]
    row = mono.loc[("service", "budget", str(first["labels"]))]
    step = 100.0
    assert row["rhs_high"] - row["rhs"] >= step  # inside the monolithic range: one price
    budgets = pd.read_csv(tmp_path / "csv" / "budgets.csv", dtype={"budget_id": str})
    budgets.loc[budgets["budget_id"] == first["labels"], "amount"] += step
    budgets.to_csv(tmp_path / "csv" / "budgets.csv", index=False)
    moved = run_cli("solve", scenario, "--no-store", "--set", 'objective.order=["service"]',
                    out=tmp_path / "moved")
    assert moved.code == 0, moved.stderr
    change = moved.summary["objectives"]["service"] - original.summary["objectives"]["service"]
    assert change / step == pytest.approx(first["price_per_input"], rel=1e-4)
    assert f"shadow price at today's plan is {fmt(abs(first['price_per_input']))} units of " \
        "weighted shortfall per unit" in text  # the figure, in words


def _diff_reads_the_parts(tmp_path: Path, parts: Path) -> None:
    """`allocator diff` reads the parts again: against the CSV run, the same rows and values
    (not "changed"); against a night whose staff part changed, that person's cell."""
    same = run_cli("diff", tmp_path / "mono", tmp_path / "dw", out=tmp_path / "d1")
    assert same.code == 0, same.stderr
    tables = pd.read_csv(tmp_path / "d1" / "inputs_diff.csv").set_index("table")
    assert (tables.loc[["sites", "staff", "targets", "budgets", "baseline"], "status"]
            == "same values").all(), tables
    tomorrow = tmp_path / "parts2"  # the next night's export: a folder of its own
    shutil.copytree(parts, tomorrow)
    part = sorted((tomorrow / "staff").glob("region=*/part-0.parquet"))[0]
    staff = pd.read_parquet(part)
    who = str(staff.loc[0, "staff_id"])
    staff.loc[0, "fte"] = float(staff.loc[0, "fte"]) + 0.25
    staff.to_parquet(part, index=False)
    night = run_cli("solve", tomorrow / "scenario.toml", "--no-store", "--decompose",
                    "regions", out=tmp_path / "dw2")
    assert night.code == 0, night.stderr
    moved = run_cli("diff", tmp_path / "dw", tmp_path / "dw2", out=tmp_path / "d2")
    assert moved.code == 0, moved.stderr
    tables = pd.read_csv(tmp_path / "d2" / "inputs_diff.csv").set_index("table")
    assert tables.loc["staff", "status"] == "changed"
    assert tables.loc["staff", "cells_changed"] == 1
    changes = pd.read_csv(tmp_path / "d2" / "input_changes.csv", dtype={"staff_id": str})
    assert changes[(changes["table"] == "staff") & (changes["column"] == "fte")][
        "staff_id"].tolist() == [who]


def test_a_failed_move_leaves_the_earlier_partition_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--force replaces an earlier partition entry by entry; a move that fails half-way puts
    the earlier entries back, so --out holds the old set whole (never a scenario.toml naming
    files of another set)."""
    import os

    import allocator
    from allocator.formulations.ops import partition as module

    scenario = _demo_copy(tmp_path / "csv")
    out = tmp_path / "parts"
    allocator.partition(scenario, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    budgets = pd.read_csv(tmp_path / "csv" / "budgets.csv")
    budgets["amount"] = budgets["amount"] * 2  # the new set differs
    budgets.to_csv(tmp_path / "csv" / "budgets.csv", index=False)

    real = os.replace
    failed: list[object] = []

    def failing(src: object, dst: object) -> None:
        if Path(str(dst)) == out / "targets" and not failed:  # after sites, services, staff
            failed.append(src)
            raise OSError(28, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(module.os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        module.partition(scenario, out, force=True)
    monkeypatch.undo()
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
