"""``allocator bench``: Click only — parse, call allocator.bench, print, map errors to exit codes.

``allocator bench FILES... [options]`` runs a benchmark (the ``run`` subcommand is implied),
``allocator bench compare OLD NEW`` compares two runs, ``allocator bench report DIR``
rewrites the summaries of a run folder (after editing an expected.csv, say), ``allocator
bench tune FILES`` searches a solver's settings and writes best.toml.

Exit codes: 0 done; 1 internal error; 2 bad input; 6 a solver gave a wrong answer (with
``--fail-on-wrong``, the default); 7 ``compare --strict`` found a regression or a wrong answer.
"""

from __future__ import annotations

import contextlib
import glob
import sys
import time
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from allocator.errors import ExitCode, InputError, Problem

T = TypeVar("T")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
if not out.is_terminal:  # a file or a pipe has no width: do not squeeze the tables to 80
    out = Console(soft_wrap=True, width=160)


class BenchExit(IntEnum):
    """Exit codes of ``allocator bench``; the first three are the package's own."""

    OK = ExitCode.OK
    INTERNAL = ExitCode.INTERNAL
    BAD_INPUT = ExitCode.BAD_INPUT
    WRONG_ANSWER = 6
    REGRESSION = 7


def pd_na() -> Any:
    """pandas' missing value (a round a candidate never reached), imported only when needed."""
    import pandas as pd

    return pd.NA


def _fail(exc: BaseException) -> int:
    """The package's one mapping of exceptions to exit codes and words (allocator.failures);
    bench's own codes (6, 7) are returned by its commands, not raised."""
    from allocator.failures import report_failure

    return report_failure(exc, err)


class _RunByDefault(click.Group):
    """A group whose first word, when it is not a subcommand, starts ``run``: so
    ``allocator bench a.mps b.mps`` works as well as ``allocator bench run a.mps b.mps``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault, context_settings={"help_option_names": ["-h", "--help"]})
def bench() -> None:
    """Benchmark solver settings on instances with published answers.

    \b
    allocator bench FILES... --solvers highs,glop,pdlp,cbc --time-limit 60
    allocator bench compare OLD_DIR NEW_DIR
    allocator bench tune FILES... [--solver highs] [--budget 30m] [--criterion sgm|max]

    Exit codes: 0 done; 1 internal error; 2 bad input; 6 a wrong (or, with no published
    optimum, disputed) answer; 7 compare --strict found a regression.
    """


def _floats(text: str | None) -> list[float | None] | None:
    if text is None:
        return None
    from allocator.bench.grid import split_list

    return [None if w.lower() == "none" else float(w) for w in split_list(text)]


def _build_grid(grid_file: Path | None, flags: dict[str, Any]) -> Any:
    """The grid file's axes, then each CLI flag given replacing that axis; all problems at once."""
    from allocator.bench.grid import METHODS, Grid, load_grid, parse_presolve, split_list
    from allocator.bench.grid import _validate_solvers as validate_solvers

    grid = load_grid(grid_file) if grid_file else Grid()
    problems: list[Problem] = []

    def axis(name: str, attr: str, convert: Any) -> None:
        if flags.get(name) is None:
            return
        try:
            setattr(grid, attr, convert(flags[name]))
        except ValueError as exc:
            problems.append(Problem(f"--{name.replace('_', '-')}", str(exc)))

    axis("solvers", "solvers", split_list)
    axis("threads", "threads", lambda t: [int(w) for w in split_list(t)])
    axis("time_limit", "time_limits", _floats)
    axis("gap", "mip_gaps", lambda t: [float(w) for w in split_list(t)])
    axis("presolve", "presolve", lambda t: [parse_presolve(w) for w in split_list(t)])
    axis("seeds", "seeds", lambda t: [int(w) for w in split_list(t)])

    def methods(text: str) -> list[str]:
        words = split_list(text)
        bad = [w for w in words if w not in METHODS]
        if bad:
            raise ValueError(f"unknown method {', '.join(bad)}; use {', '.join(METHODS)}")
        return words

    axis("method", "methods", methods)
    if flags.get("repeats") is not None:
        grid.repeats = flags["repeats"]
    if flags.get("timeout") is not None:
        grid.timeout = flags["timeout"]
    problems += validate_solvers(grid.solvers, "--solvers")
    if problems:
        raise InputError(problems)
    return grid


def _expected_paths(given: tuple[str, ...], extra: list[Path]) -> list[Path]:
    paths: list[Path] = []
    problems = []
    for text in given:
        found = sorted(glob.glob(text)) if any(c in text for c in "*?[") else [text]
        if not found or not all(Path(p).is_file() for p in found):
            problems.append(Problem(text, "no expected.csv here"))
        paths += [Path(p) for p in found]
    if problems:
        raise InputError(problems)
    return paths + extra


def _collect(problems: list[Problem], step: Callable[[], T]) -> T | None:
    """Run one validation step, keeping its problems for a single report."""
    try:
        return step()
    except InputError as exc:
        problems.extend(exc.problems)
        return None


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]cells"), BarColumn(),
        TextColumn("{task.completed}/{task.total} done"),
        TextColumn("[cyan]{task.fields[running]} running"),
        TextColumn("[yellow]{task.fields[failed]} failed"),
        TextColumn("[bold red]{task.fields[wrong]} wrong"),
        TimeElapsedColumn(), console=err, transient=False,
    )


def _print_configs(summary: Any) -> None:
    from allocator.bench.report import SGM_TEXT, config_table

    table = Table(title=f"configurations, best first ({SGM_TEXT})", title_justify="left")
    frame = config_table(summary)
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == "configuration" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else escape(str(v)) for v in row])
    out.print(table)
    from allocator.bench.report import COLUMN_TEXT

    out.print(COLUMN_TEXT, highlight=False, markup=False)
    out.print(summary.noise_note(), highlight=False, markup=False)


def _print_wrong(summary: Any) -> None:
    from allocator.bench.report import wrong_lines

    if len(summary.wrong):
        lines = escape("\n".join(wrong_lines(summary)))
        err.print(Panel(lines, title=f"[bold]{len(summary.wrong)} WRONG OR DISPUTED "
                        "ANSWER(S)",
                        border_style="bold red", style="red"), soft_wrap=False)


@bench.command("run")
@click.argument("files", nargs=-1)
@click.option("--grid", "grid_file", type=click.Path(path_type=Path),
              help="TOML grid file: [grid] axes, [[config]] tables, seeds, repeats, timeout, "
                   "instances. Flags given here replace its axes.")
@click.option("--solvers", help="Comma list: highs, glop, pdlp, scip, cpsat, cbc, pulp:<NAME>.")
@click.option("--threads", help="Comma list of thread counts.")
@click.option("--time-limit", "time_limit", help="Comma list of seconds (or none).")
@click.option("--gap", help="Comma list of relative MIP gaps.")
@click.option("--presolve", help="Comma list of auto, on, off.")
@click.option("--method", help="Comma list of auto, simplex, dual, primal, ipm, pdlp.")
@click.option("--seeds", help="Comma list of seeds (replicates of each configuration).")
@click.option("--repeats", type=click.IntRange(min=1), help="Runs per seed (replicates).")
@click.option("--timeout", type=click.FloatRange(min=0.1),
              help="Hard wall-clock limit per cell, seconds [2 × time limit + 30, else 600].")
@click.option("--expected", multiple=True, metavar="CSV",
              help="expected.csv with published optima (repeatable, globs allowed); the one "
                   "beside each instance is always read too.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("bench-out"),
              show_default=True, help="Folder for results.csv, summaries, profile, report.")
@click.option("--resume", is_flag=True, help="Skip the cells already in OUT/results.csv.")
@click.option("--force", is_flag=True, help="Start over, replacing OUT's results.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="A running Dask scheduler; default: a local cluster, one worker per core.")
@click.option("--workers", type=click.IntRange(min=1), help="Local workers [cores].")
@click.option("--formats", default="png,svg", show_default=True,
              help="Performance profile formats.")
@click.option("--fail-on-wrong/--no-fail-on-wrong", default=True, show_default=True,
              help="Exit 6 when a solver gave a wrong answer.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--heartbeat", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Seconds between progress lines when there is no progress bar "
                   "(--no-progress, or stderr not a terminal: a nightly log).")
def run_command(files: tuple[str, ...], grid_file: Path | None, expected: tuple[str, ...],
                out_dir: Path, resume: bool, force: bool, scheduler: str | None,
                workers: int | None, formats: str, fail_on_wrong: bool, no_progress: bool,
                heartbeat: float, **flags: Any) -> None:
    """Run FILES (MPS, LP or scenario .toml; globs allowed) × the configuration grid."""
    try:
        code = _run(files, grid_file, expected, out_dir, resume, force, scheduler, workers,
                    formats, fail_on_wrong, no_progress or not err.is_terminal, flags,
                    heartbeat)
    except KeyboardInterrupt:
        err.print(f"interrupted: finished cells are in {out_dir / 'results.csv'}; "
                  "run again with --resume to finish the rest")
        sys.exit(130)
    except BaseException as exc:
        sys.exit(_fail(exc))
    sys.exit(int(code))


def _run(files: tuple[str, ...], grid_file: Path | None, expected: tuple[str, ...],
         out_dir: Path, resume: bool, force: bool, scheduler: str | None, workers: int | None,
         formats: str, fail_on_wrong: bool, no_progress: bool, flags: dict[str, Any],
         heartbeat: float = 60.0) -> BenchExit:
    from allocator.bench.grid import find_instances, split_list
    from allocator.bench.report import write_outputs
    from allocator.bench.runner import RESULTS, run_cells
    from allocator.bench.summary import load_results, summarize
    from allocator.bench.verify import ExpectedTable

    problems: list[Problem] = []  # every mistake on the command line reported at once
    grid = _collect(problems, lambda: _build_grid(grid_file, flags))
    # A shell-expanded `--expected dir/*/expected.csv` leaves all but the first CSV here.
    csvs = [Path(f) for f in files if f.endswith(".csv")]
    patterns = [f for f in files if not f.endswith(".csv")] + (grid.instances if grid else [])
    if not patterns:
        problems.append(Problem("FILES", "no instances: name MPS or scenario files (globs "
                                         "allowed), or list them under `instances` in the "
                                         "grid file"))
    instances = _collect(problems, lambda: find_instances(patterns)) if patterns else None
    expected_csvs = _collect(problems, lambda: _expected_paths(expected, csvs))
    if problems or grid is None or instances is None or expected_csvs is None:
        raise InputError(problems)
    table = ExpectedTable.beside(i.path for i in instances)
    explicit = ExpectedTable.load(expected_csvs)
    for known in explicit.by_path.values():
        table.add(known)
    cells = grid.cells(instances)
    configs = grid.configs()
    err.print(f"{len(instances)} instances × {len(configs)} configurations × "
              f"{len(grid.seeds) * grid.repeats} replicate(s) = {len(cells)} cells; "
              f"published optima for {sum(table.lookup(i.path) is not None for i in instances)} "
              "instances", highlight=False)
    progress = None if no_progress else _progress()
    task = None

    def update(counts: Any) -> None:
        if progress is not None and task is not None:
            progress.update(task, total=counts.total, completed=counts.done,
                            running=counts.running, failed=counts.failed, wrong=counts.wrong)

    def on_row(row: dict[str, Any]) -> None:
        if row["verdict"] == "wrong":
            (progress.console if progress else err).print(
                f"[bold red]WRONG[/] {escape(str(row['instance']))} × "
                f"{escape(str(row['config']))}: {escape(str(row['verdict_note']))}",
                highlight=False)

    start = time.perf_counter()
    if progress is not None:
        progress.start()
        task = progress.add_task("cells", total=len(cells), running=0, failed=0, wrong=0)
    try:
        run = run_cells(cells, out_dir, table, scheduler=scheduler, workers=workers,
                        resume=resume, force=force, on_update=update, on_row=on_row,
                        heartbeat=heartbeat if progress is None else None,
                        on_heartbeat=lambda c: err.print(c.line(), highlight=False,
                                                         markup=False))
    finally:
        if progress is not None:
            progress.stop()
    if run.skipped:
        err.print(f"resume: {run.skipped} cells already in {out_dir / RESULTS} were skipped")
    summary = summarize(load_results(out_dir / RESULTS, table))
    seconds = time.perf_counter() - start
    written = write_outputs(summary, out_dir, tuple(split_list(formats)), seconds)
    _print_configs(summary)
    for line in summary.conventions:
        err.print(f"note: {line}", highlight=False, markup=False)
    _print_wrong(summary)
    err.print(f"{len(run.rows)} cells run in {run.seconds:.1f} s; wrote "
              f"{', '.join(p.name for p in [out_dir / RESULTS, *written])} in {out_dir}",
              highlight=False)
    if len(summary.wrong) and fail_on_wrong:
        return BenchExit.WRONG_ANSWER
    return BenchExit.OK


def _close_clusters_quietly() -> None:
    """Close the local Dask clusters now, their workers stopped. Interrupted while a cluster
    was starting, Dask's own exit hook would print a traceback (a worker still 'init') over
    our one line: it is closed here, and what it says on the way is not the user's news."""
    import io

    cluster_module = sys.modules.get("distributed.deploy.spec")
    if cluster_module is None:
        return
    noise, sys.stderr = sys.stderr, io.StringIO()
    try:
        for cluster in list(getattr(cluster_module.SpecCluster, "_instances", ())):
            with contextlib.suppress(BaseException):
                cluster.close(timeout=10)
    finally:
        sys.stderr = noise
    with contextlib.suppress(Exception):
        import atexit

        atexit.unregister(cluster_module.close_clusters)  # done above; its noise not twice


@bench.command("tune")
@click.argument("files", nargs=-1)
@click.option("--solver", default="highs", show_default=True,
              help="The backend whose settings are searched.")
@click.option("--budget", default="30m", show_default=True,
              help="Wall clock (30m, 90s, 1h30m) or a count of solver runs ('200 runs': "
                   "deterministic, for CI).")
@click.option("--criterion", type=click.Choice(["sgm", "max"]), default="sgm",
              show_default=True, help="sgm: shifted geometric mean over the instances; max: "
                                      "the slowest instance (a nightly deadline).")
@click.option("--space", type=click.Path(path_type=Path),
              help="TOML file changing the search space: [SOLVER] method/presolve/threads "
                   "lists, [SOLVER.options] option lists (docs/bench.md).")
@click.option("--confirm", type=click.IntRange(min=2), default=5, show_default=True,
              help="Fresh seeds on which the winner is re-run against the default.")
@click.option("--eta", type=click.IntRange(min=2), default=3, show_default=True,
              help="Successive halving: keep the best 1/ETA each round.")
@click.option("--min-gain", type=click.FloatRange(min=0.0), default=0.05, show_default=True,
              help="Smallest gain (0.05 = 5 %) for which the winner is recommended.")
@click.option("--timeout", type=click.FloatRange(min=1.0), default=600.0, show_default=True,
              help="Hard limit of the default's first (uncapped) run per instance, seconds.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Draws the candidates when the budget cannot run them all.")
@click.option("--expected", multiple=True, metavar="CSV",
              help="expected.csv with published optima (besides each instance's own).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("tune-out"),
              show_default=True, help="Folder for best.toml, report.html, tune.csv, "
                                      "results.csv (written whole or not at all).")
@click.option("--force", is_flag=True, help="Replace an earlier tune's folder.")
@click.option("--workers", type=click.IntRange(min=1), help="Local workers [cores].")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="A running Dask scheduler.")
@click.option("--heartbeat", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Seconds between progress lines.")
@click.option("--fail-on-wrong/--no-fail-on-wrong", default=True, show_default=True,
              help="Exit 6 when an answer was wrong or disagreed with the default's.")
def tune_command(files: tuple[str, ...], solver: str, budget: str, criterion: str,
                 space: Path | None, confirm: int, eta: int, min_gain: float, timeout: float,
                 seed: int, expected: tuple[str, ...], out_dir: Path, force: bool,
                 workers: int | None, scheduler: str | None, heartbeat: float,
                 fail_on_wrong: bool) -> None:
    """Search SOLVER's settings on FILES (MPS or scenario .toml), re-check the winner
    against the default on fresh seeds, and write OUT/best.toml ([solver], for
    `allocator solve --solver-settings`) and OUT/report.html.

    \b
    Exit codes: 0 best.toml written (the winner, or the default when the gain is within
    noise); 1 internal error; 2 bad input; 6 an answer was wrong or disagreed with the
    default's (the setting is disqualified; best.toml is still written); 8 the machine
    failed (disk full, read-only: nothing written); 130/143/129 interrupted by SIGINT,
    SIGTERM, SIGHUP (nothing written, the workers stopped).
    """
    import signal

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # A scheduler's stop (SIGTERM) or a closed terminal (SIGHUP) ends the tune as Ctrl-C does:
    # the partial folder removed and the cluster closed, instead of dying mid-write.
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = _tune(files, solver, budget, criterion, space, confirm, eta, min_gain, timeout,
                     seed, expected, out_dir, force, workers, scheduler, heartbeat,
                     fail_on_wrong)
    except KeyboardInterrupt as interrupt:
        for sig in (signal.SIGINT, *previous):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut this short
        name = str(interrupt) or "SIGINT"
        _close_clusters_quietly()
        err.print(f"interrupted ({name}): nothing written")
        sys.exit({"SIGTERM": 143, "SIGHUP": 129}.get(name, 130))
    except BaseException as exc:
        sys.exit(_fail(exc))
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
    sys.exit(int(code))


def _tune(files: tuple[str, ...], solver: str, budget: str, criterion: str,
          space: Path | None, confirm: int, eta: int, min_gain: float, timeout: float,
          seed: int, expected: tuple[str, ...], out_dir: Path, force: bool,
          workers: int | None, scheduler: str | None, heartbeat: float,
          fail_on_wrong: bool) -> BenchExit:
    from allocator.bench.grid import _validate_solvers as validate_solvers
    from allocator.bench.grid import find_instances
    from allocator.bench.tune import TuneSettings, parse_budget, tune, write_tune
    from allocator.bench.verify import ExpectedTable
    from allocator.outputs.folder import RunFolder, check_target

    problems: list[Problem] = validate_solvers([solver], "--solver")
    parsed = _collect(problems, lambda: parse_budget(budget))
    if not files:
        problems.append(Problem("FILES", "no instances: name MPS or scenario files"))
    instances = _collect(problems, lambda: find_instances(list(files))) if files else None
    csvs = _collect(problems, lambda: _expected_paths(expected, []))
    if space is not None and not space.is_file():
        problems.append(Problem(str(space), "space file not found"))
    if problems or parsed is None or instances is None or csvs is None:
        raise InputError(problems)
    table = ExpectedTable.beside(i.path for i in instances)
    for known in ExpectedTable.load(csvs).by_path.values():
        table.add(known)
    from allocator.diff.write import refuse_other_kind

    refuse_other_kind(out_dir, force, "best.toml", "bench tune")
    check_target(out_dir, force)
    settings = TuneSettings(solver=solver, budget=parsed, criterion=criterion, eta=eta,
                            confirm=confirm, min_gain=min_gain, timeout=timeout, seed=seed,
                            space=space, workers=workers)
    say = lambda text: err.print(text, highlight=False, markup=False)  # noqa: E731
    folder = RunFolder(out_dir, ("csv",))
    try:
        from distributed import Client

        client = Client(scheduler) if scheduler else None
        try:
            result = tune(files, settings, folder.tmp, expected=table, client=client, say=say,
                          heartbeat=heartbeat)
        finally:
            if client is not None:
                client.close()
        write_tune(result, folder.tmp)
        folder.commit(force)
    finally:
        folder.discard()
    for note in result.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    if result.alarms:
        err.print(Panel(escape("\n".join(result.alarms)),
                        title=f"[bold]{len(result.alarms)} WRONG OR DISPUTED ANSWER(S)",
                        border_style="bold red", style="red"), soft_wrap=False)
    from allocator.bench.tune import rounds_table

    frame = rounds_table(result)
    shown = Table(title=f"candidates by round (score: {result.criterion}, s)",
                  title_justify="left")
    for column in frame.columns:
        shown.add_column(str(column), justify="left" if column in ("candidate", "fate")
                         else "right")
    for row in frame.itertuples(index=False):
        shown.add_row(*["" if v is None or (isinstance(v, float) and v != v) or v is pd_na()
                        else f"{v:.4g}" if isinstance(v, float) else escape(str(v))
                        for v in row])
    out.print(shown)
    out.print(result.verdict, highlight=False, markup=False)
    out.print(f"{result.runs} runs in {result.seconds:.0f} s; wrote best.toml, report.html, "
              f"tune.csv, results.csv in {out_dir}", highlight=False, markup=False)
    return BenchExit.WRONG_ANSWER if result.alarms and fail_on_wrong else BenchExit.OK


@bench.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--expected", multiple=True, metavar="CSV",
              help="expected.csv files to verify against (besides each instance's own).")
@click.option("--formats", default="png,svg", show_default=True)
def report_command(run_dir: Path, expected: tuple[str, ...], formats: str) -> None:
    """Rewrite the summaries of RUN_DIR from its results.csv (verdicts recomputed)."""
    from allocator.bench.grid import split_list
    from allocator.bench.report import write_outputs
    from allocator.bench.runner import RESULTS, read_results
    from allocator.bench.summary import load_results, summarize
    from allocator.bench.verify import ExpectedTable

    try:
        results = run_dir / RESULTS
        if not results.is_file():
            raise InputError(f"no {RESULTS} in {run_dir}", str(run_dir))
        table = ExpectedTable.beside(Path(r["path"]) for r in read_results(results))
        for known in ExpectedTable.load(_expected_paths(expected, [])).by_path.values():
            table.add(known)
        summary = summarize(load_results(results, table))
        write_outputs(summary, run_dir, tuple(split_list(formats)))
    except BaseException as exc:
        sys.exit(_fail(exc))
    _print_configs(summary)
    _print_wrong(summary)


@bench.command("compare")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--ratio", type=click.FloatRange(min=1.0), default=1.25, show_default=True,
              help="Median time ratio that counts as slower/faster, per instance.")
@click.option("--config-ratio", type=click.FloatRange(min=1.0), default=1.10,
              show_default=True, help="The same, for a configuration's shifted geometric mean.")
@click.option("--min-seconds", type=click.FloatRange(min=0.0), default=0.05,
              show_default=True, help="Smaller changes are noise, whatever the ratio.")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path),
              help="Write the per-instance comparison here.")
@click.option("--all", "show_all", is_flag=True, help="List unchanged instances too.")
@click.option("--strict", is_flag=True,
              help="Exit 7 on a slower configuration or instance, a lost or a wrong answer.")
def compare_command(old: Path, new: Path, ratio: float, config_ratio: float,
                    min_seconds: float, csv_out: Path | None, show_all: bool,
                    strict: bool) -> None:
    """Compare two runs (folders or results.csv): slower, faster, lost, wrong — past the noise."""
    from allocator.bench.compare import Thresholds, compare

    try:
        result = compare(old, new, Thresholds(ratio, config_ratio, min_seconds))
    except BaseException as exc:
        sys.exit(_fail(exc))
    table = Table(title="configurations: shifted geometric mean, s (replicate range)",
                  title_justify="left")
    for column in ("configuration", "instances", "old", "new", "ratio", "slower", "faster",
                   "lost", "gained", "wrong", "verdict"):
        table.add_column(column, justify="left" if column in ("configuration", "verdict")
                         else "right")
    for r in result.configs.itertuples():
        style = "bold red" if r.change in ("slower", "became wrong", "no longer solved") else (
            "yellow" if r.change == "slower?" else "")
        table.add_row(escape(r.config), str(r.instances),
                      f"{r.old_sgm:.3f} [{r.old_min:.3f}–{r.old_max:.3f}]",
                      f"{r.new_sgm:.3f} [{r.new_min:.3f}–{r.new_max:.3f}]",
                      f"{r.ratio:.2f}", str(r.slower), str(r.faster), str(r.lost),
                      str(r.gained), str(r.wrong), r.change, style=style)
    out.print(table)
    shown = result.instances if show_all else result.instances[
        ~result.instances["change"].isin(["same (within noise)", "unsolved in both"])]
    if len(shown):
        detail = Table(title=escape("instances that changed: median s [min–max over "
                                    "replicates]"), title_justify="left")
        for column in ("configuration", "instance", "old", "new", "ratio", "change"):
            detail.add_column(column)
        for r in shown.itertuples():
            if hasattr(r, "old_s") and r.old_s == r.old_s:
                old_text = f"{r.old_s:.3f} [{r.old_min:.3f}–{r.old_max:.3f}]"
                new_text = f"{r.new_s:.3f} [{r.new_min:.3f}–{r.new_max:.3f}]"
                ratio_text = f"{r.ratio:.2f}"
            else:
                old_text = new_text = ratio_text = ""
            detail.add_row(escape(r.config), escape(r.instance), old_text, new_text, ratio_text,
                           r.change)
        out.print(detail)
    else:
        out.print("no instance changed beyond the noise")
    if result.one_replicate:
        err.print("[bold yellow]note[/]: a single replicate on a side, so no spread to tell a "
                  "change from noise: changes are marked 'slower?'/'faster?' (unconfirmed). "
                  "Run both sides with --repeats 3 (or --seeds 0,1,2).", highlight=False)
    if csv_out:
        result.instances.to_csv(csv_out, index=False)
    sys.exit(int(BenchExit.REGRESSION if strict and len(result.alarms) else BenchExit.OK))


if __name__ == "__main__":
    bench()
