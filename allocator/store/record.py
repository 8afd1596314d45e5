"""Recording one `allocator solve` in the run store.

The run is inserted as `running` when it starts (its own committed transaction), and updated
once at the end, in one transaction, with the result read from the run's summary and folder:
a run killed in between leaves a `running` row, which a later command marks `lost`. A run
that fails before writing a folder (bad input, an internal error) is recorded as `failed`
with the message; an interrupted one as `interrupted` (mark_interrupted_active, called by
the CLI's interrupt handler).

Recording never changes a run's outcome: a store that cannot be reached is a warning."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import math
import os
import platform
import socket
import sys
import threading
import tomllib
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, update

from allocator.store.db import Store, open_store, proc_start, shown, utcnow
from allocator.store.models import (
    FAILED,
    INTERRUPTED,
    RUNNING,
    Run,
    RunConstraint,
    RunInput,
    RunStage,
)

T = TypeVar("T")

TOP_CONSTRAINTS = 15  # the top rows of bottlenecks.csv kept with the run
LIBRARIES = ("highspy", "ortools", "pulp", "pandas", "numpy", "scipy", "pyarrow",
             "sqlalchemy", "alembic")
REASON_CHARS = 20_000
INTERRUPT_TIMEOUT = 2.0  # seconds the interrupt handler may spend on the store, at most
SIGNAL_EXITS = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}  # as the CLI exits

_ACTIVE: Recorder | None = None  # the run this process is recording (one per CLI process)


def versions() -> dict[str, str | None]:
    from allocator.version import __version__

    found: dict[str, str | None] = {"allocator": __version__,
                                    "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _scenario_name(path: Path) -> str:
    try:
        name = tomllib.loads(path.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError):
        name = None
    return name if isinstance(name, str) and name else "scenario"  # the loader's default


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def exit_code_of(exc: BaseException) -> int:
    """The exit code the CLI gives this error (as its _fail does)."""
    from allocator.errors import AllocatorError, ExitCode, is_environment_error

    if isinstance(exc, KeyboardInterrupt):
        return 130
    if is_environment_error(exc):
        return int(ExitCode.ENVIRONMENT)
    if isinstance(exc, AllocatorError):
        return int(exc.exit_code)
    return int(ExitCode.INTERNAL)


def reason_of(exc: BaseException) -> str:
    from allocator.errors import AllocatorError

    if isinstance(exc, AllocatorError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    return text[:REASON_CHARS]


def _outcome_reason(summary: dict[str, Any], folder: Path) -> str | None:
    status = summary.get("status")
    if status == "infeasible":
        where = folder / "diagnosis.md"
        return "infeasible: no plan meets the hard constraints" + (
            f"; repairs in {where}" if where.exists() else "")
    if status == "feasible":
        return f"time limit: plan not proven optimal (gap {summary.get('mip_gap')})"
    if status == "time limit, no solution":
        return "time limit: no plan found"
    if status not in ("optimal", None) or summary.get("exit_code"):
        return summary.get("message") or f"{status} (exit {summary.get('exit_code')})"
    return None


def top_constraints(folder: Path, limit: int = TOP_CONSTRAINTS) -> list[dict[str, Any]]:
    """The run's top binding constraints by business labels: the first rows of
    bottlenecks.csv (ranked by impact), else the binding rows of sensitivity.csv with the
    largest shadow prices."""
    from allocator.outputs.readback import read_output_table

    try:
        if (folder / "bottlenecks.csv").exists() or (folder / "bottlenecks.parquet").exists():
            frame = read_output_table(folder / "bottlenecks.csv").head(limit)
        elif (folder / "sensitivity.csv").exists() or (folder / "sensitivity.parquet").exists():
            frame = read_output_table(folder / "sensitivity.csv")
            frame = frame[(frame["kind"] == "constraint") & (frame["binding"].astype(str)
                                                            .str.lower() == "true")]
            frame = frame[frame["dual"].abs() > 0]
            frame = frame.reindex(frame["dual"].abs().sort_values(ascending=False).index)
            frame = frame.head(limit)
        else:
            return []
    except Exception:  # a table this version cannot read: the run is recorded without them
        return []
    rows = []
    for rank, row in enumerate(frame.to_dict("records"), start=1):
        rows.append({
            "rank": rank, "stage": _text(row.get("stage")), "kind": _text(row.get("kind")),
            "family": _text(row.get("family")), "labels": _text(row.get("labels")),
            "activity": _number(row.get("activity")), "rhs": _number(row.get("rhs")),
            "dual": _number(row.get("dual")), "rhs_low": _number(row.get("rhs_low")),
            "rhs_high": _number(row.get("rhs_high")),
            "range_kind": _text(row.get("range_kind")), "impact": _number(row.get("impact")),
            "sentence": _text(row.get("sentence")),
        })
    return rows


class Recorder:
    """The store row of this process's run."""

    def __init__(self, store: Store, run_id: int, uid: str) -> None:
        self.store = store
        self.id = run_id
        self.uid = uid

    @classmethod
    def start(cls, url: str, scenario: Path, out: Path, overrides: list[str] | None = None,
              command: list[str] | None = None) -> Recorder:
        """Open the store (migrating it, marking lost runs) and insert this run as running."""
        global _ACTIVE
        store = open_store(url)
        scenario = Path(scenario)
        row = Run(
            uid=uuid.uuid4().hex, scenario_name=_scenario_name(scenario),
            scenario_path=os.path.abspath(scenario), scenario_sha256=file_sha256(scenario),
            status=RUNNING, started_at=utcnow(), host=socket.gethostname(), os_user=_user(),
            pid=os.getpid(), pid_start=proc_start(os.getpid()),
            command=list(command if command is not None else sys.argv),
            overrides=list(overrides or []), versions=versions(),
            folder=os.path.abspath(out))
        try:
            with store.session() as session:
                session.add(row)
                session.commit()
                run_id, uid = row.id, row.uid
        except Exception:
            store.close()
            raise
        recorder = cls(store, run_id, uid)
        _ACTIVE = recorder
        return recorder

    def finished(self, summary: dict[str, Any], folder: Path) -> None:
        """The run's result, from its summary and its folder, in one transaction."""
        global _ACTIVE
        folder = Path(os.path.abspath(folder))
        size = summary.get("model_size") or {}
        seconds = summary.get("seconds") or {}
        values = dict(
            scenario_name=str(summary.get("name") or "scenario"),
            model=summary.get("model"), status=str(summary.get("status")),
            exit_code=int(summary.get("exit_code", 1)),
            reason=_outcome_reason(summary, folder), finished_at=utcnow(),
            settings={"solver": summary.get("solver"), "policy": summary.get("policy"),
                      "objective": summary.get("objective_settings"),
                      "sense": summary.get("sense")},
            seconds=seconds, total_seconds=_number(seconds.get("total")),
            solve_seconds=_number(seconds.get("solve")),
            model_rows=size.get("rows"), model_columns=size.get("columns"),
            model_nonzeros=size.get("nonzeros"), model_integers=size.get("integer_columns"),
            mip_gap=_number(summary.get("mip_gap")), folder=str(folder),
            summary_sha256=file_sha256(folder / "summary.json"),
            warnings=list(summary.get("warnings") or []),
            notes=list(summary.get("notes") or []))
        stages = [RunStage(run_id=self.id, position=i, name=str(s.get("name")),
                           status=s.get("status"), objective=_number(s.get("objective")),
                           plan_value=_number(s.get("plan_value")),
                           bound=_number(s.get("bound")), gap=_number(s.get("gap")),
                           seconds=_number(s.get("seconds")))
                  for i, s in enumerate(summary.get("stages") or [])]
        inputs = [RunInput(run_id=self.id, name=str(name), source=_text(t.get("source")),
                           rows=t.get("rows"), sha256_16=_text(t.get("sha256_16")))
                  for name, t in (summary.get("inputs") or {}).items()]
        constraints = [RunConstraint(run_id=self.id, **row) for row in top_constraints(folder)]
        with self.store.session() as session:
            session.execute(update(Run).where(Run.id == self.id).values(**values))
            for table in (RunStage, RunInput, RunConstraint):
                session.execute(delete(table).where(table.run_id == self.id))
            session.add_all([*stages, *inputs, *constraints])
            session.commit()
        self.close()

    def _end(self, status: str, code: int, reason: str) -> None:
        with self.store.session() as session:
            session.execute(update(Run).where(Run.id == self.id).values(
                status=status, exit_code=code, reason=reason, finished_at=utcnow()))
            session.commit()
        self.close()

    def close(self) -> None:
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = None
        self.store.close()


def active() -> Recorder | None:
    return _ACTIVE


def mark_not_kept(url: str, folder: Path, reason: str, since: dt.datetime) -> int:
    """The runs this process recorded under `folder` since `since` whose folder was never
    kept (a comparison that failed after its solves): marked failed with the reason, so the
    store does not point at a plan that does not exist. Only this process's rows (host, pid
    and its start time) and only since the comparison began: an earlier comparison's rows at
    the same folder stay as they are. Returns how many rows were marked."""
    from sqlalchemy import select

    store = open_store(url)
    try:
        with store.session() as session:
            rows = session.scalars(select(Run).where(
                Run.folder == os.path.abspath(folder), Run.pid == os.getpid(),
                Run.pid_start == proc_start(os.getpid()),
                Run.host == socket.gethostname(), Run.started_at >= since,
                Run.status != FAILED)).all()
            for row in rows:
                row.status, row.reason, row.summary_sha256 = FAILED, reason, None
            session.commit()
            return len(rows)
    finally:
        store.close()


def mark_interrupted_active(signal_name: str = "SIGINT",
                            timeout: float = INTERRUPT_TIMEOUT) -> bool:
    """Mark this process's running run `interrupted` (from the CLI's interrupt handler, just
    before it exits). Quick and never raises: a short lock/connect timeout, in a thread that
    is given `timeout` seconds at most; a row it cannot reach stays `running` and is marked
    `lost` by a later command. Returns whether the row was marked."""
    recorder = _ACTIVE
    if recorder is None:
        return False
    done: list[bool] = []

    def work() -> None:
        from allocator.store.db import make_engine

        try:
            engine = make_engine(recorder.store.url, timeout=timeout)
            try:
                with engine.begin() as conn:
                    conn.execute(update(Run).where(Run.id == recorder.id,
                                                   Run.status == RUNNING).values(
                        status=INTERRUPTED, exit_code=SIGNAL_EXITS.get(signal_name, 130),
                        reason=f"interrupted by {signal_name}: stopped mid-run, no run folder "
                               "was written", finished_at=utcnow()))
                done.append(True)
            finally:
                engine.dispose()
        except Exception:
            pass

    thread = threading.Thread(target=work, name="store-interrupted", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(done)


class Recording:
    """The CLI's side of recording a solve: `wrap` the work (it opens the store and inserts
    the run first, in the worker thread, so an interrupt meanwhile is handled), then
    `finished` with the result or `failed` with the exit code. A store that cannot be opened
    or written is a warning, never the run's failure."""

    def __init__(self, url: str | None, scenario: Path, out: Path, overrides: list[str],
                 warn: Callable[[str], None], note: Callable[[str], None],
                 command: list[str] | None = None) -> None:
        self.url, self.scenario, self.out, self.overrides = url, scenario, out, overrides
        self.command = command  # None: this process's own command line
        self.warn, self.note = warn, note
        self.recorder: Recorder | None = None
        self.error: BaseException | None = None

    def wrap(self, work: Callable[[], T]) -> Callable[[], T]:
        def recorded() -> T:
            if self.url is not None:
                try:
                    self.recorder = Recorder.start(self.url, self.scenario, self.out,
                                                   self.overrides, self.command)
                except Exception as exc:
                    self.warn(f"run not recorded: {_store_problem(self.url, exc)}")
            try:
                return work()
            except BaseException as exc:
                self.error = exc
                raise
        return recorded

    def finished(self, summary: dict[str, Any], folder: Path) -> None:
        if self.recorder is None:
            return
        with _warning(self.warn, self.url):
            self.recorder.finished(summary, folder)
            self.note(f"recorded: run {self.recorder.id} in {shown(self.url or '')}")

    def failed(self, code: object) -> None:
        """The run ended by an error with this exit code (SystemExit's code)."""
        if self.recorder is None:
            return
        exc = self.error or RuntimeError("stopped")
        exit_code = code if isinstance(code, int) else exit_code_of(exc)
        with _warning(self.warn, self.url):  # silently: the error message is the news
            self.recorder._end(FAILED, exit_code, reason_of(exc))


def _store_problem(url: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if shown(url) in first else f"{shown(url)}: {first}"


@contextlib.contextmanager
def _warning(warn: Callable[[str], None], url: str | None) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        warn(f"run not recorded: {_store_problem(url or '', exc)}")
        current = _ACTIVE
        if current is not None:
            with contextlib.suppress(Exception):
                current.close()


def find_run(session: Any, key: str) -> Run:
    """A recorded run by its number, the start of its uid (6 characters or more), or its run
    folder (the run whose summary.json the folder holds now); InputError if none."""
    from sqlalchemy import select

    from allocator.errors import InputError

    if key.isdigit():
        run = session.get(Run, int(key))
        if run is not None:
            return run
    folder = Path(key)
    if (folder / "summary.json").is_file():
        digest = file_sha256(folder / "summary.json")
        found = session.scalars(select(Run).where(
            Run.folder == os.path.abspath(folder), Run.summary_sha256 == digest).order_by(
            Run.id.desc())).first()
        if found is not None:
            return found
        raise InputError(f"the run in {folder} is not recorded in this store", str(folder))
    if len(key) >= 6:
        matches = session.scalars(select(Run).where(Run.uid.startswith(key.lower()))).all()
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InputError(f"run {key}: {len(matches)} runs have a uid starting so", "runs")
    raise InputError(f"no run {key} in the store", "runs")


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso(value)
    raise TypeError(type(value).__name__)


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite keeps no zone: the store writes UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def dumps(payload: Any) -> str:
    return json.dumps(payload, indent=1, default=json_default)
