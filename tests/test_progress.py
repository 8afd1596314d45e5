"""Live progress: a display on a terminal (driven under a pseudo-terminal), plain heartbeat
lines without one, --quiet and --verbose, Ctrl-C restoring the terminal, and the solver's
figures checked against the solve they describe."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allocator.datagen import generate_ops, write_ops_instance
from allocator.progress import Event, _option, solving
from allocator.run import prepare, settings_from
from allocator.solvers.lexicographic import solve_stages, stage_objectives
from tests.conftest import DEMO, ROOT, TINY, run_cli

ESCAPE = "\x1b"
HEARTBEAT = re.compile(r"^\[\d+:\d\d(:\d\d)?\] (starting|load · validate|build|solve|warm start|"
                       r"analysis|diagnosis|write)\b")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS")}
    return {**env, **extra}


def _under_pty(args: list[str], *, interrupt_when: str | None = None,
               timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its stdin, stdout and stderr; all it wrote, and
    its exit code. `interrupt_when`: press Ctrl-C once that text has been drawn."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "allocator.cli", *args],
                  _env(TERM="xterm-256color", COLUMNS="100"))
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    pressed = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        if interrupt_when and not pressed and \
                interrupt_when in b"".join(chunks).decode("utf-8", "replace"):
            os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
            pressed = True
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def _text(shown: str) -> str:
    """What a person reads: the terminal's control sequences taken out."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)


@pytest.mark.slow
def test_live_display_on_a_terminal(tmp_path: Path) -> None:
    code, shown = _under_pty(["solve", str(TINY), "--out", str(tmp_path / "run"),
                              "--no-store"])
    assert code == 0, shown
    assert "\x1b[?25l" in shown  # the display took the cursor ...
    assert shown.rindex("\x1b[?25h") > shown.rindex("\x1b[?25l")  # ... and gave it back
    text = _text(shown)
    assert "load · validate" in text and "build" in text and "write" in text
    assert re.search(r"stage 1 of 2: service", text), text
    assert re.search(r"stage 2 of 2: cost", text), text
    assert "written: " in text  # the summary after the display


def _piped(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, env=_env(**env))
    return subprocess.CompletedProcess(list(args), done.code, done.stdout, done.stderr)


@pytest.mark.slow  # two or three runs of the CLI
def test_heartbeat_lines_without_a_terminal(tmp_path: Path) -> None:
    done = _piped("solve", str(TINY), "--out", str(tmp_path / "run"), "--no-store",
                  ALLOCATOR_HEARTBEAT="0.05")
    assert done.returncode == 0, done.stderr
    assert ESCAPE not in done.stderr and ESCAPE not in done.stdout  # no control codes
    beats = [line for line in done.stderr.splitlines() if HEARTBEAT.match(line)]
    assert len(beats) >= 3, done.stderr
    others = [line for line in done.stderr.splitlines() if not HEARTBEAT.match(line)]
    assert all(not line.startswith("[") for line in others), others
    # The option wins over the environment: one line a minute shows none on a short run.
    quiet_beat = _piped("solve", str(TINY), "--out", str(tmp_path / "run2"), "--no-store",
                        "--heartbeat", "60", ALLOCATOR_HEARTBEAT="0.05")
    assert quiet_beat.returncode == 0, quiet_beat.stderr
    assert not any(HEARTBEAT.match(line) for line in quiet_beat.stderr.splitlines())


@pytest.mark.slow  # two or three runs of the CLI
def test_quiet_and_verbose(tmp_path: Path) -> None:
    quiet = _piped("solve", str(TINY), "--out", str(tmp_path / "q"), "--no-store", "--quiet",
                   ALLOCATOR_HEARTBEAT="0.05")
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert quiet.stdout.strip().splitlines() == [f"written: {tmp_path / 'q'} (exit 0)"]
    verbose = _piped("solve", str(TINY), "--out", str(tmp_path / "v"), "--no-store",
                     "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "Presolving model" in verbose.stderr and "Model status" in verbose.stderr
    assert "Presolving model" not in verbose.stdout  # the plan's stdout stays clean
    bad = _piped("solve", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "b"),
                 "--no-store", "--quiet")
    assert bad.returncode == 2 and "missing.toml" in bad.stderr  # errors still said


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ops_instance(generate_ops(300, 0), tmp_path_factory.mktemp("small") / "case",
                              "progress-small")


def test_ctrl_c_restores_the_terminal_and_leaves_nothing(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Whole assignment: a MIP that runs long enough to be interrupted in its first stage.
    code, shown = _under_pty(["solve", str(small), "--out", str(out), "--no-store", "--set",
                              'policy.assignment="whole"'], interrupt_when="stage 1 of")
    assert code == 130, shown
    assert "interrupted (SIGINT)" in _text(shown)
    assert shown.rindex("\x1b[?25h") > shown.rindex("\x1b[?25l")  # cursor shown again
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no partial folder either


def _events(scenario: Path, *sets: str) -> tuple[list[Event], object]:
    loaded, built, _ = prepare(scenario, list(sets))
    model = built.model
    objectives = stage_objectives(model, loaded.objective.order, loaded.objective.mode,
                                  dict(loaded.objective.weights.items()))
    events: list[Event] = []
    with solving(events.append, [o.name for o in objectives], loaded.solver.name,
                 model.maximize, None) as staged:
        result = solve_stages(model, objectives, loaded.solver.name, settings_from(loaded),
                              on_stage=staged)
    return events, result


def test_interior_point_figures_close_in_on_the_optimum() -> None:
    events, result = _events(DEMO, 'solver.method="ipm"')
    stages = [e for e in events if e.kind == "stage"]
    assert [(e.index, e.count, e.stage, e.done) for e in stages] == [
        (1, 2, "service", False), (1, 2, "service", True), (2, 2, "cost", False),
        (2, 2, "cost", True)]
    first = events[:events.index(stages[1])]
    ipm = [e for e in first if e.kind == "solver" and e.primal is not None]
    assert ipm and all(e.method == "ipm" for e in ipm)
    optimum = result.stages[0].objective  # type: ignore[attr-defined]
    last = ipm[-1]  # the last iterate's primal and dual objective meet at the optimum
    assert last.primal == pytest.approx(optimum, rel=1e-6)
    assert last.dual == pytest.approx(optimum, rel=1e-6)
    gaps = [abs(float(e.primal or 0) - float(e.dual or 0)) for e in ipm]
    assert gaps[0] > gaps[-1]  # closing in
    assert stages[1].objective == optimum
    assert any(e.kind == "log" and "IPX" in e.text for e in first)


@pytest.mark.slow
def test_mip_figures_incumbent_bound_gap(small: Path) -> None:
    events, result = _events(small, 'policy.assignment="whole"', "solver.time_limit=8",
                             'objective.order=["service"]')
    mip = [e for e in events if e.kind == "solver" and e.method == "mip"]
    assert mip, [e for e in events if e.kind != "log"][:10]
    with_plan = [(float(e.incumbent), float(e.bound)) for e in mip
                 if e.incumbent is not None and e.bound is not None]
    assert with_plan
    stage = result.stages[0]  # type: ignore[attr-defined]
    best = min(incumbent for incumbent, _ in with_plan)  # minimized: it only improves
    assert best == pytest.approx(stage.objective, rel=1e-9)
    assert all(bound <= incumbent + 1e-9 for incumbent, bound in with_plan)
    assert all(e.gap is None or 0 <= e.gap <= 1 for e in mip)


def test_no_listener_no_callbacks() -> None:
    """Without a listener HiGHS gets no callback at all (what the API's plain solve costs)."""
    import highspy

    from allocator.progress import watch_highs

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    with watch_highs(highs, mip=False):
        assert all(not hook.callbacks for hook in highs.callbacks)
    seen: list[Event] = []
    with solving(seen.append, ["x"], "highs", False, None), watch_highs(highs, mip=False):
        assert highs.cbLogging.callbacks  # the log: figures without a per-iteration call
        assert not highs.cbSimplexInterrupt.callbacks and not highs.cbIpmInterrupt.callbacks
    assert all(not hook.callbacks for hook in highs.callbacks)  # unsubscribed after the run
    assert not _option(highs, "output_flag")


def test_progress_in_the_json_log_and_run_log(tmp_path: Path) -> None:
    """The same stage events in --log-format json's lines and the folder's run.log."""
    import json

    done = _piped("solve", str(TINY), "--out", str(tmp_path / "run"), "--no-store",
                  "--log-format", "json", ALLOCATOR_HEARTBEAT="0.05")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]  # JSON only: no beats
    stages = [(e["index"], e["stage"], e.get("done", False)) for e in events
              if e["event"] == "stage"]
    assert stages == [(1, "service", False), (1, "service", True), (2, "cost", False),
                      (2, "cost", True)]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    ended = [e for e in events if e["event"] == "stage" and e.get("done")]
    assert [e["objective"] for e in ended] == [summary["objectives"][n] for n in
                                                ("service", "cost")]
    log = (tmp_path / "run" / "run.log").read_text()
    assert "stage 1 of 2 service (highs) started" in log
