"""Bad input through the real CLI: exit 2, every problem located (file, spreadsheet row,
column), and no run folder left behind.

Each test copies tests/cases/tiny into tmp_path and breaks one thing. Row numbers are the ones
a spreadsheet shows: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import CliRun, run_cli

BAD_INPUT = 2


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact piece of a file; fails loudly if the piece is not there."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def solve_bad(case: Path, *extra: str) -> CliRun:
    """Solve the case in this process, expect exit 2 and nothing written; return the run for
    its message.

    The path `allocator solve` takes (allocator.api.solve, then allocator.failures'
    report_failure for the words and the exit code), without a fresh interpreter per test:
    the messages are the subject here. The exit code through the real CLI is checked by
    `solve_bad_cli` (test_exit_code_through_the_cli and the other CLI tests)."""
    from allocator.api import solve
    from allocator.failures import report_failure

    assert len(extra) % 2 == 0 and all(flag == "--set" for flag in extra[::2]), extra
    out = case.parent / "out"
    words = io.StringIO()
    try:
        solve(case / "scenario.toml", out, overrides=list(extra[1::2]))
        code = 0
    except Exception as exc:
        code = report_failure(exc, Console(file=words, soft_wrap=True, color_system=None))
    run = CliRun(code, "", words.getvalue(), out)
    assert run.code == BAD_INPUT, (run.code, run.stderr)
    assert_nothing_written(out)
    return run


def solve_bad_cli(case: Path, *extra: str) -> CliRun:
    """As solve_bad, through the real CLI in its own process (the exit code is the subject)."""
    out = case.parent / "out"
    run = run_cli("solve", case / "scenario.toml", *extra, out=out)
    assert run.code == BAD_INPUT, (run.code, run.stdout, run.stderr)
    assert_nothing_written(out)
    return run


def assert_nothing_written(out: Path) -> None:
    assert not out.exists(), f"{out} was written despite bad input"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"


def problem_lines(run: CliRun) -> list[str]:
    """The lines of the error message that state a problem (after the 'error' heading)."""
    return [line for line in run.stderr.splitlines() if line and not line.startswith("error")]


def assert_problem(
    run: CliRun, source: Path | str, row: int | None = None, column: str | None = None,
    *needles: str,
) -> str:
    """Exactly one line states a problem at (source, row, column) and contains the needles."""
    where = str(source)
    if row is not None:
        where += f" row {row}"
    if column is not None:
        where += f" column '{column}'"
    matches = [
        line for line in problem_lines(run)
        if line.startswith(f"{where}: ") and all(n in line for n in needles)
    ]
    assert len(matches) == 1, f"expected one problem at {where} with {needles}:\n{run.stderr}"
    return matches[0]


# --- files and columns -----------------------------------------------------------------------


def test_missing_file(case: Path) -> None:
    (case / "staff.csv").unlink()
    run = solve_bad_cli(case)
    assert_problem(run, case / "staff.csv", None, None, "file not found", "'staff'")


def test_missing_required_column(case: Path) -> None:
    edit(case / "staff.csv", ",fte,", ",ftes,")
    run = solve_bad_cli(case)
    line = assert_problem(run, case / "staff.csv", None, "fte", "required column missing")
    assert "ftes" in line  # the columns found are listed, so the typo is visible


@pytest.mark.parametrize("content", ["header", "nothing"])
def test_empty_staff_table(case: Path, content: str) -> None:
    staff = case / "staff.csv"
    header = staff.read_text(encoding="utf-8").splitlines()[0]
    staff.write_text(header + "\n" if content == "header" else "", encoding="utf-8")
    run = solve_bad(case)
    needle = "no rows" if content == "header" else "empty"
    assert_problem(run, staff, None, None, needle)
    assert len(problem_lines(run)) == 1, run.stderr  # no dangling-reference noise follows


def test_non_utf8_csv(case: Path) -> None:
    sites = case / "sites.csv"
    sites.write_bytes("site_id,region,capacity_fte,min_fte\nA,north,3,\nB,Orléans,,\n"
                      .encode("latin-1"))
    run = solve_bad(case)
    assert_problem(run, sites, 3, None, "UTF-8")


# --- cells -----------------------------------------------------------------------------------


def test_non_numeric_value(case: Path) -> None:
    edit(case / "staff.csv", "s2,A,pick,2,80", "s2,A,pick,two,80")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 3, "fte", "expected a number", "'two'")


def test_nan_text(case: Path) -> None:
    staff, targets = case / "staff.csv", case / "targets.csv"
    edit(targets, "A,pack,1,0,2", "A,pack,NaN,0,2")
    edit(targets, "B,pack,2,0,1", "B,pack,2,0,nan")  # an optional column
    edit(staff, "s3,B,pack,1,50", "s3,B,pack,1, NaN ")
    run = solve_bad(case)
    assert_problem(run, targets, 3, "demand", "NaN")
    assert_problem(run, targets, 4, "weight", "NaN")
    assert_problem(run, staff, 4, "cost_per_fte", "NaN")
    assert len(problem_lines(run)) == 3, f"one message per bad cell:\n{run.stderr}"


def test_empty_required_cell(case: Path) -> None:
    staff, targets = case / "staff.csv", case / "targets.csv"
    edit(staff, "s2,A,pick,2,80", "s2,A,pick,,80")
    edit(staff, "s3,B,pack", "s3,,pack")
    edit(targets, "B,pack,2", "B, ,2")  # blank is empty too
    run = solve_bad(case)
    assert_problem(run, staff, 3, "fte", "empty cell", "a number is required")
    assert_problem(run, staff, 4, "home_site", "empty cell", "a value is required")
    assert_problem(run, targets, 4, "service_id", "empty cell", "a value is required")
    assert len(problem_lines(run)) == 3, run.stderr


def test_negative_value(case: Path) -> None:
    staff, targets = case / "staff.csv", case / "targets.csv"
    edit(staff, "007,A,pick;pack,1,", "007,A,pick;pack,0,")
    edit(staff, "s2,A,pick,2,80", "s2,A,pick,-2,80")
    edit(staff, "s3,B,pack,1,50", "s3,B,pack,1,-50")
    edit(targets, "B,pack,2,", "B,pack,-2,")
    run = solve_bad(case)
    assert_problem(run, staff, 2, "fte", "expected a number > 0", "'0'")
    assert_problem(run, staff, 3, "fte", "expected a number > 0", "'-2'")
    assert_problem(run, staff, 4, "cost_per_fte", "expected a number >= 0", "'-50'")
    assert_problem(run, targets, 4, "demand", "expected a number >= 0", "'-2'")
    assert len(problem_lines(run)) == 4, run.stderr


def test_infinite_value(case: Path) -> None:
    staff, targets = case / "staff.csv", case / "targets.csv"
    edit(staff, "s2,A,pick,2,80", "s2,A,pick,2,inf")
    edit(targets, "B,pack,2,", "B,pack,-inf,")
    edit(targets, "A,pick,4,", "A,pick,1e999,")  # overflows to inf
    run = solve_bad(case)
    assert_problem(run, staff, 3, "cost_per_fte", "finite", "'inf'")
    assert_problem(run, targets, 4, "demand", "finite", "'-inf'")
    assert_problem(run, targets, 2, "demand", "finite", "'1e999'")
    assert len(problem_lines(run)) == 3, run.stderr


def test_min_level_outside_unit_interval(case: Path) -> None:
    targets = case / "targets.csv"
    edit(targets, "A,pick,4,0.5,", "A,pick,4,1.5,")
    edit(targets, "A,pack,1,0,", "A,pack,1,-0.1,")
    run = solve_bad(case)
    assert_problem(run, targets, 2, "min_level", "<= 1", "'1.5'")
    assert_problem(run, targets, 3, "min_level", ">= 0", "'-0.1'")


# --- keys and references ---------------------------------------------------------------------


def test_duplicate_staff_id(case: Path) -> None:
    edit(case / "staff.csv", "s3,B,", "s2,B,")
    run = solve_bad(case)
    assert_problem(run, case / "staff.csv", 4, "staff_id", "duplicate", "'s2'")


def test_duplicate_target_pair(case: Path) -> None:
    edit(case / "targets.csv", "B,pack,2,", "A,pick,2,")
    run = solve_bad(case)
    assert_problem(run, case / "targets.csv", 4, "site_id+service_id", "duplicate", "A/pick")


def test_dangling_reference(case: Path) -> None:
    staff, targets = case / "staff.csv", case / "targets.csv"
    edit(staff, "s3,B,", "s3,Z,")
    edit(targets, "B,pack,2,", "Q,pack,2,")
    edit(targets, "A,pack,1,", "A,sort,1,")
    run = solve_bad(case)
    assert_problem(run, staff, 4, "home_site", "not a site id", "'Z'")
    assert_problem(run, targets, 4, "site_id", "not a site id", "'Q'")
    assert_problem(run, targets, 3, "service_id", "not a service id", "'sort'")
    assert len(problem_lines(run)) == 3, run.stderr


def test_bad_budget_scope(case: Path) -> None:
    bad = ["region:south", "site:Z", "everything", "all:A", "region:"]
    rows = "".join(f"b{i},{scope},10\n" for i, scope in enumerate(bad))
    (case / "budgets.csv").write_text(
        f"budget_id,scope,amount\nok1,region:north,10\nok2,site:B,5\nok3,all,1\n{rows}",
        encoding="utf-8")
    run = solve_bad(case)
    for row, scope in enumerate(bad, start=5):
        assert_problem(run, case / "budgets.csv", row, "scope", f"'{scope}'")
    assert len(problem_lines(run)) == len(bad), run.stderr


# --- the scenario file and the command line ---------------------------------------------------


def test_unknown_scenario_key(case: Path) -> None:
    scenario = case / "scenario.toml"
    edit(scenario, "[solver]\n", "[solver]\ntime_limt = 5\n")
    edit(scenario, "[objective]\n", "[objective]\nrel_tl = 1e-6\n")
    edit(scenario, 'name = "tiny"\n', 'name = "tiny"\nnmae = "x"\n')
    run = solve_bad(case)
    for key, suggestion in [("solver.time_limt", "time_limit"), ("objective.rel_tl", "rel_tol"),
                            ("nmae", "name")]:
        assert_problem(run, scenario, None, None, f"unknown key '{key}'",
                       f"did you mean '{suggestion}'")
    assert len(problem_lines(run)) == 3, run.stderr


def test_unknown_key_in_set_override(case: Path) -> None:
    run = solve_bad(case, "--set", "solver.time_limt=5")  # blamed on the --set that gave it
    assert_problem(run, "--set solver.time_limt=5", None, None, "solver.time_limt",
                   "'time_limit'")


def test_unknown_table_name(case: Path) -> None:
    scenario = case / "scenario.toml"
    edit(scenario, "budgets = ", "budgetz = ")
    run = solve_bad(case)
    assert_problem(run, scenario, None, None, "unknown table 'tables.budgetz'",
                   "did you mean 'budgets'")


def test_unknown_key_in_inline_table(case: Path) -> None:
    scenario = case / "scenario.toml"
    edit(scenario, 'budgets = "budgets.csv"', 'budgets = { file = "budgets.csv" }')
    run = solve_bad(case)
    assert_problem(run, scenario, None, None, "tables.budgets", "'file'")


def test_bad_set(case: Path) -> None:
    items = ["solver.time_limit", "=5"]
    run = solve_bad(case, *(arg for item in items for arg in ("--set", item)))
    for item in items:
        assert_problem(run, case / "scenario.toml", None, None, f"--set '{item}'", "KEY=VALUE")


def test_missing_scenario_file(tmp_path: Path) -> None:
    scenario = tmp_path / "nowhere.toml"
    out = tmp_path / "out"
    run = run_cli("solve", scenario, out=out)
    assert run.code == BAD_INPUT, run.stderr
    assert str(scenario) in run.stderr
    assert_nothing_written(out)


# --- the output folder -----------------------------------------------------------------------


def _previous_run(case: Path) -> Path:
    out = case.parent / "out"
    out.mkdir()
    (out / "plan.csv").write_text("yesterday\n", encoding="utf-8")
    (out / "summary.json").write_text('{"version": "0.0.9", "exit_code": 0}\n', encoding="utf-8")
    return out


def test_existing_out_without_force_is_untouched(case: Path) -> None:
    out = _previous_run(case)
    run = run_cli("solve", case / "scenario.toml", out=out)
    assert run.code == BAD_INPUT, run.stderr
    assert "--force" in run.stderr and str(out) in run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["plan.csv", "summary.json"]
    assert (out / "plan.csv").read_text(encoding="utf-8") == "yesterday\n"
    assert sorted(p.name for p in case.parent.iterdir()) == ["case", "out"]


def test_existing_out_with_force_is_replaced(case: Path) -> None:
    out = _previous_run(case)
    run = run_cli("solve", case / "scenario.toml", "--force", out=out)
    assert run.code == 0, run.stderr
    assert run.table("plan")["staff_id"].tolist()[0] == "007"
    assert (out / "summary.json").exists()
    assert sorted(p.name for p in case.parent.iterdir()) == ["case", "out"]


def test_force_with_bad_input_keeps_previous_run(case: Path) -> None:
    out = _previous_run(case)
    edit(case / "staff.csv", "s2,A,pick,2,80", "s2,A,pick,two,80")
    run = run_cli("solve", case / "scenario.toml", "--force", out=out)
    assert run.code == BAD_INPUT, run.stderr
    assert (out / "plan.csv").read_text(encoding="utf-8") == "yesterday\n"
    assert sorted(p.name for p in case.parent.iterdir()) == ["case", "out"]


# --- everything at once ----------------------------------------------------------------------


def test_all_problems_of_all_tables_in_one_run(case: Path) -> None:
    sites, staff, targets, budgets = (case / f"{n}.csv"
                                      for n in ("sites", "staff", "targets", "budgets"))
    edit(sites, "A,north,3,", "A,north,lots,")
    edit(staff, "s2,A,pick,2,80", "s2,A,pick,2,-80")
    edit(staff, "s3,B,", "s3,Z,")  # a reference fault beside cell faults elsewhere
    edit(targets, "A,pack,1,0,2", "A,pack,1,2,2")
    edit(budgets, "all,all,1000", "all,all,-5")
    edit(case / "scenario.toml", "[tables]\n", '[tables]\nextra = "x.csv"\n')
    run = solve_bad(case)
    assert_problem(run, sites, 2, "capacity_fte", "expected a number", "'lots'")
    assert_problem(run, staff, 3, "cost_per_fte", ">= 0")
    assert_problem(run, staff, 4, "home_site", "not a site id", "'Z'")
    assert_problem(run, targets, 3, "min_level", "<= 1")
    assert_problem(run, budgets, 2, "amount", ">= 0")
    assert_problem(run, case / "scenario.toml", None, None, "unknown table 'tables.extra'")
    assert len(problem_lines(run)) == 6, run.stderr


# --- allocator validate ----------------------------------------------------------------------


def test_validate_good_scenario(case: Path) -> None:
    run = run_cli("validate", case / "scenario.toml")
    assert run.code == 0, run.stderr
    assert "valid" in run.stdout
    assert sorted(p.name for p in case.parent.iterdir()) == ["case"]


def test_validate_bad_scenario(case: Path) -> None:
    edit(case / "targets.csv", "A,pick,4,0.5,", "A,pick,4,1.5,")
    run = run_cli("validate", case / "scenario.toml")
    assert run.code == BAD_INPUT, run.stderr
    assert_problem(run, case / "targets.csv", 2, "min_level", "<= 1")
    assert sorted(p.name for p in case.parent.iterdir()) == ["case"]


def test_every_rejected_solver_option_is_named_at_once(case: Path) -> None:
    """Solver options HiGHS refuses: all of them in one message, a misspelt name with the
    real one it is closest to (HiGHS's own option list), a bad value as a bad value."""
    run = solve_bad(case, "--set", "solver.options.presolv=\"off\"", "--set",
                    "solver.options.simplex_strategy=\"x\"", "--set",
                    "solver.options.zzzz_qqqq=1")
    assert "presolv = 'off' (no such option; did you mean 'presolve'?)" in run.stderr
    assert "simplex_strategy = 'x' (a value HiGHS does not take for it)" in run.stderr
    assert "zzzz_qqqq = 1 (no such option)" in run.stderr
