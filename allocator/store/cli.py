"""`allocator runs list|show|prune`: the run store from the command line (docs/run-store.md)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from allocator.store.db import Store
    from allocator.store.models import Run

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_CODES = ("Exit codes: 0 done; 2 bad usage (no store found, no such run, a store that "
              "cannot be opened); 1 internal error (the log path is printed).")
STORE_HELP = ("The run store: a database URL (sqlite:///..., postgresql://...) or a file or "
              "folder path. Default: $ALLOCATOR_STORE, else ~/.local/share/allocator/runs.sqlite "
              "($XDG_DATA_HOME/allocator/runs.sqlite).")


F = TypeVar("F", bound=Callable[..., Any])


def store_option(func: F) -> F:
    return click.option("--store", "store_url", metavar="URL|PATH", help=STORE_HELP)(func)


def _fail(exc: BaseException) -> NoReturn:
    from allocator.failures import report_failure

    sys.exit(report_failure(exc))


def _url(option: str | None) -> str:
    from allocator.store.db import DEFAULT_NAME, ENV, StoreError, resolve_url

    url = resolve_url(option)
    if url is not None:
        return url
    raise StoreError(f"the run store is turned off ({ENV}=none): give --store URL|PATH "
                     f"(solve records in {DEFAULT_NAME} under ~/.local/share/allocator by "
                     "default)", "store")


def _open(option: str | None) -> Store:
    from allocator.store.db import open_store

    url = _url(option)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        from allocator.store.db import StoreError

        raise StoreError(f"no run store at {url[len('sqlite:///'):]} (no run recorded there "
                         "yet)", "store")
    return open_store(url)


def _fmt(value: float | None, digits: int = 6) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}g}" if abs(value) < 1e15 else f"{value:.4e}"


def run_dict(run: Run, full: bool = False) -> dict[str, Any]:
    from allocator.store.lookup import what_if_command
    from allocator.store.record import iso

    found: dict[str, Any] = {
        "id": run.id, "uid": run.uid, "scenario": run.scenario_name, "model": run.model,
        "status": run.status, "exit_code": run.exit_code, "reason": run.reason,
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "total_seconds": run.total_seconds, "solve_seconds": run.solve_seconds,
        "objectives": {s.name: s.objective for s in run.stages},
        "folder": run.folder, "host": run.host, "user": run.os_user,
        # A solve made by `allocator compare` (an edited copy, --set): not a night's run.
        "what_if": what_if_command(run.command),
    }
    if not full:
        return found
    found.update({
        "pid": run.pid, "scenario_path": run.scenario_path,
        "scenario_sha256": run.scenario_sha256, "command": run.command,
        "overrides": run.overrides, "versions": run.versions, "settings": run.settings,
        "seconds": run.seconds, "mip_gap": run.mip_gap,
        "model_size": {"rows": run.model_rows, "columns": run.model_columns,
                       "nonzeros": run.model_nonzeros, "integer_columns": run.model_integers},
        "summary_sha256": run.summary_sha256,
        "stages": [{"name": s.name, "status": s.status, "objective": s.objective,
                    "plan_value": s.plan_value, "bound": s.bound, "gap": s.gap,
                    "seconds": s.seconds} for s in run.stages],
        "inputs": {i.name: {"source": i.source, "rows": i.rows, "sha256_16": i.sha256_16}
                   for i in run.inputs},
        "constraints": [{"rank": c.rank, "stage": c.stage, "kind": c.kind, "family": c.family,
                         "labels": c.labels, "activity": c.activity, "rhs": c.rhs,
                         "dual": c.dual, "rhs_low": c.rhs_low, "rhs_high": c.rhs_high,
                         "range_kind": c.range_kind, "impact": c.impact,
                         "sentence": c.sentence} for c in run.constraints],
        "warnings": run.warnings or [], "notes": run.notes or [],
    })
    return found


@click.group("runs", epilog=EXIT_CODES)
def runs() -> None:
    """The recorded runs: list, show, prune (docs/run-store.md)."""


@runs.command("list", epilog=EXIT_CODES)
@click.option("--scenario", help="Only runs of this scenario (its name).")
@click.option("--last", type=click.IntRange(min=0), default=20, show_default=True,
              help="The newest N runs (0: all).")
@click.option("--status", "statuses", multiple=True,
              help="Only runs with this status (repeat, or comma-separated): optimal, "
                   "feasible, infeasible, failed, interrupted, lost, running, ...")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts (a list, newest first).")
@store_option
def list_runs(scenario: str | None, last: int, statuses: tuple[str, ...], as_json: bool,
              store_url: str | None) -> None:
    """The recorded runs, newest first."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from allocator.store.models import Run
    from allocator.store.record import dumps

    try:
        store = _open(store_url)
        try:
            query = select(Run).options(selectinload(Run.stages)).order_by(
                Run.started_at.desc(), Run.id.desc())
            if scenario:
                query = query.where(Run.scenario_name == scenario)
            wanted = [s.strip() for item in statuses for s in item.split(",") if s.strip()]
            if wanted:
                query = query.where(Run.status.in_(wanted))
            if last:
                query = query.limit(last)
            with store.session() as session:
                rows = [run_dict(r) for r in session.scalars(query).all()]
        finally:
            store.close()
    except Exception as exc:
        _fail(exc)
    if as_json:
        click.echo(dumps(rows))
        return
    table = Table(title=f"runs ({len(rows)})", title_justify="left")
    for col in ("id", "started (UTC)", "scenario", "status", "exit", "objectives",
                "solve s", "total s", "folder"):
        table.add_column(col, justify="right" if col in ("id", "exit", "solve s", "total s")
                         else "left")
    for r in rows:
        objectives = ", ".join(f"{k} {_fmt(v)}" for k, v in r["objectives"].items())
        table.add_row(str(r["id"]), (r["started_at"] or "").replace("T", " ").rstrip("Z"),
                      r["scenario"] + (" (what-if: compare)" if r["what_if"] else ""),
                      r["status"],
                      "" if r["exit_code"] is None else str(r["exit_code"]), objectives,
                      _fmt(r["solve_seconds"], 3), _fmt(r["total_seconds"], 3), r["folder"])
    out.print(table)


@runs.command("show", epilog=EXIT_CODES)
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Everything recorded, as JSON.")
@store_option
def show_run(run_id: str, as_json: bool, store_url: str | None) -> None:
    """Everything recorded about run RUN_ID: its number, the start of its uid, or its run
    folder (the run that folder holds now)."""
    from allocator.store.record import dumps, find_run

    try:
        store = _open(store_url)
        try:
            with store.session() as session:
                found = run_dict(find_run(session, run_id), full=True)
        finally:
            store.close()
    except Exception as exc:
        _fail(exc)
    if as_json:
        click.echo(dumps(found))
        return
    head = Table(title=f"run {found['id']} ({found['uid']})", title_justify="left",
                 show_header=False)
    head.add_column("what")
    head.add_column("value")
    versions = found["versions"] or {}
    for key, value in (
            ("scenario", f"{found['scenario']} ({found['scenario_path']})"),
            ("scenario sha256", found["scenario_sha256"]),
            ("status", f"{found['status']} (exit {found['exit_code']})"),
            ("why", found["reason"]), ("started (UTC)", found["started_at"]),
            ("finished (UTC)", found["finished_at"]),
            ("where", f"{found['user']}@{found['host']} pid {found['pid']}"),
            ("folder", found["folder"]),
            ("solver", (found["settings"] or {}).get("solver", {}) and
             json.dumps((found["settings"] or {}).get("solver"))),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
            ("overrides", " ".join(found["overrides"] or [])),
            ("phases", ", ".join(f"{k} {v:.2f}s" for k, v in (found["seconds"] or {}).items())),
            ("model size", ", ".join(f"{k} {v:,}" for k, v in found["model_size"].items()
                                     if v is not None))):
        if value:
            head.add_row(key, str(value))
    out.print(head)
    if found["stages"]:
        table = Table(title="stages", title_justify="left")
        for col in ("stage", "status", "objective", "bound", "gap", "seconds"):
            table.add_column(col, justify="left" if col in ("stage", "status") else "right")
        for s in found["stages"]:
            table.add_row(s["name"], s["status"] or "", _fmt(s["objective"], 10),
                          _fmt(s["bound"], 10), "" if s["gap"] is None else f"{s['gap']:.2e}",
                          _fmt(s["seconds"], 3))
        out.print(table)
    if found["inputs"]:
        table = Table(title="inputs", title_justify="left")
        for col in ("table", "source", "rows", "sha256_16"):
            table.add_column(col)
        for name, i in found["inputs"].items():
            table.add_row(name, i["source"] or "", str(i["rows"]), i["sha256_16"] or "")
        out.print(table)
    if found["constraints"]:
        table = Table(title="top binding constraints", title_justify="left")
        for col in ("#", "stage", "family", "labels", "shadow price", "range", "impact"):
            table.add_column(col, justify="right" if col in ("#", "shadow price", "impact")
                             else "left")
        for c in found["constraints"]:
            span = f"{_fmt(c['rhs_low'])} .. {_fmt(c['rhs_high'])}" if (
                c["rhs_low"] is not None or c["rhs_high"] is not None) else ""
            table.add_row(str(c["rank"]), c["stage"] or "", c["family"] or "",
                          c["labels"] or "", _fmt(c["dual"]), span, _fmt(c["impact"]))
        out.print(table)
    for warning in found["warnings"]:
        out.print(f"warning: {warning}", highlight=False, markup=False)
    for note in found["notes"]:
        out.print(f"note: {note}", highlight=False, markup=False)


def _is_run_folder_of(folder: Path, summary_sha256: str | None) -> str | None:
    """Why `folder` must not be removed for this run, or None when it may: it must be an
    allocator run folder (the marker .allocator-run) that still holds this very run (its
    summary.json is the one recorded), not a later run written to the same place, and
    nothing but the files the run wrote (as --force would replace it)."""
    from allocator.outputs.folder import MARKER, replace_refusal
    from allocator.store.record import file_sha256

    if os.path.islink(folder) or not folder.is_dir():
        return "not a folder"
    if not (folder / MARKER).is_file() or not (folder / "summary.json").is_file():
        return "not an allocator run folder (no .allocator-run marker or summary.json)"
    if summary_sha256 is None or file_sha256(folder / "summary.json") != summary_sha256:
        return "it now holds another run (its summary.json is not the one recorded)"
    return replace_refusal(folder)  # files someone added since: not ours to delete


@runs.command("prune", epilog=EXIT_CODES)
@click.option("--keep", type=click.IntRange(min=0), required=True,
              help="Runs to keep per scenario (the newest).")
@click.option("--scenario", help="Prune only this scenario's runs.")
@click.option("--folders", is_flag=True,
              help="Also delete the run folders of the pruned runs (only folders that are "
                   "still those runs' allocator run folders, and that no kept run uses).")
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
@store_option
def prune_runs(keep: int, scenario: str | None, folders: bool, dry_run: bool,
               store_url: str | None) -> None:
    """Delete recorded runs beyond the newest --keep of each scenario (running ones stay)."""
    from sqlalchemy import delete, select

    from allocator.store.models import RUNNING, Run, RunConstraint, RunInput, RunStage

    removed: list[tuple[int, str, str, str | None]] = []
    try:
        store = _open(store_url)
        try:
            with store.session() as session:
                query = select(Run.id, Run.scenario_name, Run.status, Run.folder,
                               Run.summary_sha256).order_by(
                    Run.scenario_name, Run.started_at.desc(), Run.id.desc())
                if scenario:
                    query = query.where(Run.scenario_name == scenario)
                seen: dict[str, int] = {}
                doomed, kept_folders = [], set()
                for rid, name, status, folder, digest in session.execute(query).all():
                    seen[name] = seen.get(name, 0) + 1
                    if seen[name] <= keep or status == RUNNING:
                        kept_folders.add(folder)
                    else:
                        doomed.append((rid, name, folder, digest))
                others = select(Run.folder).where(Run.id.not_in([d[0] for d in doomed])) \
                    if doomed else select(Run.folder)
                kept_folders |= set(session.scalars(others).all())
                ids = [d[0] for d in doomed]
                if ids and not dry_run:
                    for start in range(0, len(ids), 500):
                        chunk = ids[start:start + 500]
                        for table in (RunConstraint, RunInput, RunStage):
                            session.execute(delete(table).where(table.run_id.in_(chunk)))
                        session.execute(delete(Run).where(Run.id.in_(chunk)))
                    session.commit()
        finally:
            store.close()
        handled: set[str] = set()
        for rid, name, folder, digest in doomed:
            fate = None
            if folders and folder not in handled:
                handled.add(folder)
                why = "a kept run uses it" if folder in kept_folders else \
                    _is_run_folder_of(Path(folder), digest)
                if why is None:
                    if not dry_run:
                        shutil.rmtree(folder)
                    fate = "folder would be deleted" if dry_run else "folder deleted"
                elif os.path.lexists(folder):
                    fate = f"folder kept: {why}"
            removed.append((rid, name, folder, fate))
    except Exception as exc:
        _fail(exc)
    verb = "would delete" if dry_run else "deleted"
    for rid, name, folder, fate in removed:
        out.print(f"{verb}: run {rid} ({name}) {folder}" + (f": {fate}" if fate else ""),
                  highlight=False, markup=False)
    out.print(f"{verb} {len(removed)} runs; kept the newest {keep} per scenario",
              highlight=False)


@runs.command("drift", epilog=EXIT_CODES)
@click.option("--scenario", help="Only runs of this scenario (its name).")
@click.option("--last", type=click.IntRange(min=0), default=30, show_default=True,
              help="The newest N runs (0: all).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Write runs.csv, binding.csv, shadow_prices.csv, bottlenecks.csv, "
                   "flags.csv, drift.md and an SVG per series here.")
@click.option("--force", is_flag=True, help="Replace --out if allocator wrote it.")
@click.option("--slow-factor", type=click.FloatRange(min=1.0), default=2.0, show_default=True,
              help="Flag a run whose solve time is over this many times the median of the "
                   "runs before it.")
@click.option("--min-seconds", type=click.FloatRange(min=0.0), default=0.5, show_default=True,
              help="... and slower than that median by at least this many seconds.")
@click.option("--objective-jump", type=click.FloatRange(min=0.0), default=0.25,
              show_default=True,
              help="Flag a run whose objective is further than this share from the median "
                   "of the runs before it.")
@click.option("--what-ifs", "what_ifs", is_flag=True,
              help="Count the solves `allocator compare` recorded too (what-ifs of the "
                   "scenario: left out by default, they are not its nights).")
@click.option("--json", "as_json", is_flag=True, help="The series and sentences as JSON.")
@store_option
def drift_runs(scenario: str | None, last: int, out_dir: Path | None, force: bool,
               slow_factor: float, min_seconds: float, objective_jump: float,
               what_ifs: bool, as_json: bool, store_url: str | None) -> None:
    """How the recorded runs drift: the binding constraints and their shadow prices, the
    objectives and solve times, run by run; where the bottleneck moved; runs well outside
    their history (docs/diff.md)."""
    from allocator.interrupts import interruptible as _interruptible
    from allocator.store.drift import drift, write_drift
    from allocator.store.record import dumps

    def work() -> tuple[Any, list[str]]:
        store = _open(store_url)
        try:
            with store.session() as session:
                found = drift(session, scenario, last, slow_factor, min_seconds,
                              objective_jump, what_ifs=what_ifs)
        finally:
            store.close()
        return found, write_drift(found, out_dir, force) if out_dir is not None else []

    # Ctrl-C / SIGTERM while --out is written: the partial folder removed, exit 130/143
    # (was Click's "Aborted!", exit 1, or killed by SIGTERM with the partial folder left)
    found, written = _interruptible(work)
    if as_json:
        def records(frame: Any) -> list[dict[str, Any]]:  # NaN is not JSON: null
            return list(frame.astype(object).where(frame.notna(), None).to_dict("records"))

        click.echo(dumps({"runs": records(found.runs), "flags": records(found.flags),
                          "bottlenecks": records(found.bottlenecks),
                          "binding": records(found.binding), "sentences": found.sentences}))
        return
    table = Table(title=f"drift ({len(found.runs)} runs)", title_justify="left")
    objectives = [c for c in found.runs.columns if c.startswith("objective_")]
    for col in ("id", "started (UTC)", "scenario", "status", *(
            c.removeprefix("objective_") for c in objectives), "solve s", "flag"):
        table.add_column(col, justify="left" if col in ("started (UTC)", "scenario",
                                                        "status", "flag") else "right")
    flagged = found.flags.groupby("run_id")["what"].agg(", ".join)
    for r in found.runs.to_dict("records"):
        table.add_row(str(r["run_id"]), f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                      r["scenario"], r["status"], *(_fmt(r[c]) for c in objectives),
                      _fmt(r["solve_seconds"], 3), flagged.get(r["run_id"], ""))
    out.print(table)
    for sentence in found.sentences:
        out.print(sentence, highlight=False, markup=False)
    if out_dir is not None:
        out.print(f"written: {out_dir} ({len(written)} files)", highlight=False, markup=False)
