"""The same tables from CSV, Parquet, an Excel workbook and a SQLite database give the same
plan; ids keep their leading zeros, accents and spaces; a bad source is exit 2, named.

Every non-CSV input is written from pandas into tmp_path at test time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy

from tests.conftest import TINY, CliRun, run_cli

BAD_INPUT = 2
TABLES = ("sites", "services", "staff", "targets", "budgets")
ID_COLUMNS = ("site_id", "service_id", "staff_id", "home_site", "budget_id")
Spec = str | dict[str, str]


def read_csvs(folder: Path, names: tuple[str, ...] = TABLES) -> dict[str, pd.DataFrame]:
    """The CSV tables with ids as text and numbers as numbers, as a user's own frames are."""
    frames = {}
    for name in names:
        path = folder / f"{name}.csv"
        header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
        dtype = {c: str for c in ID_COLUMNS if c in header}
        frames[name] = pd.read_csv(path, dtype=dtype, encoding="utf-8-sig")
    return frames


def write_parquet(frames: dict[str, pd.DataFrame], folder: Path) -> dict[str, str]:
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return {name: f"{name}.parquet" for name in frames}


def write_excel(frames: dict[str, pd.DataFrame], folder: Path) -> dict[str, dict[str, str]]:
    with pd.ExcelWriter(folder / "book.xlsx") as writer:
        for name, frame in frames.items():
            frame.to_excel(writer, sheet_name=name.capitalize(), index=False)
    return {name: {"path": "book.xlsx", "sheet": name.capitalize()} for name in frames}


def write_sqlite(frames: dict[str, pd.DataFrame], folder: Path) -> dict[str, dict[str, str]]:
    url = f"sqlite:///{folder / 'ops.db'}"
    engine = sqlalchemy.create_engine(url)
    try:
        for name, frame in frames.items():
            frame.to_sql(name, engine, index=False)
    finally:
        engine.dispose()
    return {name: {"url": url, "query": f"SELECT * FROM {name}"} for name in frames}


WRITERS: dict[str, Callable[[dict[str, pd.DataFrame], Path], Mapping[str, Spec]]] = {
    "parquet": write_parquet, "excel": write_excel, "sqlite": write_sqlite,
}


def toml_value(spec: Spec) -> str:
    if isinstance(spec, str):
        return json.dumps(spec)  # a JSON string is a valid TOML basic string
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in spec.items()) + " }"


def write_scenario(folder: Path, specs: Mapping[str, Spec], template: Path = TINY) -> Path:
    """The template scenario with its `[tables]` entries pointed at `specs`."""
    lines = template.read_text(encoding="utf-8").splitlines()
    for name in specs:
        matches = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        assert len(matches) == 1, f"no single '{name} =' line in {template}"
        lines[matches[0]] = f"{name} = {toml_value(specs[name])}"
    path = folder / "scenario.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def solve(scenario: Path) -> CliRun:
    run = run_cli("solve", scenario, out=scenario.parent / "out")
    assert run.code == 0, run.stderr
    return run


def solve_bad(scenario: Path) -> CliRun:
    out = scenario.parent / "out"
    run = run_cli("solve", scenario, out=out)
    assert run.code == BAD_INPUT, (run.code, run.stderr)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]
    return run


def problem_lines(run: CliRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if line and not line.startswith("error")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture(scope="module")
def csv_plan(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The plan of the CSV original, solved once for the module."""
    case = tmp_path_factory.mktemp("csv").resolve() / "case"
    shutil.copytree(TINY.parent, case)
    plan = solve(case / "scenario.toml").table("plan")
    assert plan["staff_id"].tolist()[0] == "007"  # the reference itself kept its ids
    return plan


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(WRITERS))
def test_same_plan_as_csv(kind: str, folder: Path, csv_plan: pd.DataFrame) -> None:
    specs = WRITERS[kind](read_csvs(TINY.parent), folder)
    run = solve(write_scenario(folder, specs))
    pd.testing.assert_frame_equal(run.table("plan"), csv_plan, check_exact=False, rtol=1e-9,
                                  atol=1e-9)
    inputs = run.summary["inputs"]
    assert sorted(inputs) == sorted(TABLES)
    assert inputs["staff"]["rows"] == 3
    marker = {"parquet": "staff.parquet", "excel": "book.xlsx", "sqlite": "ops.db"}[kind]
    assert marker in inputs["staff"]["source"]


# --- ids that must survive ---------------------------------------------------------------------

ODD = {
    "sites": "site_id,region\n007,Île de France\nOrléans,Centre\nSaint Denis,Île de France\n",
    "services": "service_id,skill,productivity\npick up,pick up,1\npack,pack,1\n",
    "staff": "staff_id,home_site,skills,fte,cost_per_fte,mobility\n"
             "007,007,pick up,1,10,site\n0042,Orléans,pack,1,10,site\n"
             "Zoë Müller,Saint Denis,pick up;pack,1,10,site\n",
    "targets": "site_id,service_id,demand\n007,pick up,1\nOrléans,pack,1\nSaint Denis,pack,1\n",
}
ODD_PLAN = [("0042", "Orléans", "pack"), ("007", "007", "pick up"),
            ("Zoë Müller", "Saint Denis", "pack")]
ODD_SCENARIO = 'model = "ops"\n[tables]\n' + "".join(f'{n} = "{n}.csv"\n' for n in ODD)


@pytest.mark.parametrize("kind", ["csv", "csv-bom", *WRITERS])
def test_odd_ids_survive(kind: str, folder: Path) -> None:
    source = folder / "source"
    source.mkdir()
    (source / "scenario.toml").write_text(ODD_SCENARIO, encoding="utf-8")
    bom = "\ufeff" if kind == "csv-bom" else ""  # Excel's "CSV UTF-8" starts with one
    for name, text in ODD.items():
        (source / f"{name}.csv").write_text(bom + text, encoding="utf-8")
    if kind.startswith("csv"):
        scenario = source / "scenario.toml"
    else:
        specs = WRITERS[kind](read_csvs(source, tuple(ODD)), folder)
        scenario = write_scenario(folder, specs, template=source / "scenario.toml")
    plan = solve(scenario).table("plan")
    rows = sorted(zip(plan["staff_id"], plan["site_id"], plan["service_id"], strict=True))
    assert rows == ODD_PLAN
    assert plan["fte"].round(4).tolist() == [1.0, 1.0, 1.0]


# --- bad sources ---------------------------------------------------------------------------------


def test_sql_error_names_the_table(folder: Path) -> None:
    specs = write_sqlite(read_csvs(TINY.parent), folder)
    specs["staff"] = {**specs["staff"], "query": "SELECT * FROM stafff"}
    run = solve_bad(write_scenario(folder, specs))
    lines = problem_lines(run)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("table 'staff' (sqlite:///")
    assert "query failed" in lines[0] and "stafff" in lines[0]


def test_sqlite_missing_file_is_an_error_and_not_created(folder: Path) -> None:
    specs = write_sqlite(read_csvs(TINY.parent), folder)
    missing = folder / "nowhere.db"
    specs["staff"] = {**specs["staff"], "url": f"sqlite:///{missing}"}
    run = solve_bad(write_scenario(folder, specs))
    lines = problem_lines(run)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("table 'staff' (sqlite:///")
    assert f"database file not found: {missing}" in lines[0]
    assert not missing.exists()


def test_sql_password_is_not_shown(folder: Path) -> None:
    specs = write_sqlite(read_csvs(TINY.parent), folder)
    specs["staff"] = {**specs["staff"], "url": f"sqlite://bob:s3cret@/{folder / 'ops.db'}"}
    run = solve_bad(write_scenario(folder, specs))
    assert "table 'staff' (sqlite://bob:***@/" in run.stderr
    assert "s3cret" not in run.stderr


def test_sql_bad_value_names_table_and_column(folder: Path) -> None:
    frames = read_csvs(TINY.parent)
    frames["staff"].loc[1, "fte"] = -2
    specs = write_sqlite(frames, folder)
    run = solve_bad(write_scenario(folder, specs))
    lines = problem_lines(run)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("table 'staff' (sqlite:///")
    assert "column 'fte': expected a number > 0" in lines[0]


def test_missing_sheet(folder: Path) -> None:
    specs = write_excel(read_csvs(TINY.parent), folder)
    specs["staff"] = {"path": "book.xlsx", "sheet": "Staf"}
    run = solve_bad(write_scenario(folder, specs))
    assert problem_lines(run) == [f"{folder / 'book.xlsx'}: sheet 'Staf' not found; the "
                                  "workbook's sheets: 'Sites', 'Services', 'Staff', "
                                  "'Targets', 'Budgets'"]


def test_excel_bad_cell_names_sheet_row_and_column(folder: Path) -> None:
    frames = read_csvs(TINY.parent)
    frames["staff"]["fte"] = frames["staff"]["fte"].astype(object)
    frames["staff"].loc[1, "fte"] = "two"  # the second person: spreadsheet row 3
    specs = write_excel(frames, folder)
    run = solve_bad(write_scenario(folder, specs))
    assert problem_lines(run) == [
        f"{folder / 'book.xlsx'} [sheet Staff] row 3 column 'fte': expected a number "
        "(found 'two')"
    ]


def test_parquet_bad_cell_names_row_and_column(folder: Path) -> None:
    frames = read_csvs(TINY.parent)
    frames["targets"].loc[2, "min_level"] = 1.5  # the third target: row 4 under a header
    specs = write_parquet(frames, folder)
    run = solve_bad(write_scenario(folder, specs))
    lines = problem_lines(run)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"{folder / 'targets.parquet'} row 4 column 'min_level': ")


def test_corrupt_parquet(folder: Path) -> None:
    specs = write_parquet(read_csvs(TINY.parent), folder)
    (folder / "staff.parquet").write_bytes(b"this is not parquet")
    run = solve_bad(write_scenario(folder, specs))
    lines = problem_lines(run)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"{folder / 'staff.parquet'}: could not be read")
