"""A decomposed run on tables partitioned by region: the client never builds the full model.

`allocator solve --decompose regions|auto` on a scenario whose staff and targets tables are
folders of Parquet parts by region (allocator/tables/partitioned.py; `allocator generate
--partitioned` writes them) comes here instead of the monolithic build:

1. The client reads and validates only the small tables (sites, services, budgets; each
   budget's scope is expanded against every site here).
2. Regions are packed onto workers by the size of their parts (longest first onto the
   lightest); each worker's `RegionOwner` reads its regions' parts, validates them and
   builds one block per region (allocator/decompose/regional.py).
3. The client gets each block's row-key hashes (8 bytes a row) and declares linking every
   key found in more than one block; the owners cut their blocks at those rows.
4. Column generation as for an in-memory model (`solve.run_stages`).
5. The plan travels once: each owner checks its blocks' rows and bounds and returns its
   tables as Parquet; the client checks the linking rows and every stage's objective and
   hold from the owners' sums, then writes plan, coverage, sites and budgets.

sensitivity.csv is priced block by block at the master's final prices (each stage run to a
1e-9 gap for it); an infeasible run gets diagnosis.md for the region with no plan of its own
or for the shared rows that do not fit. report.html is drawn from the plan's tables and the
summary; a baseline (yesterday's plan) is read by every owner for its regions' sites, and
changes.csv and baseline_diff.md follow. Not written: basis.parquet, bottlenecks.md,
ladders.csv and hiring.csv (they need the whole LP in one place; the notes say so).
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.analysis.sensitivity import binding_side
from allocator.core.checks import PLAN_TOLERANCE
from allocator.core.model import Objective
from allocator.decompose import entry
from allocator.decompose.blocks import _pack
from allocator.decompose.master import Master
from allocator.decompose.pool import DaskPool, LocalPool
from allocator.decompose.regional import RegionOwner, RegionRecipe
from allocator.decompose.solve import (
    WHOLE_MIP_GAP,
    Decomposition,
    _peak,
    _polish_stages,
    _polished_bound,
    master_weights,
    run_notes,
    run_stages,
)
from allocator.errors import InputError, Problem
from allocator.formulations.ops.data import SCHEMAS, _scope_members, _skill_key
from allocator.formulations.ops.tables import MONEY_DECIMALS, _r, _sort
from allocator.scenario import Scenario
from allocator.solvers.base import Status
from allocator.solvers.lexicographic import SolveResult, StageResult
from allocator.tables.partitioned import PARTITION_KEY, parts, region_parts, stray_files
from allocator.tables.readers import LoadedTable, locate, read_table
from allocator.tables.schema import validate

SMALL_TABLES = ("sites", "services", "budgets")
# With sensitivity on, each stage runs to this gap, not its rel_tol: the master's prices and
# the blocks' duals at them are the LP's duals only where the master has converged (at a gap
# of 5e-7 on small, duals were off by up to 0.1; at this gap they equal the monolithic
# unique duals to 1e-11).
SENSITIVITY_GAP = 1e-9


def _path(scenario: Scenario, name: str) -> Path | None:
    spec = scenario.tables.get(name)
    if spec is None:
        return None
    raw = spec if isinstance(spec, str) else spec.get("path")
    if raw is None:
        return None
    path = Path(raw)
    return path if path.is_absolute() else scenario.base_dir / path


def _spec(scenario: Scenario, name: str) -> dict[str, str] | None:
    """The scenario's `[tables]` entry for `name` as a dict (what read_table takes)."""
    spec = scenario.tables.get(name)
    if spec is None:
        return None
    return {"path": spec} if isinstance(spec, str) else dict(spec)


def wanted(scenario: Scenario, req: entry.Request | None = None) -> bool:
    """A decomposed run was asked for and the staff table is a folder of parts: the tables'
    layout is there for this (so `auto` takes it too; `off` reads the folders whole)."""
    req = req or entry.current()
    path = _path(scenario, "staff")
    return (req.mode != "off" and scenario.model == "ops" and path is not None
            and path.is_dir())


@dataclass
class SmallTables:
    sites: pd.DataFrame
    services: pd.DataFrame
    budgets: pd.DataFrame
    members: pd.DataFrame
    loaded: dict[str, LoadedTable] = field(default_factory=dict)


def load_small(scenario: Scenario) -> SmallTables:
    """Sites, services and budgets, validated (every problem at once); the partitioned
    tables' shape is checked here too."""
    problems: list[Problem] = []
    loaded: dict[str, LoadedTable] = {}
    frames: dict[str, pd.DataFrame] = {}
    for name in ("staff", "targets"):
        path = _path(scenario, name)
        if path is None or not path.is_dir():
            problems.append(Problem(scenario.source, f"tables.{name}: a decomposed run on "
                                    "partitioned tables needs staff and targets as folders of "
                                    f"Parquet parts by region ({PARTITION_KEY}=<R>/...); "
                                    "`allocator generate --partitioned` writes them"))
    if "services" not in scenario.tables:
        problems.append(Problem(scenario.source, "a decomposed run on partitioned tables "
                                "needs a services table (the client does not read targets)"))
    for name in SMALL_TABLES:
        if name not in scenario.tables:
            continue
        try:
            table = read_table(name, scenario.tables[name], scenario.base_dir,
                               origin=scenario.source, max_file_mb=scenario.input.max_file_mb)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        frame, found = validate(table, SCHEMAS[name])
        problems.extend(found)
        loaded[name], frames[name] = table, frame
    if problems or "sites" not in frames or "services" not in frames:
        raise InputError(locate(problems, loaded))
    sites, services = frames["sites"], frames["services"]
    services["skill"] = _skill_key(services["skill"].where(services["skill"].notna(),
                                                           services["service_id"]))
    budgets = frames.get("budgets", pd.DataFrame(
        {"budget_id": pd.Series(dtype=object), "scope": pd.Series(dtype=object),
         "amount": pd.Series(dtype=float)}))
    if "budgets" in loaded:
        members = _scope_members(loaded["budgets"], budgets, sites, problems)
    else:
        members = pd.DataFrame({"budget_id": pd.Series(dtype=object),
                                "site_id": pd.Series(dtype=object)})
    known = set(sites[PARTITION_KEY].astype(str))
    for name in ("staff", "targets"):  # a part no region reads would be dropped silently
        folder = _path(scenario, name)
        problems.extend(Problem(str(path), f"is in the folder of table '{name}' but is not a "
                                "Parquet file; move it out (workers read only .parquet parts)")
                        for path in (stray_files(folder) if folder is not None
                                     and folder.is_dir() else []))
        for part in parts(folder) if folder is not None and folder.is_dir() else []:
            region = part.values.get(PARTITION_KEY)
            if region is None or region not in known:
                problems.append(Problem(str(part.path), (
                    f"is not in a {PARTITION_KEY}=<R> folder" if region is None else
                    f"is in {PARTITION_KEY}={region}, a region no site of the sites table "
                    "has") + "; its rows would be read by no worker"))
    if problems:
        raise InputError(locate(problems, loaded))
    return SmallTables(sites, services, budgets, members.drop_duplicates(), loaded)


def _region_sizes(scenario: Scenario, regions: list[str]) -> np.ndarray:
    """Bytes of each region's staff and targets parts: how owners are packed."""
    folders = [p for p in (_path(scenario, "staff"), _path(scenario, "targets")) if p]
    return np.array([float(sum(part.path.stat().st_size for folder in folders
                               for part in region_parts(folder, region)) + 1)
                     for region in regions])


@dataclass
class PartitionedSolve:
    """What the pipeline needs back: the result, the plan's tables, what summary.json says
    of the decomposition, the linking rows' prices, the inputs as read, the model's size."""

    result: SolveResult
    tables: dict[str, pd.DataFrame]
    decomposition: dict[str, Any]
    prices: dict[str, dict[str, float]]
    inputs: dict[str, tuple[str, int, str]]  # table -> (source, rows, digest)
    size: dict[str, int]
    warnings: list[str]
    diagnosis: tuple[str, dict[str, Any]] | None = None  # diagnosis.md and .json, infeasible
    # The FTE moved before any choice (baseline rows no block can keep), summed over the
    # blocks: the moves row's right-hand side is 2 x max_moved_fte less this.
    moved_constant: float = 0.0
    exact_duals: bool = False  # every stage's master converged: sensitivity's duals exact
    # Every part file the workers read, with its digest as read (a bundle checks them).
    part_digests: dict[str, str] = field(default_factory=dict)


def solve_partitioned(scenario: Scenario, *, client: Any | None, workers: int,
                      time_limit: float | None = None,
                      warm_prices: dict[str, dict[str, float]] | None = None,
                      say: Any = None,
                      on_iteration: Callable[[Any, str, int], None] | None = None,
                      polish: bool = False) -> PartitionedSolve:
    """Read, build and solve region by region on `client`'s cluster (None: in this process,
    one owner per `workers`). Raises InputError with every problem the parts hold.
    `on_iteration(pool, stage, iteration)` is told before each iteration (the fault test
    kills a worker from it). `polish`: each block's plan moved to a vertex (worker.py,
    `polish_block`)."""
    began = time.perf_counter()
    deadline = None if time_limit is None else time.monotonic() + time_limit
    small = load_small(scenario)
    regions = sorted(pd.unique(small.sites[PARTITION_KEY].astype(str)).tolist())
    if client is not None:
        workers = len(client.scheduler_info(n_workers=-1)["workers"]) or workers
    bins = max(1, min(workers, len(regions)))
    owner_of = _pack(_region_sizes(scenario, regions), bins)
    objective = scenario.objective
    recipes = []
    for w in range(bins):
        mine = [k for k in range(len(regions)) if owner_of[k] == w]
        recipes.append(RegionRecipe(
            mine, [regions[k] for k in mine], str(_path(scenario, "staff")),
            str(_path(scenario, "targets")), small.sites, small.services, small.budgets,
            small.members, scenario.policy.model_dump(), list(objective.order),
            objective.mode, dict(objective.weights.items()), scenario.input.max_file_mb,
            baseline=_spec(scenario, "baseline"), base_dir=str(scenario.base_dir)))
    ids = [r.indices for r in recipes]
    pool: LocalPool | DaskPool = (
        LocalPool([], owners=[RegionOwner(r) for r in recipes]) if client is None
        else DaskPool(client, recipes, owner=RegionOwner, block_ids=ids))
    try:
        hook = (lambda stage, it: on_iteration(pool, stage, it)) if on_iteration else None
        return _solve(scenario, small, regions, recipes, pool, began, deadline, warm_prices,
                      say, hook, polish)
    finally:
        pool.close()


def _solve(scenario: Scenario, small: SmallTables, regions: list[str],
           recipes: list[RegionRecipe], pool: LocalPool | DaskPool, began: float,
           deadline: float | None, warm_prices: dict[str, dict[str, float]] | None,
           say: Any, hook: Callable[[str, int], None] | None,
           polish: bool) -> PartitionedSolve:
    read = pool.call("row_keys")
    problems = list(dict.fromkeys(p for answer in read for p in answer["problems"]))
    warnings = list(dict.fromkeys(w for answer in read for w in answer["warnings"]))
    home = np.concatenate([a["home_staff"] for a in read])
    unique, counts = np.unique(home, return_counts=True)
    twice = unique[counts > 1]
    if twice.size:  # one person in two parts: two people to the model, one to the business
        places = [p for answer in pool.call("where_staff", twice[:10]) for p in answer]
        by_file: dict[str, list[str]] = {}
        for source, row in places:
            by_file.setdefault(source, []).append(str(row))
        problems.append(Problem(
            str(_path(scenario, "staff")), f"{twice.size} staff_id(s) appear in more than "
            "one part (staff_id must be unique across the folder): " + "; ".join(
                f"{source} rows {', '.join(rows)}" for source, rows in sorted(by_file.items()))))
    if problems:
        raise InputError(problems)
    warnings += _baseline_warnings(read, home)
    for recipe, answer in zip(recipes, read, strict=True):  # a rebuilt owner reads the same
        recipe.sources = dict(answer["sources"])
    blocks: dict[int, np.ndarray] = {}
    for answer in read:
        blocks.update(answer["blocks"])
    order = sorted(blocks)
    for b in order:  # one key twice in a region: two rows the business sees as one
        if np.unique(blocks[b]).size != blocks[b].size:
            raise InputError([Problem(str(_path(scenario, "staff")), f"region '{regions[b]}' "
                                      "has two rows with the same business key (a duplicate "
                                      "id across its parts?)")])
    hashes = np.concatenate([blocks[b] for b in order])
    keys, seen = np.unique(hashes, return_counts=True)
    linking = keys[seen > 1]
    for recipe in recipes:  # a rebuilt owner comes back cut
        recipe.linking = linking
    if say is not None:
        say(f"partitioned: {len(order)} regions on {len(recipes)} owner(s), "
            f"{linking.size:,} linking rows found")
    cuts: dict[int, dict[str, Any]] = {}
    for answer in pool.call("cut", linking):
        cuts.update(answer)
    lo = np.full(linking.size, np.nan)
    hi = np.full(linking.size, np.nan)
    labels = [""] * linking.size
    clashes = []
    for b in order:
        cut = cuts[b]
        moved = set(cut["place"][cut["moved"]].tolist())
        for place, low, high, label in zip(cut["place"].tolist(), cut["lo"].tolist(),
                                           cut["hi"].tolist(), cut["labels"], strict=True):
            if labels[place] and labels[place] != label:  # 64-bit keys that collide
                raise RuntimeError(f"two rows share a key hash: {labels[place]} and {label}")
            if labels[place] and place not in moved and (lo[place] != low or hi[place] != high):
                clashes.append(f"{label}: limits {lo[place]:g}..{hi[place]:g} in one region, "
                               f"{low:g}..{high:g} in region '{regions[b]}'")
            lo[place], hi[place], labels[place] = low, high, label
    # The moves limit (policy.max_moved_fte) is one row over every region: 2 × the limit
    # less the moves certain before any choice (baseline rows no block can keep), summed
    # here. Each block wrote its own certain moves into its copy, so the copies differ and are
    # not compared (their float sums would not even round alike).
    certain = sum(float(cuts[b]["moved_constant"]) for b in order)
    limit = scenario.policy.max_moved_fte
    for b in order:
        if limit is not None:
            hi[cuts[b]["place"][cuts[b]["moved"]]] = 2.0 * limit - certain
    if clashes:
        raise InputError([Problem(str(_path(scenario, "staff")),
                                  "a row shared by regions has different limits in their "
                                  "parts (the same person or budget written twice?): "
                                  + "; ".join(clashes[:10]))])
    first = cuts[order[0]]
    objectives = [Objective(name, np.zeros(0), sum(cuts[b]["constants"][name] for b in order))
                  for name in first["constants"]]
    scale = max([1.0, *(float(cuts[b]["scale"]) for b in order)])
    master = Master(lo, hi, len(order), penalty=1e4 * scale)
    sizes = {key: sum(int(a[key][b]) for a in read for b in a[key]) for key in
             ("rows", "columns", "nonzeros", "integer")}
    whole = sizes["integer"] > 0
    whole_blocks = frozenset(b for a in read for b, n in a["integer"].items() if n)
    info = Decomposition(len(order), [int(read_columns) for read_columns in
                                      (next(a["columns"][b] for a in read if b in a["columns"])
                                       for b in order)],
                         int(linking.size), PARTITION_KEY, 0, pool.workers, pool.address,
                         len(recipes))
    info.seconds_setup = time.perf_counter() - began
    gap_tol = WHOLE_MIP_GAP if scenario.solver.mip_gap is None else float(scenario.solver.mip_gap)
    stages, status, message, warm_notes, finished = run_stages(
        master, pool, objectives, labels, info, rel_tol=scenario.objective.rel_tol,
        abs_tol=scenario.objective.abs_tol, deadline=deadline, hook=hook,
        warm_prices=warm_prices, whole=whole, gap_tol=gap_tol, whole_blocks=whole_blocks,
        on_stage=None, gather=lambda values: pool.finish(
            master_weights(master, values), _polish_stages(polish, objectives, info)),
        converge=SENSITIVITY_GAP if scenario.output.sensitivity and not whole else None)
    info.client_peak_bytes = _peak()
    tables: dict[str, pd.DataFrame] = {}
    extra: list[str] = []
    exact_duals = False
    if finished is not None:
        stages, found, activity = _check(finished, objectives, stages, lo, hi, labels,
                                         regions, info.polished)
        _polished_bound(info, stages)
        if found:
            status, finished = Status.ERROR, None
            message = ("the decomposed plan does not check out against the model, so it is "
                       "not written: " + "; ".join(found))
        else:
            tables = _tables(finished, small)
            if scenario.output.sensitivity and not whole:
                if deadline is not None and time.monotonic() >= deadline:
                    extra.append("sensitivity.csv not written: the time limit was reached")
                else:
                    tables["sensitivity"] = _sensitivity(pool, info, stages, labels,
                                                         activity, lo, hi, regions, extra)
                    open_gaps = [f"{log.name} {log.gap:.2g}" for log in info.stages
                                 if log.gap > SENSITIVITY_GAP]
                    exact_duals = not open_gaps
                    if open_gaps:
                        extra.append("sensitivity.csv: the duals are exact only where a "
                                     "stage's master converged; these stages stopped at a "
                                     f"gap: {', '.join(open_gaps)}")
            elif scenario.output.sensitivity:
                extra.append("sensitivity.csv not written: a whole-mode (MIP) plan has no "
                             "duals")
    elif status.has_solution:
        status = Status.ERROR
    diagnosis = None
    if status.is_infeasible and info.stages:
        left = None if deadline is None else max(1.0, deadline - time.monotonic())
        diagnosis = _diagnose(pool, info.stages[-1], labels,
                              [log.name for log in info.stages[:-1]], regions, scenario.name,
                              left, scenario.policy.max_moved_fte)
        message += ": " + diagnosis[1]["summary"]
        if diagnosis[1].get("recommendation"):
            extra.append(str(diagnosis[1]["recommendation"]))
    notes = run_notes(info, warm_notes, whole, finished is not None, gap_tol) + tuple(extra)
    notes += ("partitioned tables: each worker read and built its own regions; the client "
              "never held the staff table or the model. sensitivity.csv gives each block's "
              "duals and ranges at the master's final prices (held fixed) and the master's "
              "prices of the linking rows (report.html shows them). Not written: basis.parquet "
              "(a basis of the whole model; master_prices.csv warm-starts the next decomposed "
              "run instead), ladders.csv and hiring.csv, and ranges and people in "
              "bottlenecks.md (they need re-solves of the whole LP in one place)",)
    result = SolveResult(status, "highs (decomposed)", tuple(stages), None,
                         time.perf_counter() - began, notes, message)
    inputs = {name: (t.source, t.rows, t.digest) for name, t in small.loaded.items()}
    baseline = next((a["baseline"] for a in read if a["baseline"] is not None), None)
    if baseline is not None:
        inputs["baseline"] = baseline
    if scenario.policy.max_moved_fte is not None and (baseline is None or not baseline[1]):
        warnings.append("policy.max_moved_fte needs a baseline table (yesterday's plan); there "
                        "is none, so no limit on moves applies")
    for name in ("staff", "targets"):
        folder = str(_path(scenario, name))
        files = sorted((s, n, d) for a in read for s, (n, d) in a["sources"].items()
                       if s.startswith(folder + "/"))
        digest = hashlib.sha256("".join(d for _, _, d in files).encode()).hexdigest()[:16]
        inputs[name] = (folder, sum(n for _, n, _ in files), digest)
    # each block counts its own copy of a shared row: the model has each linking row once
    shared = sum(int(cuts[b]["place"].size) for b in order)
    size = {"rows": sizes["rows"] - shared + int(linking.size), "columns": sizes["columns"],
            "nonzeros": sizes["nonzeros"], "integer_columns": sizes["integer"]}
    return PartitionedSolve(result, tables, {"mode": entry.current().mode, **info.as_json()},
                            info.all_prices, inputs, size, warnings, diagnosis, certain,
                            exact_duals, {source: digest for answer in read
                                         for source, (_, digest) in answer["sources"].items()})


def _baseline_warnings(read: list[dict[str, Any]], home: np.ndarray) -> list[str]:
    """The monolithic load's warning on baseline rows naming staff, sites or services that
    no longer exist (they count as moved), counted from hashes: block 0's owner read the
    baseline's staff; `home` holds every region's staff."""
    unknown = sum(int(a["baseline_unknown"]) for a in read)
    staff = np.concatenate([a["baseline_staff"] for a in read])
    unknown += int((~np.isin(staff, home)).sum())
    if not unknown:
        return []
    return [f"{unknown} baseline rows name staff, sites or services that no longer exist; "
            "they count as moved"]


def _input_change(row: str, change: float, max_moved: float | None) -> dict[str, Any]:
    """A shared row's change as the input a user edits: a budget's amount (money), a
    person's fte, or policy.max_moved_fte (its row counts 2 per FTE moved, so the setting
    moves by half the row's change, rounded up to the 0.01 a user writes)."""
    family, _, key = row.removesuffix("]").partition("[")
    up = -change  # the row's limit rises by this (a negative change: the row was over)
    verb = "raise" if up > 0 else "lower"
    if family == "moved" and max_moved is not None:
        proposed = round(math.ceil((max_moved + up / 2.0) / 0.01 - 1e-9) * 0.01, 2)
        return {"input": "policy.max_moved_fte", "current": max_moved, "proposed": proposed,
                "text": f"set policy.max_moved_fte from {max_moved:g} to {proposed:g} "
                        f"({up / 2.0:+,.6g} FTE moved)"}
    if family == "budget":
        return {"input": f"budgets amount of {key}",
                "text": f"{verb} budget {key}'s amount by {abs(up):,.6g} (money)"}
    if family == "availability":
        return {"input": f"staff fte of {key}",
                "text": f"{verb} the fte of {key} by {abs(up):,.6g}"}
    return {"input": None, "text": f"{verb} {row} by {abs(up):,.6g}"}


def _diagnose(pool: Any, log: Any, labels: list[str], held: list[str], regions: list[str],
              name: str, time_limit: float | None,
              max_moved: float | None = None) -> tuple[str, dict[str, Any]]:
    """diagnosis.md and diagnosis.json of an infeasible partitioned stage: the regions that
    have no plan on their own, each diagnosed on its own model by its owner; or, when every
    region has one, the rows they share that cannot be met together, with the changes at
    the master's least violation (a unit of each row counted alike, in that row's units)."""
    if log.infeasible_blocks:
        found: dict[int, tuple[str, dict[str, Any]]] = {}
        for answer in pool.call("diagnose", log.infeasible_blocks, time_limit):
            found.update(answer)
        named = [regions[b] for b in log.infeasible_blocks]
        summary = (f"region{'s' if len(named) > 1 else ''} {', '.join(named)} cannot be "
                   "planned on its own, whatever the other regions do")
        parts = [f"# {name}: infeasible (stage '{log.name}', decomposed)", "", summary + ".",
                 ""] + [found[b][0] for b in sorted(found)]
        first = next((found[b][1] for b in sorted(found)), {})
        return "\n".join(parts), {
            "stage": log.name, "kind": "regions", "summary": summary,
            "recommendation": first.get("recommendation"),
            "regions": [{"region": regions[b], **found[b][1]} for b in sorted(found)]}
    moves = log.violations if log.violations is not None else np.zeros(0)
    names = [*labels, *(f"hold[{h}]" for h in held)]
    scale = 1e-9 * max(1.0, float(np.abs(moves).max(initial=0.0)))
    rows = [{"row": names[i], "change": float(moves[i]),
             **_input_change(names[i], float(moves[i]), max_moved)}
            for i in np.argsort(-np.abs(moves), kind="stable") if abs(moves[i]) > scale]
    words = [f"{r['row']} " + ("falls short of its lower limit" if r["change"] > 0
                               else "is over its limit") + f" by {abs(r['change']):,.6g}"
             for r in rows[:10]]
    summary = ("every region has a plan of its own, but the rows they share cannot all be met: "
               + "; ".join(words))
    recommendation = ("with every limit moved as listed in diagnosis.md the regions' plans "
                      "fit together: " + "; ".join(r["text"] for r in rows[:5])) \
        if rows else None
    lines = [f"# {name}: infeasible (stage '{log.name}', decomposed)", "",
             "Every region can be planned on its own; the rows the regions share cannot be "
             "met together. With every shared row allowed to give at a high price per unit "
             "(one unit of any row counted alike, each in its own unit: money for a budget, "
             "FTE for a person), the least violation the master found moves these limits; "
             "moved all together, the plans fit:", "",
             "| row | change of its limit | in the inputs |", "|---|---|---|",
             *(f"| {r['row']} | {'-' if r['change'] > 0 else '+'}{abs(r['change']):,.6g} | "
               f"{r['text']} |" for r in rows), ""]
    return "\n".join(lines), {"stage": log.name, "kind": "linking", "summary": summary,
                              "recommendation": recommendation, "rows": rows}


def _check(finished: dict[int, dict[str, Any]], objectives: list[Objective],
           stages: list[StageResult], lo: np.ndarray, hi: np.ndarray, labels: list[str],
           regions: list[str], polished: bool = False, tolerance: float = PLAN_TOLERANCE,
           ) -> tuple[list[StageResult], list[str], np.ndarray]:
    """What `plan_problems` checks of a monolithic plan, from the owners' answers: each
    block's own rows and bounds (checked by its owner), the linking rows from the blocks'
    summed activity, each stage's objective and hold from the blocks' summed values."""
    found = [f"region '{regions[b]}': {p}" for b in sorted(finished)
             for p in finished[b]["problems"]]
    order = sorted(finished)  # one summation order, whatever the packing (determinism)
    activity = sum((finished[b]["linking"] for b in order), np.zeros(lo.size))
    scale = 1.0 + sum((finished[b]["linking_scale"] for b in order), np.zeros(lo.size))
    if not np.all(np.isfinite(activity)):
        found.append("the linking rows' activity is not finite")
    for what, excess in (("below its lower limit", lo - activity),
                         ("above its upper limit", activity - hi)):
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(np.nan_to_num(excess, nan=0.0, neginf=0.0)
                                 > tolerance * scale)
        found += [f"{labels[i]} is {excess[i]:.6g} {what}" for i in bad[:10]]
    out = []
    for stage in stages:
        objective = next(o for o in objectives if o.name == stage.name)
        value = sum(finished[b]["objectives"][stage.name] for b in order) + \
            objective.constant
        magnitude = sum(finished[b]["magnitudes"][stage.name] for b in order)
        tol = tolerance * (1.0 + abs(stage.objective) + magnitude)
        if polished and stage is stages[-1] and value < stage.objective:
            stage = replace(stage, objective=value)  # a vertex as good or better: its value
        if stage is stages[-1] and np.isfinite(stage.objective) and \
                abs(value - stage.objective) > tol:
            found.append(f"stage '{stage.name}': the plan's objective is {value:.10g}, the "
                         f"master reported {stage.objective:.10g}")
        if stage.hold_rhs is not None and value > stage.hold_rhs + tol:
            found.append(f"stage '{stage.name}': the plan's objective {value:.10g} breaks the "
                         f"limit {stage.hold_rhs:.10g} it was held to")
        out.append(replace(stage, final_value=value))
    return out, found, activity


def _sensitivity(pool: Any, info: Decomposition, stages: list[StageResult],
                 labels: list[str], activity: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, regions: list[str], notes: list[str]) -> pd.DataFrame:
    """sensitivity.csv of a partitioned run, stage by stage: each block's own rows (dual
    and range from the block at the stage's final master prices, held fixed; activity from
    the plan), then the linking rows and the holds, priced by the master (no range: moving
    one moves every block's answer)."""
    frames: list[pd.DataFrame] = []
    family = [label.partition("[")[0] for label in labels]
    keys = [label.partition("[")[2].removesuffix("]") for label in labels]
    _, rhs, slack, binding = binding_side(activity, lo, hi)
    held: list[StageResult] = []
    for stage, log in zip(stages, info.stages, strict=False):
        if log.final is None:
            continue
        holds = [h.name for h in held]
        blocks: dict[int, bytes] = {}
        for answer in pool.call("sensitivity", stage.name, log.final, holds):
            blocks.update(answer)
        frames.extend(pd.read_parquet(io.BytesIO(blocks[b])) for b in sorted(blocks))
        absent = [regions[b] for b in range(len(regions)) if b not in blocks]
        if absent:  # an owner rebuilt since the plan (no plan to price), a block not optimal
            notes.append(f"sensitivity.csv, stage '{stage.name}': no rows for region(s) "
                         f"{', '.join(absent[:10])} (their owner was rebuilt after the plan, "
                         "or their block did not solve at the final prices)")
        prices = log.final
        count = len(labels)
        frames.append(pd.DataFrame({
            "stage": stage.name, "kind": "constraint", "family": family, "labels": keys,
            "activity": activity, "rhs": rhs, "slack": slack, "binding": binding,
            "dual": prices[:count], "dual_unique": None, "rhs_low": np.nan,
            "rhs_high": np.nan, "range_kind": "master", "region": "",
            "dual_source": "master"}))
        if holds:
            values = np.array([h.final_value for h in held])
            limits = np.array([h.hold_rhs if h.hold_rhs is not None else np.nan
                               for h in held])
            frames.append(pd.DataFrame({
                "stage": stage.name, "kind": "constraint", "family": "stage_hold",
                "labels": holds, "activity": values, "rhs": limits,
                "slack": limits - values, "binding": (limits - values) <= 1e-7 * np.maximum(
                    1.0, np.abs(limits)),
                "dual": prices[count:count + len(holds)], "dual_unique": None,
                "rhs_low": np.nan, "rhs_high": np.nan, "range_kind": "master", "region": "",
                "dual_source": "master"}))
        held.append(stage)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tables(finished: dict[int, dict[str, Any]], small: SmallTables) -> dict[str, pd.DataFrame]:
    """The plan's tables from the owners' Parquet: plan, coverage and sites are each
    region's rows; a budget's spending is summed over the regions its scope covers."""
    def frames(name: str) -> list[pd.DataFrame]:
        return [pd.read_parquet(io.BytesIO(finished[b]["tables"][name]))
                for b in sorted(finished)]

    out = {
        "plan": _sort(pd.concat(frames("plan"), ignore_index=True),
                      ["staff_id", "site_id", "service_id"]),
        "coverage": _sort(pd.concat(frames("coverage"), ignore_index=True),
                          ["site_id", "service_id"]),
        "sites": _sort(pd.concat(frames("sites"), ignore_index=True), ["site_id"]),
    }
    if all("changes" in finished[b]["tables"] for b in finished) and finished:
        out["changes"] = _sort(pd.concat(frames("changes"), ignore_index=True),
                               ["site_id", "service_id"])
    budgets = small.budgets
    spending = [f for f in frames("budgets") if len(f)]
    spent = (pd.concat(spending).groupby("budget_id")["spent"].sum() if spending
             else pd.Series(dtype=float))
    spent_col = spent.reindex(budgets["budget_id"].to_numpy()).fillna(0.0).to_numpy()
    out["budgets"] = _sort(pd.DataFrame({
        "budget_id": budgets["budget_id"].to_numpy(), "scope": budgets["scope"].to_numpy(),
        "amount": budgets["amount"].to_numpy(), "spent": _r(spent_col, MONEY_DECIMALS),
        "headroom": _r(budgets["amount"].to_numpy() - spent_col, MONEY_DECIMALS),
    }), ["budget_id"])
    return out
