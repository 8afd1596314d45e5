"""`allocator compare` and `allocator alternatives`: Click only — parse, call the library
(allocator.negotiate.compare / .alternatives, which return DataFrames), print, exit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_CODES = """\b
Exit codes: 0 written; 1 internal error (the log path is printed); 2 bad input (every
problem, with file, row and column); 3 infeasible (no optimum to find alternatives
around); 4 the time limit ended the stages before their optimum (nothing written; a limit
reached later ends the search with the alternatives found, exit 0); 8 the machine failed
(disk full, read-only: nothing written); 130/143/129 interrupted (nothing written)."""
COMPARE_EXIT_CODES = """\b
Exit codes: 0 written (an infeasible scenario is compared as such: its status, no plan);
1 internal error (the log path is printed); 2 bad input (every problem of every item, with
file, row and column); 8 the machine failed (disk full, read-only: nothing written);
130/143/129 interrupted (nothing written)."""


def _run(work: Callable[[], int]) -> int:
    """The main CLI's worker thread: Ctrl-C or SIGTERM removes the partial folder at once."""
    from allocator.interrupts import interruptible as _interruptible

    return _interruptible(work)


@click.command("alternatives", epilog=EXIT_CODES)
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to write (whole or not at all).")
@click.option("--within", default="1%", show_default=True,
              help="Slack of every stage's optimum: 1% (or 0.01).")
@click.option("--count", default=5, show_default=True, type=int,
              help="Alternatives to look for (fewer if no more exist within the slack).")
@click.option("--distance", type=click.Choice(["site", "cell"]), default="site",
              show_default=True,
              help="FTE moved between sites, or between (site, service) cells.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario setting, e.g. --set solver.time_limit=60")
@click.option("--force", is_flag=True,
              help="Replace an earlier alternatives folder (nothing else).")
def alternatives_command(scenario: Path, out_dir: Path, within: str, count: int,
                         distance: str, sets: tuple[str, ...], force: bool) -> None:
    """Plans within --within of every stage's optimum that differ most from the optimal
    plan and from each other (modelling to generate alternatives): alternatives.csv,
    plan_K.csv (plan_0 is the optimum), differences.csv, alternatives.md, alternatives.html.
    """
    from allocator.diff.write import refuse_other_kind
    from allocator.negotiate.alternatives import (
        find_alternatives,
        parse_within,
        write_alternatives,
    )
    from allocator.outputs.folder import check_target

    target = Path(os.path.expanduser(out_dir))

    def work() -> int:
        share = parse_within(within)
        refuse_other_kind(target, force, "alternatives.csv", "alternatives")
        check_target(target, force)  # refused before any solving
        found = find_alternatives(scenario, within=share, count=count, distance=distance,
                                  overrides=list(sets), on_progress=lambda msg: err.print(
                                      msg, highlight=False, markup=False))
        write_alternatives(found, target, force=force)
        for row in found.table.itertuples(index=False):
            out.print(f"{row.alternative}: {row.summary} "
                      f"(FTE moved vs optimal {row.fte_moved_vs_optimal:.2f})",
                      highlight=False, markup=False)
        for note in found.notes:
            err.print(f"note: {note}", highlight=False, markup=False)
        out.print(f"written: {target} ({len(found.table) - 1} alternatives, "
                  f"{found.lps} solves, {found.seconds:.1f}s)", highlight=False, markup=False)
        return 0

    sys.exit(_run(work))


@click.command("compare", epilog=COMPARE_EXIT_CODES)
@click.argument("items", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to write (whole or not at all); scenarios are solved into "
                   "its runs/ folder.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of every scenario solved, e.g. --set solver.name=glop")
@click.option("--force", is_flag=True,
              help="Replace an earlier compare folder (nothing else).")
@click.option("--store", "store_url", metavar="URL|PATH",
              help="Record the scenarios' solves in this run store (default: as `allocator "
                   "solve`'s --store), by their folders under OUT/runs/.")
@click.option("--no-store", is_flag=True, help="Do not record the solves.")
def compare_command(items: tuple[Path, ...], out_dir: Path, sets: tuple[str, ...],
                    force: bool, store_url: str | None, no_store: bool) -> None:
    """Scenario files or run folders side by side (ITEMS: two or more): stage objectives,
    cost, FTE, demand served, coverage by site and service, budget use and headroom, binding
    constraints and their prices, and which inputs differ, by business ids. Writes
    compare.csv, compare.md, compare.html (and, for two, the diff's detail)."""
    from allocator.negotiate.compare import compare

    target = Path(os.path.expanduser(out_dir))

    def work() -> int:
        found = compare(items, target, force=force, overrides=list(sets),
                        store=False if no_store else (store_url or True),
                        on_solve=lambda name, path: err.print(
                            f"solving {name} ({path})", highlight=False, markup=False))
        for row in found.kpis.itertuples(index=False):
            figures = [f"{row.status}"]
            for column in found.kpis.columns:
                value = getattr(row, column)
                if column.startswith("objective_") and value == value:  # not NaN
                    figures.append(f"{column[10:]} {value:,.6g}")
            if "demand_served_share" in found.kpis and row.demand_served_share == \
                    row.demand_served_share:
                figures.append(f"demand served {row.demand_served_share:.1%}")
            out.print(f"{row.run}: {', '.join(figures)}", highlight=False, markup=False)
        for note in found.notes:
            err.print(f"note: {note}", highlight=False, markup=False)
        out.print(f"written: {target}", highlight=False, markup=False)
        return 0

    sys.exit(_run(work))
