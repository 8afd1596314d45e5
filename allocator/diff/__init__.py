"""What changed between two runs, and why: `allocator diff A B` (docs/diff.md).

`diff_runs(a, b)` is the engine (frames keyed by business ids); `write_diff` writes its
folder; `write_baseline_diff` is the comparison a run with a baseline makes of itself."""

from __future__ import annotations

from allocator.diff.baseline import baseline_folder, write_baseline_diff
from allocator.diff.daygen import NextDay, next_day
from allocator.diff.engine import RunDiff, diff_runs
from allocator.diff.write import render_html, render_md, write_diff

__all__ = ["NextDay", "RunDiff", "baseline_folder", "diff_runs", "next_day", "render_html",
           "render_md", "write_baseline_diff", "write_diff"]
