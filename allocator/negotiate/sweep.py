"""`allocator sweep`: one or two inputs varied over a range or a list, every point solved on
Dask, one row per point; `--exact` adds the exact curve of each stage (parametric.py).

Why chains: a point is solved fastest from the optimal basis of a neighbouring point (the
model has the same rows and columns; only limits moved). The points are laid out along a
snake through the grid and cut into one chain per worker; within a chain each point is a Dask
task that takes the previous task's result, whose basis it starts from. Dask keeps a chain on
one worker (the data is there), the chains run side by side, and every point is its own task:
rows land in the journal as they finish, and a lost worker costs only its task (Dask reruns
it, cold if need be).

Files: while the sweep runs, rows are appended to ``OUT.journal/sweep.csv`` (and plans, on
request, beside it); ``--resume`` reads it and solves only the missing points. When every
point is done the folder OUT is written whole by the run-folder writer (sweep.csv sorted by
point, one SVG per objective, sweep.html, exact.csv with --exact, plans on request), then the
journal is removed.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputError, Problem
from allocator.negotiate.session import (
    PointResult,
    Session,
    Target,
    edits_from,
    parse_number,
    parse_target,
    split_edit,
)

JOURNAL_SUFFIX = ".journal"
RESULTS = "sweep.csv"
MAX_POINTS = 10_000


@dataclass(frozen=True)
class Vary:
    """One varied input: a cell set to each value, or selected values scaled by each factor."""

    target: Target
    op: str
    values: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.target.text if self.op == "set" else f"{self.target.text}*"

    @property
    def is_range(self) -> bool:
        return len(self.values) >= 2

    def edit_text(self, value: float) -> str:
        return f"{self.target.text}{'=' if self.op == 'set' else '*'}{value!r}"


def parse_values(text: str, what: str) -> tuple[float, ...]:
    """`2e6:4e6:21` (from, to, count: evenly spaced, both ends included) or `1,2,5`."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError(f"'{what}': a range is FROM:TO:COUNT, e.g. 2e6:4e6:21", "--vary")
        start, stop = parse_number(parts[0], what), parse_number(parts[1], what)
        try:
            count = int(parts[2])
        except ValueError:
            raise InputError(f"'{what}': the count '{parts[2]}' is not a whole number",
                             "--vary") from None
        if count < 2 or count > MAX_POINTS:
            raise InputError(f"'{what}': the count must be from 2 to {MAX_POINTS}", "--vary")
        if not stop > start:
            raise InputError(f"'{what}': FROM must be less than TO", "--vary")
        return tuple(float(v) for v in np.linspace(start, stop, count))
    values = [parse_number(v, what) for v in text.split(",") if v.strip()]
    if not values:
        raise InputError(f"'{what}': no values; give FROM:TO:COUNT or a list A,B,C", "--vary")
    return tuple(values)


def parse_vary(text: str) -> Vary:
    """`budgets[B-SOU].amount=2e6:4e6:21`, `targets[region=North].demand*0.8,1,1.2`."""
    target_text, op, values = split_edit(text)
    target = parse_target(target_text, op)
    return Vary(target, op, parse_values(values, text))


@dataclass(frozen=True)
class Point:
    index: int
    values: tuple[float, ...]


def grid(varies: Sequence[Vary]) -> list[Point]:
    """Every combination, in row-major order (the first input varies slowest)."""
    if not 1 <= len(varies) <= 2:
        raise InputError("give one or two --vary (a grid of two at most)", "--vary")
    combos = list(itertools.product(*(v.values for v in varies)))
    if len(combos) > MAX_POINTS:
        raise InputError(f"{len(combos):,} points; at most {MAX_POINTS:,}", "--vary")
    return [Point(k, tuple(float(x) for x in c)) for k, c in enumerate(combos)]


def chains(points: Sequence[Point], varies: Sequence[Vary], count: int) -> list[list[Point]]:
    """A snake through the grid (each point next to the one before), cut into `count` chains
    of consecutive points."""
    if len(varies) == 2:
        width = len(varies[1].values)
        order = []
        for row in sorted({p.index // width for p in points}):
            line = [p for p in points if p.index // width == row]
            order += line if row % 2 == 0 else line[::-1]
    else:
        order = list(points)
    count = max(1, min(count, len(order)))
    cuts = np.array_split(np.arange(len(order)), count)
    return [[order[k] for k in cut] for cut in cuts if cut.size]


# -- the worker side -------------------------------------------------------------------------

_SESSIONS: dict[tuple[str, tuple[str, ...]], Session] = {}
_LOCK = threading.Lock()


def worker_session(scenario: str, overrides: tuple[str, ...]) -> Session:
    """One session per worker process and scenario (loading is paid once per worker)."""
    key = (scenario, overrides)
    with _LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = Session(scenario, overrides)
        return _SESSIONS[key]


def solve_point(spec: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """One point on a worker: its row (never an exception) and its basis for the next one."""
    started = time.perf_counter()
    basis = previous.get("basis") if previous else None
    try:
        session = worker_session(spec["scenario"], tuple(spec["overrides"]))
        edits = edits_from(spec["edits"])
        point = session.solve(edits, plans=spec["plans"], basis=basis,
                              warm=basis is not None)
        row = point.row()
        tables = point.tables if spec["plans"] and point.ok else None
        next_basis = session.bases if point.ok else basis
    except Exception as exc:  # a row that says what went wrong; the sweep goes on
        row = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        tables, next_basis = None, basis
    row["seconds"] = round(time.perf_counter() - started, 4)
    row["worker"] = f"{os.uname().nodename}:{os.getpid()}"
    return {"point": spec["point"], "row": row, "basis": next_basis, "tables": tables}


# -- the client side -------------------------------------------------------------------------


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.perf_counter)

    def line(self) -> str:
        seconds = time.perf_counter() - self.started
        return (f"sweep: {self.done}/{self.total} points done, {self.failed} failed; "
                f"{seconds:.1f} s")


@dataclass
class SweepResult:
    points: pd.DataFrame  # sweep.csv
    exact: pd.DataFrame | None = None  # exact.csv (--exact)
    out: Path | None = None
    seconds: float = 0.0
    solved: int = 0  # points solved by this call (the others came from the journal)


def columns(session: Session, varies: Sequence[Vary]) -> list[str]:
    """sweep.csv's header, known before any point is solved (the journal's first line)."""
    model = session.built.model
    dummy = PointResult("optimal", ())
    dummy.objectives = {o.name: 0.0 for o in session.objectives(model)}
    if "budget" in model.con_blocks:
        from allocator.core.model import join_labels

        ids = join_labels(model.con_blocks["budget"].labels, ",")
        dummy.budget_use = {str(i): 0.0 for i in ids}
    return ["point", *[v.name for v in varies], *dummy.row(), "worker"]


def _read_journal(path: Path, header: list[str]) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and list(reader.fieldnames) != header:
            raise InputError(f"{path} was written for other inputs or another version (its "
                             "columns differ); remove it, or run with --force to start over",
                             str(path))
        return [r for r in reader if None not in r.values() and r.get("worker")]


class Journal:
    """OUT.journal/: sweep.csv appended and flushed one row per finished point."""

    def __init__(self, folder: Path, header: list[str], resume: bool, force: bool) -> None:
        self.folder = folder
        self.path = folder / RESULTS
        self.header = header
        if folder.exists() and not resume:
            if not force:
                raise InputError("holds an unfinished sweep of this --out; add --resume to "
                                 "solve only its missing points, or --force to start over",
                                 str(folder))
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.rows = _read_journal(self.path, header)
        # Rewritten without a line cut short by a crash, so appends stay aligned.
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        self.handle = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
        self.writer = csv.DictWriter(self.handle, fieldnames=header, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                              for k, v in row.items()})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _client(scheduler: str | None, workers: int | None) -> Any:
    if scheduler:
        from distributed import Client

        return Client(scheduler)
    from allocator.bench.runner import local_client

    return local_client(workers)


def sweep(
    scenario: str | Path, vary: Sequence[str | Vary], out: Path | None = None, *,
    overrides: Sequence[str] = (), exact: bool = False, plans: bool = False,
    client: Any = None, scheduler: str | None = None, workers: int | None = None,
    resume: bool = False, force: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> SweepResult:
    """Solve every point of the grid on Dask; with `out`, write the sweep folder.

    Returns the rows (sweep.csv) as a DataFrame, and with `exact` the exact curve of each
    stage (exact.csv). Pass `client` to reuse a Dask client; otherwise one is made from
    `scheduler` or as a LocalCluster of `workers` processes, and closed at the end.
    """
    started = time.perf_counter()
    problems: list[Problem] = []
    varies: list[Vary] = []
    for v in vary:
        try:
            varies.append(parse_vary(v) if isinstance(v, str) else v)
        except InputError as exc:
            problems += exc.problems
    if not 1 <= len(vary) <= 2:
        problems.append(Problem("--vary", f"{len(vary)} given: vary one input, or two (a grid)"))
    if problems:
        raise InputError(problems)
    path = Path(scenario)
    session = Session(path, list(overrides))
    for v in varies:
        problems += session.problems(edits_from([v.edit_text(x) for x in v.values]),
                                     origin="--vary")
    if exact and (len(varies) != 1 or not varies[0].is_range):
        problems.append(Problem("--exact", "traces one input over a range: give exactly one "
                                           "--vary with two or more values"))
    if out is not None and out.exists() and not force and not resume:
        problems.append(Problem(str(out), "exists; use --force to replace it"))
    if problems:
        raise InputError(problems)
    if out is not None:
        from allocator.diff.write import refuse_other_kind
        from allocator.outputs.folder import check_target

        check_target(out, force or resume)
        refuse_other_kind(out, force or resume, RESULTS, "sweep")  # not a run's folder
    header = columns(session, varies)
    points = grid(varies)
    journal = (Journal(out.with_name(out.name + JOURNAL_SUFFIX), header, resume, force)
               if out is not None else None)
    done = {int(r["point"]): r for r in journal.rows} if journal else {}
    for k, row in done.items():
        if k >= len(points) or any(not np.isclose(float(row[v.name]), points[k].values[i],
                                                   rtol=1e-12, atol=0)
                                   for i, v in enumerate(varies)):
            raise InputError(f"{journal.path if journal else ''}: point {k} was solved for other "
                             "--vary values; run with --force to start over", "--resume")
    todo = [p for p in points if p.index not in done]
    progress = Progress(total=len(points), done=len(done), skipped=len(done))
    rows: dict[int, dict[str, Any]] = {k: dict(r) for k, r in done.items()}
    exact_frame = None
    try:
        if todo:
            _run(path, overrides, varies, todo, plans, client, scheduler, workers,
                 journal, rows, progress, on_progress)
        if exact:
            from allocator.negotiate.parametric import exact_curve

            v = varies[0]
            edit = edits_from([v.edit_text(v.values[0])])[0]
            exact_frame = exact_curve(session, edit, min(v.values), max(v.values))
    finally:
        if journal is not None:
            journal.close()
    frame = _frame(rows, header)
    result = SweepResult(frame, exact_frame, out, solved=len(todo))
    if out is not None and journal is not None:
        from allocator.negotiate.pages import write_sweep_folder

        write_sweep_folder(out, frame, exact_frame, varies, session, journal.folder,
                           force or resume)
        shutil.rmtree(journal.folder, ignore_errors=True)
    session.close()
    result.seconds = time.perf_counter() - started
    return result


def _frame(rows: dict[int, dict[str, Any]], header: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([rows[k] for k in sorted(rows)], columns=header)
    text = {"status", "message", "worker"} | {c for c in header if c.startswith("binding_")}
    for col in header:
        if col not in text:
            frame[col] = pd.to_numeric(frame[col].replace({"True": 1, "False": 0,
                                                           True: 1, False: 0}),
                                       errors="coerce")
    frame["point"] = frame["point"].astype(int)
    if "warm" in frame:
        frame["warm"] = frame["warm"].fillna(0).astype(bool)
    return frame


def _run(path: Path, overrides: Sequence[str], varies: Sequence[Vary], todo: list[Point],
         plans: bool, client: Any, scheduler: str | None, workers: int | None,
         journal: Journal | None, rows: dict[int, dict[str, Any]], progress: Progress,
         on_progress: Callable[[Progress], None] | None) -> None:
    from distributed import as_completed

    own = client is None
    if own:
        client = _client(scheduler, workers)
    try:
        nworkers = max(1, len(client.scheduler_info().get("workers", {})) or (workers or 1))
        tag = uuid.uuid4().hex[:8]
        futures = []
        scenario = str(path.resolve())
        for chain in chains(todo, varies, nworkers):
            previous = None
            for point in chain:
                spec = {"scenario": scenario, "overrides": list(overrides),
                        "point": point.index, "plans": plans,
                        "edits": [v.edit_text(x) for v, x in zip(varies, point.values,
                                                                  strict=True)]}
                future = client.submit(solve_point, spec, previous, pure=False,
                                       key=f"sweep-{point.index}-{tag}", retries=1)
                futures.append(future)
                previous = future
        assert len(futures) == len(todo), "every point is submitted once"
        values = {p.index: p.values for p in todo}
        if on_progress:
            on_progress(progress)
        for future in as_completed(futures):
            if future.status == "finished":
                result = future.result()
            else:  # the worker died more often than Dask retries: a row says so
                k = int(str(future.key).split("-")[1])
                result = {"point": k, "row": {"status": "lost",
                                              "message": f"{future.exception()}"},
                          "tables": None}
            k = result["point"]
            row = {"point": k, **{v.name: values[k][i] for i, v in enumerate(varies)},
                   **result["row"]}
            rows[k] = row
            if journal is not None:
                journal.write(row)
                for name, table in (result.get("tables") or {}).items():
                    table.to_parquet(journal.folder / f"point-{k:04d}_{name}.parquet",
                                     index=False)
            future.release()  # its dependent (if any) keeps it alive on the cluster
            progress.done += 1
            progress.failed += row["status"] not in ("optimal", "feasible")
            if on_progress:
                on_progress(progress)
    finally:
        if own:
            from allocator.bench.runner import close_client

            close_client(client)
