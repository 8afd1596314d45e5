"""run.log in every run folder, `solve --log-format json`, and the exit codes in every
command's --help."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from allocator.cli import main
from allocator.datagen import generate_ops, write_ops_instance
from allocator.errors import ExitCode
from tests.conftest import ROOT, TINY, run_cli

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # an escape (\x1b) included


def test_json_log_one_object_a_line(tmp_path: Path) -> None:
    done = run_cli("solve", TINY, "--no-store", "--log-format", "json", out=tmp_path / "run")
    assert done.code == 0
    events = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "exit" and events[-1]["code"] == 0
    assert "progress" in kinds
    ended = {e["phase"] for e in events if e["event"] == "phase" and e["state"] == "end"}
    assert {"load", "build", "solve"} <= ended
    result = next(e for e in events if e["event"] == "result")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result["status"] == "optimal" and result["exit_code"] == 0
    assert result["objectives"] == summary["objectives"]
    assert [e["message"] for e in events if e["event"] == "note"] == summary["notes"]
    assert [e["elapsed"] for e in events] == sorted(e["elapsed"] for e in events)


def test_json_log_of_a_failure(tmp_path: Path) -> None:
    done = run_cli("solve", tmp_path / "missing.toml", "--no-store", "--log-format", "json",
                   out=tmp_path / "run")
    assert done.code == 2
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert events[-2]["event"] == "error" and events[-2]["exit_code"] == 2
    assert "scenario file not found" in events[-2]["message"]
    assert events[-1] == {**events[-1], "event": "exit", "code": 2}


def test_every_run_folder_has_a_plain_run_log(tmp_path: Path) -> None:
    done = run_cli("solve", TINY, "--no-store", "--set", "output.report=false",
                   out=tmp_path / "run")
    assert done.code == 0
    assert not CONTROL.search(done.stderr.replace("\n", "").replace("\t", ""))  # no terminal
    log = (tmp_path / "run" / "run.log").read_text(encoding="utf-8")
    assert not CONTROL.search(log.replace("\n", "").replace("\t", ""))
    lines = log.splitlines()
    assert any(" phase " in line and "solve done in" in line for line in lines)
    assert any(" result " in line and "optimal (exit 0)" in line for line in lines)
    marker = json.loads((tmp_path / "run" / ".allocator-run").read_text())
    assert "run.log" in marker["files"]


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*path, name)))
    return found


def test_every_command_lists_its_exit_codes() -> None:
    runner = CliRunner()
    commands = _commands(main)
    assert {("solve",), ("replay",), ("bench", "run"), ("runs", "list"), ("convert",)} <= \
        set(commands)
    for path in [(), *commands]:
        text = runner.invoke(main, [*path, "--help"]).output
        assert "Exit codes:" in text, path
    solve_help = runner.invoke(main, ["solve", "--help"]).output
    for code in (ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.INFEASIBLE,
                 ExitCode.TIME_LIMIT_NO_PLAN, ExitCode.TIME_LIMIT_WITH_PLAN,
                 ExitCode.ENVIRONMENT):
        assert re.search(rf"^\s+{int(code)}\s+\w", solve_help, re.MULTILINE), code
    assert "143" in solve_help and "130" in solve_help
    assert re.search(r"^\s+7\s+compare --strict", runner.invoke(
        main, ["bench", "compare", "--help"]).output, re.MULTILINE)


@pytest.mark.slow
def test_json_log_of_an_interrupt(tmp_path: Path) -> None:
    """SIGTERM mid-solve: the last two lines say so, as JSON, and the exit is 143."""
    scenario = write_ops_instance(generate_ops(6_000, seed=2), tmp_path / "big", "big")
    proc = subprocess.Popen(
        [sys.executable, "-m", "allocator.cli", "solve", str(scenario), "--out",
         str(tmp_path / "run"), "--no-store", "--log-format", "json", "--set",
         'policy.assignment="whole"'],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # until the solver has started
        seen.append(json.loads(line))
        if seen[-1].get("phase") == "solve" and seen[-1].get("state") == "start":
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    rest = [json.loads(line) for line in proc.stderr.read().splitlines()]
    assert proc.wait(timeout=60) == 143
    assert rest[-2]["event"] == "error" and rest[-2]["signal"] == "SIGTERM"
    assert rest[-1]["event"] == "exit" and rest[-1]["code"] == 143
    assert not (tmp_path / "run").exists()
