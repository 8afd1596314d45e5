"""Click commands only: parse, call the library, map exceptions to the documented exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from allocator.failures import report_failure
from allocator.version import __version__

if TYPE_CHECKING:

    from allocator.api import Run
    from allocator.runlog import RunLog

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


# The run's log while `solve --log-format json` runs: errors and the exit go to it as JSON.
_JSON_LOG: RunLog | None = None


def _fail(exc: BaseException) -> int:
    """Say what went wrong on stderr; the exit code to use (allocator.failures)."""
    if _JSON_LOG is None:
        return report_failure(exc, err)
    import io

    words = io.StringIO()
    code = report_failure(exc, Console(file=words, width=10_000, color_system=None))
    _JSON_LOG.event("error", words.getvalue().strip(), exit_code=code)
    _JSON_LOG.event("exit", f"exit {code}", code=code)
    return code


T = TypeVar("T")


def _interruptible(work: Callable[[], T]) -> T:
    """allocator.interrupts.interruptible, with this CLI's failure words and JSON log."""
    from allocator.interrupts import interruptible

    return interruptible(work, _fail, _JSON_LOG)


def _overrides(solver: str | None, time_limit: float | None, sets: tuple[str, ...]) -> list[str]:
    items = list(sets)
    if solver:
        items.append(f'solver.name="{solver}"')
    if time_limit is not None:
        items.append(f"solver.time_limit={time_limit}")
    return items


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="allocator")
def main() -> None:
    """Allocate budgets, staff and site capacity at least cost, and say why."""
    if not sys.warnoptions:
        # Library warnings (numpy's "invalid value encountered", matplotlib's font notes)
        # are for developers: on a nightly run's stderr they read as failures. What a user
        # must know is said as a warning or note of the run. PYTHONWARNINGS/-W bring them back.
        import warnings

        warnings.simplefilter("ignore")


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Run folder to write (written whole or not at all).")
@click.option("--solver", help="highs | glop | pdlp | scip | cpsat | cbc | pulp:<NAME>")
@click.option("--time-limit", type=float, help="Seconds for the whole run.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario setting, e.g. --set policy.assignment=whole")
@click.option("--solver-settings", type=click.Path(path_type=Path), metavar="TOML",
              help="A file's [solver] section (the best.toml of `allocator bench tune`) as "
                   "overrides; --set, --solver and --time-limit still win over it.")
@click.option("--force", is_flag=True, help="Replace an existing run folder.")
@click.option("--accept-timeout", is_flag=True,
              help="Exit 0 (not 5) when the time limit leaves a plan not proven optimal.")
@click.option("--store", "store_url", metavar="URL|PATH",
              help="Record the run in this store (database URL, or SQLite file or folder). "
                   "Default: $ALLOCATOR_STORE, else the scenario's [store] url, else "
                   "~/.local/share/allocator/runs.sqlite (docs/run-store.md).")
@click.option("--no-store", is_flag=True, help="Do not record the run.")
@click.option("--warm-from", "warm_from", metavar="RUN",
              help="Start the solver from this earlier run (a run folder, or a run id of the "
                   "store): its basis and plan, matched by business ids. Default: the newest "
                   "successful run of the same scenario in the store (docs/warm-start.md).")
@click.option("--cold", is_flag=True, help="Do not warm-start from an earlier run.")
@click.option("--bundle", "bundle", is_flag=True,
              help="Also write bundle.tar.gz in the run folder: the scenario, every input "
                   "table as read, each stage's model as MPS, versions, seed and settings "
                   "(`allocator replay` re-runs it; docs/reproducibility.md).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="json: every event (phase, progress, warning, note, result, error, exit) "
                   "as one JSON object a line on stderr. Either way the run folder gets "
                   "run.log (plain text).")
@click.option("--quiet", "-q", is_flag=True,
              help="Only errors and the final line: no progress, tables, warnings or notes.")
@click.option("--verbose", "-v", is_flag=True,
              help="Also the solver's own log as it runs (HiGHS).")
@click.option("--heartbeat", type=float, metavar="SECONDS", envvar="ALLOCATOR_HEARTBEAT",
              help="Without a terminal (cron, a pipe): a plain progress line every SECONDS "
                   "(default 30; $ALLOCATOR_HEARTBEAT). On a terminal a live display instead.")
@click.option("--decompose", type=click.Choice(["auto", "regions", "off"]), default="off",
              show_default=True,
              help="regions: Dantzig-Wolfe over the blocks found in the model (regions), on "
                   "Dask, with lower and upper bounds in summary.json; auto: so when "
                   "--scheduler is given or the model is very large (docs/decompose.md).")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Dask scheduler of a real cluster for --decompose (default: a local "
                   "cluster of --workers processes).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="Local Dask workers for --decompose without --scheduler.")
@click.option("--polish", is_flag=True,
              help="With --decompose: move each block's plan to a vertex (fewer people split "
                   "across sites; the same objectives).")
def solve(scenario: Path, out_dir: Path, solver: str | None, time_limit: float | None,
          sets: tuple[str, ...], force: bool, accept_timeout: bool, store_url: str | None,
          no_store: bool, warm_from: str | None, cold: bool, bundle: bool = False,
          log_format: str = "text",
          solver_settings: Path | None = None, quiet: bool = False, verbose: bool = False,
          heartbeat: float | None = None, decompose: str = "off", scheduler: str | None = None,
          workers: int = 2, polish: bool = False) -> None:
    """Solve SCENARIO and write the plan, coverage, budgets, sites and summary to --out."""
    global _JSON_LOG
    from allocator.decompose.entry import request as decompose_request
    from allocator.runlog import RunLog

    decompose_request(decompose, scheduler, workers, polish)  # read by run.py
    if polish and decompose == "off":
        err.print("[yellow]warning[/]: --polish moves a decomposed plan to a vertex; without "
                  "--decompose the plan is HiGHS's vertex already, so it changes nothing",
                  highlight=False)

    log = RunLog(echo=lambda msg: err.print(msg, highlight=False),
                 stream=sys.stderr if log_format == "json" else None)
    _JSON_LOG = log if log.json else None
    from allocator.progress import display_for

    # Progress (allocator/progress.py): live on a terminal, heartbeat lines elsewhere; in
    # JSON mode it goes to the log only, whose lines stderr carries.
    display = display_for(err, quiet=quiet or log.json, verbose=verbose, interval=heartbeat)
    if quiet:
        log.echo = None

    def warn(msg: str) -> None:
        if quiet and not log.json:
            return
        if log.json:
            log.event("warning", msg)
        else:
            err.print(f"[yellow]warning[/]: {escape(msg)}", highlight=False)

    def note(msg: str) -> None:
        if quiet and not log.json:
            return
        if log.json:
            log.event("note", msg)
        else:
            err.print(msg, highlight=False, markup=False)

    from allocator.api import solve as solve_run  # the Python API is the one entry point

    out_dir = Path(os.path.expanduser(out_dir))  # `--out=~/x`: the shell leaves `~` alone
    from allocator.store.db import resolve_url
    from allocator.store.record import Recording
    from allocator.store.target_lock import hold_target

    overrides = _overrides(solver, time_limit, sets)
    if solver_settings is not None:  # best.toml's [solver] keys, before the flags that win
        from allocator.bench.settings_file import settings_overrides

        try:
            overrides = settings_overrides(solver_settings) + overrides
        except Exception as exc:
            sys.exit(_fail(exc))
    url = resolve_url(store_url, scenario, out_dir)
    recording = Recording(None if no_store else url, scenario, out_dir, overrides,
                          warn=warn, note=note)

    def work() -> Run:
        with hold_target(out_dir):  # a second run into --out fails now, not after solving
            # --no-store: no store at all, so no default warm start (an explicit id is
            # still looked up where the store would be)
            source = _warm_source(warm_from, cold or (no_store and warm_from is None), url,
                                  scenario, overrides, recording, warn)
            return solve_run(scenario, out_dir, force=force, accept_timeout=accept_timeout,
                             overrides=overrides, log=log, bundle=bundle, on_progress=display,
                             warm_from=source.folder if source else None,
                             warm_source=source.label if source else None)

    try:
        with display:  # stopped (terminal restored) before anything below is printed
            run = _interruptible(recording.wrap(work))
    except SystemExit as stop:  # an error: recorded with the exit code it gets
        recording.failed(stop.code)
        raise
    recording.finished(run.summary, out_dir)
    _print_summary(run.summary, out_dir, words=not log.json, quiet=quiet)
    log.event("exit", f"exit {run.exit_code}", code=run.exit_code)
    sys.exit(run.exit_code)


def _warm_source(key: str | None, cold: bool, url: str | None, scenario: Path,
                 overrides: list[str], recording: Any, warn: Callable[[str], None]) -> Any:
    """The run to warm-start from: --warm-from (exit 2 if unusable), else the store's newest
    successful run of this scenario (none found, or no store: a cold start)."""
    from allocator.store.lookup import explicit_source, previous_run

    recorder = recording.recorder
    store = recorder.store if recorder is not None else None
    if cold:
        return None
    if key is not None:
        return explicit_source(key, url, store)
    if url is None:
        return None
    try:
        from allocator.scenario import load_scenario

        loaded = load_scenario(scenario, overrides)
    except Exception:  # the run itself says what is wrong with the scenario
        return None
    from allocator.decompose.entry import current
    from allocator.decompose.prices import PRICES_FILE
    from allocator.warm import BASIS_FILE

    # a decomposed run starts from master prices, a monolithic one from a basis: the newest
    # run holding what this one can use (a partitioned run leaves prices only)
    wanted = PRICES_FILE if current().mode != "off" else BASIS_FILE
    try:
        return previous_run(url, loaded.name, recorder.id if recorder else None, store,
                            loaded.model, wanted=wanted)
    except Exception as exc:  # the store is for bookkeeping: a cold start, said
        warn(f"no warm start (the run store could not be read: {exc})")
        return None


def _print_summary(summary: dict[str, Any], out_dir: Path, verb: str = "written",
                   words: bool = True, quiet: bool = False) -> None:
    """The stage table and phases on stdout; with `words`, the error, warnings and notes on
    stderr (without: they went to the JSON log). `quiet`: the error and the final line only."""
    if quiet:
        if words and summary["status"] == "error" and summary.get("message"):
            err.print(f"[bold red]error[/]: {escape(summary['message'])}", highlight=False)
        out.print(f"{verb}: {out_dir} (exit {summary['exit_code']})", highlight=False)
        return
    table = Table(title=f"{summary['name']}: {summary['status']}", title_justify="left")
    for col in ("stage", "status", "objective", "gap", "seconds"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for stage in summary["stages"]:
        objective = stage["objective"]
        gap = stage["gap"]
        if stage["name"] == "stability" and objective is not None:
            shown = f"{objective / 2:,.4f} FTE moved"  # the model counts 2 per FTE moved
        else:
            shown = "" if objective is None else f"{objective:,.4f}"
        table.add_row(stage["name"], stage["status"], shown,
                      "" if gap is None else f"{gap:.2e}", f"{stage['seconds']:.2f}")
    out.print(table)
    if words and summary["status"] == "error" and summary.get("message"):
        err.print(f"[bold red]error[/]: {escape(summary['message'])}", highlight=False)
    for warning in summary["warnings"] if words else []:
        err.print(f"[yellow]warning[/]: {escape(warning)}", highlight=False)
    for note in summary["notes"] if words else []:
        err.print(f"note: {note}", highlight=False, markup=False)
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in summary["seconds"].items())
    out.print(f"phases: {phases}", highlight=False)
    out.print(f"{verb}: {out_dir} (exit {summary['exit_code']})", highlight=False)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
def validate(scenario: Path, sets: tuple[str, ...]) -> None:
    """Check SCENARIO's inputs and build its model without solving."""
    from allocator.run import prepare

    try:
        _scn, ops, times = prepare(scenario, list(sets))
    except BaseException as exc:
        sys.exit(_fail(exc))
    size = ops.model.size()
    for warning in ops.warnings:
        err.print(f"[yellow]warning[/]: {escape(warning)}", highlight=False)
    out.print(
        f"valid: {size['rows']:,} rows, {size['columns']:,} columns, {size['nonzeros']:,} "
        f"nonzeros, {size['integer_columns']:,} integer (load {times['load']:.2f}s, build "
        f"{times['build']:.2f}s)", highlight=False)


@main.command()
@click.option("--size", type=click.Choice(["tiny", "small", "medium", "large", "xl"]),
              help="A preset staff count.")
@click.option("--staff", "n_staff", type=click.IntRange(min=1),
              help="Number of staff rows (instead of --size).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--budgets", type=click.Choice(["nested", "site"]), default="nested",
              show_default=True,
              help="nested: one budget over all sites, one per region, a few per site; "
                   "site: the per-site ones only (no coupling rows).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True,
              help="Overwrite the scenario and tables an earlier generate wrote in --out.")
@click.option("--partitioned", is_flag=True,
              help="Write sites, staff and targets as Parquet folders partitioned by region "
                   "(what `solve --decompose` workers read region by region; docs/decompose.md).")
def generate(size: str | None, n_staff: int | None, seed: int, budgets: str,
             out_dir: Path, force: bool, partitioned: bool) -> None:
    """Write a seeded synthetic ops instance (tables + scenario.toml) to --out."""
    from allocator.datagen import SIZES, TABLES, generate_ops, write_ops_instance
    from allocator.errors import InputError

    out_dir = Path(os.path.expanduser(out_dir))
    ours = {"scenario.toml", *(f"{t}.csv" for t in TABLES),
            *(f"{t}.parquet" for t in TABLES), *TABLES}
    try:
        if size is not None and n_staff is None:
            count = SIZES[size]
        elif n_staff is not None and size is None:
            count = n_staff
        else:
            raise InputError("give exactly one of --size or --staff", "generate")
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"{out_dir} is a file, not a folder", "--out")
        clash = sorted(p.name for p in out_dir.iterdir() if p.name in ours) \
            if out_dir.is_dir() else []
        if clash and not force:  # a user's data folder is never overwritten by accident
            raise InputError(f"{out_dir} already holds {', '.join(clash)}; use --force to "
                             "overwrite them (nothing else in the folder is touched), or "
                             "another --out", "--out")
    except InputError as exc:
        sys.exit(_fail(exc))
    # The seed is part of the name (seed 0 keeps the bare name), so that runs of different
    # instances are told apart in summaries and the run store.
    name = (size or f"staff{count}") + ("" if budgets == "nested" else f"-{budgets}-budgets") \
        + (f"-seed{seed}" if seed else "")
    if partitioned:  # an earlier partitioned write's parts would otherwise stay and be read
        import shutil

        from allocator.tables.partitioned import PARTITIONED_TABLES, only_parts

        for table in PARTITIONED_TABLES:
            where = out_dir / table
            if where.is_dir():
                if not only_parts(where):  # a user's own folder of that name stays
                    sys.exit(_fail(InputError(f"{where} holds files generate did not write; "
                                              "move it, or use another --out", "--out")))
                shutil.rmtree(where)
    path = write_ops_instance(generate_ops(count, seed, budgets), out_dir, name, partitioned)
    out.print(f"written: {path}", highlight=False)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the partitioned tables and their scenario.toml.")
@click.option("--force", is_flag=True,
              help="Replace what an earlier partition wrote in --out (nothing else there is "
                   "touched; an input of the scenario never is).")
def partition(scenario: Path, out_dir: Path, force: bool) -> None:
    """Write SCENARIO's ops tables as Parquet partitioned by region, for `solve --decompose`.

    Reads and checks every table as `allocator solve` does (any problem: exit 2, nothing
    written), then writes sites, staff and targets as region=<R>/part-0.parquet folders,
    the other tables as one Parquet file each, and --out/scenario.toml naming them."""
    from allocator.formulations.ops.partition import partition as write_parts

    done = _interruptible(lambda: write_parts(scenario, out_dir, force))
    for warning in done.warnings:
        err.print(f"[yellow]warning[/]: {escape(warning)}", highlight=False)
    counts = ", ".join(f"{name} {count:,} rows" for name, count in done.rows.items())
    out.print(f"partitioned by region ({len(done.regions):,} regions): {counts}",
              highlight=False)
    out.print(f"written: {done.scenario}", highlight=False)


@main.command()
@click.argument("lp_file", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Also write variables.csv and constraints.csv to this folder.")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def sensitivity(lp_file: Path, out_dir: Path | None, force: bool) -> None:
    """Excel-style sensitivity report (values, shadow prices, ranges) for an MPS/LP file."""
    from allocator.analysis.mps_report import mps_sensitivity
    from allocator.outputs.folder import check_target, run_folder

    try:
        if out_dir is not None:
            check_target(out_dir, force)
        report = mps_sensitivity(lp_file)
        if out_dir is not None:
            with run_folder(out_dir, ["csv"], force) as folder:
                folder.table("variables", report.variables)
                folder.table("constraints", report.constraints)
    except BaseException as exc:
        sys.exit(_fail(exc))
    out.print(f"{report.name}: {report.sense} objective = {report.objective:.10g}",
              highlight=False)
    for title, frame in (("Variable cells", report.variables),
                         ("Constraints", report.constraints)):
        table = Table(title=title, title_justify="left")
        shown = [c for c in frame.columns if c not in ("binding", "dual_unique",
                                                        "shadow_price_down", "shadow_price_up")]
        for col in shown:
            table.add_column(col.replace("_", " "), justify="left" if col == "name" else "right")
        for row in frame.itertuples(index=False):
            table.add_row(*(_excel(getattr(row, c)) for c in shown))
        out.print(table)
    degenerate = report.constraints[~report.constraints["dual_unique"]]
    for row in degenerate.itertuples(index=False):
        out.print(f"{row.name}: shadow price not unique: {_excel(row.shadow_price_down)} per "
                  f"unit down, {_excel(row.shadow_price_up)} per unit up", highlight=False)


def _excel(value: str | SupportsFloat) -> str:
    """Numbers as Excel's report prints them: 1E+30 for an unlimited allowance."""
    if isinstance(value, str):
        return value
    number = float(value)
    if number != number:
        return "n/a"
    if abs(number) >= 1e30:
        return "1E+30" if number > 0 else "-1E+30"
    return f"{number + 0.0:.6g}"


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1),
              help="Binding constraints to list for models without a bottleneck story.")
def explain(run_dir: Path, top: int) -> None:
    """Say in words why the plan in RUN_DIR looks the way it does (its bottlenecks), or why
    there is no plan (the diagnosis of an infeasible run)."""
    from rich.markdown import Markdown

    from allocator.errors import InputError

    try:
        summary = _read_summary(run_dir)
        story = run_dir / "bottlenecks.md"
        diagnosis = run_dir / "diagnosis.md"
        sensitivity = run_dir / "sensitivity.csv"
        if not story.exists() and not diagnosis.exists() and not sensitivity.exists():
            why = ("the run has no plan" if summary.get("status") not in ("optimal", "feasible")
                   else "solve with output.sensitivity = true")
            raise InputError(f"{run_dir} has nothing to explain ({why})", str(run_dir))
    except BaseException as exc:
        sys.exit(_fail(exc))
    _print_summary(summary, run_dir, verb="run folder")
    # Sentences wrap at the terminal's width (the shared console crops, for tables).
    wrapped = Console(soft_wrap=False)
    if diagnosis.exists():
        wrapped.print(Markdown(diagnosis.read_text(encoding="utf-8")))
    elif story.exists():
        wrapped.print(Markdown(story.read_text(encoding="utf-8")))
    else:
        _print_binding(run_dir, summary, top, wrapped)


def _read_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json as a dict with the keys explain reads; anything else is bad input."""
    import json

    from allocator.errors import InputError

    path = run_dir / "summary.json"
    if not path.is_file():
        raise InputError(f"{run_dir} is not a run folder (no summary.json)", str(run_dir))
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"summary.json is not readable JSON ({exc}); was the folder "
                         "edited or copied while being written?", str(path)) from None
    needed = ("name", "status", "stages", "warnings", "notes", "seconds", "exit_code")
    lacking = [k for k in needed if not isinstance(summary, dict) or k not in summary]
    if lacking:
        raise InputError(f"summary.json is not a run summary (it lacks {', '.join(lacking)})",
                         str(path))
    return summary


def _print_binding(run_dir: Path, summary: dict[str, Any], top: int,
                   console: Console) -> None:
    """Models without a bottleneck story: their binding rows with the largest prices."""
    from allocator.outputs.readback import read_output_table

    table = read_output_table(run_dir / "sensitivity.csv")
    rows = table[(table["kind"] == "constraint") & table["binding"].astype(str).str.lower()
                 .eq("true")].copy()
    rows["size"] = rows["dual"].abs()
    rows = rows.sort_values(["stage", "size", "family", "labels"],
                            ascending=[True, False, True, True], kind="stable")
    model = summary.get("model", "this")
    console.print(f"The {model} model writes no bottleneck story; its binding constraints "
                  f"with the largest prices (per unit of the row's limit, in the objective's "
                  f"units; all rows in sensitivity.csv, ranges in ladders.csv):")
    for stage, group in rows.groupby("stage", sort=False):
        shown = Table(title=f"stage {stage}", title_justify="left")
        for col in ("family", "labels", "limit", "price", "holds from", "holds to"):
            shown.add_column(col, justify="left" if col in ("family", "labels") else "right")
        for row in group.head(top).itertuples(index=False):
            shown.add_row(str(row.family), str(row.labels), f"{row.rhs:,.6g}",
                          f"{row.dual:,.6g}", f"{row.rhs_low:,.6g}", f"{row.rhs_high:,.6g}")
        console.print(shown)


@main.command()
def solvers() -> None:
    """List the solvers, whether they are installed here, and what each can do."""
    from allocator.solvers.base import Capability
    from allocator.solvers.registry import BACKENDS

    table = Table(title="solvers")
    for col in ("name", "solver", "installed", "can do"):
        table.add_column(col)
    for name, cls in BACKENDS.items():
        ok, detail = cls.is_available()
        can = ", ".join(cap.name.lower().replace("_", " ") for cap in Capability
                        if cap in cls.capabilities)
        table.add_row(name, cls.display, detail if ok else f"no: {detail}", can)
    out.print(table)
    out.print("pulp:<NAME> reaches any other solver PuLP knows (e.g. pulp:GUROBI_CMD).")


def _register() -> None:
    """Command groups that live beside their library code."""
    from allocator.bench.cli import bench
    from allocator.bundle_cli import replay_command
    from allocator.convert import convert_command
    from allocator.diff.cli import diff_command
    from allocator.exit_codes import apply_epilogs
    from allocator.negotiate.compare_cli import alternatives_command, compare_command
    from allocator.negotiate.sweep_cli import frontier_command, sweep_command
    from allocator.serve.cli import serve
    from allocator.store.cli import runs

    main.add_command(convert_command)
    main.add_command(bench)
    main.add_command(runs)
    main.add_command(alternatives_command)
    main.add_command(compare_command)
    main.add_command(sweep_command)
    main.add_command(frontier_command)
    main.add_command(diff_command)
    main.add_command(serve)
    main.add_command(replay_command)
    apply_epilogs(main)  # every command's --help lists its exit codes (allocator/exit_codes.py)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
