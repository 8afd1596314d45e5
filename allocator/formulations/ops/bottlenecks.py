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

from allocator.analysis.figures import tidy_figures
from allocator.formulations.ops.data import OpsData

STAGE_UNIT = {"service": "units of weighted shortfall", "cost": "in cost",
              "stability": "FTE moved", "weighted": "in the weighted objective"}
# The stability stage minimizes sum(dp + dm): moving 1 FTE from one place to another counts
# 2 there. Everything a person reads speaks of FTE moved = half of that sum.
STAGE_SCALE = {"stability": 0.5}
RELAX_UP = {"budget", "capacity", "availability", "moved", "stage_hold", "one_site", "fte"}
# What a user changes to move each row's right-hand side (the self-check re-solves with it).
INPUT = {"budget": "budgets.csv amount", "capacity": "sites.csv capacity_fte",
         "min_staff": "sites.csv min_fte", "moved": "policy.max_moved_fte",
         "stage_hold": "objective.abs_tol", "fte": "staff.csv fte",
         "availability": "staff.csv fte"}
PEOPLE_LINES = 3  # people named in words per stage
MIN_PEOPLE_ROOM = 0.01  # FTE
# Rows not said one by one: demand is what the plan serves (marginal cost of service), people
# are priced by their FTE (where to hire), and the stability rows (x - baseline = up - down)
# and whole-mode links are the model's bookkeeping, not levers.
# The hold of an earlier stage is how the stages are chained, not an input either.
NOT_SENTENCES = ("coverage", "availability", "stability", "whole_link", "stage_hold")
WEIGHTED_SHORTFALL = (
    "Weighted shortfall = unmet workload (units of demand not served, targets.csv demand) "
    "times each target's weight (targets.csv weight), summed over sites and services.")


def _step(rhs: float) -> float:
    """A round step in the row's own units: 10,000 for budgets in the millions, 1 for FTE."""
    if not np.isfinite(rhs) or abs(rhs) < 100:
        return 1.0
    return float(10 ** (math.floor(math.log10(abs(rhs))) - 2))


def _fitting_step(step: float, room: float) -> float:
    """The round step, made smaller (1, 0.5, 0.2, 0.1...) until it fits the price's range."""
    if not np.isfinite(room) or room <= 0:
        return step
    while step > room and step > 1e-6:
        for factor in (0.5, 0.2, 0.1):
            if step * factor <= room or factor == 0.1:
                step *= factor
                break
    return float(f"{step:.6g}")


def money(value: float) -> str:
    """Money in whole units with thousands separators."""
    if value is None or not np.isfinite(value):
        return fmt(value)
    return f"{round(float(value)) + 0:,}"


def fmt(value: float) -> str:
    if value is None or np.isnan(value):
        return "unlimited"  # (no range end known)
    if not np.isfinite(value):
        return "unlimited" if value > 0 else "-unlimited"
    if abs(value) < 5e-9:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    if abs(value) < 0.001:  # 0.0000264, not 2.64e-05
        return f"{value:.{2 - int(np.floor(np.log10(abs(value))))}f}"
    return f"{value:,.3g}"


# Partitioned (decomposed) runs price every row exactly at the optimum, but have no whole
# LP to range: their sentences speak of one unit at today's price, never of a range.
MARGINAL = "marginal"
MARGINAL_WORDS = ("A decomposed run: the shadow prices below are the LP's at today's plan "
                  "(each stage's master converged), each the rate at which the stage's "
                  "objective changes as the limit moves where the optimum is not degenerate. "
                  "With no single model to range, how far a price holds is not computed, and "
                  "whether another price is valid at the same plan is said only where a "
                  "region's own model found one: they are rates, not forecasts; check a "
                  "change you mean to make by solving with it (allocator compare). Ranked by "
                  "what 1% more of each limit is worth at its price.")
# The limit a binding row is, in words (marginal sentences name the limit, not a change).
SUBJECT = {"budget": "Budget {}", "capacity": "The capacity of site {}",
           "min_staff": "The minimum staffing of site {}", "fte": "The FTE of {}",
           "moved": "The limit on FTE moved (policy.max_moved_fte)",
           "stage_hold": "The hold on the {} stage", "one_site": "{} working at one site"}
PRICE_UNIT = {"service": "units of weighted shortfall", "cost": "of cost",
              "stability": "FTE moved", "weighted": "of the weighted objective"}


def ranked(sensitivity: pd.DataFrame, moved_constant: float = 0.0,
           marginal: bool = False) -> pd.DataFrame:
    """Binding rows with a nonzero price, ranked by impact within the stage order, with the
    figures said about each in words, machine-readable: the input a user changes
    (`input`, today `input_value`), the price per unit of it in the stage's user unit
    (`price_per_input`, FTE moved for the stability stage), the range of the input over
    which it holds (`holds_from`..`holds_to`), the step the sentence speaks of and the
    change per step (`per_step`). `marginal`: no ranges (a decomposed run's): one unit at
    today's price, ranked by what 1% more of each limit is worth at that price."""
    rows = sensitivity[(sensitivity["kind"] == "constraint") & sensitivity["binding"].astype(bool)
                       & (sensitivity["dual"].abs() > 1e-9)
                       & ~sensitivity["family"].isin(list(NOT_SENTENCES))].copy()
    if rows.empty:
        return _with_figures(rows.assign(impact=pd.Series(dtype=float),
                                         step=pd.Series(dtype=float)), moved_constant,
                             marginal)
    up = rows["family"].isin(list(RELAX_UP))
    if marginal:
        rows["rhs_low"], rows["rhs_high"], rows["range_kind"] = np.nan, np.nan, MARGINAL
        # 1% of the input a user changes, in the row's units: the moves row holds 2 x
        # max_moved_fte less the certain moves, so 1% of the limit is 0.01 x (rhs + those).
        rhs = rows["rhs"].to_numpy(dtype=float)
        scale = np.where(rows["family"] == "moved", rhs + moved_constant, rhs)
        room = 0.01 * np.maximum(np.abs(scale), 1.0)
    else:
        room = np.where(up, rows["rhs_high"] - rows["rhs"], rows["rhs"] - rows["rhs_low"])
        room = np.where(np.isfinite(room), room, np.maximum(rows["rhs"].abs(), 1.0))
    rows["relax_room"] = room
    rows["impact"] = rows["dual"].abs() * room * rows["stage"].map(STAGE_SCALE).fillna(1.0)
    order = {name: i for i, name in enumerate(dict.fromkeys(rows["stage"]))}
    rows["stage_order"] = rows["stage"].map(order)
    rows = rows.sort_values(["stage_order", "impact", "family", "labels"],
                            ascending=[True, False, True, True], kind="stable").drop(
        columns="stage_order")
    return _with_figures(rows, moved_constant, marginal)


def _with_figures(rows: pd.DataFrame, moved_constant: float,
                  marginal: bool = False) -> pd.DataFrame:
    rows = rows.copy()
    if "relax_room" not in rows:
        rows["relax_room"] = pd.Series(dtype=float)
    per_rhs = np.where(rows["family"] == "moved", 2.0, 1.0)  # rhs units per input unit
    scale = rows["stage"].map(STAGE_SCALE).fillna(1.0).to_numpy()

    def to_input(values: pd.Series) -> np.ndarray:
        v = values.to_numpy(dtype=float)
        return np.where(rows["family"] == "moved", (v + moved_constant) / 2.0, v)

    rows["input"] = rows["family"].map(INPUT).fillna("")
    rows["input_value"] = to_input(rows["rhs"])
    up = rows["family"].isin(list(RELAX_UP)).to_numpy()
    # Where the dual is not unique, the sentence speaks of the price in the direction that
    # relaxes the row (up for limits, down for floors): the one-sided price, over its range.
    price = rows["dual"].to_numpy(dtype=float)
    low, high = rows["rhs_low"].to_numpy(dtype=float), rows["rhs_high"].to_numpy(dtype=float)
    if "dual_unique" in rows and "right_to" in rows:
        split = ~rows["dual_unique"].astype(bool).to_numpy()
        rhs = rows["rhs"].to_numpy(dtype=float)
        side = np.where(up, rows["dual_right"], rows["dual_left"]).astype(float)
        reach = np.where(up, rows["right_to"], rows["left_from"]).astype(float)
        price = np.where(split, side, price)
        low = np.where(split, np.where(up, rhs, reach), low)
        high = np.where(split, np.where(up, reach, rhs), high)
        unknown = split & ~(np.isfinite(side) & ~np.isnan(reach))
        if unknown.any():  # not computed within the probes: said, not priced
            rows["range_kind"] = np.where(unknown, "estimate", rows["range_kind"])
            price = np.where(unknown, rows["dual"].to_numpy(dtype=float), price)
            low = np.where(unknown, np.nan, low)
            high = np.where(unknown, np.nan, high)
    rows["price_per_input"] = price * per_rhs * scale
    rows["holds_from"] = to_input(pd.Series(low))
    rows["holds_to"] = to_input(pd.Series(high))
    rows["unit"] = rows["stage"].map(STAGE_UNIT).fillna("")
    room = np.where(up, rows["holds_to"] - rows["input_value"],
                    rows["input_value"] - rows["holds_from"])
    # Without a range (marginal), one unit: a round step (10,000 of a budget) could cross a
    # price change no one computed; one unit at a unique price is what the derivative says.
    rows["step"] = 1.0 if marginal else [
        _fitting_step(_step(v), r) for v, r in zip(rows["input_value"], room, strict=True)]
    # The change of the stage's figure (user unit) when the input moves by one step in the
    # direction that relaxes it (up, or down for floors such as minimum staffing).
    rows["per_step"] = rows["price_per_input"] * rows["step"] * np.where(up, 1.0, -1.0)
    rows["sentence"] = [sentence(row) for _, row in rows.iterrows()] if len(rows) else []
    return rows


def marginal_sentence(row: pd.Series, label_fn=str) -> str:
    """A decomposed run's binding row in words: the limit, today's value and its shadow
    price at today's plan in the stage's unit per unit of the input (MARGINAL_WORDS says
    what such a price is and is not)."""
    subject = SUBJECT.get(row["family"], f"{row['family']} {{}}").format(label_fn(row["labels"]))
    fte = row["family"] in ("fte", "availability", "capacity", "min_staff", "moved")
    per = "per FTE" if fte else "per unit"
    price = abs(float(row["price_per_input"]))
    said = fmt(price)
    unit = PRICE_UNIT.get(row["stage"], "")
    held = ", service held at its best level" if row["stage"] == "cost" else ""
    return (f"{subject} binds (today {fmt(row['input_value'])}{' FTE' if fte else ''}): its "
            f"shadow price at today's plan is {said} {unit} {per}{held}.")


def sentence(row: pd.Series, label_fn=str) -> str:
    """One plain sentence for one binding constraint (or input); `label_fn` escapes labels."""
    if row.get("range_kind") == MARGINAL:
        return marginal_sentence(row, label_fn)
    if "per_step" not in row:  # an old-style ranked row: compute the figures on the spot
        row = _with_figures(pd.DataFrame([row]), 0.0).iloc[0]
    gain = row["per_step"]
    unit = STAGE_UNIT.get(row["stage"], "")
    better = gain < 0
    verb = ({"service": "avoids", "cost": "saves", "stability": "avoids"} if better else
            {"service": "adds", "cost": "costs", "stability": "adds"}).get(
        row["stage"], "improves by" if better else "worsens by")
    step, label = fmt(row["step"]), label_fn(row["labels"])
    what = {
        "budget": f"each extra {step} on budget {label}",
        "capacity": f"each extra {step} FTE of room at site {label}",
        "availability": f"each extra {step} FTE of {label}'s time",
        "fte": f"each extra {step} FTE of {label}",
        "min_staff": f"each {step} FTE less in the minimum staffing of site {label}",
        "coverage": f"each {step} unit less demand for {label}",
        "moved": f"each extra {step} FTE allowed to move (policy.max_moved_fte)",
        "stage_hold": f"accepting {step} more {STAGE_UNIT.get(row['labels'], 'units')} in "
                      f"the {label} stage",
        "one_site": f"letting {label} work at one more site",
    }.get(row["family"], f"each {step} change in {row['family']} {label}")
    held = " holding service at its best level" if row["stage"] == "cost" else ""
    if row.get("dual_source") == "fixed-integer lp":  # whole mode: no true duals
        held += " (everyone's sites fixed as planned)"
    if row["family"] == "stage_hold":
        rng = (f" (for up to {fmt(row['holds_to'] - row['input_value'])} more)"
               if np.isfinite(row["holds_to"]) else "")
    else:
        rng = _range_words(row)
    per = ""
    if row["family"] in ("fte", "availability", "capacity", "min_staff", "moved") and \
            row["step"] != 1:
        price = abs(row["price_per_input"])
        per = f" ({money(price) if row['stage'] == 'cost' else fmt(price)} per FTE)"
    said = money(abs(gain)) if row["stage"] == "cost" else fmt(abs(gain))
    return f"{what[0].upper()}{what[1:]} {verb} {said} {unit}{per}{held}{rng}."


def _range_words(row: pd.Series) -> str:
    today, low, high = row["input_value"], row["holds_from"], row["holds_to"]
    unit = " FTE" if row["family"] in ("fte", "availability", "capacity", "min_staff",
                                        "moved") else ""
    if not (np.isfinite(low) or np.isfinite(high)):
        if np.isnan(low) and np.isnan(high):
            return f" (today {fmt(today)}{unit}; how far this price holds was not computed)"
        return f" (today {fmt(today)}{unit}; at that price without limit)"
    kind = "" if row.get("range_kind", "price") == "price" else " at least"
    return (f" (today {fmt(today)}{unit}; this price holds{kind} from {fmt(low)} to "
            f"{fmt(high)}{unit})")


def people_figures(sensitivity: pd.DataFrame, data: OpsData | None) -> pd.DataFrame:
    """The value of one more FTE of each staff member (sensitivity rows kind = input,
    family = fte), with the person's region and skills, in the figures' columns."""
    fte = sensitivity[(sensitivity["kind"] == "input") & (sensitivity["family"] == "fte")].copy()
    if fte.empty or data is None:  # a decomposed run prices no person's FTE as an input
        return _with_figures(fte.iloc[:0].assign(
            region=pd.Series(dtype=object), skills=pd.Series(dtype=object),
            relax_room=pd.Series(dtype=float), impact=pd.Series(dtype=float)), 0.0)
    staff = data.staff.set_index(data.staff["staff_id"].astype(str))
    region = data.sites.set_index(data.sites["site_id"].astype(str))["region"]
    ids = fte["labels"].astype(str)
    fte["region"] = region.reindex(staff["home_site"].astype(str).reindex(ids)).to_numpy()
    fte["skills"] = [_skills(v) for v in staff["skills"].reindex(ids).to_numpy()]
    fte["relax_room"] = fte["rhs_high"] - fte["rhs"]
    fte["impact"] = fte["dual"].abs() * fte["stage"].map(STAGE_SCALE).fillna(1.0)
    return _with_figures(fte, 0.0)


def _skills(value: object) -> str:
    """A skill set written one way ("pick;care" and "care;pick" are one set)."""
    parts = sorted({p.strip() for p in str(value).split(";") if p.strip()})
    return ";".join(parts)


def people_by_skill_region(people: pd.DataFrame, stage: str) -> pd.DataFrame:
    """Where to hire: the value of one more FTE of people, by home region and skill set.

    `best_value_per_fte` is the largest value of one more FTE of one person in the group
    (`best_person`; valid up to `holds_up_to_fte` of that person), re-solved where `exact`,
    else the basis's upper estimate (range_kind = estimate: not reached within
    output.sensitivity_probes)."""
    rows = people[people["stage"] == stage] if not people.empty else people
    if rows.empty:
        return pd.DataFrame()
    frame = pd.DataFrame({
        "region": rows["region"].astype(str).to_numpy(), "skills": rows["skills"].to_numpy(),
        "value_per_fte": -rows["dual"].to_numpy(dtype=float)
        * rows["stage"].map(STAGE_SCALE).fillna(1.0).to_numpy(),
        "fully_used": rows["binding"].astype(bool).to_numpy(),
        "person": rows["labels"].astype(str).to_numpy(),
        "holds_up_to_fte": rows["holds_to"].to_numpy(dtype=float),
        "exact": (rows["range_kind"] != "estimate").to_numpy(),
    })
    frame = frame.sort_values(["value_per_fte", "person"], ascending=[False, True],
                              kind="stable")
    best = frame.groupby(["region", "skills"], sort=False).first()
    grouped = frame.groupby(["region", "skills"], sort=False).agg(
        people=("value_per_fte", "size"), fully_used=("fully_used", "sum"))
    out = grouped.join(best[["value_per_fte", "person", "holds_up_to_fte", "exact"]]).rename(
        columns={"value_per_fte": "best_value_per_fte", "person": "best_person"})
    out = out.reset_index()[["region", "skills", "people", "fully_used", "best_value_per_fte",
                             "best_person", "holds_up_to_fte", "exact"]]
    return out.sort_values(["best_value_per_fte", "region", "skills"],
                           ascending=[False, True, True], kind="stable").reset_index(drop=True)


def _price_up(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The price of one more unit of each row's right-hand side: the dual where it is unique,
    else the right (one-sided) price; and what kind of figure that is."""
    unique = rows["dual_unique"].astype(bool).to_numpy()
    right = rows["dual_right"].to_numpy(dtype=float) if "dual_right" in rows else \
        np.full(len(rows), np.nan)
    price = np.where(unique | np.isnan(right), rows["dual"].to_numpy(dtype=float), right)
    how = np.where(unique, "unique", np.where(np.isnan(right), "basis only (not unique)",
                                              "one unit more (one less differs)"))
    return price, how


def room_by_site(sensitivity: pd.DataFrame, sites_table: pd.DataFrame) -> pd.DataFrame:
    cap = sensitivity[(sensitivity["kind"] == "constraint") & (sensitivity["family"] == "capacity")]
    if cap.empty:
        return pd.DataFrame()
    price, _how = _price_up(cap)
    cap = cap.assign(dual=price)
    wide = cap.pivot_table(index="labels", columns="stage", values="dual", aggfunc="first")
    wide.columns = [f"value_of_room_{c}" for c in wide.columns]
    for column in wide.columns:  # more room lowers the minimized objective: a positive value
        wide[column] = -wide[column] * STAGE_SCALE.get(column.removeprefix("value_of_room_"),
                                                       1.0)
    used = sites_table.set_index(sites_table["site_id"].astype(str))[["fte", "capacity_fte"]]
    out = used.join(wide, how="inner").reset_index().rename(columns={"index": "site_id"})
    return out.sort_values([out.columns[-1], "site_id"], ascending=[False, True],
                           kind="stable").reset_index(drop=True)


def marginal_cost_of_service(sensitivity: pd.DataFrame) -> pd.DataFrame:
    cov = sensitivity[(sensitivity["kind"] == "constraint") & (sensitivity["family"] == "coverage")
                      & (sensitivity["stage"] == "cost")]
    if cov.empty:
        return pd.DataFrame()
    parts = cov["labels"].str.split("/", n=1, expand=True)
    price, how = _price_up(cov)
    out = pd.DataFrame({
        "site_id": parts[0].to_numpy(), "service_id": parts[1].to_numpy(),
        "demand": cov["rhs"].to_numpy(dtype=float), "marginal_cost_per_unit": price,
        "holds_up_to_demand": cov["right_to"].to_numpy(dtype=float) if "right_to" in cov
        else np.nan, "price": how,
    })
    return out.sort_values(["marginal_cost_per_unit", "site_id", "service_id"],
                           ascending=[False, True, True], kind="stable").reset_index(drop=True)


def _md_escape(text: object) -> str:
    """Labels come from data: neutralize Markdown and HTML so a name cannot inject markup,
    and keep it on one line (a newline or `|` would break a table)."""
    out = str(text).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    out = out.replace("\t", " ")
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_{}[]#!|~":
        out = out.replace(ch, "\\" + ch)
    return out


def _cell(value: object, column: str = "") -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if column.startswith("holds") and np.isfinite(value):
            return f"{float(value):,.8g}"  # a range end: as many digits as it has
        return fmt(float(value))
    return _md_escape(value)


def _md_table(frame: pd.DataFrame, limit: int = 20, where: str = "") -> str:
    """A Markdown table of the first `limit` rows; `where` names the CSV rows holding all."""
    if frame.empty:
        return "_No rows._\n"
    shown = frame.head(limit)
    head = "| " + " | ".join(_md_escape(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    lines = [head, rule]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, str(c)) for v, c in
                                       zip(row, shown.columns, strict=True)) + " |")
    more = ""
    if len(frame) > limit:
        more = f"\n_{len(frame) - limit} more rows" + (f": {where}" if where else "") + "._\n"
    return "\n".join(lines) + "\n" + more


def _nonzero(frame: pd.DataFrame, column: str, what: str) -> tuple[pd.DataFrame, str]:
    """The rows with a value, and one sentence for the rest (all zeros: said once)."""
    keep = frame[column].abs() > 1e-9
    rest = int((~keep).sum())
    some = "The other" if keep.any() else "All"
    note = f"{some} {rest} {what} have no value at the margin (0).\n" if rest else ""
    return frame[keep], note


def service_words(coverage: pd.DataFrame | None, weighted: float | None = None) -> str:
    """Today's service in a manager's units: demand served, unmet workload, and what the
    weighted shortfall is."""
    if coverage is None or coverage.empty or not {"demand", "served"} <= set(coverage):
        return WEIGHTED_SHORTFALL
    demand = float(coverage["demand"].sum())
    served = float(coverage["served"].sum())
    share = served / demand if demand > 0 else 1.0
    said = f"weighted shortfall {fmt(weighted)} units; " if weighted is not None else ""
    return (f"Today: {said}{share:.1%} of demand served ({fmt(served)} of {fmt(demand)} "
            f"workload units), {fmt(demand - served)} units of workload unmet. "
            + WEIGHTED_SHORTFALL)


HIRE_LINES = 5


def hiring_sentences(hiring: pd.DataFrame | None, escape=str) -> list[str]:
    """The top rows of hiring.csv in words."""
    if hiring is None or hiring.empty:
        return []
    rows = hiring[hiring["value_per_fte"].fillna(0) > 1e-9].head(HIRE_LINES)
    out = []
    for row in rows.itertuples(index=False):
        kind = "" if row.value_kind == "exact" else " (an upper estimate, not re-solved)"
        holds = (f" for up to {fmt(row.holds_up_to_fte)} FTE" if
                 np.isfinite(row.holds_up_to_fte) else "")
        saving = ""
        if np.isfinite(row.cost_saving_per_fte) and abs(row.cost_saving_per_fte) > 0.5:
            verb = "saves" if row.cost_saving_per_fte > 0 else "adds"
            reach = (f" for up to {fmt(row.cost_holds_up_to_fte)} FTE" if
                     np.isfinite(row.cost_holds_up_to_fte) else "")
            saving = (f"; holding service at its best level, it {verb} "
                      f"{money(abs(row.cost_saving_per_fte))} in cost per FTE{reach}")
        out.append(
            f"One more FTE with skill {escape(row.skill)} hired at {escape(row.site_id)} (at "
            f"{money(row.cost_per_fte)} per FTE: {escape(row.cost_basis)}) avoids "
            f"{fmt(row.value_per_fte)} units of weighted shortfall per FTE, net of the budget "
            f"it uses{holds}{kind}{saving}.")
    return out


def what_if(ladders: pd.DataFrame | None, shares: tuple[float, ...] = (-0.1, 0.1),
            moved_constant: float = 0.0) -> list[dict]:
    """The stage's figure with each laddered budget moved by each share of today's amount,
    read from the ladder's pieces (exact where a rung covers the amount)."""
    out: list[dict] = []
    if ladders is None or ladders.empty:
        return out
    # The first stage only: a later stage holds the earlier ones at today's optimum, so a
    # budget cut there reads "infeasible" where a re-run would re-optimize service.
    rows = ladders[(ladders["family"] == "budget") & (ladders["stage"] == ladders["stage"].iloc[0])]
    for (stage, label), rungs in rows.groupby(["stage", "labels"], sort=False):
        today = float(rungs["rhs_today"].iloc[0])
        here = rungs[(rungs["rhs_from"] <= today) & (rungs["rhs_to"] >= today)]
        if here.empty or not np.isfinite(here["dual"].iloc[0]):
            continue
        base = float(here["objective_at_rhs"].iloc[0] + here["dual"].iloc[0]
                     * (today - here["rhs"].iloc[0]))
        for share in shares:
            amount = today * (1.0 + share)
            hit = rungs[(rungs["rhs_from"] <= amount) & (rungs["rhs_to"] >= amount)]
            value = np.nan
            if not hit.empty:
                rung = hit.iloc[0]
                value = float(rung["objective_at_rhs"] + rung["dual"] * (amount - rung["rhs"])) \
                    if np.isfinite(rung["dual"]) else np.inf
            out.append({"stage": stage, "budget": label, "share": share, "amount": amount,
                        "today": base, "value": value})
    return out


def what_if_sentences(ladders: pd.DataFrame | None, escape=str) -> list[str]:
    out = []
    for item in what_if(ladders):
        unit = STAGE_UNIT.get(item["stage"], "")
        change = f"{'+' if item['share'] > 0 else '−'}{abs(item['share']):.0%}"
        head = (f"Budget {escape(item['budget'])} {change} ({money(item['amount'])}), "
                f"{item['stage']} stage: ")
        if np.isnan(item["value"]):
            out.append(head + "beyond the ladder's re-solves (set output.ladder_span to "
                       f"{abs(item['share']):g} or more to see it).")
        elif not np.isfinite(item["value"]):
            out.append(head + "no plan meets the other limits with that amount.")
        else:
            delta = item["value"] - item["today"]
            figure = money(item["value"]) if item["stage"] == "cost" else fmt(item["value"])
            out.append(head + f"{figure} {unit} ({'+' if delta >= 0 else '−'}"
                       f"{money(abs(delta)) if item['stage'] == 'cost' else fmt(abs(delta))}"
                       " against today).")
    return out


def bottlenecks_markdown(
    sensitivity: pd.DataFrame, data: OpsData | None, sites_table: pd.DataFrame, title: str,
    ladders: pd.DataFrame | None = None, top: int = 15, moved_constant: float = 0.0,
    coverage: pd.DataFrame | None = None, hiring: pd.DataFrame | None = None,
    service_value: float | None = None, marginal: bool = False,
) -> tuple[str, pd.DataFrame]:
    """bottlenecks.md, and the table behind it (bottlenecks.csv): every figure said in words,
    with the input it speaks of, its price per unit of that input and the range where it
    holds, in machine-readable columns (see `ranked`). `marginal`: a decomposed run's (no
    ranges, no people's inputs: `data` may be None)."""
    table = ranked(sensitivity, moved_constant, marginal)
    # A decomposed run names no people: a person's price comes from the master or a block
    # at a degenerate optimum more often than not, and its uniqueness cannot be checked there.
    people = people_figures(sensitivity, None if marginal else data)
    lines = [f"# Bottlenecks: {_md_escape(title)}", ""]
    if marginal:
        lines += [MARGINAL_WORDS, ""]
    stage_names = set(sensitivity["stage"]) if "stage" in sensitivity else set()
    if "service" in stage_names or "weighted" in stage_names:
        lines += [service_words(coverage, service_value), ""]
    if table.empty:
        lines += ["No constraint limits the plan: every binding row has a zero price.", ""]
    stages = list(dict.fromkeys(sensitivity.loc[sensitivity["kind"] == "constraint", "stage"]))
    if "stability" in stages:
        lines += ["FTE moved = half the sum of |plan - baseline| over staff, site and service "
                  "(moving 1 FTE from one place to another is 1 FTE moved).", ""]
    named = []
    for stage in stages:
        rows = table[table["stage"] == stage]
        # People whose price holds for at least MIN_PEOPLE_ROOM FTE more (a price over a
        # sliver of an FTE is true but of no use to say).
        if marginal:  # no range to hold over: the price at the margin
            mine = people[people["stage"] == stage] if not people.empty else people
        else:
            mine = people[(people["stage"] == stage)
                          & (people["range_kind"].isin(["price", "basis"]))
                          & (people["dual"].abs() > 1e-9)
                          & (people["holds_to"] - people["input_value"] >= MIN_PEOPLE_ROOM)
                          ] if not people.empty else people
        # Ranked by what up to one more FTE buys within the range where the price holds.
        worth = mine["dual"].abs() * np.minimum(
            np.nan_to_num(mine["holds_to"] - mine["input_value"], nan=1.0, posinf=1.0), 1.0)
        mine = mine.assign(_worth=-worth).sort_values(["_worth", "labels"], kind="stable").drop(
            columns="_worth").head(PEOPLE_LINES)
        named.append(mine)
        if rows.empty and mine.empty:
            continue
        lines += [f"## {stage.capitalize()} stage", ""]
        if stage == "cost":
            lines += ["Cost-stage prices hold service at today's best level (the service "
                      "stage's optimum).", ""]
        for rank, (_, row) in enumerate(rows.head(top).iterrows(), start=1):
            if marginal:  # uniqueness known for a region's own rows, not the master's
                known = row["dual_unique"]
                note = "" if known is None or pd.isna(known) or bool(known) else (
                    " (not unique: another price is valid at this plan too)")
            elif row["dual_unique"]:
                note = ""
            elif pd.isna(row["dual_left"]) or pd.isna(row["dual_right"]):
                note = (" (price not unique: its left and right prices were not computed "
                        "within output.sensitivity_probes)")
            else:
                note = (f" (price not unique: {fmt(row['dual_left'])} per unit down, "
                        f"{fmt(row['dual_right'])} per unit up)")
            lines.append(f"{rank}. {sentence(row, _md_escape)}{note}")
        for _, person in mine.iterrows():
            said = sentence(person, _md_escape)
            where = (f"skills {_md_escape(person['skills'])}, " if person["skills"] else "") \
                + (f"region {_md_escape(person['region'])}" if person["region"] else
                   "priced by the master: may work in any region")
            lines.append(f"- People: {said[0].lower()}{said[1:]} "
                         f"({_md_escape(person['labels'])}: {where}.)")
        lines.append("")
    hires = hiring_sentences(hiring, _md_escape)
    if hires:
        lines += ["## Where to hire new people (hiring.csv: one more FTE hired at a site)", ""]
        lines += [f"- {h}" for h in hires] + [""]
    elif hiring is not None and not hiring.empty:
        lines += ["## Where to hire new people", "",
                  "No hire at any site would reduce the shortfall at the margin (hiring.csv "
                  "holds every site and skill).", ""]
    answers = what_if_sentences(ladders, _md_escape)
    if answers:
        lines += ["## What if a budget changes by 10%", ""] + [f"- {a}" for a in answers] + [""]
    for stage in stages if not marginal else []:  # the groups' table states ranges
        groups = people_by_skill_region(people, stage)
        if groups.empty:
            continue
        unit = STAGE_UNIT.get(stage, "")
        exact = groups[groups["exact"]]
        shown, rest = _nonzero(exact, "best_value_per_fte", "groups")
        lines += [f"## Where to hire ({stage} stage: value of one more FTE, {unit})", ""]
        if not shown.empty:
            lines.append(_md_table(shown.drop(columns="exact"),
                                   where="one row per person in sensitivity.csv, "
                                   f"stage = {stage}, kind = input, family = fte"))
        lines.append(rest)
        estimated = people[(people["stage"] == stage) & (people["range_kind"] == "estimate")]
        if len(estimated):
            lines.append(
                f"{len(estimated)} more people were not priced within "
                "output.sensitivity_probes: for them sensitivity.csv holds an upper estimate "
                f"from the optimal basis (range_kind = estimate; at most "
                f"{fmt(estimated['dual'].abs().max() * STAGE_SCALE.get(stage, 1.0))} {unit} "
                "per FTE).\n")
    room = room_by_site(sensitivity, sites_table)
    if not room.empty:
        values = [c for c in room.columns if c.startswith("value_of_room_")]
        has_value = room[values].abs().max(axis=1) > 1e-9
        lines += ["## Room by site (value of one more FTE of capacity)", ""]
        if has_value.any():
            lines.append(_md_table(room[has_value], where="sensitivity.csv, family = "
                                   "capacity"))
        spare = int((~has_value).sum())
        if spare:
            some = "The other" if has_value.any() else "All"
            lines.append(f"{some} {spare} sites have room to spare: one more FTE of "
                         "capacity there is worth 0.\n")
    cost = marginal_cost_of_service(sensitivity)
    if marginal and not cost.empty:  # no range; a block's "unique" is not the LP's
        cost = cost.drop(columns=["holds_up_to_demand", "price"]).assign(
            another_price_valid=np.where(cost["price"] == "unique", "not checked",
                                         "yes (the region's model found one)"))
    if not cost.empty:
        lines += ["## Marginal cost of service (cost of one more unit of demand, service "
                  "held at today's level)", "",
                  _md_table(cost, where="sensitivity.csv, stage = cost, family = coverage, "
                            "column dual")]
    if ladders is not None and not ladders.empty:
        lines += ["## Price ladders (how each price steps as the right-hand side moves)", "",
                  "Each row is one price and the range of the input over which it holds; the "
                  "outer ends of a ladder are where the re-solves stopped (the price may go "
                  "on past them), except an end beyond which the model is infeasible.", "",
                  _md_table(ladder_view(ladders, moved_constant), limit=60,
                            where="ladders.csv")]
    figures = pd.concat([table] + [n for n in named if not n.empty], ignore_index=True) \
        if any(not n.empty for n in named) else table
    figures = figures.drop(columns=[c for c in ("region", "skills") if c in figures],
                           errors="ignore")
    return "\n".join(lines) + "\n", tidy_figures(figures)


def ladder_view(ladders: pd.DataFrame, moved_constant: float = 0.0) -> pd.DataFrame:
    """Ladders in the user's units: FTE moved for the stability stage, max_moved_fte for the
    moved row (its right-hand side is 2 x max_moved_fte)."""
    view = ladders[["stage", "family", "labels", "rhs_from", "rhs_to", "dual"]].copy()
    moved = (view["family"] == "moved").to_numpy()
    for column in ("rhs_from", "rhs_to"):
        values = view[column].to_numpy(dtype=float)
        view[column] = np.where(moved, (values + moved_constant) / 2.0, values)
    scale = view["stage"].map(STAGE_SCALE).fillna(1.0).to_numpy()
    price = view["dual"].to_numpy(dtype=float) * np.where(moved, 2.0, 1.0) * scale
    view["dual"] = [fmt(v) if np.isfinite(v) else "infeasible" for v in price]
    return view.rename(columns={"rhs_from": "from", "rhs_to": "to", "dual": "price"})
