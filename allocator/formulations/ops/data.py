"""The ops model's tables: their schemas, and the checks that span tables (references, scopes).

Validation happens once, here, at the boundary; the formulation below trusts what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.errors import InputError, Problem
from allocator.scenario import Scenario
from allocator.tables.readers import LoadedTable, locate
from allocator.tables.schema import Col, Schema, _report, check_reference

SCHEMAS: dict[str, Schema] = {
    "sites": Schema("sites", (
        Col("site_id"),
        Col("region", required=False, default="all"),
        Col("capacity_fte", "float", required=False, min=0, nullable=True),
        Col("min_fte", "float", required=False, default=0.0, min=0),
    ), unique=("site_id",)),
    "services": Schema("services", (
        Col("service_id"),
        Col("skill", required=False, nullable=True),
        Col("productivity", "float", required=False, default=1.0, min=0, min_exclusive=True),
    ), unique=("service_id",)),
    "staff": Schema("staff", (
        Col("staff_id"),
        Col("home_site"),
        Col("skills"),
        Col("fte", "float", min=0, min_exclusive=True),
        Col("cost_per_fte", "float", min=0),
        Col("mobility", "choice", required=False, default="region",
            choices=("site", "region", "any")),
        Col("travel_cost", "float", required=False, default=0.0, min=0),
    ), unique=("staff_id",)),
    "targets": Schema("targets", (
        Col("site_id"),
        Col("service_id"),
        Col("demand", "float", min=0),
        Col("min_level", "float", required=False, default=0.0, min=0, max=1),
        Col("weight", "float", required=False, default=1.0, min=0),
    ), unique=("site_id", "service_id")),
    "budgets": Schema("budgets", (
        Col("budget_id"),
        Col("scope"),
        Col("amount", "float", min=0),
    ), unique=("budget_id",), allow_empty=True),
    "baseline": Schema("baseline", (
        Col("staff_id"),
        Col("site_id"),
        Col("service_id"),
        Col("fte", "float", min=0),
    ), unique=("staff_id", "site_id", "service_id"), allow_empty=True),
}
REQUIRED_TABLES = ("sites", "staff", "targets")


@dataclass
class OpsData:
    """Validated, typed tables of the ops model."""

    sites: pd.DataFrame
    services: pd.DataFrame
    staff: pd.DataFrame
    targets: pd.DataFrame
    budgets: pd.DataFrame
    baseline: pd.DataFrame | None
    sources: dict[str, LoadedTable] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    budget_sites: pd.DataFrame | None = None  # (budget_id, site_id): which sites a scope covers
    # A region's block in a decomposed run: the stability stage even when none of the
    # baseline's rows is at this region's sites (the other blocks have it; x0 = 0 here).
    keep_stability: bool = False


def _scope_members(
    table: LoadedTable, budgets: pd.DataFrame, sites: pd.DataFrame, problems: list[Problem]
) -> pd.DataFrame:
    """Expand each budget's scope to its sites; a scope naming nothing real is an error."""
    if budgets.empty:
        return pd.DataFrame({"budget_id": pd.Series(dtype=object),
                             "site_id": pd.Series(dtype=object)})
    scope = budgets["scope"].fillna("").astype(str).str.strip()  # empty cells: reported
    kind = scope.str.partition(":")[0].str.strip().str.lower()
    ref = scope.str.partition(":")[2].str.strip()
    is_all = kind.eq("all") & ref.eq("")
    is_region = kind.eq("region") & ref.isin(sites["region"])
    is_site = kind.eq("site") & ref.isin(sites["site_id"])
    bad = ~(is_all | is_region | is_site) & budgets["scope"].notna()
    # A region or site written in another case ('region:North' for 'north') gets its name.
    hinted = pd.Series(False, index=budgets.index)
    for kind_name, ids in (("region", sites["region"]), ("site", sites["site_id"])):
        folded = {str(v).casefold(): str(v) for v in pd.unique(ids.astype(str))}
        guess = ref.str.casefold().map(folded)
        near = bad & kind.eq(kind_name) & guess.notna()
        for meant in pd.unique(guess[near]):
            rows = near & guess.eq(meant)
            _report(problems, table, rows.to_numpy(), "scope",
                    f"no {kind_name} is written like that; did you mean '{kind_name}:{meant}'? "
                    "(ids match exactly, case included)", budgets["scope"])
            hinted |= rows
    _report(problems, table, (bad & ~hinted).to_numpy(), "scope",
            "expected 'all', 'region:<a region of sites>' or 'site:<a site_id>'", budgets["scope"])
    parts = []
    ids = budgets["budget_id"]
    if is_all.any():
        parts.append(pd.merge(ids[is_all].to_frame(), sites[["site_id"]], how="cross"))
    if is_region.any():
        frame = pd.DataFrame({"budget_id": ids[is_region], "region": ref[is_region]})
        parts.append(frame.merge(sites[["site_id", "region"]], on="region")[
            ["budget_id", "site_id"]])
    if is_site.any():
        parts.append(pd.DataFrame({"budget_id": ids[is_site], "site_id": ref[is_site]}))
    if not parts:
        return pd.DataFrame({"budget_id": pd.Series(dtype=object),
                             "site_id": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True)


def _ignored_settings(scenario: Scenario, data: OpsData) -> list[str]:
    """Settings the file gives that this run cannot use: said, never silently dropped."""
    found = []
    objective, policy = scenario.objective, scenario.policy
    if objective.weights and objective.mode != "weighted":
        found.append("objective.weights are used only with objective.mode = \"weighted\"; "
                     "this run solves the stages in order (lexicographic) and ignores them")
    if objective.mode == "weighted":
        missing = [s for s in objective.order if s not in objective.weights]
        if missing:
            found.append(f"objective.mode = \"weighted\" without a weight for "
                         f"{', '.join(missing)}: each weighs 1, so one unit of weighted "
                         "shortfall counts as much as one unit of money; give "
                         "objective.weights to say what a unit of service is worth")
    if policy.max_moved_fte is not None and (data.baseline is None or data.baseline.empty):
        found.append("policy.max_moved_fte needs a baseline table (yesterday's plan); there "
                     "is none, so no limit on moves applies")
    for key in ("single_source", "max_distance", "allow_nonconcave"):
        if key in policy.model_fields_set:
            found.append(f"policy.{key} belongs to the network/funding models; the ops model "
                         "ignores it")
    return found


def load_ops(scenario: Scenario) -> OpsData:
    """Read and validate every table; raise one InputError listing all problems found."""
    from allocator.formulations.tabular import explicit_sense, read_tables

    explicit_sense(scenario, "ops", "min")  # the ops stages only ever minimize
    # The loop every model shares; bad cells do not stop the cross-table checks below (they
    # read only id and scope columns), so one run reports every problem. The text frames go
    # (keep_text=False): on a million staff they would double the memory of the load.
    found = read_tables(scenario, SCHEMAS, REQUIRED_TABLES, keep_text=False)
    loaded, frames, problems = found.loaded, found.frames, found.problems

    sites, staff, targets = frames["sites"], frames["staff"], frames["targets"]
    if "services" in frames:
        services = frames["services"]
        services["skill"] = services["skill"].where(services["skill"].notna(),
                                                    services["service_id"])
    else:
        ids = pd.Index(targets["service_id"].dropna().unique()).sort_values()
        services = pd.DataFrame({"service_id": ids, "skill": ids, "productivity": 1.0})
    budgets = frames.get("budgets", pd.DataFrame(
        {"budget_id": pd.Series(dtype=object), "scope": pd.Series(dtype=object),
         "amount": pd.Series(dtype=float)}))
    baseline = frames.get("baseline")

    skill_warnings = _match_skills(loaded["staff"], staff, services, problems)
    site_ids = pd.Index(sites["site_id"])
    service_ids = pd.Index(services["service_id"])
    check_reference(loaded["staff"], staff, "home_site", site_ids, "site", problems)
    check_reference(loaded["targets"], targets, "site_id", site_ids, "site", problems)
    if "services" in loaded:
        check_reference(loaded["targets"], targets, "service_id", service_ids, "service",
                        problems)
    if "budgets" in loaded:
        members = _scope_members(loaded["budgets"], budgets, sites, problems)
    else:
        members = pd.DataFrame({"budget_id": pd.Series(dtype=object),
                                "site_id": pd.Series(dtype=object)})
    if problems:
        raise InputError(locate(problems, loaded))

    data = OpsData(sites, services, staff, targets, budgets, baseline, loaded,
                   budget_sites=members, warnings=skill_warnings)
    data.warnings.extend(_ignored_settings(scenario, data))
    if "budgets" in loaded and budgets.empty:
        data.warnings.append(
            f"the budgets table ({loaded['budgets'].source}) has a header but no rows: this "
            "run has NO budget limit at all; remove the table from the scenario if that is "
            "meant, or fill it")
    _warn(data)
    return data


# Skills are labels typed by people in many exports: matched without regard to case or the
# spaces around them ('PICK ', 'pick' and 'Pick' are one skill), and shown in lower case.
SKILL_SEPARATOR = ";"
WRONG_SEPARATORS = (",", "|", "/", "+")


def _skill_key(tokens: pd.Series) -> pd.Series:
    return tokens.astype(str).str.strip().str.casefold()


def _match_skills(table: LoadedTable, staff: pd.DataFrame, services: pd.DataFrame,
                  problems: list[Problem]) -> list[str]:
    """Normalize skills (case, spaces) in place; refuse cells written with another separator;
    return warnings naming the staff whose skills match no service, with the closest skill.

    Works on the distinct skills cells, not the rows: a million staff share a few hundred."""
    import difflib

    services["skill"] = _skill_key(services["skill"])
    known = set(services["skill"])
    cells = staff["skills"].fillna("").astype(str)  # an empty cell is reported by the schema
    distinct = pd.Series(cells.unique(), dtype=object)
    tokens = distinct.str.split(SKILL_SEPARATOR).explode()
    keys = _skill_key(tokens)
    keys = keys[keys != ""]
    normal = keys.groupby(level=0, sort=False).agg(lambda k: SKILL_SEPARATOR.join(
        dict.fromkeys(k)))
    normal = normal.reindex(range(len(distinct)), fill_value="")
    mapping = dict(zip(distinct, normal, strict=True))
    staff["skills"] = cells.map(mapping)
    matched = keys.isin(known).groupby(level=0).any().reindex(range(len(distinct)),
                                                               fill_value=False)
    # A cell that matches nothing as written but would with another separator is a typo of
    # the separator: refuse it (the person would silently do no work otherwise).
    wrong = pd.Series(False, index=distinct.index)
    for sep in WRONG_SEPARATORS:
        parts = _skill_key(distinct.str.split(sep).explode())
        hits = parts.isin(known).groupby(level=0).sum()
        wrong |= (hits >= 1) & distinct.str.contains(sep, regex=False) & ~matched
    bad_cells = set(distinct[wrong])
    if bad_cells:
        mask = cells.isin(bad_cells).to_numpy()
        _report(problems, table, mask, "skills",
                f"skills are separated by '{SKILL_SEPARATOR}' (e.g. 'pick;pack'), not by "
                f"{' or '.join(repr(c) for c in WRONG_SEPARATORS)}", cells)
    unmatched_cells = set(distinct[~matched & ~wrong & (normal != "")])
    warnings: list[str] = []
    # A token no service needs, beside others that match, is legal (a skill kept on file)
    # but is often a typo ('pakc'): those with a close service skill are named as such.
    loose = keys[~keys.isin(known) & keys.index.isin(np.flatnonzero(matched.to_numpy()))]
    typos = []
    for token in sorted(set(loose)):
        close = difflib.get_close_matches(token, sorted(known), n=1, cutoff=0.75)
        if close:
            rows = int(cells.isin(set(distinct[loose.index[loose == token]])).sum())
            typos.append(f"'{token}' in {rows} staff rows (did you mean '{close[0]}'?)")
    if typos:
        warnings.append("skills that no service needs, close to one that a service does: "
                        + "; ".join(typos[:10]) + (" ..." if len(typos) > 10 else "")
                        + ". Those people are not counted for that service")
    if unmatched_cells:
        lost = cells.isin(unmatched_cells)
        stray = sorted(set(keys[~keys.isin(known)]))
        hints = []
        for token in stray[:8]:
            close = difflib.get_close_matches(token, sorted(known), n=1, cutoff=0.5)
            hints.append(f"'{token}'" + (f" (closest service skill: '{close[0]}')"
                                         if close else ""))
        ids = staff.loc[lost, "staff_id"].astype(str).head(5).tolist()
        warnings.append(
            f"{int(lost.sum())} staff rows have no skill that any service needs, so they are "
            f"left out of the plan (e.g. {', '.join(ids)}); skills matching nothing: "
            f"{', '.join(hints)}{' ...' if len(stray) > 8 else ''}. Skills match "
            "without regard to case or surrounding spaces; separate them with ';'")
    return warnings


def _warn(data: OpsData) -> None:
    """Legal but suspicious input: said up front, then shown as explicit shortfall."""
    staff_skills = set(
        data.staff["skills"].astype(str).str.split(";").explode().str.strip().unique()
    )
    needed = data.services[data.services["service_id"].isin(data.targets["service_id"])]
    for service_id, skill in zip(needed["service_id"], needed["skill"], strict=True):
        if skill not in staff_skills:
            data.warnings.append(
                f"no staff member has skill '{skill}': service '{service_id}' will be unserved"
            )
    if data.baseline is not None and len(data.baseline):
        b = data.baseline
        unknown = ~b["staff_id"].isin(data.staff["staff_id"]) | ~b["site_id"].isin(
            data.sites["site_id"]) | ~b["service_id"].isin(data.services["service_id"])
        if unknown.any():
            data.warnings.append(
                f"{int(unknown.sum())} baseline rows name staff, sites or services that no "
                "longer exist; they count as moved"
            )
    _warn_wide_ranges(data)


# Solvers work to about 1e-9 relative; coefficients spread over more than this factor lose
# digits in the factorization (HiGHS itself warns past 1e9 on matrix ranges).
WIDE_RANGE = 1e8
NUMERIC_COLUMNS = {
    "sites": ("capacity_fte", "min_fte"), "services": ("productivity",),
    "staff": ("fte", "cost_per_fte", "travel_cost"),
    "targets": ("demand", "weight"), "budgets": ("amount",),
}


def _warn_wide_ranges(data: OpsData) -> None:
    """Name each input column whose nonzero magnitudes span more than WIDE_RANGE."""
    for table, columns in NUMERIC_COLUMNS.items():
        frame = getattr(data, table)
        for column in columns:
            if column not in frame:
                continue
            values = np.abs(frame[column].to_numpy(dtype=float))
            values = values[np.isfinite(values) & (values > 0)]
            if values.size and values.max() / values.min() > WIDE_RANGE:
                data.warnings.append(
                    f"{table}.{column} spans {values.min():g} to {values.max():g}: a range "
                    "this wide can cost the solver its accuracy; consider other units"
                )
