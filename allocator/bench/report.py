"""The bench's outputs: summary.csv, instances.csv, summary.md and a self-contained report.html.

The HTML page inlines its CSS and the profile as SVG (text drawn as paths): it opens from a
mail attachment or a CI artifact with no network and no fonts. Every string that came from an
instance or a solver is escaped. Wrong answers lead every output, because a fast wrong
answer at the bottom of a table reads as a fast answer.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from allocator.bench.plots import plot_profile
from allocator.bench.summary import (
    LEGEND,
    RESOLUTION,
    SHIFT,
    Summary,
    common_instances,
    instance_matrix,
    stage_matrix,
)

# Short headers (a terminal is 80 columns); the text around each table says what sgm is.
# solved + wrong + disagree + failed + timeout + unproven = of: one outcome per instance.
CONFIG_COLUMNS = {
    "config": "configuration", "solved": "solved", "instances": "of", "wrong": "wrong",
    "disagree": "disagree", "unproven": "unproven", "timeout": "timeout", "failed": "failed",
    "not_applicable": "n/a", "sgm_s": "sgm s", "sgm_range": "sgm range", "wins": "wins",
    "clear_wins": "clear", "peak_mb": "peak MiB", "base_mb": "idle MiB",
}
SGM_TEXT = (f"sgm s: shifted geometric mean of the solver's time, shift {SHIFT:g} s; times "
            f"under the {RESOLUTION:g} s resolution count as {RESOLUTION:g} s (ties)")
COLUMN_TEXT = (
    "Columns: each instance has one outcome (solved, wrong, disagree, unproven, timeout, "
    "failed; they add up to 'of'; n/a ones are not attempted). 'sgm range': the same mean "
    "over each instance's fastest and slowest replicate. 'wins': instances solved at least "
    "as fast as every other configuration (ties all win; the profile's value at τ = 1); "
    "'clear': won alone, with the slowest replicate faster than every other "
    "configuration's fastest. 'peak MiB': the cell process's peak memory; 'idle MiB': the "
    "same process idle before it read anything (interpreter and solver libraries), so the "
    "solve itself used about the difference."
)

CONVENTION = (
    "Objective constants: an MPS RHS entry on the objective row is read as HiGHS reads it, an "
    "objective constant included in the value (netlib e226 reads -11.6389; the netlib readme's "
    "-18.7519 leaves it out). Both are accepted when expected.csv's note says so."
)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def config_table(summary: Summary) -> pd.DataFrame:
    configs = summary.configs.copy()
    configs["sgm_range"] = [f"[{lo:.4g}–{hi:.4g}]" for lo, hi in
                            zip(configs["sgm_min"], configs["sgm_max"], strict=True)]
    return configs[list(CONFIG_COLUMNS)].rename(columns=CONFIG_COLUMNS)


def legend_lines() -> list[str]:
    return [f"{mark}: {meaning}" for mark, meaning in LEGEND.items()]


def wrong_lines(summary: Summary) -> list[str]:
    return [
        f"{'DISAGREE: ' if r['verdict'] == 'disagree' else ''}{r['instance']} × "
        f"{r['config']} (seed {int(r['seed'])}, repeat {int(r['repeat'])}): {r['verdict_note']}"
        for _, r in summary.wrong.iterrows()
    ]


STAGE_TEXT = ("Scenario files are timed over their whole lexicographic solve (the time "
              "above); each stage's median time:")


def _stage_section_md(summary: Summary) -> list[str]:
    frame = stage_matrix(summary)
    if frame.empty:
        return []
    return ["## Stages", "", STAGE_TEXT, "", markdown_table(frame, index=True), ""]


def _stage_section_html(summary: Summary) -> list[str]:
    frame = stage_matrix(summary)
    if frame.empty:
        return []
    return ["<h2>Stages</h2>", f"<p>{html.escape(STAGE_TEXT)}</p>",
            _html_table(frame, index=True)]


def markdown_table(frame: pd.DataFrame, index: bool = False) -> str:
    """A GitHub table without the optional `tabulate` dependency."""
    data = frame.reset_index() if index else frame
    head = [str(c) for c in data.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in data.itertuples(index=False):
        cells = [_fmt(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(summary: Summary, seconds: float | None = None) -> str:
    parts = ["# Benchmark summary", ""]
    if len(summary.wrong):
        parts += [f"## WRONG ANSWERS ({len(summary.wrong)})", ""]
        parts += [f"- {line}" for line in wrong_lines(summary)] + [""]
    common = common_instances(summary.cells)
    parts += [
        f"{summary.results['instance'].nunique()} instances, "
        f"{summary.results['config'].nunique()} configurations, {summary.replicates} "
        f"replicate(s), {len(summary.results)} cells"
        + (f", {seconds:.0f} s wall" if seconds is not None else "") + ". "
        f"Times are the solver's own (median over replicates); an unsolved instance is charged "
        f"its time limit. {SGM_TEXT}, over the {len(common)} instances every configuration "
        "can attempt.", "",
        markdown_table(config_table(summary)), "",
        COLUMN_TEXT, "", summary.noise_note(), "",
        "## Per instance", "",
        markdown_table(instance_matrix(summary), index=True), "",
        "Legend:", "", *[f"- `{line.split(': ', 1)[0]}`: {line.split(': ', 1)[1]}"
                         for line in legend_lines()], "",
        *_stage_section_md(summary),
        "## Conventions", "", f"- {CONVENTION}",
    ]
    parts += [f"- {line}" for line in summary.conventions]
    return "\n".join(parts) + "\n"


def _html_table(frame: pd.DataFrame, index: bool = False) -> str:
    data = frame.reset_index() if index else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in data.columns)
    body = []
    for row in data.itertuples(index=False):
        cells = []
        for value in row:
            text = _fmt(value)
            css = ' class="wrong"' if "WRONG" in text or "DISAGREE" in text else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.alarm{background:#fde2e1;border:2px solid #c00;padding:.5rem 1rem}
.alarm h2{color:#c00;margin:.2rem 0}
td.wrong{background:#fde2e1;color:#900;font-weight:bold}
figure{margin:1rem 0} figure svg{max-width:100%;height:auto}
dt{font-weight:bold;float:left;clear:left;width:6rem} dd{margin:0 0 .2rem 6.5rem}
"""


def to_html(summary: Summary, svg: str, seconds: float | None = None) -> str:
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<title>allocator bench</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Benchmark summary</h1>"]
    if len(summary.wrong):
        items = "".join(f"<li>{html.escape(line)}</li>" for line in wrong_lines(summary))
        parts.append(f"<div class='alarm'><h2>{len(summary.wrong)} wrong or disputed "
                     "answer(s)</h2>"
                     f"<ul>{items}</ul></div>")
    wall = f", {seconds:.0f} s wall" if seconds is not None else ""
    parts += [
        f"<p>{summary.results['instance'].nunique()} instances, "
        f"{summary.results['config'].nunique()} configurations, {summary.replicates} "
        f"replicate(s), {len(summary.results)} cells{wall}. Times are the solver's own "
        "(median over replicates); unsolved instances are charged their time limit. "
        f"{html.escape(SGM_TEXT)}.</p>",
        _html_table(config_table(summary)),
        f"<p>{html.escape(COLUMN_TEXT)}</p>", f"<p>{html.escape(summary.noise_note())}</p>",
        "<h2>Performance profile</h2>", f"<figure>{svg}</figure>",
        "<h2>Per instance</h2>", _html_table(instance_matrix(summary), index=True),
        "<h3>Legend</h3><dl>", *[f"<dt>{html.escape(m)}</dt><dd>{html.escape(t)}</dd>"
                                 for m, t in LEGEND.items()], "</dl>",
        *_stage_section_html(summary),
        "<h2>Conventions</h2><ul>", f"<li>{html.escape(CONVENTION)}</li>",
    ]
    parts += [f"<li>{html.escape(line)}</li>" for line in summary.conventions]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def write_outputs(summary: Summary, out_dir: Path, formats: tuple[str, ...] = ("png", "svg"),
                  seconds: float | None = None) -> list[Path]:
    """Every output beside results.csv; returns the files written."""
    written = []
    for name, frame in (("summary.csv", summary.configs), ("instances.csv", summary.cells)):
        frame.to_csv(out_dir / name, index=False)
        written.append(out_dir / name)
    (out_dir / "summary.md").write_text(to_markdown(summary, seconds))
    written.append(out_dir / "summary.md")
    figures = [out_dir / f"profile.{fmt}" for fmt in dict.fromkeys([*formats, "svg"])]
    written += plot_profile(summary.cells, common_instances(summary.cells), figures)
    svg = (out_dir / "profile.svg").read_text()
    svg = svg[svg.find("<svg"):]  # inline: drop the XML prolog and doctype
    (out_dir / "report.html").write_text(to_html(summary, svg, seconds))
    written.append(out_dir / "report.html")
    if "svg" not in formats:
        (out_dir / "profile.svg").unlink()
        written.remove(out_dir / "profile.svg")
    return written
