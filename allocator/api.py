"""The Python front door: what the CLI calls, for analysts who negotiate budgets in notebooks.

    >>> import allocator
    >>> run = allocator.solve("models/demo.toml", out="runs/demo", force=True)   # doctest: +SKIP
    >>> run.summary["objectives"]                                               # doctest: +SKIP
    >>> run.plan.groupby("site_id")["fte"].sum()                                # doctest: +SKIP
    >>> allocator.open_run("runs/demo").sensitivity.head()                      # doctest: +SKIP

A `Run` is a finished run folder: its tables are read from the folder (the files are the
truth a nightly job and a notebook share) through the same rules the loaders use, so ids stay
text (`007`) and cells the writer protected against formula injection read back as written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from allocator.errors import InputError
from allocator.outputs.readback import read_output_table
from allocator.scenario import toml_literal

if TYPE_CHECKING:
    from allocator.progress import Event
    from allocator.runlog import RunLog

# Shortcuts for the settings people change most; any other setting is `section__key=value`.
SHORTCUTS = {"solver": "solver.name", "time_limit": "solver.time_limit",
             "assignment": "policy.assignment"}


def overrides_from(settings: dict[str, Any]) -> list[str]:
    """Keyword settings as the CLI's `--set KEY=VALUE` strings (values as TOML literals)."""
    items = []
    for key, value in settings.items():
        dotted = SHORTCUTS.get(key, key.replace("__", "."))
        items.append(f"{dotted}={toml_literal(value)}")
    return items


@dataclass(frozen=True)
class Run:
    """A finished run: its folder, its summary, and its tables on demand."""

    folder: Path
    summary: dict[str, Any] = field(repr=False)

    @property
    def exit_code(self) -> int:
        return int(self.summary["exit_code"])

    @property
    def status(self) -> str:
        return str(self.summary["status"])

    @property
    def objectives(self) -> dict[str, float | None]:
        return dict(self.summary["objectives"])

    def tables(self) -> list[str]:
        """The tables this run wrote (model-dependent: ops writes plan, coverage, ...)."""
        return sorted(p.stem for p in self.folder.glob("*.csv"))

    def table(self, name: str) -> pd.DataFrame:
        path = self.folder / f"{name}.csv"
        if not path.exists():
            raise InputError(f"this run has no {name} table (it has: "
                             f"{', '.join(self.tables()) or 'none'})", str(self.folder))
        return read_output_table(path)

    @property
    def plan(self) -> pd.DataFrame:
        return self.table("plan")

    @property
    def coverage(self) -> pd.DataFrame:
        return self.table("coverage")

    @property
    def budgets(self) -> pd.DataFrame:
        return self.table("budgets")

    @property
    def sensitivity(self) -> pd.DataFrame:
        return self.table("sensitivity")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:,.6g}" for k, v in self.objectives.items()
                          if v is not None)
        return (f"Run({self.summary.get('name', '?')!r}, {self.status}"
                f"{', ' + shown if shown else ''}, folder='{self.folder}')")


def open_run(folder: str | Path) -> Run:
    """A run folder written earlier (by the CLI, a nightly job or `solve`)."""
    folder = Path(folder)
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        raise InputError(f"{folder} is not a run folder (no summary.json)", str(folder))
    return Run(folder, json.loads(summary_file.read_text(encoding="utf-8")))


def solve(scenario: str | Path, out: str | Path | None = None, *, force: bool = False,
          accept_timeout: bool = False, on_phase: Callable[[str], None] | None = None,
          overrides: Sequence[str] = (), warm_from: str | Path | None = None,
          warm_source: str | None = None, log: RunLog | None = None, bundle: bool = False,
          on_progress: Callable[[Event], None] | None = None,
          store: str | bool | None = None, record_as: str | Path | None = None,
          record_command: Sequence[str] | None = None, **settings: Any) -> Run:
    """Solve a scenario file and return its run; the same pipeline as `allocator solve`.

    `settings` override the scenario's: `solver="glop"`, `time_limit=30`,
    `assignment="whole"`, or any `section__key=value` (`output__report=False`);
    `overrides` takes the CLI's `KEY=VALUE` strings as they are. `warm_from`: an earlier
    run folder to start the solver from (its basis and plan, matched by business ids;
    allocator/warm.py); `warm_source` names it in the notes. `on_progress` is told of
    phases, stages and the solver's figures as they happen (allocator/progress.py). Without
    `out` the run goes to a new temporary folder (its path is `run.folder`). Bad input
    raises `InputError` (its `.problems` list every problem); an infeasible or timed-out
    run returns normally: look at `run.status` and `run.exit_code`.

    `store`: record the run in the run store as `allocator solve` does (docs/run-store.md):
    True for the default store (`--store`'s default: $ALLOCATOR_STORE, the scenario's
    `[store] url`, else the user's store), or a database URL or SQLite path. Off by default
    in a notebook; `allocator compare` turns it on for the scenarios it solves. A store
    that cannot be written is a warning, never the run's failure. `record_as`: the folder the store
    names for the run when `out` is a temporary place it will be moved from (compare solves
    into its own temporary folder, renamed when the comparison is whole). `record_command`:
    the command line the store records (default: this process's); compare's says "compare",
    which marks the run a what-if for the warm start and `runs drift`.
    """
    import warnings

    from allocator.run import solve_scenario

    target = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="allocator-")) / "run"
    every = [*overrides, *overrides_from(settings)]
    recording = None
    if store:
        from allocator.store.db import resolve_url
        from allocator.store.record import Recording

        named = Path(record_as) if record_as is not None else target
        url = resolve_url(None if store is True else str(store), Path(scenario), named)
        recording = Recording(url, Path(scenario), named, every,
                              warn=lambda msg: warnings.warn(msg, stacklevel=3),
                              note=on_phase or (lambda msg: None),
                              command=None if record_command is None else list(record_command))

    def work() -> Run:
        outcome = solve_scenario(Path(scenario), target, every, force=force,
                                 accept_timeout=accept_timeout, on_phase=on_phase,
                                 warm_from=Path(warm_from) if warm_from is not None else None,
                                 warm_source=warm_source, log=log, bundle=bundle,
                                 on_progress=on_progress)
        return Run(target, outcome.summary)

    if recording is None:
        return work()
    try:
        run = recording.wrap(work)()
    except BaseException as exc:
        from allocator.store.record import exit_code_of

        recording.failed(exit_code_of(exc))
        raise
    recording.finished(run.summary, Path(record_as) if record_as is not None else target)
    return run
