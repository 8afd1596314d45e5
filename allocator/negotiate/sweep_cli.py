"""`allocator sweep` and `allocator frontier`: Click only — parse, call the library
(allocator.negotiate.sweep / .frontier, which return DataFrames), print, exit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_CODES = """\b
Exit codes: 0 written (points with no plan are rows whose status says why); 1 internal
error (the log path is printed); 2 bad input (every problem at once: the table, column or
id, with the nearest valid one); 3 infeasible (frontier: the scenario has no plan);
8 the machine failed (disk full, read-only: nothing written); 130/143/129 interrupted (the
sweep's journal OUT.journal/ stays for --resume)."""


def _run(work: Callable[[], int]) -> int:
    from allocator.interrupts import interruptible as _interruptible

    return _interruptible(work)


@click.command("sweep", epilog=EXIT_CODES)
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--vary", "varies", multiple=True, required=True, metavar="EDIT",
              help="An input and its values, once or twice (a grid): "
                   "'budgets[B-SOU].amount=2e6:4e6:21' (FROM:TO:COUNT), "
                   "'sites[Leeds].capacity_fte=30,40,50' (a list), "
                   "'targets[region=North].demand*0.8:1.2:9' (a factor on the rows selected).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to write (whole, when every point is done).")
@click.option("--exact", is_flag=True,
              help="Also trace the exact piecewise-linear curve of each stage's optimum "
                   "(one --vary of a right-hand side: a budget, capacity, floor, demand).")
@click.option("--plans", is_flag=True, help="Write each point's plan tables too.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="A running Dask scheduler (default: a LocalCluster on this machine).")
@click.option("--workers", type=click.IntRange(min=1),
              help="LocalCluster worker processes (default: one per core).")
@click.option("--resume", is_flag=True,
              help="Solve only the points missing from OUT.journal/ (after a crash).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario setting, e.g. --set solver.time_limit=60")
@click.option("--force", is_flag=True, help="Replace an existing output folder or journal.")
@click.option("--no-progress", is_flag=True, help="No progress bar or lines.")
def sweep_command(scenario: Path, varies: tuple[str, ...], out_dir: Path, exact: bool,
                  plans: bool, scheduler: str | None, workers: int | None, resume: bool,
                  sets: tuple[str, ...], force: bool, no_progress: bool) -> None:
    """Solve SCENARIO at every value of one or two inputs, on Dask: sweep.csv (one row per
    point: the values, every stage's optimum, cost, shortfall, budget use and headroom, the
    binding constraints with their prices), sweep_<stage>.svg, sweep.html; with --exact,
    exact.csv (each stage's breakpoints and what starts or stops binding at each)."""
    from allocator.negotiate.sweep import Progress, sweep

    target = Path(os.path.expanduser(out_dir))
    bar: Any = None
    task: Any = None

    def progress(p: Progress) -> None:
        nonlocal bar, task
        if no_progress:
            return
        if not err.is_terminal:  # a log: one plain line per finished point
            err.print(p.line(), highlight=False, markup=False)
            return
        if bar is None:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            bar = Bar(TextColumn("[bold]points"), BarColumn(),
                      TextColumn("{task.completed}/{task.total} done"),
                      TextColumn("[yellow]{task.fields[failed]} failed"),
                      TimeElapsedColumn(), console=err, transient=False)
            bar.start()
            task = bar.add_task("points", total=p.total, failed=0)
        bar.update(task, completed=p.done, failed=p.failed)

    def work() -> int:
        try:
            found = sweep(scenario, list(varies), target, overrides=list(sets), exact=exact,
                          plans=plans, scheduler=scheduler, workers=workers, resume=resume,
                          force=force, on_progress=progress)
        finally:
            if bar is not None:
                bar.stop()
        frame = found.points
        solved = int(frame["status"].isin(["optimal", "feasible"]).sum())
        out.print(f"written: {target} ({len(frame)} points, {solved} with a plan, "
                  f"{found.solved} solved now, {found.seconds:.1f} s)",
                  highlight=False, markup=False)
        if found.exact is not None:
            kinks = found.exact[found.exact["kind"] == "breakpoint"].groupby("stage").size()
            out.print("exact curve: " + ", ".join(f"{stage} {n} breakpoints"
                                                  for stage, n in kinks.items()),
                      highlight=False, markup=False)
        return 0

    sys.exit(_run(work))


@click.command("frontier", epilog=EXIT_CODES)
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--objectives", default="service,cost", show_default=True,
              help="FIRST,SECOND: the best SECOND for each level of FIRST.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to write (whole or not at all).")
@click.option("--plans", is_flag=True, help="Write each frontier point's plan tables too.")
@click.option("--samples", default=21, show_default=True, type=click.IntRange(min=2),
              help="MIP only: epsilon levels solved (an LP is traced exactly).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario setting, e.g. --set policy.assignment=whole")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
def frontier_command(scenario: Path, objectives: str, out_dir: Path, plans: bool,
                     samples: int, sets: tuple[str, ...], force: bool) -> None:
    """The Pareto frontier between two objectives: frontier.csv (each breakpoint, or each
    sample with its proven gap for a MIP; the knee marked), frontier.svg, frontier.html."""
    from allocator.negotiate.frontier import frontier

    target = Path(os.path.expanduser(out_dir))

    def work() -> int:
        found = frontier(scenario, objectives, target, overrides=list(sets), plans=plans,
                         samples=samples, force=force)
        frame = found.frame
        knee = frame[frame["knee"]]
        out.print(f"written: {target} ({len(frame)} points, "
                  f"{'exact' if found.exact else 'sampled'})", highlight=False, markup=False)
        if len(knee):
            row = knee.iloc[0]
            out.print(f"knee: {found.first} {row[found.first]:,.6g}, {found.second} "
                      f"{row[found.second]:,.6g}", highlight=False, markup=False)
        return 0

    sys.exit(_run(work))
