"""`diff_runs(a, b)`: what changed between two runs, and why (docs/diff.md).

One engine for `allocator diff`, for the comparison a run makes against its baseline, and for
`allocator compare`: it reads two run folders and returns frames keyed by business ids. It
never re-solves: every figure is read from the two folders (and the inputs they recorded),
so a diff of two nights costs seconds whatever the model's size.

Causes are linked where the link is in the ids: a move of staff E1 at site S, service V sits
next to the input rows that speak of E1, of S, of V or of (S, V) and changed between the
runs. The waterfalls split the change of cost and of shortfall by those causes, row by row of
the plan and of coverage, so the bars add up exactly to the change; what no changed input
speaks of is "re-planning" (knock-on moves of the optimizer)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.diff.inputs import CHANGE_COLUMNS, ID_COLUMNS, InputDiff, diff_inputs
from allocator.errors import InputError

TOL = 1e-7  # plan tables are rounded; smaller differences are not moves
MOVE_COLUMNS = ["staff_id", "site_id", "service_id", "fte_a", "fte_b", "delta"]
REPLANNING = "re-planning"


@dataclass(frozen=True)
class RunDiff:
    """Two runs compared. Frames are empty (with their columns) where a model lacks the
    table; `notes` say what could not be compared and why."""

    a: Path
    b: Path
    model: str
    summary_a: dict[str, Any] = field(repr=False)
    summary_b: dict[str, Any] = field(repr=False)
    moves: pd.DataFrame = field(repr=False)  # ops: staff x site x service whose FTE changed
    coverage: pd.DataFrame = field(repr=False)  # coverage_diff.csv
    budgets: pd.DataFrame = field(repr=False)  # budgets_diff.csv
    objectives: pd.DataFrame = field(repr=False)  # objectives.csv: stage, a, b, delta
    constraints: pd.DataFrame = field(repr=False)  # constraints_diff.csv
    inputs: pd.DataFrame = field(repr=False)  # inputs_diff.csv: one row per table
    input_changes: pd.DataFrame = field(repr=False)  # input_changes.csv: rows and cells
    plan: pd.DataFrame = field(repr=False)  # plan_diff.csv: any model's plan, by its ids
    waterfalls: dict[str, pd.DataFrame] = field(repr=False)  # "cost", "shortfall"
    story: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    if not path.is_file():
        raise InputError(f"{folder} is not a run folder (no summary.json)", str(folder))
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"not readable as a run summary ({exc})", str(path)) from None
    if not isinstance(found, dict) or not isinstance(found.get("model"), str) \
            or not isinstance(found.get("status"), str):
        raise InputError("not a run summary (expected a JSON object with the run's "
                         "model and status)", str(path))
    return found


READ_TABLES = ("plan", "coverage", "budgets", "sensitivity")  # what a diff reads of a run


def _missing_files(folder: Path) -> list[str]:
    """The tables the diff reads that the run wrote (its marker lists them) and that are
    gone: without them a diff would call an optimal run 'no plan' and its figures blank."""
    from allocator.outputs.folder import MARKER

    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        listed = [str(n) for n in info["files"]]
    except (OSError, ValueError, TypeError, KeyError):
        return []  # an older run without the marker: nothing to check against
    return [n for n in listed if Path(n).stem in READ_TABLES
            and Path(n).suffix in (".csv", ".parquet") and not (folder / n).exists()]


def _summaries(fa: Path, fb: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both runs' summaries, every problem of both folders said at once."""
    from allocator.errors import Problem

    problems: list[Problem] = []
    found: list[dict[str, Any]] = []
    for folder in (fa, fb):
        try:
            found.append(_summary(folder))
        except InputError as exc:
            problems += exc.problems
        gone = _missing_files(folder)
        if gone:
            problems.append(Problem(str(folder), f"{', '.join(gone)} missing: the run wrote "
                                    f"{'them' if len(gone) > 1 else 'it'} (its .allocator-run "
                                    "lists it) and it is gone since; nothing to compare"))
    if problems:
        raise InputError(problems)
    return found[0], found[1]


SENSITIVITY_COLUMNS = ["stage", "kind", "family", "labels", "activity", "rhs", "binding",
                       "dual"]


def _table(folder: Path, name: str) -> pd.DataFrame | None:
    from allocator.outputs.readback import read_output_table

    path = folder / f"{name}.csv"
    if not path.exists() and not path.with_suffix(".parquet").exists():
        return None
    if name == "sensitivity":
        return _sensitivity(path)
    return read_output_table(path)


def _sensitivity(path: Path) -> pd.DataFrame:
    """The columns a diff needs of sensitivity.csv, read by Arrow (a medium model's has 450k
    rows: pandas' reader of every column took 5 s of a 6 s diff); the writer's formula
    protection undone on the labels as the API's reader does."""
    from allocator.outputs.folder import FORMULA_START

    if path.with_suffix(".parquet").exists():
        return pd.read_parquet(path.with_suffix(".parquet"), columns=SENSITIVITY_COLUMNS)
    text = ["stage", "kind", "family", "labels", "binding"]
    frame = pd.read_csv(path, usecols=SENSITIVITY_COLUMNS, engine="pyarrow",
                        dtype={**{c: str for c in text},
                               **{c: "float64" for c in ("activity", "rhs", "dual")}},
                        keep_default_na=False,
                        na_values=[""])
    labels = frame["labels"].astype(object)
    protected = labels.str.startswith("'", na=False) & labels.str[1:2].isin(FORMULA_START)
    if protected.any():
        frame["labels"] = labels.where(~protected, labels.str[1:])
    return frame


def _ids(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith("_id")]


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(frame[col], errors="coerce").fillna(0.0)


def plan_diff(plan_a: pd.DataFrame, plan_b: pd.DataFrame) -> pd.DataFrame:
    """Any model's plan by its id columns: each numeric column before, after and its change,
    the rows where any changed (rows present in one plan only count as 0 in the other)."""
    ids = [c for c in _ids(plan_a) if c in plan_b.columns]
    if not ids:
        return pd.DataFrame()
    values = [c for c in plan_a.columns if c in plan_b.columns and c not in ids
              and pd.api.types.is_numeric_dtype(plan_a[c])
              and pd.api.types.is_numeric_dtype(plan_b[c])]
    a = plan_a.groupby(ids, sort=False)[values].sum()
    b = plan_b.groupby(ids, sort=False)[values].sum()
    both = a.merge(b, how="outer", left_index=True, right_index=True,
                   suffixes=("_a", "_b")).fillna(0.0)
    out = pd.DataFrame(index=both.index)
    changed = np.zeros(len(both), dtype=bool)
    for col in values:
        out[f"{col}_a"], out[f"{col}_b"] = both[f"{col}_a"], both[f"{col}_b"]
        out[f"{col}_delta"] = both[f"{col}_b"] - both[f"{col}_a"]
        changed |= out[f"{col}_delta"].abs().to_numpy() > TOL
    return out[changed].reset_index().sort_values(ids, kind="stable").reset_index(drop=True)


def moves_frame(plan_a: pd.DataFrame, plan_b: pd.DataFrame) -> pd.DataFrame:
    """moves.csv: every staff x site x service whose FTE changed, with its cost change."""
    keys = ["staff_id", "site_id", "service_id"]
    found = plan_diff(plan_a[[*keys, "fte", *(["cost"] if "cost" in plan_a else [])]],
                      plan_b[[*keys, "fte", *(["cost"] if "cost" in plan_b else [])]])
    if found.empty:
        return pd.DataFrame(columns=[*MOVE_COLUMNS, "cost_a", "cost_b", "cost_delta"])
    found = found.rename(columns={"fte_delta": "delta"})
    found = found[found["delta"].abs() > TOL].reset_index(drop=True)  # cost-only: not a move
    staff_a, staff_b = set(plan_a["staff_id"]), set(plan_b["staff_id"])
    found["staff_change"] = np.select(
        [~found["staff_id"].isin(staff_a), ~found["staff_id"].isin(staff_b)],
        ["appears", "disappears"], "")
    return found


def coverage_frame(a: pd.DataFrame | None, b: pd.DataFrame | None) -> pd.DataFrame:
    """coverage_diff.csv: every site x service, its demand, served and shortfall before and
    after (a target one run did not have counts as nothing there)."""
    if a is None or b is None:
        return pd.DataFrame()
    keys = [c for c in ("site_id", "service_id") if c in a and c in b]
    cols = [c for c in ("demand", "served", "shortfall", "served_share") if c in a and c in b]
    both = a[keys + cols].merge(b[keys + cols], on=keys, how="outer", suffixes=("_a", "_b"),
                                indicator=True, sort=True)
    out = both[keys].copy()
    out["target"] = both["_merge"].map({"left_only": "only in A", "right_only": "only in B",
                                        "both": ""}).astype(str)
    for col in cols:
        out[f"{col}_a"], out[f"{col}_b"] = both[f"{col}_a"], both[f"{col}_b"]
        if col != "served_share":
            out[f"{col}_delta"] = both[f"{col}_b"].fillna(0) - both[f"{col}_a"].fillna(0)
    return out.reset_index(drop=True)


def budgets_frame(a: pd.DataFrame | None, b: pd.DataFrame | None) -> pd.DataFrame:
    """budgets_diff.csv: each budget's amount, use (spent) and headroom before and after."""
    if a is None or b is None or "budget_id" not in a or "budget_id" not in b:
        return pd.DataFrame()
    cols = [c for c in ("amount", "spent", "headroom") if c in a and c in b]
    scope = a[["budget_id", "scope"]].merge(b[["budget_id", "scope"]], how="outer",
                                            on="budget_id", suffixes=("_a", "_b")) \
        if "scope" in a and "scope" in b else None
    both = a[["budget_id", *cols]].merge(b[["budget_id", *cols]], on="budget_id", how="outer",
                                         suffixes=("_a", "_b"), sort=True)
    out = both[["budget_id"]].copy()
    if scope is not None:
        out["scope"] = out["budget_id"].map(
            scope.set_index("budget_id")["scope_b"].fillna(scope.set_index("budget_id")
                                                           ["scope_a"]))
    for col in cols:
        out[f"{col}_a"], out[f"{col}_b"] = both[f"{col}_a"], both[f"{col}_b"]
        out[f"{col}_delta"] = both[f"{col}_b"].fillna(0) - both[f"{col}_a"].fillna(0)
    return out.reset_index(drop=True)


def objectives_frame(sa: dict[str, Any], sb: dict[str, Any]) -> pd.DataFrame:
    oa, ob = sa.get("objectives") or {}, sb.get("objectives") or {}
    names = [*oa, *(n for n in ob if n not in oa)]
    a = pd.to_numeric(pd.Series([oa.get(n) for n in names], dtype=object), errors="coerce")
    b = pd.to_numeric(pd.Series([ob.get(n) for n in names], dtype=object), errors="coerce")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = ((b - a) / a.abs()).where(a != 0)
    return pd.DataFrame({"stage": names, "a": a, "b": b, "delta": b - a, "rel_change": rel})


def constraints_frame(a: pd.DataFrame | None, b: pd.DataFrame | None) -> pd.DataFrame:
    """constraints_diff.csv: constraints (sensitivity.csv, kind = constraint) whose binding
    status or shadow price changed, by stage, family and business labels."""
    if a is None or b is None:
        return pd.DataFrame()
    keys = ["stage", "family", "labels"]
    cols = ["activity", "rhs", "binding", "dual"]

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        found = frame[frame["kind"] == "constraint"][keys + cols].copy()
        found["binding"] = found["binding"].astype(str).str.lower().eq("true")
        found["labels"] = found["labels"].fillna("")
        return found.drop_duplicates(keys)

    both = rows(a).merge(rows(b), on=keys, how="outer", suffixes=("_a", "_b"),
                         indicator=True, sort=True)
    dual_a = pd.to_numeric(both["dual_a"], errors="coerce")
    dual_b = pd.to_numeric(both["dual_b"], errors="coerce")
    scale = np.maximum(1.0, np.maximum(dual_a.abs().fillna(0), dual_b.abs().fillna(0)))
    price_moved = ((dual_b.fillna(0) - dual_a.fillna(0)).abs() > 1e-9 * scale)
    bind_a = both["binding_a"].astype("boolean").fillna(False).astype(bool)
    bind_b = both["binding_b"].astype("boolean").fillna(False).astype(bool)
    changed = (bind_a != bind_b) | price_moved
    out = both[changed].copy()
    out["binding_a"], out["binding_b"] = bind_a[changed], bind_b[changed]
    out["dual_delta"] = (dual_b - dual_a)[changed]
    out["change"] = np.select(
        [out["_merge"] == "left_only", out["_merge"] == "right_only",
         ~out["binding_a"] & out["binding_b"], out["binding_a"] & ~out["binding_b"]],
        ["only in A", "only in B", "now binding", "no longer binding"], "price changed")
    order = ["stage", "family", "labels", "change", "binding_a", "binding_b", "dual_a",
             "dual_b", "dual_delta", "activity_a", "activity_b", "rhs_a", "rhs_b"]
    out = out[order].reset_index(drop=True)
    return out.iloc[np.lexsort((-out["dual_delta"].abs().fillna(0).to_numpy(),
                                out["stage"].astype(str).to_numpy()))].reset_index(drop=True)


# --- causes ------------------------------------------------------------------------------------

def num(value: Any) -> str:
    """A figure as a person reads it: thousands separated, small ones to 4 digits."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if not np.isfinite(number):
        return "" if np.isnan(number) else ("unlimited" if number > 0 else "-unlimited")
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return "0" if number == 0 else f"{number:,.4g}"


def _fmt(value: Any) -> str:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.isna(number):
        return "blank" if pd.isna(value) else str(value)
    return num(number)


def change_sentences(changes: pd.DataFrame) -> pd.Series:
    """One phrase per input change: 'targets.csv row 14 raised demand of 0001 picking by 8%'."""
    if changes.empty:
        return pd.Series([], dtype=object)
    said = []
    for row in changes.itertuples(index=False):
        where = f"{row.file} row {int(row.row_b if pd.notna(row.row_b) else row.row_a)}" \
            if pd.notna(row.row_b) or pd.notna(row.row_a) else str(row.file)
        if row.change == "added":
            said.append(f"{where} added {row.table} {row.key}")
        elif row.change == "removed":
            said.append(f"{where} removed {row.table} {row.key}")
        elif row.change == "changed":
            rel = row.rel_change
            if pd.notna(rel) and rel != 0:
                verb = "raised" if rel > 0 else "lowered"
                said.append(f"{where} {verb} {row.column} of {row.key} by {abs(rel):.0%} "
                            f"({_fmt(row.value_a)} -> {_fmt(row.value_b)})")
            else:
                said.append(f"{where} changed {row.column} of {row.key} "
                            f"({_fmt(row.value_a)} -> {_fmt(row.value_b)})")
        else:
            said.append(f"{row.file}: {row.change} {row.column}")
    return pd.Series(said, index=changes.index, dtype=object)


# the input tables whose rows speak of a plan row's ids, most specific first, and the cause
# category each falls in (the waterfalls' bars)
_LINKS = (
    ("staff", ("staff_id",), "staff changes"),
    ("targets", ("site_id", "service_id"), "demand changes"),
    ("sites", ("site_id",), "site changes"),
    ("services", ("service_id",), "service changes"),
)


def _lookup(changes: pd.DataFrame, table: str, keys: tuple[str, ...]) -> pd.DataFrame:
    rows = changes[(changes["table"] == table) & changes[list(keys)].notna().all(axis=1)]
    return rows.groupby(list(keys), sort=False).agg(
        sentence=("sentence", "; ".join), kind=("change", "first")).reset_index()


STAFF_KINDS = {"added": "staff added", "removed": "staff removed"}


def link_causes(frame: pd.DataFrame, changes: pd.DataFrame, staff_known: bool = True,
                budget_sites: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add `category` and `cause` to rows keyed by staff/site/service ids: the changed input
    rows that speak of them (the most specific first; last, the changed budgets whose scope
    holds the row's site: `budget_sites`); rows no change speaks of are re-planning. Where
    the staff table could not be compared (`staff_known` False), people
    who appear in or disappear from the plan are taken as added or removed."""
    frame = frame.copy()
    frame["category"] = REPLANNING
    frame["cause"] = ""
    if frame.empty:
        return frame
    cause = pd.Series("", index=frame.index, dtype=object)
    category = pd.Series("", index=frame.index, dtype=object)
    for table, keys, name in _LINKS if not changes.empty else ():
        if not all(k in frame for k in keys):
            continue
        found = _lookup(changes, table, keys)
        if found.empty:
            continue
        linked = frame[list(keys)].merge(found, on=list(keys), how="left")
        said = pd.Series(linked["sentence"].to_numpy(), index=frame.index)
        kind = pd.Series(linked["kind"].to_numpy(), index=frame.index)
        hit = said.notna()
        cause = cause.where(~hit, cause.where(cause == "", cause + "; ") + said.fillna(""))
        named = kind.map(STAFF_KINDS).fillna(name) if table == "staff" else \
            pd.Series(name, index=frame.index)
        category = category.where(~(hit & (category == "")), named)
    if budget_sites is not None and not budget_sites.empty and "site_id" in frame:
        said = frame[["site_id"]].merge(budget_sites, on="site_id", how="left")["sentence"]
        said.index = frame.index
        hit = said.notna()
        cause = cause.where(~hit, cause.where(cause == "", cause + "; ") + said.fillna(""))
        category = category.where(~(hit & (category == "")), "budget changes")
    frame["cause"] = cause
    frame["category"] = category.where(category != "", REPLANNING)
    if not staff_known and "staff_change" in frame:
        frame.loc[frame["staff_change"] == "appears", "category"] = "staff added"
        frame.loc[frame["staff_change"] == "disappears", "category"] = "staff removed"
    return frame


def budget_sites(changes: pd.DataFrame, summary: dict[str, Any],
                 sites: pd.Series) -> pd.DataFrame:
    """site_id -> the sentences of the changed budgets whose scope holds it (`all`,
    `region:R` by the sites table's region, `site:S`)."""
    rows = changes[(changes["table"] == "budgets") & changes["budget_id"].notna()]
    if rows.empty or sites.empty:
        return pd.DataFrame(columns=["site_id", "sentence"])
    from allocator.diff.inputs import _read_again

    scopes = _scopes(summary)
    region = pd.Series(dtype=object)
    record = (summary.get("inputs") or {}).get("sites")
    if record is not None:
        side = _read_again("sites", record)
        if side.frame is not None and "region" in side.frame:
            region = side.frame.set_index("site_id")["region"]
    pairs = []
    said = rows.groupby("budget_id", sort=False)["sentence"].agg("; ".join)
    for budget, sentence in said.items():
        scope = str(scopes.get(budget, ""))
        kind, _, value = (part.strip() for part in scope.partition(":"))
        if scope.strip().lower() == "all":
            held, rank = sites, 2
        elif kind.lower() == "region":
            held, rank = sites[sites.map(region).astype(str) == value], 1
        elif kind.lower() == "site":
            held, rank = sites[sites == value], 0
        else:
            continue
        pairs += [(site, rank, sentence) for site in held]
    found = pd.DataFrame(pairs, columns=["site_id", "rank", "sentence"]).sort_values(
        ["site_id", "rank"], kind="stable")  # the narrowest scope first
    return found.groupby("site_id", sort=True)["sentence"].agg("; ".join).reset_index()


def _scopes(summary: dict[str, Any]) -> dict[str, str]:
    from allocator.diff.inputs import _read_again

    record = (summary.get("inputs") or {}).get("budgets")
    side = _read_again("budgets", record) if record else None
    if side is None or side.frame is None or "scope" not in side.frame:
        return {}
    return dict(zip(side.frame["budget_id"], side.frame["scope"], strict=True))


def waterfall(start: float, end: float, parts: pd.Series, start_label: str,
              end_label: str) -> pd.DataFrame:
    """Bars: the start, each cause's change (largest first), the end. `parts` sum to
    end - start (the rounding of the plan tables aside: what is left is shown as such)."""
    parts = parts[parts.abs() > TOL]
    parts = parts.reindex(parts.abs().sort_values(ascending=False, kind="stable").index)
    rest = (end - start) - float(parts.sum())
    steps = [(start_label, start, "total")]
    steps += [(str(k), float(v), "change") for k, v in parts.items()]
    if abs(rest) > 1e-6 * max(1.0, abs(end), abs(start)):
        steps.append(("not in the plan rows (rounding)", rest, "change"))
    steps.append((end_label, end, "total"))
    return pd.DataFrame(steps, columns=["step", "value", "kind"])


# --- the story ---------------------------------------------------------------------------------

def _story(moves: pd.DataFrame, coverage: pd.DataFrame, budgets: pd.DataFrame,
           objectives: pd.DataFrame, constraints: pd.DataFrame, inputs: InputDiff,
           status: dict[str, str], limit: int = 8) -> list[str]:
    said = []
    for row in objectives.itertuples(index=False):
        if pd.isna(row.a) or pd.isna(row.b):
            missing = "A" if pd.isna(row.a) else "B"
            said.append(f"Run {missing} has no {row.stage} objective (status "
                        f"{status[missing]}).")
        elif pd.notna(row.delta) and abs(row.delta) > 1e-9 * max(1.0, abs(row.a)):
            rel = f" ({row.rel_change:+.1%})" if pd.notna(row.rel_change) else ""
            said.append(f"The {row.stage} objective went from {_fmt(row.a)} to {_fmt(row.b)}"
                        f"{rel}.")
        elif pd.notna(row.a):
            said.append(f"The {row.stage} objective stayed at {_fmt(row.a)}.")
    changed = inputs.tables[inputs.tables["status"] != "same"]
    for row in changed.itertuples(index=False):
        if row.status == "same values":
            said.append(f"Input {row.table}: the same rows and values, read from another "
                        f"file ({row.source_a} and {row.source_b}).")
            continue
        parts = [f"{int(n)} {w}" for n, w in ((row.rows_added, "rows added"),
                                              (row.rows_removed, "rows removed"),
                                              (row.rows_changed, "rows changed"))
                 if pd.notna(n) and n]
        said.append(f"Input {row.table} {row.status}" + (f": {', '.join(parts)}." if parts
                                                         else "."))
    if not moves.empty:
        said.append(f"{num(moves['delta'].abs().sum() / 2)} FTE moved (half of the sum of "
                    f"|change| over {len(moves)} staff × site × service rows).")
        people = moves.groupby("staff_change")["staff_id"].nunique()
        if people.get("appears") or people.get("disappears"):
            said.append(f"{people.get('appears', 0)} people appear in the plan and "
                        f"{people.get('disappears', 0)} disappear from it.")
        net = moves.groupby(["site_id", "service_id"], sort=False).agg(
            delta=("delta", "sum"), cause=("cause", lambda s: next((c for c in s if c), "")))
        if "cause" in coverage and len(coverage):  # the target's own change first
            own = coverage.set_index(["site_id", "service_id"])["cause"]
            own = own[own != ""].reindex(net.index)
            net["cause"] = own.where(own.notna(), net["cause"])
        net = net[net["delta"].abs() > 1e-6]
        net = net.reindex(net["delta"].abs().sort_values(ascending=False, kind="stable")
                          .index).head(limit)
        for (site, service), row in net.iterrows():
            verb = "gained" if row["delta"] > 0 else "lost"
            because = f", next to: {row['cause']}" if row["cause"] else ""
            said.append(f"{site} {verb} {abs(row['delta']):.3g} FTE of {service}{because}.")
    if not coverage.empty and "shortfall_delta" in coverage:
        moved = coverage[coverage["shortfall_delta"].abs() > 1e-6]
        moved = moved.reindex(moved["shortfall_delta"].abs().sort_values(
            ascending=False, kind="stable").index).head(limit)
        for row in moved.itertuples(index=False):
            verb = "rose" if row.shortfall_delta > 0 else "fell"
            because = f" ({row.cause})" if row.cause else ""
            said.append(f"Shortfall of {row.service_id} at {row.site_id} {verb} by "
                        f"{abs(row.shortfall_delta):.3g} to {_fmt(row.shortfall_b)}{because}.")
    if not budgets.empty and "headroom_delta" in budgets:
        for row in budgets[budgets["headroom_delta"].abs() > 0.5].itertuples(index=False):
            because = f" ({row.cause})" if row.cause else ""
            # the change said too: at 6 figures a small one reads '379,560 -> 379,560'
            said.append(f"Budget {row.budget_id}: headroom {_fmt(round(row.headroom_a, 2))} "
                        f"-> {_fmt(round(row.headroom_b, 2))} "
                        f"({'+' if row.headroom_delta > 0 else '-'}"
                        f"{_fmt(round(abs(row.headroom_delta), 2))}){because}.")
    if not constraints.empty:
        for change in ("now binding", "no longer binding"):
            rows = constraints[constraints["change"] == change]
            if len(rows):
                shown = ", ".join(f"{r.family} {r.labels} ({r.stage})".replace("  ", " ")
                                  for r in rows.head(5).itertuples(index=False))
                more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
                said.append(f"{change.capitalize()}: {shown}{more}.")
    return said


def _budget_causes(budgets: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    budgets = budgets.copy()
    budgets["cause"] = ""
    if budgets.empty or changes.empty:
        return budgets
    found = _lookup(changes, "budgets", ("budget_id",))
    if not found.empty:
        budgets["cause"] = budgets[["budget_id"]].merge(found, on="budget_id", how="left")[
            "sentence"].fillna("").to_numpy()
    return budgets


def _constraint_causes(constraints: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """The changed input rows whose ids are all among a constraint's labels (budget B-SOU,
    site LEE, staff E1, target LEE picking): joins on label tokens, no pairwise loop."""
    constraints = constraints.copy()
    constraints["cause"] = ""
    if constraints.empty or changes.empty:
        return constraints
    keyed = changes[changes["key"].astype(str) != ""]
    by_key = keyed.groupby("key", sort=False)["sentence"].agg("; ".join).reset_index()
    if by_key.empty:
        return constraints
    parts = by_key["key"].astype(str).str.split()
    by_key["first"] = parts.str[0]
    by_key["second"] = parts.str[1]
    tokens = constraints["labels"].astype(str).str.split(r"[\s|,;/]+", regex=True) \
        .explode().rename("token").reset_index()  # index: the constraint's row
    tokens = tokens.rename(columns={tokens.columns[0]: "row"})
    found = tokens.merge(by_key, left_on="token", right_on="first")
    two = found["second"].notna()
    held = found[two].merge(tokens, left_on=["row", "second"], right_on=["row", "token"])
    found = pd.concat([found[~two], held[found.columns.drop("token").tolist()].assign(
        token=held["token_x"])], ignore_index=True)
    found = found.drop_duplicates(["row", "key"]).sort_values(["row", "key"], kind="stable")
    said = found.groupby("row")["sentence"].agg("; ".join)
    constraints["cause"] = said.reindex(constraints.index).fillna("").to_numpy()
    return constraints


def diff_runs(a: str | Path, b: str | Path, summary_a: dict[str, Any] | None = None,
              summary_b: dict[str, Any] | None = None) -> RunDiff:
    """Compare run folder `a` (before) with `b` (after). `summary_*` stand in for a folder's
    summary.json (a run still being written compares itself with its baseline)."""
    fa, fb = Path(a), Path(b)
    if summary_a is None and summary_b is None:
        sa, sb = _summaries(fa, fb)
    else:
        sa = summary_a if summary_a is not None else _summary(fa)
        sb = summary_b if summary_b is not None else _summary(fb)
    model = str(sb.get("model") or sa.get("model") or "ops")
    notes: list[str] = []
    if sa.get("model") != sb.get("model"):
        notes.append(f"the runs are of different models ({sa.get('model')} and "
                     f"{sb.get('model')}): only what both wrote is compared")
    inputs = diff_inputs(sa, sb)
    notes += inputs.notes
    changes = inputs.changes
    changes = changes.assign(sentence=change_sentences(changes)) if len(changes) else \
        changes.assign(sentence=pd.Series(dtype=object))
    plan_a, plan_b = _table(fa, "plan"), _table(fb, "plan")
    if plan_a is None or plan_b is None:
        missing = ", ".join(str(f) for f, p in ((fa, plan_a), (fb, plan_b)) if p is None)
        notes.append(f"no plan in {missing} (an infeasible or failed run): no moves")
    ops_plan = plan_a is not None and plan_b is not None and all(
        c in p for p in (plan_a, plan_b) for c in ("staff_id", "site_id", "service_id", "fte"))
    moves = moves_frame(plan_a, plan_b) if ops_plan and plan_a is not None \
        and plan_b is not None else pd.DataFrame(columns=[*MOVE_COLUMNS, "staff_change"])
    staff_known = bool((inputs.tables["table"] == "staff").any()) and not bool(
        inputs.tables.loc[inputs.tables["table"] == "staff", "note"].notna().any())
    site_ids = pd.Series(sorted({*(plan_a["site_id"] if plan_a is not None and "site_id"
                                   in plan_a else []),
                                 *(plan_b["site_id"] if plan_b is not None and "site_id"
                                   in plan_b else [])}), dtype=object)
    by_budget = budget_sites(changes, sb, site_ids) if len(changes) else None
    moves = link_causes(moves, changes, staff_known, by_budget)
    plan = plan_diff(plan_a, plan_b) if plan_a is not None and plan_b is not None \
        else pd.DataFrame()
    coverage = link_causes(coverage_frame(_table(fa, "coverage"), _table(fb, "coverage")),
                           changes, True, by_budget)
    budgets = _budget_causes(budgets_frame(_table(fa, "budgets"), _table(fb, "budgets")),
                             changes)
    constraints = _constraint_causes(
        constraints_frame(_table(fa, "sensitivity"), _table(fb, "sensitivity")), changes)
    objectives = objectives_frame(sa, sb)
    if not ops_plan:
        moves = pd.DataFrame()  # no staff x site x service plan: no moves.csv
    if model != "ops":
        has = [f for f, frame in (("coverage_diff.csv", coverage), ("budgets_diff.csv", budgets))
               if len(frame.columns)]
        notes.append(f"model {model}: no staff × site × service moves (moves.csv and the "
                     "waterfalls are the ops model's); its plan is compared in plan_diff.csv "
                     f"by its ids, with {', '.join([*has, 'objectives', 'constraints'])} and "
                     "the inputs")
    waterfalls: dict[str, pd.DataFrame] = {}
    if ops_plan and "cost_delta" in moves and plan_a is not None and plan_b is not None:
        cost_a, cost_b = float(_num(plan_a, "cost").sum()), float(_num(plan_b, "cost").sum())
        all_cost = plan_diff(plan_a[["staff_id", "site_id", "service_id", "cost"]],
                             plan_b[["staff_id", "site_id", "service_id", "cost"]])
        if not all_cost.empty:
            all_cost["staff_change"] = np.select(
                [~all_cost["staff_id"].isin(set(plan_a["staff_id"])),
                 ~all_cost["staff_id"].isin(set(plan_b["staff_id"]))],
                ["appears", "disappears"], "")
            all_cost = link_causes(all_cost, changes, staff_known, by_budget)
            parts = all_cost.groupby("category", sort=True)["cost_delta"].sum()
        else:
            parts = pd.Series(dtype=float)
        waterfalls["cost"] = waterfall(cost_a, cost_b, parts, "cost A", "cost B")
    if not coverage.empty and "shortfall_delta" in coverage:
        parts = coverage.groupby("category", sort=True)["shortfall_delta"].sum()
        waterfalls["shortfall"] = waterfall(
            float(coverage["shortfall_a"].fillna(0).sum()),
            float(coverage["shortfall_b"].fillna(0).sum()), parts, "shortfall A",
            "shortfall B")
    story = _story(moves, coverage, budgets, objectives, constraints, inputs,
                   {"A": str(sa.get("status")), "B": str(sb.get("status"))})
    return RunDiff(fa, fb, model, sa, sb, moves.reset_index(drop=True), coverage, budgets,
                   objectives, constraints, inputs.tables,
                   changes.reindex(columns=[*CHANGE_COLUMNS, "sentence"]), plan, waterfalls,
                   story, list(dict.fromkeys(notes)))


__all__ = ["ID_COLUMNS", "RunDiff", "diff_runs"]
