"""`allocator diff A B --out DIR`: what changed between two runs, and why (docs/diff.md)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

EXIT_CODES = ("Exit codes: 0 done; 2 bad usage (A or B is neither a run folder nor a run in "
              "the store, --out exists and is not a diff allocator wrote, a store that cannot "
              "be opened, a run folder missing a file it wrote, --out over A or B); 8 the machine "
              "failed (disk full, read-only); 1 internal error (the log path is printed); "
              "130/143/129 interrupted (nothing written).")

out = Console(soft_wrap=True)


def resolve(key: str, store_url: str | None) -> Path:
    """A run folder as given, else a run of the store (its number or uid) and its folder."""
    from allocator.errors import InputError

    folder = Path(key)
    if (folder / "summary.json").is_file():
        return folder
    if folder.exists():
        raise InputError(f"{key} is not a run folder (no summary.json)", key)
    from allocator.store.cli import _open
    from allocator.store.record import find_run

    try:
        store = _open(store_url)
    except InputError as exc:
        raise InputError(f"{key} is not a run folder, and the store cannot tell: {exc}",
                         key) from None
    try:
        with store.session() as session:
            try:
                run = find_run(session, key)
            except InputError:  # a mistyped folder reads best as one
                raise InputError(f"no such run folder, and no run '{key}' in the store "
                                 "(`allocator runs list` shows its runs)", key) from None
            where, status, digest = Path(run.folder), run.status, run.summary_sha256
            started = f"{run.started_at:%Y-%m-%d %H:%M}"
    finally:
        store.close()
    if not (where / "summary.json").is_file():
        raise InputError(f"run {key} ({status}) has no run folder at {where} any more", key)
    from allocator.store.record import file_sha256

    if digest is None:  # it failed before writing: the folder there is another run's
        raise InputError(f"run {key} ({status}, started {started}) wrote no run folder: "
                         f"{where} holds another run", key)
    if file_sha256(where / "summary.json") != digest:
        # a later run written to the same --out: its figures are not run {key}'s
        raise InputError(f"run {key} ({status}, started {started}) was written to {where}, "
                         "which now holds another run (its summary.json is not the one "
                         "recorded); give that folder, or the later run's id", key)
    return where


@click.command("diff", epilog=EXIT_CODES)
@click.argument("a")
@click.argument("b")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for moves.csv, coverage_diff.csv, budgets_diff.csv, "
                   "objectives.csv, constraints_diff.csv, inputs_diff.csv, "
                   "input_changes.csv, diff.md and diff.html.")
@click.option("--force", is_flag=True, help="Replace an earlier diff at --out (nothing else).")
@click.option("--store", "store_url", metavar="URL|PATH",
              help="The run store for A and B given as run ids (default as `allocator runs`).")
def diff_command(a: str, b: str, out_dir: Path, force: bool, store_url: str | None) -> None:
    """What changed from run A to run B, and why. A and B: run folders or store run ids."""
    from allocator.diff.engine import RunDiff, diff_runs
    from allocator.diff.write import (
        num,
        refuse_other_kind,
        refuse_out_over_inputs,
        write_diff,
    )
    from allocator.interrupts import interruptible as _interruptible

    def work() -> RunDiff:
        folders = [resolve(a, store_url), resolve(b, store_url)]
        refuse_out_over_inputs(out_dir, folders)  # before the work: nothing to lose
        refuse_other_kind(out_dir, force, "diff.md", "diff")
        found = diff_runs(folders[0], folders[1])
        write_diff(found, out_dir, force=force)
        return found

    # Ctrl-C / SIGTERM: the partial folder removed, exit 130/143 (not Click's "Aborted!", 1)
    diff = _interruptible(work)
    table = Table(title=f"objectives: {diff.a} -> {diff.b}", title_justify="left")
    for col in ("stage", "A", "B", "change"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for row in diff.objectives.itertuples(index=False):
        table.add_row(str(row.stage), num(row.a), num(row.b), num(row.delta))
    out.print(table)
    moved = float(diff.moves["delta"].abs().sum()) / 2 if len(diff.moves) else 0.0
    changed = diff.inputs[~diff.inputs["status"].isin(["same", "same values"])]["table"].tolist()
    out.print(f"{len(diff.moves)} moves ({num(moved)} FTE moved), "
              f"{len(diff.constraints)} constraints changed, inputs changed: "
              f"{', '.join(changed) or 'none'}", highlight=False, markup=False)
    for sentence in diff.story[:12]:
        out.print(f"- {sentence}", highlight=False, markup=False)
    for note in diff.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    out.print(f"written: {out_dir}", highlight=False, markup=False)
