"""Where a warm start comes from: `--warm-from RUN` (a run folder or a store id), or by
default the newest successful run of the same scenario in the store (allocator/warm.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from allocator.errors import InputError
from allocator.store.db import Store, open_store
from allocator.store.models import Run

CANDIDATES = 20  # recent successful runs looked at for one whose folder is still there


@dataclass(frozen=True)
class WarmSource:
    folder: Path
    label: str  # how the notes name it: "run 12 (runs/mon)" or the folder


def _has_basis(folder: str | Path) -> bool:
    """A warm-start file: basis.parquet, or (a decomposed run on partitioned tables, which
    has no whole-model basis) master_prices.csv."""
    from allocator.decompose.prices import PRICES_FILE
    from allocator.warm import BASIS_FILE

    return (Path(folder) / BASIS_FILE).is_file() or (Path(folder) / PRICES_FILE).is_file()


def explicit_source(key: str, url: str | None, store: Store | None = None) -> WarmSource:
    """`--warm-from KEY`: a run folder (or its basis.parquet), else a run of the store (its
    number, or the start of its uid). InputError (exit 2) if it cannot be used: asked for
    by name, a warm start that silently does not happen would hide a mistake."""
    path = Path(os.path.expanduser(key))
    if path.exists():
        if path.is_dir() and not _has_basis(path):
            raise InputError(f"--warm-from {key}: the folder holds no basis.parquet or "
                             "master_prices.csv (not a run folder with a plan, or written by "
                             "an older version)", key)
        return WarmSource(path, str(path))
    if url is None:
        raise InputError(f"--warm-from {key}: no such run folder, and no run store to look a "
                         "run id up in (--store, $ALLOCATOR_STORE)", key)
    from allocator.store.record import find_run

    own = store is None
    store = store or open_store(url)
    try:
        with store.session() as session:
            run = find_run(session, key)
            folder, number = run.folder, run.id
    finally:
        if own:
            store.close()
    if not _has_basis(folder):
        raise InputError(f"--warm-from {key}: run {number}'s folder {folder} is gone or holds "
                         "no basis.parquet", key)
    return WarmSource(Path(folder), f"run {number} ({folder})")


def previous_run(url: str, scenario_name: str, exclude: int | None = None,
                 store: Store | None = None, model: str | None = None,
                 wanted: str | None = None) -> WarmSource | None:
    """The newest run of this scenario (its name, and its model where given) that ended
    optimal (exit 0) and whose folder still holds its warm-start file (`wanted`: that file,
    basis.parquet or master_prices.csv; else either); None if none."""
    own = store is None
    store = store or open_store(url)
    try:
        with store.session() as session:
            query = select(Run.id, Run.folder, Run.command).where(
                Run.scenario_name == scenario_name, Run.status == "optimal",
                Run.exit_code == 0, Run.id != (-1 if exclude is None else exclude))
            if model is not None:
                query = query.where(Run.model == model)
            rows = session.execute(query.order_by(Run.finished_at.desc(), Run.id.desc())
                                   .limit(CANDIDATES)).all()
    finally:
        if own:
            store.close()
    for number, folder, command in rows:
        if what_if_command(command):  # a what-if's plan never seeds tonight's run
            continue
        if (Path(folder) / wanted).is_file() if wanted is not None else _has_basis(folder):
            return WarmSource(Path(folder), f"run {number} ({folder})")
    return None


# Commands whose solves are recorded but are what-ifs of a scenario (edited copies, --set),
# not its runs: the default warm start passes over them, so that an afternoon's comparison
# never becomes the starting point (and the tie-breaking) of the night's plan.
WHAT_IF_COMMANDS = frozenset({"compare"})


def what_if_command(command: object) -> bool:
    """Whether a run's recorded command line is one of WHAT_IF_COMMANDS'."""
    return (isinstance(command, list) and len(command) > 1
            and str(command[1]) in WHAT_IF_COMMANDS)
