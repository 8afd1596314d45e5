"""report.html: one self-contained page (inline CSS and SVG charts, no script, no network).

matplotlib draws the charts as SVG with text as paths, so a label from the data can never
become markup; every label in the HTML itself goes through html.escape. No JavaScript at
all: the page opens anywhere, including mail clients and air-gapped laptops.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator.formulations.base import ReportWords

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2733;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d6dde5;padding-bottom:.3rem}
.kpis{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.kpi{background:#f3f6f9;border-radius:8px;padding:.6rem 1rem;min-width:9rem}
.kpi b{display:block;font-size:1.25rem}.kpi span{font-size:.8rem;color:#55606d}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #d6dde5;padding:.25rem .5rem;text-align:right}
th{background:#f3f6f9}td.l,th.l{text-align:left}
.ok{background:#e3f4e8}.mid{background:#fff4d6}.bad{background:#fbe1df}
.muted{color:#55606d;font-size:.85rem}figure{margin:.5rem 0}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if not np.isfinite(number):
        return "unlimited" if number > 0 else ("-unlimited" if number < 0 else "")
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    if 0 < abs(number) < 0.001:  # 0.0000264, not 2.64e-05
        return f"{number:.{2 - int(np.floor(np.log10(abs(number))))}f}"
    return f"{number:,.3g}"


MONEY_COLUMNS = {"amount", "spent", "headroom", "cost", "cost_per_fte", "cost_saving_per_fte",
                 "plan_cost", "money"}


def _money(value: Any) -> str:
    """Money in whole units with thousands separators (no -0)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if not np.isfinite(number):
        return _num(number)
    return f"{round(number) + 0:,}"


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9})
    return plt.subplots(figsize=(9, height))


def _table(frame: pd.DataFrame, limit: int = 40, left: int = 1, source: str = "",
           empty: str = "No rows.") -> str:
    if frame is None or frame.empty:
        return f"<p class='muted'>{_e(empty)}</p>"
    head = "".join(f"<th class='{'l' if i < left else ''}'>{_e(c)}</th>"
                   for i, c in enumerate(frame.columns))
    body = []
    money = [str(c) in MONEY_COLUMNS for c in frame.columns]
    for row in frame.head(limit).itertuples(index=False):
        cells = "".join(
            f"<td class='l'>{_e(v)}</td>" if i < left or isinstance(v, str)
            else f"<td>{_money(v) if money[i] else _num(v)}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    where = f" in {_e(source)}" if source else ""
    more = (f"<p class='muted'>{len(frame) - limit} more rows{where}.</p>"
            if len(frame) > limit else "")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _coverage_grid(coverage: pd.DataFrame) -> str:
    grid = coverage.pivot_table(index="site_id", columns="service_id", values="served_share",
                                aggfunc="first")
    head = "<th class='l'>site</th>" + "".join(f"<th>{_e(c)}</th>" for c in grid.columns)
    rows = []
    for site, values in grid.iterrows():
        cells = []
        for v in values:
            if pd.isna(v):
                cells.append("<td></td>")
                continue
            cls = "ok" if v >= 0.999 else ("mid" if v >= 0.8 else "bad")
            cells.append(f"<td class='{cls}'>{v:.0%}</td>")
        rows.append(f"<tr><td class='l'>{_e(site)}</td>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


CHART_SITES = 40  # bars in the coverage chart: beyond this a chart is unreadable (and slow)


def _coverage_chart(coverage: pd.DataFrame) -> str:
    by_site = coverage.groupby("site_id")[["served", "shortfall"]].sum()
    hidden = max(len(by_site) - CHART_SITES, 0)
    # The sites a reader must see are those short of their targets: largest shortfall on top.
    by_site = by_site.sort_values(["shortfall", "served"], ascending=False, kind="stable")
    by_site = by_site.head(CHART_SITES).iloc[::-1]
    fig, ax = _figure(max(2.5, 0.25 * len(by_site) + 1))
    y = np.arange(len(by_site))
    ax.barh(y, by_site["served"], color="#4c8c6c", label="served")
    ax.barh(y, by_site["shortfall"], left=by_site["served"], color="#d9604c",
            label="shortfall")
    ax.set_yticks(y, [str(s) for s in by_site.index])
    ax.set_xlabel("workload units")
    ax.legend(loc="lower right")
    note = (f"<p class='muted'>The {CHART_SITES} sites with the largest shortfall; "
            f"{hidden} more sites in coverage.csv and the grid below.</p>" if hidden else "")
    return _svg(fig) + note


def _budget_chart(budgets: pd.DataFrame) -> str:
    fig, ax = _figure(max(2.0, 0.35 * len(budgets) + 1))
    y = np.arange(len(budgets))
    ax.barh(y, budgets["amount"], color="#d6dde5", label="amount")
    ax.barh(y, budgets["spent"], color="#3f6fa8", height=0.5, label="spent")
    ax.set_yticks(y, [str(b) for b in budgets["budget_id"]])
    _money_axis(ax.xaxis)
    ax.set_xlabel("money")
    ax.legend(loc="lower right")
    return _svg(fig)


def _money_axis(axis) -> None:
    """Whole units with thousands separators, never a `1e7` offset."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))


PRICE_AXIS = {"service": "units of weighted shortfall avoided per step of the input",
              "cost": "money saved per step of the input (service held at its best level)",
              "stability": "FTE moved avoided per step of the input"}


def _price_chart(bottlenecks: pd.DataFrame) -> str:
    """One chart per stage: one unit on each axis."""
    parts = []
    for stage, rows in bottlenecks.groupby("stage", sort=False):
        top = rows.head(12).iloc[::-1]
        fig, ax = _figure(max(2.0, 0.35 * len(top) + 1))
        y = np.arange(len(top))
        if "per_step" in top:
            gain = top["per_step"].abs().to_numpy(dtype=float)
        else:
            gain = (top["dual"].abs() * top["step"]).to_numpy()
        ax.barh(y, gain, color="#8a5fb0")
        names = [f"{f} {lab} (per {_num(st)})" for f, lab, st in
                 zip(top["family"], top["labels"], top["step"], strict=True)]
        ax.set_yticks(y, names)
        if stage == "cost":
            _money_axis(ax.xaxis)
        else:
            ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_xlabel(PRICE_AXIS.get(str(stage), f"{stage} objective per step of the input"))
        parts.append(f"<figure><figcaption>{_e(stage)} stage</figcaption>{_svg(fig)}</figure>")
    return "".join(parts)


def _moved_constant(summary: dict[str, Any], ladders: pd.DataFrame) -> float:
    """The moved row holds 2 x max_moved_fte minus the baseline FTE that must move anyway."""
    limit = (summary.get("policy") or {}).get("max_moved_fte")
    moved = ladders[ladders["family"] == "moved"]
    if limit is None or moved.empty or "rhs_today" not in moved:
        return 0.0
    return 2.0 * float(limit) - float(moved["rhs_today"].iloc[0])


def _ladder_charts(ladders: pd.DataFrame, moved_constant: float = 0.0,
                   stage_scale: Mapping[str, float] | None = None) -> str:
    stage_scale = stage_scale or {}

    parts = []
    for (stage, family, label), rungs in ladders.groupby(["stage", "family", "labels"],
                                                         sort=False):
        numeric = [c for c in ("rhs_from", "rhs_to", "dual", "rhs", "rhs_today") if c in rungs]
        rungs = rungs.astype(dict.fromkeys(numeric, float)).sort_values("rhs_from")
        # In the user's units: max_moved_fte (the row holds twice it), FTE moved.
        to_input = (lambda v: (v + moved_constant) / 2.0) if family == "moved" else \
            (lambda v: v)
        price_scale = (2.0 if family == "moved" else 1.0) * stage_scale.get(str(stage), 1.0)
        fig, ax = _figure(2.2)
        finite = rungs[np.isfinite(rungs["rhs_from"]) | np.isfinite(rungs["rhs_to"])]
        lows = to_input(finite["rhs_from"].replace(-np.inf, np.nan))
        highs = to_input(finite["rhs_to"].replace(np.inf, np.nan))
        span = np.nanmax(highs.to_numpy(dtype=float)) if highs.notna().any() else 1.0
        base = np.nanmin(lows.to_numpy(dtype=float)) if lows.notna().any() else 0.0
        pad = 0.1 * max(abs(span - base), 1.0)
        for row in finite.itertuples(index=False):
            lo = to_input(row.rhs_from) if np.isfinite(row.rhs_from) else base - pad
            hi = to_input(row.rhs_to) if np.isfinite(row.rhs_to) else span + pad
            ax.plot([lo, hi], [row.dual * price_scale] * 2, color="#3f6fa8", linewidth=2)
        if "rhs_today" in rungs and len(rungs):
            ax.axvline(to_input(float(rungs["rhs_today"].iloc[0])), color="#999",
                       linestyle=":")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        if family == "budget":
            _money_axis(ax.xaxis)
        else:
            ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_xlabel("max_moved_fte" if family == "moved" else
                      ("FTE" if family in ("fte", "capacity", "min_staff") else
                       ("budget amount (money)" if family == "budget" else "right-hand side")))
        unit = {"service": "shortfall units", "cost": "money",
                "stability": "FTE moved"}.get(str(stage), "objective")
        per = {"budget": "per unit of money", "moved": "per FTE allowed to move"}.get(
            str(family), "per FTE")
        ax.set_ylabel(f"{unit} {per}")
        parts.append(f"<figure><figcaption>{_e(stage)} stage: {_e(family)} "
                     f"{_e(label)}</figcaption>{_svg(fig)}</figure>")
    return "".join(parts)


STAGE_KPI = {"service": "weighted shortfall (units; service stage)",
             "cost": "cost (cost stage)", "stability": "FTE moved (stability stage)"}


def _plan_totals(plan: pd.DataFrame, sites: pd.DataFrame | None) -> str:
    """The plan as totals: FTE by site and service, and each site's FTE and cost."""
    if plan is None or plan.empty or not {"site_id", "service_id", "fte"} <= set(plan):
        return "<p class='muted'>The plan assigns nobody.</p>"
    grid = plan.pivot_table(index="site_id", columns="service_id", values="fte",
                            aggfunc="sum", fill_value=0.0)
    grid["total FTE"] = grid.sum(axis=1)
    if "cost" in plan:
        grid["cost"] = plan.groupby("site_id")["cost"].sum().reindex(grid.index)
    grid = grid.reset_index()
    total = {c: grid[c].sum() for c in grid.columns if c != "site_id"}
    grid = pd.concat([grid, pd.DataFrame([{"site_id": "all sites", **total}])],
                     ignore_index=True)
    people = plan["staff_id"].nunique() if "staff_id" in plan else None
    said = f" ({people:,} staff rows assigned)" if people is not None else ""
    return (f"<p class='muted'>FTE by site and service{said}; one row per person and "
            "assignment in plan.csv.</p>" + _table(grid, limit=200, source="sites.csv"))


def _changes(changes: pd.DataFrame | None) -> str:
    if changes is None:
        return ""
    moved = changes[changes["change_fte"].abs() > 1e-9] if not changes.empty else changes
    if moved.empty:
        return ("<h2>Changes against the baseline</h2><p class='muted'>No site or service "
                "changes its FTE against the baseline.</p>")
    return ("<h2>Changes against the baseline</h2>"
            + _table(moved, left=2, source="changes.csv"))


def _hiring(hiring: pd.DataFrame | None,
            hiring_sentences: Callable[[pd.DataFrame | None], list[str]] | None) -> str:
    if hiring is None or hiring_sentences is None:
        return ""
    said = hiring_sentences(hiring)
    if not said:
        return ("<h2>Where to hire new people</h2><p class='muted'>No hire at any site would "
                "reduce the shortfall at the margin (hiring.csv holds every site and "
                "skill).</p>")
    shown = hiring[hiring["value_per_fte"].fillna(0) > 1e-9].head(10)
    columns = [c for c in ("site_id", "skill", "cost_per_fte", "value_per_fte",
                           "holds_up_to_fte", "cost_saving_per_fte") if c in shown]
    return ("<h2>Where to hire new people</h2><ul>" + "".join(f"<li>{_e(h)}</li>" for h in said)
            + "</ul>" + _table(shown[columns], left=2, source="hiring.csv"))


def _cost_words(summary: dict[str, Any], plan_cost: float | None) -> str:
    """One cost figure: the plan's, and why the cost stage's optimum differs if it does."""
    stage = next((st for st in summary["stages"] if st["name"] == "cost"), None)
    if stage is None or plan_cost is None or stage.get("objective") is None:
        return ""
    optimum = float(stage["objective"])
    if abs(optimum - plan_cost) <= 0.5:
        return ""
    later = [st["name"] for st in summary["stages"]][
        [st["name"] for st in summary["stages"]].index("cost") + 1:]
    why = (f"the later stage ({', '.join(later)}) may spend up to objective.rel_tol / abs_tol "
           "above the cost optimum to do better on its own objective" if later else
           "the plan's figures are rounded")
    return (f"<p class='muted'>The plan costs {plan_cost:,.0f}; the cost stage's optimum was "
            f"{optimum:,.0f}: {_e(why)}.</p>")


def _known_seconds(summary: dict[str, Any]) -> str:
    """The run's time so far: the report is written before the run's total is known."""
    seconds = summary.get("seconds") or {}
    if "total" in seconds:
        return f"{seconds['total']:.2f} s"
    known = sum(v for k, v in seconds.items() if k not in ("write", "total"))
    return f"{known:.2f} s to load, build, solve and analyze (writing the files not included)"


def render_report(title: str, summary: dict[str, Any], tables: dict[str, Any],
                  words: ReportWords | None = None) -> str:
    """report.html: generic sections, in the model's own words where it gives them."""
    words = words or ReportWords()
    plan, coverage = tables.get("plan"), tables.get("coverage")
    budgets, bottlenecks = tables.get("budgets"), tables.get("bottlenecks")
    ladders = tables.get("ladders")
    kpis = [("status", summary["status"])]
    plan_cost = float(plan["cost"].sum()) if plan is not None and "cost" in plan else None
    for stage in summary["stages"]:
        value = stage["objective"]
        if stage["name"] == "stability" and value is not None:
            value = 0.5 * value  # the model counts additions and removals: 2 per FTE moved
        if stage["name"] == "cost" and plan_cost is not None:
            continue  # one cost figure: the plan's (below)
        kpis.append((STAGE_KPI.get(stage["name"], f"{stage['name']} stage"), _num(value)))
    if coverage is not None and {"served", "demand"} <= set(coverage.columns) and \
            coverage["demand"].sum() > 0:
        share = coverage["served"].sum() / coverage["demand"].sum()
        kpis.append(("demand served", f"{share:.1%}"))
        kpis.append(("unmet workload (units)",
                     _num(coverage["demand"].sum() - coverage["served"].sum())))
    if plan is not None and {"fte", "cost"} <= set(plan.columns):
        kpis += [("FTE allocated", _num(plan["fte"].sum())),
                 ("plan cost (money)", f"{plan_cost:,.0f}")]
    size = summary["model_size"]
    kpi_html = "".join(f"<div class='kpi'><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                       for k, v in kpis)
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>allocator {_e(summary['version'])} · solver "
        f"{_e(summary['solver']['name'])}"
        f" · {size['rows']:,} rows × {size['columns']:,} columns, {size['nonzeros']:,} nonzeros"
        f" · {_e(_known_seconds(summary))}</p>",
        f"<div class='kpis'>{kpi_html}</div>",
    ]
    notes = dict.fromkeys(words.stage_notes[st["name"]] for st in summary["stages"]
                          if st["name"] in words.stage_notes)
    sections += [f"<p class='muted'>{_e(note)}</p>" for note in notes]
    sections.append(_cost_words(summary, plan_cost))
    if plan is not None and {"site_id", "service_id", "fte"} <= set(plan.columns):
        sections += ["<h2>The plan: FTE by site and service</h2>",
                     _plan_totals(plan, tables.get("sites")), _changes(tables.get("changes"))]
    ops_coverage = {"site_id", "service_id", "served", "shortfall", "served_share"}
    if coverage is not None and not coverage.empty and ops_coverage <= set(coverage.columns):
        sections += ["<h2>Coverage by site and service</h2>", _coverage_chart(coverage),
                     _coverage_grid(coverage)]
    if budgets is not None and not budgets.empty and {"budget_id", "amount", "spent"} <= set(
            budgets.columns):
        sections += ["<h2>Budget use</h2>", _budget_chart(budgets),
                     _table(budgets, source="budgets.csv")]
    sections.append(_hiring(tables.get("hiring"), words.hiring))
    shown = {"coverage", "budgets", "bottlenecks", "ladders", "sensitivity", "marginals",
             "hiring", "changes"}
    if plan is not None and {"site_id", "service_id", "fte"} <= set(plan.columns):
        shown |= {"plan", "sites"}
    for name, frame in tables.items():
        if name in shown or frame is None or not isinstance(frame, pd.DataFrame):
            continue
        note = words.table_notes.get(name)
        sections += [f"<h2>{_e(name.replace('_', ' ').capitalize())}</h2>",
                     f"<p class='muted'>{_e(note)}</p>" if note else "",
                     _table(frame, source=f"{name}.csv")]
    marginals = tables.get("marginals")
    if marginals is not None and not marginals.empty:
        sections += ["<h2>Marginal values (MIP re-solves)</h2>",
                     _table(marginals, left=3, source="marginals.csv")]
    if bottlenecks is not None and not bottlenecks.empty:
        sentence = words.sentence
        items = "".join(
            f"<li>{_e(row['sentence'] if 'sentence' in row else sentence(row))}</li>"
            for _, row in bottlenecks.head(15).iterrows())
        # Prices without a range (a decomposed run's): no range columns, whose empty cells
        # would read as "unlimited".
        ranged = "range_kind" not in bottlenecks or \
            not (bottlenecks["range_kind"] == "marginal").all()
        columns = [c for c in ("stage", "family", "labels", "input", "input_value",
                               "price_per_input", "holds_from", "holds_to", "range_kind")
                   if c in bottlenecks and (ranged or c not in ("holds_from", "holds_to"))] \
            if "input" in bottlenecks else \
            ["stage", "family", "labels", "dual", "rhs", "rhs_low", "rhs_high", "impact"]
        defined = ("<p class='muted'>FTE moved = half the sum of |plan − baseline| over "
                   "staff, site and service: moving 1 FTE from one place to another is 1 FTE "
                   "moved.</p>" if any(st["name"] == "stability" for st in summary["stages"])
                   else "")
        said = words.table_notes.get("bottlenecks")
        defined += f"<p class='muted'>{_e(said)}</p>" if said else ""
        sections += ["<h2>Bottlenecks</h2>", defined, f"<ol>{items}</ol>",
                     "<h2>Shadow prices</h2>", _price_chart(bottlenecks),
                     _table(bottlenecks[columns], left=3, source="bottlenecks.csv")]
    if ladders is not None and not ladders.empty:
        answers = words.what_if(ladders) if words.what_if else []
        if answers:
            sections += ["<h2>What if a budget changes by 10%</h2>",
                         "<ul>" + "".join(f"<li>{_e(a)}</li>" for a in answers) + "</ul>"]
        sections += ["<h2>Price ladders</h2>",
                     "<p class='muted'>How each top bottleneck's price steps as its "
                     "right-hand side moves (exact breakpoints; dotted line: today).</p>",
                     _ladder_charts(ladders, _moved_constant(summary, ladders), words.stage_scale)]
    warnings = summary.get("warnings") or []
    if warnings:
        sections += ["<h2>Warnings</h2>", "<ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings)
                     + "</ul>"]
    body = "\n".join(sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>")


def render_infeasible_report(title: str, summary: dict[str, Any],
                             diagnosis: dict[str, Any]) -> str:
    """report.html for a run with no plan: why (the conflict in a sentence), the
    recommended repair, every option with its price, and the conflicting input rows."""
    sections = [f"<h1>{_e(title)}: no plan can be made</h1>",
                f"<p class='muted'>allocator {_e(summary.get('version', ''))} · status "
                f"{_e(summary.get('status', 'infeasible'))} · {_e(_known_seconds(summary))}"
                "</p>"]
    said = diagnosis.get("summary")
    if said:
        sections.append(f"<p><b>Why:</b> {_e(said)}</p>")
    if diagnosis.get("recommendation"):
        text = str(diagnosis["recommendation"])
        sections.append(f"<p><b>{_e(text[:1].upper() + text[1:])}</b></p>")
    options = diagnosis.get("options") or []
    if options:
        sections.append("<h2>Repair options (each checked by re-solving)</h2>")
    for option in options:
        if str(option.get("status", "")).startswith("not applicable"):
            continue
        price = option.get("price_money")
        head = _e(option.get("title", option.get("key", "")))
        if price is not None:
            head += f" — price {_money(price)}"
        check = {True: "checked: the repaired tables solve",
                 False: "still infeasible after rounding", None: "not checked"}.get(
            option.get("verified_feasible"), "")
        repairs = option.get("repairs") or []
        items = "".join(f"<li>{_e(r.get('text', ''))}</li>" for r in repairs[:30])
        more = (f"<li>… and {len(repairs) - 30} more in diagnosis.json</li>"
                if len(repairs) > 30 else "")
        body = (f"<ul>{items}{more}</ul><p class='muted'>{_e(check)}</p>" if repairs else
                f"<p class='muted'>{_e(option.get('status', ''))}</p>")
        sections.append(f"<h3>{head}</h3>{body}")
    generic = diagnosis.get("repairs")  # other formulations' diagnosis
    if generic and not options:
        sections += ["<h2>Repairs</h2>", _table(pd.DataFrame(generic), left=2,
                                                source="diagnosis.json")]
    conflict = diagnosis.get("conflict_set") or []
    if conflict:
        frame = pd.DataFrame(conflict)
        keep = [c for c in ("family", "labels", "source", "row", "column") if c in frame]
        if "source" in frame:
            frame["source"] = frame["source"].map(
                lambda v: str(v).rsplit("/", 1)[-1] if isinstance(v, str) else "")
        sections += ["<h2>Conflict set (input rows that cannot all hold)</h2>",
                     f"<p class='muted'>{_e(diagnosis.get('conflict_method', ''))}</p>",
                     _table(frame[keep], limit=60, left=len(keep), source="diagnosis.json")]
    body = "\n".join(sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>")
