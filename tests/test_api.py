"""The Python front door (`import allocator`): the same pipeline as the CLI, tables that read
back as the run wrote them, a short repr, errors as exceptions with every problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import allocator
from allocator.errors import InputError
from tests.conftest import TINY, run_cli


def test_solve_returns_the_hand_checked_optimum(tmp_path):
    run = allocator.solve(TINY, tmp_path / "run")
    assert run.status == "optimal" and run.exit_code == 0
    assert run.objectives["service"] == pytest.approx(1.0, abs=1e-6)
    assert run.objectives["cost"] == pytest.approx(310.0, rel=1e-5)
    plan = run.plan
    assert plan["staff_id"].tolist().count("007") == 1  # ids stay text
    assert plan["fte"].sum() == pytest.approx(4.0, abs=1e-5)  # 1 + 2 + 1 FTE all used
    assert repr(run) == f"Run('tiny', optimal, service=1, cost=310, folder='{tmp_path / 'run'}')"


def test_the_api_and_the_cli_write_the_same_tables(tmp_path):
    api_run = allocator.solve(TINY, tmp_path / "api", solver="glop", output__report=False)
    cli_run = run_cli("solve", TINY, "--solver", "glop", "--set", "output.report=false",
                      out=tmp_path / "cli")
    assert cli_run.code == 0
    for name in ("plan", "coverage", "budgets", "sites"):
        assert (tmp_path / "api" / f"{name}.csv").read_bytes() == \
            (tmp_path / "cli" / f"{name}.csv").read_bytes()
    assert not (tmp_path / "api" / "report.html").exists()
    reopened = allocator.open_run(tmp_path / "cli")
    assert reopened.objectives == api_run.objectives
    assert set(reopened.tables()) >= {"plan", "coverage", "budgets", "sites", "sensitivity"}


def test_ids_that_look_like_formulas_read_back_as_written(tmp_path):
    case = tmp_path / "case"
    shutil.copytree(TINY.parent, case)
    staff = case / "staff.csv"
    staff.write_text(staff.read_text().replace("s2,", "=s2,").replace("s3,", "-s3,"))
    run = allocator.solve(case / "scenario.toml", tmp_path / "run")
    assert run.exit_code == 0
    raw = (tmp_path / "run" / "plan.csv").read_text()
    assert "\"'=s2\"" in raw  # protected in the file against spreadsheet formulas ...
    assert {"=s2", "-s3", "007"} <= set(run.plan["staff_id"])  # ... and read back as written


def test_bad_input_raises_with_every_problem(tmp_path):
    case = tmp_path / "case"
    shutil.copytree(TINY.parent, case)
    staff = case / "staff.csv"
    staff.write_text(staff.read_text().replace(",1,100,", ",x,100,").replace(",1,50,", ",-1,50,"))
    with pytest.raises(InputError) as caught:
        allocator.solve(case / "scenario.toml", tmp_path / "run")
    assert len(caught.value.problems) == 2
    assert not (tmp_path / "run").exists()


def test_open_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not a run folder"):
        allocator.open_run(tmp_path)


def test_a_missing_table_says_which_there_are(tmp_path):
    run = allocator.solve(TINY, tmp_path / "run")
    with pytest.raises(InputError, match="has no marginals table"):
        run.table("marginals")


def test_settings_by_keyword_reach_the_scenario(tmp_path: Path):
    run = allocator.solve(TINY, tmp_path / "run", time_limit=30, objective__order=["service"])
    assert [s["name"] for s in run.summary["stages"]] == ["service"]
    assert run.summary["solver"]["time_limit"] == 30


def test_summary_json_follows_its_published_schema(tmp_path):
    """docs/summary.schema.json is the contract a dashboard relies on: it is the model's
    schema (regenerate with `python -m allocator.outputs.summary`), and a real run's
    summary.json validates against it."""
    import json

    from allocator.outputs.summary import RunSummary, schema
    from tests.conftest import ROOT

    published = json.loads((ROOT / "docs" / "summary.schema.json").read_text())
    assert published == schema()
    run = allocator.solve(TINY, tmp_path / "run")
    RunSummary.model_validate(run.summary)  # every key typed, none unknown
    phases = {k: v for k, v in run.summary["seconds"].items() if k != "total"}
    assert sum(phases.values()) == pytest.approx(run.summary["seconds"]["total"], abs=0.01)


def test_store_records_an_api_run_as_the_cli_does(tmp_path):
    """allocator.solve(..., store=...) records the run (finished and failed alike); the
    store's figures are the run folder's own."""
    import json

    db = tmp_path / "runs.sqlite"
    run = allocator.solve(TINY, out=tmp_path / "run", store=str(db))
    listed = run_cli("runs", "list", "--json", "--store", str(db))
    assert listed.code == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["status"] == "optimal" and row["exit_code"] == 0
    assert row["folder"] == str(tmp_path / "run")
    shown = json.loads(run_cli("runs", "show", str(row["id"]), "--json", "--store",
                               str(db)).stdout)
    assert shown["objectives"] == pytest.approx(run.summary["objectives"])
    bad = tmp_path / "bad"
    shutil.copytree(TINY.parent, bad)
    (bad / "staff.csv").unlink()
    with pytest.raises(InputError):
        allocator.solve(bad / "scenario.toml", out=tmp_path / "bad-run", store=str(db))
    rows = json.loads(run_cli("runs", "list", "--json", "--store", str(db)).stdout)
    assert sorted((r["status"], r["exit_code"]) for r in rows) == [("failed", 2),
                                                                   ("optimal", 0)]
