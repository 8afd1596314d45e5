"""Fan the cells out on Dask, append each row to results.csv as it lands, resume after a crash.

Why Dask distributed: the same code runs on a LocalCluster (one single-threaded worker
process per core, so at most one timed solve per core) and on a real cluster behind
``--scheduler tcp://HOST:PORT``. A worker that dies mid-cell is noticed by the scheduler and
its cell is run again elsewhere (``distributed.scheduler.allowed-failures`` times, 3 by
default); only then is the cell written down as ``lost``. Exceptions in the task itself are
retried too (``retries``). The cell's own crash or hang never reaches Dask: ``run_cell``
turns it into a row.

results.csv is written by this (client) process only, one flushed row per finished cell, so
a crash of the client loses at most the cells in flight; ``resume`` reads the keys already
there and submits the rest. On a real cluster the instance files must be reachable by the
workers at the same paths.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from allocator.bench.cells import run_cell
from allocator.bench.grid import Cell
from allocator.bench.schema import COLUMNS, CellStatus, Verdict
from allocator.bench.verify import ExpectedTable, check
from allocator.errors import InputError

RESULTS = "results.csv"
# Files this module's callers write next to results.csv; --force removes them with it.
OUTPUTS = (RESULTS, "summary.csv", "instances.csv", "summary.md", "report.html",
           "profile.png", "profile.svg")


@dataclass
class Counts:
    """What the progress bar shows; updated from the main loop and the poller thread."""

    total: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    wrong: int = 0
    elapsed: float = 0.0  # seconds since the run started (set for heartbeats)

    def line(self) -> str:
        """One self-contained progress line, for a log with no terminal to redraw."""
        minutes, seconds = divmod(round(self.elapsed), 60)
        return (f"bench: {self.done}/{self.total} cells done, {max(self.running, 0)} running, "
                f"{self.failed} failed, {self.wrong} wrong; {minutes}m{seconds:02d}s elapsed")


@dataclass
class BenchRun:
    """What one `run_cells` call did."""

    out_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # the rows this call added
    skipped: int = 0  # cells already in results.csv (resume)
    seconds: float = 0.0

    @property
    def results(self) -> Path:
        return self.out_dir / RESULTS


def annotate(row: dict[str, Any], spec: dict[str, Any], expected: ExpectedTable) -> dict[str, Any]:
    """A cell's raw row plus its identity (from the spec) and its verdict."""
    config = spec["config"]
    full = {
        "key": spec["key"], "instance": spec["instance"], "config": spec["label"],
        "solver": config["solver"], "threads": config["threads"],
        "time_limit": config["time_limit"], "mip_gap": config["mip_gap"],
        "presolve": {None: "auto", True: "on", False: "off"}[config["presolve"]],
        "method": config["method"],
        "options": ";".join(f"{k}={v}" for k, v in sorted(config["options"].items())),
        "seed": spec["seed"], "repeat": spec["repeat"], "path": spec["path"],
        "timeout_s": spec["timeout"],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    } | row
    return full | verdict_columns(full, expected)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def verdict_columns(row: dict[str, Any], expected: ExpectedTable) -> dict[str, Any]:
    """The verification columns of a row (recomputed whenever the expected table changes)."""
    status = CellStatus(row.get("status") or CellStatus.ERROR.value)
    known = expected.lookup(Path(row["path"]))
    result = check(known, status, _num(row.get("objective")), _num(row.get("bound")),
                   str(row.get("kind") or "lp"), _num(row.get("mip_gap")),
                   maximize=row.get("sense") == "max")
    return {"expected": result.expected, "verdict": result.verdict.value,
            "matched": result.matched, "rel_err": result.rel_err, "verdict_note": result.note}


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.csv; a last line cut short by a crash is dropped, not misread."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r.get("key") and None not in r.values()
                and r.get(COLUMNS[-1]) is not None]
    return rows


class ResultsFile:
    """results.csv opened for appending: a header once, then one flushed row per cell."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fresh = not path.exists() or path.stat().st_size == 0
        self.handle = open(path, "a", newline="")  # noqa: SIM115 - closed by close()
        self.writer = csv.DictWriter(self.handle, fieldnames=list(COLUMNS),
                                     extrasaction="ignore")
        if fresh:
            self.writer.writeheader()
            self.handle.flush()

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: ("" if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in row.items()}
        self.writer.writerow(clean)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def prepare_out_dir(out_dir: Path, *, resume: bool, force: bool) -> set[str]:
    """Create the folder; return the keys already done (resume) or refuse to overwrite."""
    results = out_dir / RESULTS
    if results.exists() and not resume and not force:
        raise InputError(
            f"{results} already holds {len(read_results(results))} results. Add --resume to "
            "run only the cells missing from it, or --force to start over.", str(results))
    out_dir.mkdir(parents=True, exist_ok=True)
    if force and not resume:
        for name in OUTPUTS:
            (out_dir / name).unlink(missing_ok=True)
        return set()
    rows = read_results(results)
    if rows and results.exists():  # rewrite without a torn last line, so appends stay aligned
        tmp = results.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        shutil.move(tmp, results)
    return {r["key"] for r in rows}


def local_client(workers: int | None = None) -> Any:
    """A LocalCluster of single-threaded worker processes, one per core by default."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
        # No dashboard, and the scheduler's health endpoint on a free loopback port, so that
        # two benchmarks (or a benchmark and a notebook) never contend for port 8787.
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        memory_limit=0,  # the solves run in child processes the worker's monitor never sees
    )
    return Client(cluster)


def close_client(client: Any) -> None:
    """Close a client made by `local_client`, and the LocalCluster it owns."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _running(client: Any, keys: set[str]) -> int:
    """Cells executing now: our tasks assigned to a worker, at most one per worker thread."""
    try:
        processing = client.processing()
        threads = client.nthreads()
    except Exception:  # the scheduler is busy or gone: the bar shows the last count
        return -1
    return sum(min(len([k for k in tasks if k in keys]), threads.get(worker, 1))
               for worker, tasks in processing.items())


def run_cells(
    cells: Sequence[Cell], out_dir: Path, expected: ExpectedTable, *,
    client: Any = None, scheduler: str | None = None, workers: int | None = None,
    resume: bool = False, force: bool = False, retries: int = 1,
    on_update: Callable[[Counts], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    heartbeat: float | None = None, on_heartbeat: Callable[[Counts], None] | None = None,
    heartbeat_origin: float | None = None,
) -> BenchRun:
    """Run every cell not already done, appending rows to results.csv as they finish.

    Pass ``client`` to reuse a Dask client (the tests share one cluster); otherwise one is
    made from ``scheduler`` or as a LocalCluster, and closed at the end. ``on_heartbeat``
    is called every ``heartbeat`` seconds on a fixed schedule (start + k × heartbeat, not
    drifting with the work), whether or not a cell finished: a cell that runs for minutes
    still shows a sign of life in a log with no terminal. ``heartbeat_origin`` (a
    perf_counter instant): the schedule's start when several calls make one job (the rounds
    of `bench tune`: one steady beat across them, not a restart each round).
    """
    from distributed import Client, as_completed

    start = time.perf_counter()
    done_keys = prepare_out_dir(out_dir, resume=resume, force=force)
    todo = [c for c in cells if c.key not in done_keys]
    run = BenchRun(out_dir, skipped=len(cells) - len(todo))
    counts = Counts(total=len(todo))
    if not todo:
        run.seconds = time.perf_counter() - start
        return run
    own = client is None
    if own:
        client = Client(scheduler) if scheduler else local_client(workers)
    results = ResultsFile(out_dir / RESULTS)
    stop = threading.Event()
    try:
        tag = uuid.uuid4().hex[:8]  # unique per run: a key reused on a live cluster would
        specs = {}  # hand back the previous run's cached result
        futures = []
        for cell in todo:
            spec = cell.spec()
            key = f"cell-{cell.key}-{tag}"
            specs[key] = spec
            futures.append(client.submit(run_cell, spec, key=key, pure=False, retries=retries))
        keys = set(specs)

        beat = None
        if heartbeat:
            origin = start if heartbeat_origin is None else heartbeat_origin
            beat = origin + heartbeat * (1 + max(0, int((start - origin) // heartbeat)))

        def poll() -> None:
            nonlocal beat
            while not stop.wait(0.5 if beat is None else
                                min(0.5, max(0.0, beat - time.perf_counter()))):
                running = _running(client, keys)
                if running >= 0:
                    counts.running = min(running, counts.total - counts.done)
                counts.elapsed = time.perf_counter() - (heartbeat_origin or start)
                if on_update:
                    on_update(counts)
                if beat is not None and heartbeat and time.perf_counter() >= beat:
                    if on_heartbeat:
                        on_heartbeat(counts)
                    while beat <= time.perf_counter():  # a late beat does not double up
                        beat += heartbeat

        poller = threading.Thread(target=poll, daemon=True, name="bench-progress")
        poller.start()
        for future in as_completed(futures):
            spec = specs[future.key]
            if future.status == "finished":
                row = future.result()
            else:
                exc = future.exception()
                lost = type(exc).__name__ == "KilledWorker"
                row = {"status": (CellStatus.LOST if lost else CellStatus.ERROR).value,
                       "message": f"{type(exc).__name__}: {exc}"}
            full = annotate(row, spec, expected)
            results.write(full)
            run.rows.append(full)
            counts.done += 1
            counts.failed += CellStatus(full["status"]).is_failure
            counts.wrong += full["verdict"] == Verdict.WRONG.value
            future.release()
            if on_row:
                on_row(full)
            if on_update:
                on_update(counts)
        counts.running = 0
        if on_update:
            on_update(counts)
    finally:
        stop.set()
        results.close()
        if own:
            close_client(client)
    run.seconds = time.perf_counter() - start
    return run
