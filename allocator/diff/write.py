"""A diff's files: the tables as CSV, diff.md, and diff.html (one self-contained page: inline
CSS and SVG drawn by matplotlib with text as paths, no script, no network, as report.html),
written through the run folder's atomic writer (complete or absent)."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.diff.engine import RunDiff, num
from allocator.outputs.folder import RunFolder, check_target, run_folder
from allocator.outputs.report import CSS as REPORT_CSS

CSS = REPORT_CSS + "li{margin:.2rem 0}\n"  # report.html's look, one stylesheet
LIMIT = 40  # rows of each table shown in diff.md / diff.html (the CSV files hold them all)

# file name -> RunDiff attribute (the names the issue gives first)
FILES = {"moves": "moves", "coverage_diff": "coverage", "budgets_diff": "budgets",
         "objectives": "objectives", "constraints_diff": "constraints",
         "inputs_diff": "inputs", "input_changes": "input_changes", "plan_diff": "plan"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cells(frame: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in frame.itertuples(index=False):
        rows.append([num(v) if isinstance(v, (int, float, np.number)) and not isinstance(
            v, (bool, np.bool_)) else ("" if v is None or (isinstance(v, float) and np.isnan(v))
                                       else str(v)) for v in row])
    return rows


def _md_table(frame: pd.DataFrame, limit: int = LIMIT) -> str:
    if frame.empty:
        return "_No rows._\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
            for row in _cells(frame.head(limit))]
    more = f"\n_{len(frame) - limit} more rows in the CSV file._\n" if len(frame) > limit else ""
    return "\n".join([head, rule, *body]) + "\n" + more


def _html_table(frame: pd.DataFrame, limit: int = LIMIT) -> str:
    if frame.empty:
        return "<p class='muted'>No rows.</p>"
    head = "".join(f"<th class='l'>{_e(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td class='l'>{_e(c)}</td>" for c in row) + "</tr>"
        for row in _cells(frame.head(limit)))
    more = (f"<p class='muted'>{len(frame) - limit} more rows in the CSV file.</p>"
            if len(frame) > limit else "")
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def waterfall_svg(steps: pd.DataFrame, title: str, unit: str) -> str:
    """A waterfall chart as inline SVG: the totals as full bars, each cause floating from the
    running total (rises red, falls green: more cost or shortfall is worse)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    # no date, fixed ids: the same diff gives the same bytes
    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "svg.hashsalt": "allocator"})
    fig, ax = plt.subplots(figsize=(9, 3.6))
    running, lows, heights, colors = 0.0, [], [], []
    for row in steps.itertuples(index=False):
        if row.kind == "total":
            lows.append(0.0)
            heights.append(row.value)
            colors.append("#5b7aa3")
            running = row.value
        else:
            lows.append(running if row.value >= 0 else running + row.value)
            heights.append(abs(row.value))
            colors.append("#c8553d" if row.value > 0 else "#3f9c6b")
            running += row.value
    x = np.arange(len(steps))
    ax.bar(x, heights, bottom=lows, color=colors, width=0.6)
    for i, row in enumerate(steps.itertuples(index=False)):
        label = num(row.value) if row.kind == "total" else ("+" if row.value > 0 else "") + \
            num(row.value)
        ax.text(i, lows[i] + heights[i], label, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [str(s) for s in steps["step"]], rotation=15, ha="right")
    ax.set_ylabel(unit)
    levels = [v for lo, h, kind in zip(lows, heights, steps["kind"], strict=True)
              for v in ((lo + h,) if kind == "total" else (lo, lo + h))]
    top = max(levels) if levels else 1.0
    bottom = min(0.0, min(levels)) if levels else 0.0
    if levels and min(levels) > 0:  # zoom on the changes, as finance reads a waterfall
        span = max(top - min(levels), 1e-9 * top)
        zoom = max(0.0, min(levels) - 1.5 * span)
        if zoom > 0:
            bottom = zoom
            title = f"{title} (axis from {num(zoom)})"
    ax.set_ylim(bottom, top + 0.08 * max(top - bottom, 1e-9))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: num(v)))
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


UNITS = {"cost": ("Cost by cause", "money (plan cost)"),
         "shortfall": ("Shortfall by cause", "shortfall (demand units)")}


def _title(diff: RunDiff) -> str:
    return f"{diff.summary_a.get('name', diff.a)} → {diff.summary_b.get('name', diff.b)}"


def _sections(diff: RunDiff) -> list[tuple[str, pd.DataFrame, str]]:
    """(heading, rows shown, file) in reading order."""
    moves = diff.moves.drop(columns=["staff_change"], errors="ignore")
    return [
        ("Objectives", diff.objectives, "objectives.csv"),
        ("Inputs: tables", diff.inputs[["table", "status", "rows_a", "rows_b", "rows_added",
                                        "rows_removed", "rows_changed", "note"]],
         "inputs_diff.csv"),
        ("Inputs: rows and cells", diff.input_changes[
            ["table", "change", "key", "row_a", "row_b", "column", "value_a", "value_b",
             "rel_change"]], "input_changes.csv"),
        *([("Moves (staff × site × service)", moves, "moves.csv")] if len(moves.columns)
          else [("Plan", diff.plan, "plan_diff.csv")]),
        ("Coverage", diff.coverage[diff.coverage.get(
            "shortfall_delta", pd.Series(0, index=diff.coverage.index)).abs().gt(1e-9)
            | diff.coverage.get("served_delta", pd.Series(0, index=diff.coverage.index))
            .abs().gt(1e-9)] if not diff.coverage.empty else diff.coverage,
         "coverage_diff.csv"),
        *([("Budgets", diff.budgets, "budgets_diff.csv")] if len(diff.budgets.columns)
          else []),
        ("Constraints whose binding or shadow price changed", diff.constraints,
         "constraints_diff.csv"),
    ]


def render_md(diff: RunDiff) -> str:
    lines = [f"# What changed: {_title(diff)}", "",
             f"A: `{diff.a}`  ", f"B: `{diff.b}`", "", "## The story", ""]
    lines += [f"- {s}" for s in diff.story] or ["- Nothing changed."]
    if diff.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in diff.notes]
    for name, steps in diff.waterfalls.items():
        lines += ["", f"## {UNITS[name][0]}", "", _md_table(steps)]
    lines += ["", "Causes are the changed input rows whose ids the plan row shares (staff, "
              "site, service, site × service); 're-planning' is what no changed input speaks "
              "of: the optimizer's knock-on moves."]
    for heading, frame, file in _sections(diff):
        lines += ["", f"## {heading} (`{file}`)", "", _md_table(frame)]
    return "\n".join(lines) + "\n"


def render_html(diff: RunDiff) -> str:
    body = [f"<h1>What changed: {_e(_title(diff))}</h1>",
            f"<p class='muted'>A: {_e(diff.a)}<br>B: {_e(diff.b)}</p>", "<h2>The story</h2>",
            "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in diff.story or ["Nothing changed."])
            + "</ul>"]
    if diff.notes:
        body += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in diff.notes)
                 + "</ul>"]
    for name, steps in diff.waterfalls.items():
        title, unit = UNITS[name]
        body += [f"<h2>{_e(title)}</h2>",
                 f"<figure class='waterfall' id='waterfall-{name}'>"
                 f"{waterfall_svg(steps, title, unit)}</figure>"]
    if diff.waterfalls:
        body.append("<p class='muted'>Causes are the changed input rows whose ids a plan row "
                    "shares (staff, site, service, site × service); re-planning is what no "
                    "changed input speaks of.</p>")
    for heading, frame, file in _sections(diff):
        body += [f"<h2>{_e(heading)} <span class='muted'>({_e(file)})</span></h2>",
                 _html_table(frame)]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{_e('Diff ' + _title(diff))}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")


def add_files(diff: RunDiff, folder: RunFolder, prefix: str = "") -> None:
    """Every file of the diff into an open run folder (names prefixed: `baseline_` in a run
    that compares itself with its baseline)."""
    for file, attr in FILES.items():
        frame = getattr(diff, attr)
        if attr == "plan" and diff.model == "ops":
            continue  # moves.csv says it by the ops ids
        if isinstance(frame, pd.DataFrame) and len(frame.columns):
            folder.table(prefix + file, frame.copy())
    for name, steps in diff.waterfalls.items():
        folder.table(f"{prefix}waterfall_{name}", steps.copy())
    folder.text(f"{prefix}diff.md", render_md(diff))
    folder.text(f"{prefix}diff.html", render_html(diff))


def refuse_out_over_inputs(out: str | Path, inputs: list[Path]) -> None:
    """--out must not be one of the runs being read, nor hold one, nor sit inside one:
    `--force` would replace a run the user asked us only to read (it is allocator's, so the
    run folder writer alone would allow it), or the new files would land inside it."""
    from allocator.errors import InputError, Problem

    target = Path(out).expanduser().resolve()
    problems = []
    for item in inputs:
        where = Path(item).expanduser().resolve()
        if where == target or target in where.parents or where in target.parents:
            how = ("is" if where == target else "holds" if target in where.parents
                   else "is inside")
            problems.append(Problem("--out", f"{out} {how} the run {item} being compared: "
                                             "give another --out (the inputs are only read)"))
    if problems:
        raise InputError(problems)


def refuse_other_kind(out: str | Path, force: bool, kind_file: str, kind: str) -> None:
    """--force replaces an earlier output of the same command, not any folder allocator
    wrote: `diff ... --out runs/monday --force` replaced Monday's run with a diff (the
    run folder writer alone allows it, the run being allocator's)."""
    import os

    from allocator.errors import InputError

    target = Path(out).expanduser()
    if not force or target.is_symlink() or not target.is_dir():
        return
    try:
        names = os.listdir(target)
    except OSError:
        return  # check_target says why
    if not names or kind_file in names:
        return
    what = "a run (summary.json)" if "summary.json" in names else (
        "an allocator output of another kind" if ".allocator-run" in names else "other files")
    raise InputError(f"output folder {out} holds {what}, not an earlier `allocator {kind}`'s "
                     f"output: --force replaces only that (or an empty folder); give another "
                     "--out", "--out")


def write_diff(diff: RunDiff, out: str | Path, force: bool = False) -> Path:
    """The diff's folder, complete or absent (the run folder's atomic writer: an existing
    folder is replaced only with `force`, and only if allocator wrote it)."""
    target = Path(out)
    refuse_out_over_inputs(target, [diff.a, diff.b])
    refuse_other_kind(target, force, "diff.md", "diff")
    check_target(target, force)
    with run_folder(target, ("csv",), force) as folder:
        add_files(diff, folder)
    return target
