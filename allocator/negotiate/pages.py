"""The sweep and frontier folders: CSVs, one SVG per objective, and a self-contained HTML
page (inline CSS and SVG, no script, no network), written whole by the run-folder writer.

Charts are matplotlib SVG with text as paths (as report.html draws them), so no label from
the data can become markup; every label in the HTML goes through html.escape.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from allocator.outputs.folder import run_folder
from allocator.outputs.report import CSS as REPORT_CSS

if TYPE_CHECKING:
    from allocator.negotiate.session import Session
    from allocator.negotiate.sweep import Vary

# report.html's look, one stylesheet
CSS = REPORT_CSS + ".note{background:#f3f6f9;border-radius:8px;padding:.6rem 1rem}\n"

STAGE_WORDS = {
    "service": "weighted shortfall (demand not served, times its weight; lower is better)",
    "cost": "cost (money)",
    "stability": "stability (twice the FTE moved against the baseline)",
    "value": "value",
}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if not np.isfinite(number):
        return "" if np.isnan(number) else ("unlimited" if number > 0 else "-unlimited")
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    if 0 < abs(number) < 0.001:
        return f"{number:.3g}"
    return f"{number:,.4g}"


def table_html(frame: pd.DataFrame, limit: int = 60, left: Sequence[str] = ()) -> str:
    shown = frame.head(limit)
    head = "".join(f"<th class='{'l' if c in left else ''}'>{esc(c)}</th>" for c in shown)
    body = "".join(
        "<tr>" + "".join(f"<td class='{'l' if c in left else ''}'>"
                         f"{esc(v) if c in left else num(v)}</td>"
                         for c, v in row.items()) + "</tr>"
        for _, row in shown.iterrows())
    more = (f"<p class='muted'>{len(frame) - limit} more rows in the CSV.</p>"
            if len(frame) > limit else "")
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "svg.hashsalt": "allocator"})
    return plt.subplots(figsize=(8.5, 4))


def svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # no RDF links
    return text[text.index("<svg"):]


def page(title: str, sections: Sequence[str]) -> str:
    body = "\n".join(sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>")


# -- sweep ------------------------------------------------------------------------------------


def sweep_plot(frame: pd.DataFrame, stage: str, varies: Sequence[Vary],
               exact: pd.DataFrame | None) -> str:
    """One objective against the first input (one line per value of the second)."""
    fig, ax = figure()
    column = f"objective_{stage}"
    x_name = varies[0].name
    ok = frame[frame["status"].isin(["optimal", "feasible"])]
    if len(varies) == 2:
        for value, part in ok.groupby(varies[1].name, sort=True):
            ax.plot(part[x_name], part[column], marker="o", markersize=3,
                    label=f"{varies[1].name} = {value:.6g}")
    else:
        ax.plot(ok[x_name], ok[column], linestyle="none", marker="o", markersize=4,
                color="#d9604c", label="sweep points (one solve each)")
    if exact is not None:
        curve = exact[exact["stage"] == stage]
        ax.plot(curve["parameter"], curve["objective"], color="#3f6fa8", linewidth=1.5,
                label="exact curve")
        kinks = curve[curve["kind"] == "breakpoint"]
        ax.plot(kinks["parameter"], kinks["objective"], linestyle="none", marker="|",
                markersize=12, color="#1d2733", label="breakpoints (numbered as in the table)")
        for k, (_, row) in enumerate(kinks.iterrows(), start=1):
            if len(kinks) <= 40:
                ax.annotate(str(k), (row["parameter"], row["objective"]), fontsize=7,
                            xytext=(3, 4), textcoords="offset points")
    ax.set_xlabel(x_name)
    ax.set_ylabel(STAGE_WORDS.get(stage, stage))
    ax.set_title(f"{stage} stage optimum against {x_name}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return svg(fig)


def exact_note(stages: Sequence[str]) -> str:
    if len(stages) < 2:
        return ""
    first, later = stages[0], stages[1:]
    return (f"<p class='note'>How to read the {esc(', '.join(later))} curve: at each value of "
            f"the input it is the best {esc(later[0])} of a plan that keeps {esc(first)} at its "
            f"best level <em>for that value</em> (the {esc(first)} curve), as a run at that "
            f"value computes it; e.g. the cost at the optimal service for that budget. It is "
            f"not the cost of keeping today's service level.</p>")


def binding_table(curve: pd.DataFrame) -> str:
    kinks = curve[curve["kind"] == "breakpoint"].reset_index(drop=True)
    if kinks.empty:
        return "<p class='muted'>No breakpoint: the optimum is linear over the range.</p>"
    shown = pd.DataFrame({
        "#": np.arange(1, len(kinks) + 1), "at": kinks["parameter"],
        "optimum": kinks["objective"], "slope before": kinks["slope_before"],
        "slope after": kinks["slope_after"],
        "starts binding": kinks["starts_binding"].str.slice(0, 160),
        "stops binding": kinks["stops_binding"].str.slice(0, 160)})
    return table_html(shown, limit=80, left=("starts binding", "stops binding"))


def write_sweep_folder(out: Path, frame: pd.DataFrame, exact: pd.DataFrame | None,
                       varies: Sequence[Vary], session: Session, journal: Path,
                       force: bool) -> None:
    stages = [c.removeprefix("objective_") for c in frame.columns
              if c.startswith("objective_")]
    plots = {stage: sweep_plot(frame, stage, varies, exact) for stage in stages}
    title = f"Sweep of {session.scenario.name}: " + " × ".join(v.name for v in varies)
    sections = [f"<h1>{esc(title)}</h1>",
                f"<p class='muted'>{len(frame)} points, "
                f"{int(frame['status'].isin(['optimal', 'feasible']).sum())} solved; "
                f"{int(frame['warm'].sum()) if 'warm' in frame else 0} warm-started from a "
                "neighbour's basis. Each row of sweep.csv is one solve of the scenario with "
                "the input(s) set as shown.</p>"]
    for stage in stages:
        sections += [f"<h2>{esc(STAGE_WORDS.get(stage, stage))}</h2>",
                     f"<figure>{plots[stage]}</figure>"]
        if exact is not None:
            sections += [f"<h3>Breakpoints of the {esc(stage)} curve</h3>",
                         binding_table(exact[exact["stage"] == stage])]
    if exact is not None:
        sections.insert(2, exact_note(stages))
    keep = [c for c in frame.columns if not c.startswith(("budget_headroom", "binding_"))
            and c not in ("message", "worker")]
    sections += ["<h2>Points</h2>", table_html(frame[keep], limit=100, left=("status",))]
    with run_folder(out, ["csv"], force) as folder:
        folder.table("sweep", frame)
        if exact is not None:
            folder.table("exact", exact)
        for stage, text in plots.items():
            folder.text(f"sweep_{stage}.svg", text)
        for path in sorted(journal.glob("point-*.parquet")):
            folder.table(path.stem, pd.read_parquet(path))
        folder.text("sweep.html", page(title, sections))


# -- frontier ---------------------------------------------------------------------------------


def frontier_plot(frame: pd.DataFrame, first: str, second: str) -> str:
    fig, ax = figure()
    exact = bool(frame["exact"].all()) if "exact" in frame and len(frame) else False
    ax.plot(frame[first], frame[second], color="#3f6fa8", linewidth=1.5,
            marker="o" if exact else ".", label="Pareto frontier" + (" (exact breakpoints)"
                                                                     if exact else " (samples)"))
    knee = frame[frame["knee"]]
    if len(knee):
        ax.plot(knee[first], knee[second], marker="*", markersize=14, color="#d9604c",
                linestyle="none", label="knee (largest change of slope)")
    ax.set_xlabel(STAGE_WORDS.get(first, first))
    ax.set_ylabel(STAGE_WORDS.get(second, second))
    ax.set_title(f"Best {second} for each level of {first}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return svg(fig)


def write_frontier_folder(out: Path, frame: pd.DataFrame, first: str, second: str,
                          sentences: Sequence[str], title: str,
                          plans: dict[int, dict[str, pd.DataFrame]], force: bool,
                          note: str) -> None:
    plot = frontier_plot(frame, first, second)
    sections = [f"<h1>{esc(title)}</h1>", f"<p class='muted'>{esc(note)}</p>",
                f"<figure>{plot}</figure>", "<h2>What each step costs</h2>",
                "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in sentences[:60]) + "</ul>"
                + (f"<p class='muted'>{len(sentences) - 60} more steps: frontier.csv has "
                   "every breakpoint and the slope on each side.</p>"
                   if len(sentences) > 60 else ""),
                "<h2>Points</h2>", table_html(frame, limit=200, left=("kind",))]
    with run_folder(out, ["csv"], force) as folder:
        folder.table("frontier", frame)
        folder.text("frontier.svg", plot)
        for k, tables in sorted(plans.items()):
            for name, table in tables.items():
                folder.table(f"point-{k:04d}_{name}", table)
        folder.text("frontier.html", page(title, sections))
