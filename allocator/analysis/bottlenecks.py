"""Bottlenecks in business words: the binding constraints ranked by what relaxing them buys.

Works from the sensitivity table (one row per stage x constraint) and the input tables, so
the sentences name budgets, sites, people and services as the user wrote them. Impact is the
stage objective that moving the right-hand side to the end of its price range would gain:
``|dual| x distance``, capped at the size of the right-hand side when the range is unbounded.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from allocator.formulations.ops_data import OpsData

STAGE_UNIT = {"service": "units of weighted shortfall", "cost": "in cost",
              "stability": "FTE moved", "weighted": "in the weighted objective"}
RELAX_UP = {"budget", "capacity", "availability", "moved", "stage_hold", "one_site"}


def _step(rhs: float) -> float:
    """A round step in the row's own units: 10,000 for budgets in the millions, 1 for FTE."""
    if not np.isfinite(rhs) or abs(rhs) < 100:
        return 1.0
    return float(10 ** (math.floor(math.log10(abs(rhs))) - 2))


def fmt(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "unlimited"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.3g}"


def ranked(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Binding rows with a nonzero price, ranked by impact within the stage order."""
    # Demand (coverage) is what the plan serves, not a lever, and single people are too many
    # to list one by one: both have their own aggregated tables (where to hire, marginal cost).
    rows = sensitivity[(sensitivity["kind"] == "constraint") & sensitivity["binding"].astype(bool)
                       & (sensitivity["dual"].abs() > 1e-9)
                       & ~sensitivity["family"].isin(["coverage", "availability"])].copy()
    if rows.empty:
        return rows.assign(impact=pd.Series(dtype=float), step=pd.Series(dtype=float))
    up = rows["family"].isin(list(RELAX_UP))
    room = np.where(up, rows["rhs_high"] - rows["rhs"], rows["rhs"] - rows["rhs_low"])
    room = np.where(np.isfinite(room), room, np.maximum(rows["rhs"].abs(), 1.0))
    rows["relax_room"] = room
    rows["impact"] = rows["dual"].abs() * room
    rows["step"] = [_step(v) for v in rows["rhs"]]
    order = {name: i for i, name in enumerate(dict.fromkeys(rows["stage"]))}
    rows["stage_order"] = rows["stage"].map(order)
    return rows.sort_values(["stage_order", "impact"], ascending=[True, False]).drop(
        columns="stage_order")


def sentence(row: pd.Series, label_fn=str) -> str:  # type: ignore[no-untyped-def]
    """One plain sentence for one binding constraint; `label_fn` escapes data labels."""
    gain = abs(row["dual"]) * row["step"]
    unit = STAGE_UNIT.get(row["stage"], "")
    verb = {"service": "avoids", "cost": "saves", "stability": "avoids"}.get(row["stage"],
                                                                          "improves by")
    improves = (row["dual"] < 0) == (row["family"] in RELAX_UP)
    if not improves:
        verb = {"service": "adds", "cost": "costs", "stability": "adds"}.get(row["stage"],
                                                                          "worsens by")
    step, label = fmt(row["step"]), label_fn(row["labels"])
    up_to = fmt(row["relax_room"])
    sign = "+" if row["family"] in RELAX_UP else "-"
    what = {
        "budget": f"each extra {step} on budget {label}",
        "capacity": f"each extra {step} FTE of room at site {label}",
        "availability": f"each extra {step} FTE of {label}'s time",
        "min_staff": f"each {step} FTE less in the minimum staffing of site {label}",
        "coverage": f"each {step} unit less demand for {label}",
        "moved": f"each extra {step} FTE allowed to move",
        "stage_hold": f"accepting {step} more {STAGE_UNIT.get(row['labels'], 'units')} in "
                      f"the {label} stage",
        "one_site": f"letting {label} work at one more site",
    }.get(row["family"], f"each {step} change in {row['family']} {label}")
    return (f"{what[0].upper()}{what[1:]} {verb} {fmt(gain)} {unit}, "
            f"up to {sign}{up_to}.")


def people_by_skill_region(sensitivity: pd.DataFrame, data: OpsData, stage: str) -> pd.DataFrame:
    """Where to hire: value of one more FTE of people, by home region and skill set."""
    avail = sensitivity[(sensitivity["stage"] == stage) & (sensitivity["kind"] == "constraint")
                        & (sensitivity["family"] == "availability")]
    if avail.empty:
        return pd.DataFrame()
    staff = data.staff.set_index("staff_id")
    region = data.sites.set_index("site_id")["region"]
    frame = pd.DataFrame({
        "region": region.reindex(staff.loc[avail["labels"], "home_site"]).to_numpy(),
        "skills": staff.loc[avail["labels"], "skills"].to_numpy(),
        "value_per_fte": -avail["dual"].to_numpy(),
        "fully_used": avail["binding"].astype(bool).to_numpy(),
    })
    grouped = frame.groupby(["region", "skills"], sort=True).agg(
        people=("value_per_fte", "size"), fully_used=("fully_used", "sum"),
        best_value_per_fte=("value_per_fte", "max"), mean_value_per_fte=("value_per_fte", "mean"),
    ).reset_index()
    return grouped.sort_values("best_value_per_fte", ascending=False).reset_index(drop=True)


def room_by_site(sensitivity: pd.DataFrame, sites_table: pd.DataFrame) -> pd.DataFrame:
    cap = sensitivity[(sensitivity["kind"] == "constraint") & (sensitivity["family"] == "capacity")]
    if cap.empty:
        return pd.DataFrame()
    wide = cap.pivot_table(index="labels", columns="stage", values="dual", aggfunc="first")
    wide.columns = [f"value_of_room_{c}" for c in wide.columns]
    wide = -wide  # more room lowers the minimized objective: show it as a positive value
    used = sites_table.set_index(sites_table["site_id"].astype(str))[["fte", "capacity_fte"]]
    out = used.join(wide, how="inner").reset_index().rename(columns={"index": "site_id"})
    return out.sort_values(out.columns[-1], ascending=False).reset_index(drop=True)


def marginal_cost_of_service(sensitivity: pd.DataFrame) -> pd.DataFrame:
    cov = sensitivity[(sensitivity["kind"] == "constraint") & (sensitivity["family"] == "coverage")
                      & (sensitivity["stage"] == "cost")]
    if cov.empty:
        return pd.DataFrame()
    parts = cov["labels"].str.split("/", n=1, expand=True)
    return pd.DataFrame({
        "site_id": parts[0], "service_id": parts[1], "marginal_cost_per_unit": cov["dual"],
        "unique": cov["dual_unique"].astype(bool),
    }).sort_values("marginal_cost_per_unit", ascending=False).reset_index(drop=True)


def _md_escape(text: object) -> str:
    """Labels come from data: neutralize Markdown and HTML so a name cannot inject markup."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_{}[]#!|":
        out = out.replace(ch, "\\" + ch)
    return out


def _md_table(frame: pd.DataFrame, limit: int = 20) -> str:
    if frame.empty:
        return "_none_\n"
    shown = frame.head(limit)
    head = "| " + " | ".join(_md_escape(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    lines = [head, rule]
    for row in shown.itertuples(index=False):
        cells = [fmt(v) if isinstance(v, float | np.floating) else _md_escape(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    more = f"\n_{len(frame) - limit} more rows in the CSV._\n" if len(frame) > limit else ""
    return "\n".join(lines) + "\n" + more


def bottlenecks_markdown(
    sensitivity: pd.DataFrame, data: OpsData, sites_table: pd.DataFrame, title: str,
    ladders: pd.DataFrame | None = None, top: int = 15,
) -> tuple[str, pd.DataFrame]:
    """bottlenecks.md, and the ranked table behind it."""
    table = ranked(sensitivity)
    lines = [f"# Bottlenecks: {_md_escape(title)}", ""]
    if table.empty:
        lines += ["No constraint limits the plan: every binding row has a zero price.", ""]
    stages = list(dict.fromkeys(sensitivity.loc[sensitivity["kind"] == "constraint", "stage"]))
    for stage in stages:
        rows = table[table["stage"] == stage]
        people = people_by_skill_region(sensitivity, data, stage)
        hire = people[people["best_value_per_fte"].abs() > 1e-9].head(3) if not people.empty \
            else people
        if rows.empty and hire.empty:
            continue
        lines += [f"## {stage.capitalize()} stage", ""]
        for rank, (_, row) in enumerate(rows.head(top).iterrows(), start=1):
            if row["dual_unique"]:
                note = ""
            elif pd.isna(row["dual_left"]) or pd.isna(row["dual_right"]):
                note = (" (price not unique: its left and right prices were not computed "
                        "within output.sensitivity_share)")
            else:
                note = (f" (price not unique: {fmt(row['dual_left'])} per unit down, "
                        f"{fmt(row['dual_right'])} per unit up)")
            lines.append(f"{rank}. {sentence(row, _md_escape)}{note}")
        unit = STAGE_UNIT.get(stage, "")
        for group in hire.itertuples(index=False):
            verb = "avoids" if stage != "cost" else "saves"
            lines.append(
                f"- People: one more FTE with skills {_md_escape(group.skills)} in region "
                f"{_md_escape(group.region)} {verb} up to {fmt(group.best_value_per_fte)} "
                f"{unit} ({group.fully_used} of {group.people} such people fully used).")
        lines.append("")
    for stage in ("service", "cost"):
        people = people_by_skill_region(sensitivity, data, stage)
        if not people.empty and (people["best_value_per_fte"].abs() > 1e-9).any():
            unit = STAGE_UNIT.get(stage, "")
            lines += [f"## Where to hire ({stage} stage: value of one more FTE, {unit})", "",
                      _md_table(people)]
    room = room_by_site(sensitivity, sites_table)
    if not room.empty:
        lines += ["## Room by site (value of one more FTE of capacity)", "", _md_table(room)]
    cost = marginal_cost_of_service(sensitivity)
    if not cost.empty:
        lines += ["## Marginal cost of service (cost of one more unit of demand)", "",
                  _md_table(cost)]
    if ladders is not None and not ladders.empty:
        lines += ["## Price ladders (how each price steps as the right-hand side moves)", "",
                  _md_table(ladders[["stage", "family", "labels", "rhs_from", "rhs_to",
                                     "dual"]], limit=60)]
    return "\n".join(lines) + "\n", table
