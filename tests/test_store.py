"""The run store (docs/run-store.md) through the real CLI, against SQLite and a real,
throwaway PostgreSQL server; what the store says is checked against the run folder's
summary.json and bottlenecks.csv, which are written independently of it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DEMO, ROOT, TINY, CliRun, run_cli
from tests.pg import throwaway_postgres

FAST = ("--set", "output.report=false")  # the report is not what these tests are about


# --- a throwaway PostgreSQL server -----------------------------------------------------------


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (tests/pg.py); its URL."""
    with throwaway_postgres("allocator-store-pg-") as url:
        yield url


def _new_pg_database(server: str) -> str:
    import psycopg

    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store (no tables yet): a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'runs.sqlite'}"
    return _new_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOCATOR_STORE", raising=False)


# --- helpers -----------------------------------------------------------------------------------


def solve(out: Path, *extra: str | Path, scenario: Path = TINY) -> CliRun:
    return run_cli("solve", scenario, *FAST, *extra, out=out, timeout=120)


def runs_json(store: str, *args: str) -> object:
    run = run_cli("runs", *args, "--json", "--store", store, timeout=60)
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)


def show(store: str, run_id: int | str) -> dict:
    found = runs_json(store, "show", str(run_id))
    assert isinstance(found, dict)
    return found


def listed(store: str, *args: str) -> list[dict]:
    found = runs_json(store, "list", "--last", "0", *args)
    assert isinstance(found, list)
    return found


def recorded_id(run: CliRun) -> int:
    line = next(x for x in run.stderr.splitlines() if x.startswith("recorded: run "))
    return int(line.split()[2])


def infeasible_tiny(folder: Path) -> Path:
    shutil.copytree(TINY.parent, folder)
    (folder / "targets.csv").write_text("site_id,service_id,demand,min_level,weight\n"
                                        "A,pick,4,1.0,1\nA,pack,1,0,2\nB,pack,2,1.0,1\n")
    (folder / "budgets.csv").write_text("budget_id,scope,amount\nall,all,200\n")
    return folder / "scenario.toml"


# --- what a run records ------------------------------------------------------------------------


def test_a_solve_is_recorded_as_its_summary_says(store: str, tmp_path: Path) -> None:
    run = solve(tmp_path / "run", "--store", store)
    assert run.code == 0, run.stderr
    summary = run.summary
    rec = show(store, recorded_id(run))
    assert rec["status"] == summary["status"] == "optimal"
    assert rec["exit_code"] == 0 and rec["reason"] is None
    assert rec["scenario"] == summary["name"] == "tiny"
    assert rec["scenario_path"] == str(TINY)
    import hashlib

    assert rec["scenario_sha256"] == hashlib.sha256(TINY.read_bytes()).hexdigest()
    assert rec["folder"] == str((tmp_path / "run").resolve())
    assert rec["summary_sha256"] == hashlib.sha256(
        (tmp_path / "run" / "summary.json").read_bytes()).hexdigest()
    assert rec["inputs"] == summary["inputs"]
    assert rec["seconds"] == summary["seconds"]
    assert rec["model_size"] == summary["model_size"]
    assert rec["settings"]["solver"] == summary["solver"]
    assert rec["settings"]["policy"] == summary["policy"]
    assert rec["settings"]["objective"] == summary["objective_settings"]
    assert rec["overrides"] == list(FAST[1:])
    assert [(s["name"], s["status"], s["objective"], s["bound"], s["gap"], s["seconds"])
            for s in rec["stages"]] == [
        (s["name"], s["status"], s["objective"], s["bound"], s["gap"], s["seconds"])
        for s in summary["stages"]]
    assert rec["objectives"] == summary["objectives"]
    assert rec["warnings"] == summary["warnings"] and rec["notes"] == summary["notes"]
    assert rec["versions"]["allocator"] == summary["version"]
    from importlib import metadata

    for lib in ("highspy", "ortools", "pulp", "pandas", "numpy"):
        assert rec["versions"][lib] == metadata.version(lib)
    assert rec["host"] == socket.gethostname() and rec["pid"] > 0
    started, finished = (pd.Timestamp(rec[k]) for k in ("started_at", "finished_at"))
    assert started.tzinfo is not None and started <= finished
    assert abs((pd.Timestamp.now(tz="UTC") - finished).total_seconds()) < 120
    # The top binding constraints: bottlenecks.csv's first rows, by business labels.
    ranked = pd.read_csv(tmp_path / "run" / "bottlenecks.csv", dtype={"labels": str})
    assert rec["constraints"], "no binding constraints recorded"
    for c, (_, row) in zip(rec["constraints"], ranked.iterrows(), strict=False):
        assert (c["stage"], c["family"], c["labels"]) == (row["stage"], row["family"],
                                                          row["labels"])
        assert c["dual"] == pytest.approx(row["dual"])
        assert c["rhs_low"] == pytest.approx(row["rhs_low"])
        assert c["rhs_high"] == pytest.approx(row["rhs_high"])
    assert "007" in {c["labels"] for c in rec["constraints"]}  # ids stay text
    # The list agrees.
    [row] = listed(store)
    assert (row["id"], row["status"], row["folder"]) == (rec["id"], "optimal", rec["folder"])


@pytest.mark.slow
def test_failed_runs_are_recorded_with_why(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    # Infeasible (exit 3): a folder with the diagnosis, recorded with its status.
    scenario = infeasible_tiny(tmp_path / "case")
    run = solve(tmp_path / "infeasible", "--store", store, scenario=scenario)
    assert run.code == 3, run.stderr
    rec = show(store, recorded_id(run))
    assert (rec["status"], rec["exit_code"]) == (run.summary["status"], 3) == ("infeasible", 3)
    assert "infeasible" in rec["reason"] and "diagnosis.md" in rec["reason"]
    # Bad input (exit 2): no folder, the problems recorded.
    (tmp_path / "case" / "staff.csv").unlink()
    run = solve(tmp_path / "bad", "--store", store, scenario=scenario)
    assert run.code == 2, run.stderr
    assert not (tmp_path / "bad").exists()
    assert "recorded: run" not in run.stderr  # the error is the news: recorded silently
    rec = listed(store, "--last", "1")[0]
    assert (rec["status"], rec["exit_code"]) == ("failed", 2)
    assert "staff.csv" in rec["reason"] and "staff.csv" in run.stderr
    # A target that exists (exit 2): refused, recorded as such.
    run = solve(tmp_path / "infeasible", "--store", store, scenario=TINY)
    assert run.code == 2
    rec = listed(store, "--last", "1")[0]
    assert rec["status"] == "failed" and "--force" in rec["reason"]
    assert [r["status"] for r in listed(store, "--status", "failed")] == ["failed", "failed"]


@pytest.mark.slow
def test_default_store_is_the_users_own(tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    proc = subprocess.run(
        [sys.executable, "-m", "allocator.cli", "solve", str(TINY), *FAST, "--out",
         str(tmp_path / "nightly" / "mon")], capture_output=True, text=True, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "ALLOCATOR_STORE"},
             "XDG_DATA_HOME": str(home)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    store = home / "allocator" / "runs.sqlite"
    assert store.is_file()
    assert sorted(p.name for p in (tmp_path / "nightly").iterdir()) == ["mon"]  # nothing beside
    assert [r["folder"] for r in listed(str(store))] == [str(tmp_path / "nightly" / "mon")]
    assert solve(tmp_path / "nightly" / "tue", "--no-store").code == 0
    env_store = tmp_path / "elsewhere.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "allocator.cli", "solve", str(TINY), *FAST, "--out",
         str(tmp_path / "nightly" / "wed")], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "ALLOCATOR_STORE": str(env_store)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The folder works as --store (runs.sqlite in it), so does the file.
    assert [r["folder"] for r in listed(str(home / "allocator"))] == [
        str(tmp_path / "nightly" / "mon")]
    assert [r["folder"] for r in listed(str(env_store))] == [str(tmp_path / "nightly" / "wed")]


def test_store_that_cannot_be_opened_does_not_stop_the_run(tmp_path: Path) -> None:
    run = solve(tmp_path / "run", "--store", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert run.code == 0
    assert "run not recorded" in run.stderr
    assert run.summary["status"] == "optimal"


# --- running, lost, interrupted --------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_running_rows_are_marked_lost_but_never_a_live_one(store: str) -> None:
    from allocator.store.db import open_store, proc_start, utcnow
    from allocator.store.models import RUNNING, Run

    opened = open_store(store)
    common = dict(scenario_name="tiny", scenario_path=str(TINY), status=RUNNING,
                  started_at=utcnow(), folder="/nonexistent")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with opened.session() as session:
            rows = [
                Run(uid=uuid.uuid4().hex, host=socket.gethostname(), pid=_dead_pid(), **common),
                Run(uid=uuid.uuid4().hex, host=socket.gethostname(), pid=live.pid,
                    pid_start=proc_start(live.pid), **common),
                # the live process's id, but another start time: the id was reused
                Run(uid=uuid.uuid4().hex, host=socket.gethostname(), pid=live.pid,
                    pid_start=(proc_start(live.pid) or 0) - 1, **common),
                # another machine's run: cannot be seen from here, left alone
                Run(uid=uuid.uuid4().hex, host="other-host", pid=_dead_pid(), **common),
            ]
            session.add_all(rows)
            session.commit()
            ids = [r.id for r in rows]
        opened.close()
        found = {r["id"]: r for r in listed(store)}  # any command marks the lost runs
        assert [found[i]["status"] for i in ids] == ["lost", "running", "lost", "running"]
        assert "no longer running" in found[ids[0]]["reason"]
        assert "another process" in found[ids[2]]["reason"]
        assert found[ids[0]]["finished_at"] is not None
    finally:
        live.kill()
        live.wait()


def test_mark_interrupted_active_is_quick_and_marks_only_this_run(tmp_path: Path) -> None:
    from allocator.store.record import Recorder, mark_interrupted_active

    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    assert mark_interrupted_active() is False  # nothing recorded: nothing to do
    recorder = Recorder.start(store, TINY, tmp_path / "run", [])
    started = time.monotonic()
    assert mark_interrupted_active("SIGTERM") is True
    assert time.monotonic() - started < 3
    rec = show(store, recorder.id)
    assert (rec["status"], rec["exit_code"]) == ("interrupted", 143)
    assert "SIGTERM" in rec["reason"]
    recorder.close()
    # A store that does not answer: gives up within its timeout, never raises.
    recorder = Recorder.start(store, TINY, tmp_path / "run", [])
    recorder.store.url = "postgresql+psycopg://nobody@10.255.255.1:5432/none"
    started = time.monotonic()
    assert mark_interrupted_active("SIGINT", timeout=1.0) is False
    assert time.monotonic() - started < 3
    recorder.close()


def test_interrupted_solve_is_recorded_as_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "allocator.cli", "solve", str(DEMO),
                             "--out", str(tmp_path / "run"), "--store", str(db)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for the row, then stop the run at once
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db)) as c:
            if c.execute("select count(*) from runs where status='running'").fetchone()[0]:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # (SIGINT may be ignored in a background CI job)
    _stdout, stderr = proc.communicate(timeout=60)
    [row] = listed(str(db))
    if proc.returncode == 0:  # finished before the signal landed: recorded as such
        assert row["status"] == "optimal"
        pytest.skip("the run finished before the signal")
    assert proc.returncode == 143, stderr
    assert (row["status"], row["exit_code"]) == ("interrupted", 143)
    assert "SIGTERM" in row["reason"]
    assert not (tmp_path / "run").exists()


# --- two runs at once ----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_runs_at_once_are_both_recorded(store: str, tmp_path: Path) -> None:
    """Two solves into different folders, one new store: they race to create the tables, to
    insert their rows and to record their results; both must be there, as their folders say."""
    procs = [subprocess.Popen([sys.executable, "-m", "allocator.cli", "solve", str(TINY),
                               *FAST, "--out", str(tmp_path / name), "--store", store],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for name in ("one", "two")]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (_stdout, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr
        assert "run not recorded" not in stderr, stderr
    rows = listed(store)
    assert sorted(r["folder"] for r in rows) == [str(tmp_path / "one"), str(tmp_path / "two")]
    for r in rows:
        summary = json.loads((Path(r["folder"]) / "summary.json").read_text())
        assert (r["status"], r["objectives"]) == (summary["status"], summary["objectives"])


# --- list, show, prune ---------------------------------------------------------------------------


@pytest.mark.slow
def test_list_show_and_prune(tmp_path: Path) -> None:
    """Nightly runs of two scenarios, one folder reused with --force; list and show answer
    from them; prune keeps the newest per scenario and deletes only folders that are still
    the pruned runs' own allocator run folders."""
    store = str(tmp_path / "runs.sqlite")
    runs = tmp_path / "runs"
    other = tmp_path / "other"
    shutil.copytree(TINY.parent, other)
    toml = other / "scenario.toml"
    toml.write_text(toml.read_text().replace('name = "tiny"', 'name = "other"'))
    for out, scenario, extra in (("mon", TINY, ()), ("tue", TINY, ()), ("thu", TINY, ()),
                                 ("fri", TINY, ()), ("x", toml, ()), ("wed", TINY, ()),
                                 ("wed", TINY, ("--force",))):
        assert solve(runs / out, "--store", store, *extra, scenario=scenario).code == 0
    names = ["wed", "wed", "x", "fri", "thu", "tue", "mon"]
    assert [Path(r["folder"]).name for r in listed(store)] == names
    assert [Path(r["folder"]).name for r in listed(store, "--scenario", "other")] == ["x"]
    assert [Path(r["folder"]).name for r in listed(store, "--last", "2")] == ["wed", "wed"]
    assert len(listed(store, "--status", "optimal")) == 7
    assert listed(store, "--status", "failed,lost") == []
    uid = listed(store, "--scenario", "other")[0]["uid"]
    assert show(store, uid[:8])["scenario"] == "other"
    assert show(store, str(runs / "x"))["uid"] == uid  # by its run folder
    assert show(store, str(runs / "wed"))["id"] == listed(store)[0]["id"]  # what it holds now
    table = run_cli("runs", "list", "--store", store)
    assert table.code == 0 and "other" in table.stdout
    text = run_cli("runs", "show", "1", "--store", store)
    assert text.code == 0 and "top binding constraints" in text.stdout
    missing = run_cli("runs", "show", "99", "--store", store)
    assert missing.code == 2 and "no run 99" in missing.stderr
    nowhere = run_cli("runs", "list", "--store", str(tmp_path / "none.sqlite"))
    assert nowhere.code == 2 and "no run store" in nowhere.stderr

    # tue's folder was edited since (not the run recorded any more); thu's lost its marker
    summary = runs / "tue" / "summary.json"
    summary.write_text(summary.read_text() + "\n")
    (runs / "thu" / ".allocator-run").unlink()
    (runs / "fri" / "notes.docx").write_text("mine")  # fri holds a file of someone's
    shutil.copytree(runs / "mon", runs / "mon-copy")  # a user's copy: not in the store
    before = listed(store)
    dry = run_cli("runs", "prune", "--keep", "1", "--folders", "--dry-run", "--store", store)
    assert dry.code == 0 and listed(store) == before and (runs / "mon").is_dir()
    run = run_cli("runs", "prune", "--keep", "1", "--folders", "--store", store)
    assert run.code == 0, run.stderr
    assert [r["id"] for r in listed(store)] == [before[0]["id"], before[2]["id"]]
    assert not (runs / "mon").exists()  # its own run folder: deleted
    assert (runs / "tue" / "plan.csv").is_file() and "holds another run" in run.stdout
    assert (runs / "thu" / "plan.csv").is_file() and "not an allocator run" in run.stdout
    assert (runs / "fri" / "notes.docx").is_file() and "did not write" in run.stdout
    assert (runs / "mon-copy" / "plan.csv").is_file()  # never in the store: never touched
    assert (runs / "wed" / "plan.csv").is_file()  # the kept run's folder (same path)
    assert (runs / "x" / "plan.csv").is_file()  # the other scenario's newest


# --- the schema ----------------------------------------------------------------------------------


def test_migrations_build_the_tables_the_code_uses(store: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from allocator.store.db import HEAD, head_revision, open_store
    from allocator.store.models import Base

    opened = open_store(store)
    open_store(store).close()  # a second open of a migrated store changes nothing
    try:
        with opened.engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == head_revision() == HEAD
            assert compare_metadata(context, Base.metadata) == []
    finally:
        opened.close()


# --- a lock per target -----------------------------------------------------------------------


def test_second_run_into_the_same_target_fails_at_once(tmp_path: Path) -> None:
    from allocator.store.target_lock import hold_target, lock_path

    out, store = tmp_path / "run", str(tmp_path / "runs.sqlite")
    with hold_target(out):  # this process holds the target, as a run in progress does
        started = time.monotonic()
        second = solve(out, "--store", store)
        assert second.code == 2, second.stderr
        assert f"pid {os.getpid()}" in second.stderr and "being written" in second.stderr
        assert not out.exists()
        assert time.monotonic() - started < 60
    assert not lock_path(out).exists()  # released: removed
    [row] = listed(store)
    assert row["status"] == "failed" and "being written" in row["reason"]
    # A lock file left by a dead process (nobody holds its flock) is taken over.
    lock_path(out).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    third = solve(out, "--store", store)
    assert third.code == 0, third.stderr
    assert third.summary["status"] == "optimal" and not lock_path(out).exists()


@pytest.mark.slow
def test_two_cli_runs_into_one_target(tmp_path: Path) -> None:
    """The second run is refused before it loads anything, naming the first, which goes on."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "allocator.cli", "solve", str(DEMO),
                              "--out", str(out), "--no-store"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from allocator.store.target_lock import lock_path

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(lock_path(out).read_text()).get("pid") == first.pid:
                break
        time.sleep(0.01)
    second = solve(out, "--no-store")
    first_out = first.communicate(timeout=120)
    assert first.returncode == 0, first_out[1]
    if second.code == 0:  # the first had finished before the second started
        pytest.skip("the first run finished before the second started")
    assert second.code == 2 and f"pid {first.pid}" in second.stderr, second.stderr
    assert json.loads((out / "summary.json").read_text())["name"] == "acme-demo"


def test_a_users_own_sqlite_file_is_never_taken_over(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    db = tmp_path / "runs.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("create table laps(x)")
    conn.commit()
    conn.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    run = solve(tmp_path / "run", "--store", str(db))
    assert run.code == 0, run.stderr
    assert "run not recorded" in run.stderr and "did not create" in run.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "runs.sqlite"]
