"""The comparison a run with a baseline (yesterday's plan, `[tables] baseline`) makes of
itself: the same diff as `allocator diff BASELINE RUN`, written into the run's own folder
with the prefix `baseline_` (baseline_moves.csv, baseline_diff.md, baseline_diff.html ...).

The pipeline calls `write_baseline_diff(folder.tmp, into=folder, summary=summary)` once the
plan tables are written and before the folder is committed, so the files are the run's own
(listed in its marker) and the folder stays complete or absent."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from allocator.diff.engine import RunDiff, diff_runs
from allocator.outputs.folder import RunFolder


def baseline_folder(summary: dict[str, Any]) -> Path | None:
    """Where the run's baseline came from: its recorded source (a plan.csv, in a run folder
    or not); None without a baseline."""
    record = (summary.get("inputs") or {}).get("baseline") or {}
    source = record.get("source")
    if not source:
        return None
    path = Path(str(source))
    return path if path.exists() else None


def write_baseline_diff(run: str | Path, baseline: str | Path | None = None, *,
                        into: RunFolder | None = None, out: str | Path | None = None,
                        summary: dict[str, Any] | None = None,
                        force: bool = False) -> RunDiff | None:
    """Compare the run in folder `run` with its baseline and write the files `into` an open
    run folder (prefix `baseline_`), or into a folder `out` of their own (no prefix).

    `baseline`: a run folder, or a plan file (in a run folder: that run; alone: only its plan
    is compared); default: the run's recorded `baseline` table. `summary` stands in for the
    run's summary.json while it is still being written. None: the run has no baseline."""
    from allocator.diff.write import add_files, write_diff

    run = Path(run)
    if summary is None:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    found = Path(baseline) if baseline is not None else baseline_folder(summary)
    if found is None:
        return None
    if found.is_file() and (found.parent / "summary.json").is_file():
        found = found.parent
    scratch = None
    try:
        if found.is_dir():
            diff = diff_runs(found, run, summary_b=summary)
        else:  # a plan alone: the baseline's plan is what there is to compare
            scratch = Path(tempfile.mkdtemp(prefix="allocator-baseline-"))
            shutil.copyfile(found, scratch / "plan.csv")
            stand_in: dict[str, Any] = {"name": f"baseline {found.name}",
                                        "model": summary.get("model"), "objectives": {},
                                        "inputs": {}}
            diff = diff_runs(scratch, run, summary_a=stand_in, summary_b=summary)
            diff.notes.append(f"the baseline {found} is a plan file, not a run folder: only "
                              "the plan is compared (no objectives, coverage or inputs)")
        if into is not None:
            add_files(diff, into, prefix="baseline_")
        elif out is not None:
            write_diff(diff, out, force=force)
        return diff
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
