"""A block owner that reads its own regions' tables: the worker side of a decomposed run on
partitioned Parquet (allocator/tables/partitioned.py), where the client never builds the
full matrix.

Each owner gets a `RegionRecipe`: its regions, where the partitioned tables are, and the
small tables the client validated (sites, services, budgets). It reads its regions' staff
and targets parts (and, from every other part, only the staff who may work anywhere),
validates them with the same schemas as a monolithic load, and builds one ops model per
region with the same vectorized code (`build_ops`). Rows are named by their business keys;
the client learns only each block's row-key hashes (8 bytes a row) and declares linking
every key found in more than one block: the company budget and the `any` staff's
availability, found from the data, not assumed. After `cut`, the owner prices and combines
like any `BlockOwner`; at the end it checks its plan against its own rows and bounds and
returns the plan's tables as Parquet bytes, with the linking rows' activity for the client
to check.

A rebuilt owner (its worker died) is made from the same recipe, `linking` included, so it
reads its partitions again and comes back cut.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from allocator.analysis.sensitivity import binding_side
from allocator.core.checks import PLAN_TOLERANCE, column_label, row_label
from allocator.core.model import Objective, join_labels
from allocator.decompose.worker import BlockData, BlockOwner
from allocator.errors import InputError, Problem
from allocator.formulations.ops.data import SCHEMAS, OpsData, _match_skills, _skill_key
from allocator.formulations.ops.model import OpsModel, build_ops
from allocator.formulations.ops.tables import plan_tables
from allocator.scenario import PolicyConfig
from allocator.solvers.lexicographic import stage_objectives
from allocator.tables.partitioned import PARTITION_KEY, parts, region_parts
from allocator.tables.readers import LoadedTable, read_table
from allocator.tables.schema import _report, check_reference, validate
from allocator.warm import row_keys

MAX_SHOWN = 10


def key_hashes(keys: np.ndarray) -> np.ndarray:
    """64-bit hashes of row keys (pandas' hash, the same on every machine and run)."""
    return pd.util.hash_array(np.asarray(keys, dtype=object)).astype(np.uint64)


@dataclass
class RegionRecipe:
    """What an owner needs to read and build its blocks (and to be rebuilt the same)."""

    indices: list[int]  # the block index of each region
    regions: list[str]
    staff: str  # the partitioned tables' folders
    targets: str
    sites: pd.DataFrame  # validated by the client: every site, with its region
    services: pd.DataFrame
    budgets: pd.DataFrame
    budget_sites: pd.DataFrame
    policy: dict[str, Any]
    order: list[str]
    mode: str
    weights: dict[str, float]
    max_file_mb: float
    linking: np.ndarray | None = None  # sorted hashes of the linking rows' keys, once known
    # each part file read first: (rows, digest); a rebuilt owner must read the same
    sources: dict[str, tuple[int, str]] | None = None
    # yesterday's plan (the scenario's tables.baseline entry and the folder it is relative
    # to): every owner reads it and keeps the rows at its regions' sites
    baseline: dict[str, str] | None = None
    base_dir: str = "."


@dataclass
class _Region:
    index: int
    region: str
    ops: OpsModel
    objectives: list[Objective]
    hashes: np.ndarray  # of every row's key
    link_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    block_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _is_any(frame: pd.DataFrame) -> np.ndarray:
    if "mobility" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return (frame["mobility"].astype(str).str.strip().str.casefold() == "any").to_numpy()


def _rows_of(table: LoadedTable, mask: np.ndarray) -> LoadedTable:
    """The table's rows where `mask` holds, keeping their row numbers."""
    kept = np.flatnonzero(mask)
    return dataclasses.replace(table, frame=table.frame.iloc[kept].reset_index(drop=True),
                               rows=int(kept.size), row_numbers=table.row_of(kept),
                               first_row=int(table.row_of(kept[:1])[0]) if kept.size else 2)


class RegionOwner(BlockOwner):
    """Reads, validates and builds its regions, then owns them as blocks."""

    def __init__(self, recipe: RegionRecipe) -> None:
        super().__init__([])
        self.recipe = recipe
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.regions: dict[int, _Region] = {}
        self.plans: dict[int, np.ndarray] = {}  # each block's plan, once finished
        self.home_staff = np.zeros(0, dtype=np.uint64)
        # where each of those staff is: part file (index into _parts) and row
        self._parts: list[str] = []
        self._home_part = np.zeros(0, dtype=np.int32)
        self._home_row = np.zeros(0, dtype=np.int64)
        self.sources: dict[str, tuple[int, str]] = {}  # part file -> (rows, digest)
        self.baseline_source: tuple[str, int, str] | None = None
        self.baseline_staff = np.zeros(0, dtype=np.uint64)  # hashes, from block 0's owner
        self.baseline_unknown = 0  # its rows naming a site or service that does not exist
        self._load()
        if recipe.sources is not None and self.sources != recipe.sources:
            # a rebuilt owner (its worker died) read parts that changed since the run began
            changed = sorted(set(self.sources.items()) ^ set(recipe.sources.items()))
            raise RuntimeError("the partitioned tables changed during the run: "
                               + ", ".join(sorted({c[0] for c in changed})[:5]))
        if recipe.linking is not None and not self.problems:
            self.cut(recipe.linking)

    # --- reading and building ------------------------------------------------------------

    def _read(self, name: str, path: Path) -> LoadedTable | None:
        try:
            table = read_table(name, {"path": str(path)}, path.parent,
                               max_file_mb=self.recipe.max_file_mb)
        except InputError as exc:
            self.problems.extend(exc.problems)
            return None
        return table

    def _load(self) -> None:
        r = self.recipe
        services = r.services.copy()
        services["skill"] = _skill_key(services["skill"])
        sites = r.sites
        region_of = pd.Series(sites[PARTITION_KEY].astype(str).to_numpy(),
                              index=sites["site_id"].to_numpy())
        site_ids = pd.Index(sites["site_id"])
        own = dict(zip(r.regions, r.indices, strict=True))
        staff_of: dict[str, pd.DataFrame] = {}
        anywhere: dict[str, pd.DataFrame] = {}
        for part in parts(Path(r.staff)):
            region = part.values.get(PARTITION_KEY, "")
            table = self._read("staff", part.path)
            if table is None:
                continue
            mine = region in own
            if not mine:  # another region's part: only the people who may work anywhere
                table = _rows_of(table, _is_any(table.frame))
                if not table.rows:
                    continue
            frame, problems = validate(table, SCHEMAS["staff"])
            self.problems.extend(problems)
            if mine and "staff_id" in frame.columns:  # a person in two parts, said with the rest
                ids = frame["staff_id"].dropna()
                hashes = key_hashes(ids.astype(str).to_numpy())
                self.home_staff = np.concatenate([self.home_staff, hashes])
                self._home_part = np.concatenate([self._home_part, np.full(
                    hashes.size, len(self._parts), dtype=np.int32)])
                self._home_row = np.concatenate([self._home_row,
                                                 table.row_of(ids.index.to_numpy())])
                self._parts.append(table.source)
                self.sources[table.source] = (table.rows, table.digest)
            if any(c.required and c.name not in frame.columns
                   for c in SCHEMAS["staff"].columns):
                continue  # checks against a missing column would be noise
            self.warnings.extend(_match_skills(table, frame, services, self.problems))
            check_reference(table, frame, "home_site", site_ids, "site", self.problems)
            home = frame["home_site"].map(region_of)
            _report(self.problems, table, (home.notna() & (home != region)).to_numpy(),
                    "home_site", f"the home site is not in region '{region}', the "
                    f"{PARTITION_KEY}= folder this row is in", frame["home_site"])
            if mine:
                staff_of[region] = pd.concat([staff_of[region], frame], ignore_index=True) \
                    if region in staff_of else frame
            anywhere[region] = pd.concat([anywhere[region], frame[_is_any(frame)]],
                                         ignore_index=True) \
                if region in anywhere else frame[_is_any(frame)]
        targets_of: dict[str, pd.DataFrame] = {}
        rows_of: dict[str, pd.DataFrame] = {}  # each target's part file and row
        for region in r.regions:
            local = pd.Index(sites.loc[sites[PARTITION_KEY].astype(str) == region,
                                       "site_id"])
            for part in region_parts(Path(r.targets), region):
                table = self._read("targets", part.path)
                if table is None:
                    continue
                frame, problems = validate(table, SCHEMAS["targets"])
                self.problems.extend(problems)
                check_reference(table, frame, "service_id", pd.Index(services["service_id"]),
                                "service", self.problems)
                bad = ~frame["site_id"].isin(local) & frame["site_id"].notna()
                _report(self.problems, table, bad.to_numpy(), "site_id",
                        f"not a site of region '{region}', the {PARTITION_KEY}= folder this "
                        "row is in", frame["site_id"])
                where = pd.DataFrame({"source": table.source,
                                      "row": table.row_of(np.arange(len(frame)))})
                targets_of[region] = pd.concat([targets_of[region], frame],
                                               ignore_index=True) \
                    if region in targets_of else frame
                rows_of[region] = pd.concat([rows_of[region], where], ignore_index=True) \
                    if region in rows_of else where
                self.sources[table.source] = (table.rows, table.digest)
            self._duplicate_targets(targets_of.get(region), rows_of.get(region))
        baseline = self._baseline(services) if r.baseline is not None else None
        if baseline is not None and baseline.empty:  # as monolithic: no stability stage
            baseline = None
        if self.problems:
            return
        policy = PolicyConfig(**r.policy)
        for region, index in own.items():
            staff = pd.concat([staff_of.get(region, _empty("staff")),
                               *(f for q, f in sorted(anywhere.items()) if q != region)],
                              ignore_index=True)
            targets = targets_of.get(region)
            if targets is None:  # no demand here: its people do nothing, as monolithic
                targets = _empty("targets")
            local = sites[sites[PARTITION_KEY].astype(str) == region]
            # The home sites of people from elsewhere: known (travel cost), but no rows
            # (their capacity and minimum belong to their own region's block).
            foreign = sites[sites["site_id"].isin(staff["home_site"])
                            & ~sites["site_id"].isin(local["site_id"])].assign(
                capacity_fte=np.nan, min_fte=0.0)
            block_sites = pd.concat([local, foreign], ignore_index=True)
            members = r.budget_sites[r.budget_sites["site_id"].isin(local["site_id"])]
            budgets = r.budgets[r.budgets["budget_id"].isin(members["budget_id"])]
            before = None
            if baseline is not None:  # the rows at this region's sites; block 0 takes the
                # rows at no site of any region (moved for sure: a constant, as monolithic)
                at = baseline["site_id"].isin(local["site_id"])
                if index == 0:
                    at |= ~baseline["site_id"].isin(sites["site_id"])
                before = baseline[at.to_numpy()].reset_index(drop=True)
            data = OpsData(block_sites.reset_index(drop=True), services,
                           staff.reset_index(drop=True), targets.reset_index(drop=True),
                           budgets.reset_index(drop=True), before,
                           budget_sites=members.reset_index(drop=True),
                           keep_stability=baseline is not None)
            ops = build_ops(data, policy)
            objectives = stage_objectives(ops.model, r.order, r.mode, r.weights)
            self.regions[index] = _Region(index, region, ops, objectives,
                                          key_hashes(row_keys(ops.model)))

    def _baseline(self, services: pd.DataFrame) -> pd.DataFrame | None:
        """Yesterday's plan, validated as a monolithic load validates it. The owner of block
        0 also keeps what the client needs to count the rows naming what no longer exists
        (the staff's hashes; the client holds every region's staff hashes)."""
        r = self.recipe
        assert r.baseline is not None
        try:
            table = read_table("baseline", r.baseline, Path(r.base_dir),
                               max_file_mb=r.max_file_mb)
        except InputError as exc:
            self.problems.extend(exc.problems)
            return None
        frame, problems = validate(table, SCHEMAS["baseline"])
        self.problems.extend(problems)
        if problems:
            return None
        self.sources[table.source] = (table.rows, table.digest)
        self.baseline_source = (table.source, table.rows, table.digest)
        if 0 in r.indices:
            known = frame["site_id"].isin(r.sites["site_id"]) & frame["service_id"].isin(
                services["service_id"])
            self.baseline_unknown = int((~known).sum())
            self.baseline_staff = key_hashes(frame.loc[known, "staff_id"].astype(str)
                                             .to_numpy())
        return frame

    def _duplicate_targets(self, targets: pd.DataFrame | None,
                           where: pd.DataFrame | None) -> None:
        """A (site, service) written in two parts of a region: each part alone passed its
        uniqueness check, so it is checked again on the region's rows."""
        if targets is None or where is None or targets.empty:
            return
        key = targets["site_id"].astype(str) + "\x00" + targets["service_id"].astype(str)
        twice = key.duplicated(keep=False).to_numpy()
        for k in np.flatnonzero(twice & key.duplicated(keep="first").to_numpy())[:MAX_SHOWN]:
            first = int(np.flatnonzero(key.to_numpy() == key.iloc[k])[0])
            self.problems.append(Problem(
                str(where["source"].iloc[k]), f"duplicate target ({targets['site_id'].iloc[k]}, "
                f"{targets['service_id'].iloc[k]}): also in {where['source'].iloc[first]} row "
                f"{where['row'].iloc[first]}; (site_id, service_id) must be unique",
                int(where["row"].iloc[k]), "site_id"))

    def row_keys(self) -> dict[str, Any]:
        """What the client needs to find the linking rows: each block's row-key hashes, the
        hashes of the staff this owner's parts hold (a person in two parts is refused), and
        the problems and warnings of reading them."""
        return {
            "blocks": {i: g.hashes for i, g in self.regions.items()},
            "regions": {i: g.region for i, g in self.regions.items()},
            "home_staff": self.home_staff,
            "problems": self.problems, "warnings": self.warnings,
            "sources": self.sources,
            "columns": {i: g.ops.model.num_vars for i, g in self.regions.items()},
            "nonzeros": {i: g.ops.model.nnz for i, g in self.regions.items()},
            "rows": {i: g.ops.model.num_rows for i, g in self.regions.items()},
            "integer": {i: g.ops.model.num_integer for i, g in self.regions.items()},
            "baseline": self.baseline_source, "baseline_staff": self.baseline_staff,
            "baseline_unknown": self.baseline_unknown,
        }

    def where_staff(self, hashes: np.ndarray) -> list[tuple[str, int]]:
        """The part file and row of each of these staff (for a duplicate's message)."""
        found = np.flatnonzero(np.isin(self.home_staff, hashes))
        return [(self._parts[self._home_part[k]], int(self._home_row[k])) for k in found]

    def cut(self, linking: np.ndarray) -> dict[int, dict[str, Any]]:
        """Each region's block, its rows split into its own and the linking ones (at their
        place among the sorted linking hashes), its HiGHS model built; returns each block's
        linking rows (place, limits, business label) and its largest cost."""
        self.recipe.linking = linking
        out: dict[int, dict[str, Any]] = {}
        for index, g in self.regions.items():
            model = g.ops.model
            place = np.searchsorted(linking, g.hashes).clip(max=max(linking.size - 1, 0))
            is_link = (linking[place] == g.hashes) if linking.size else \
                np.zeros(g.hashes.size, dtype=bool)
            g.link_rows = np.flatnonzero(is_link)
            g.block_rows = np.flatnonzero(~is_link)
            matrix = model.matrix
            sub = sp.csr_array(matrix[g.link_rows]).tocoo()
            links = sp.csr_array((sub.data, (place[g.link_rows][sub.row], sub.col)),
                                 shape=(linking.size, model.num_vars))
            self.add_block(BlockData(
                index, np.arange(model.num_vars), sp.csr_array(matrix[g.block_rows]),
                model.row_lo[g.block_rows], model.row_hi[g.block_rows], model.lb, model.ub,
                links, {o.name: o.c for o in g.objectives},
                model.integer.copy() if model.num_integer else None))
            # The moves limit is one row over every region; each block wrote its own certain
            # moves (baseline rows it cannot keep) into its copy: the client sets the limit.
            moved = np.flatnonzero(families_of(model)[g.link_rows] == "moved")
            out[index] = {
                "place": place[g.link_rows], "lo": model.row_lo[g.link_rows],
                "hi": model.row_hi[g.link_rows], "moved": moved,
                "moved_constant": g.ops.moved_constant,
                "labels": [row_label(model, int(i)) for i in g.link_rows],
                "scale": max([0.0, *(float(np.abs(o.c).max()) for o in g.objectives
                                     if o.c.size)]),
                "constants": {o.name: o.constant for o in g.objectives},
            }
        return out

    # --- the plan ------------------------------------------------------------------------

    def finish(self, weights: dict[int, dict[int, float]], polish: list[str] | None = None,
               tolerance: float = PLAN_TOLERANCE) -> dict[int, dict[str, Any]]:
        """Each block's plan (its proposals combined), checked against the block's own rows,
        bounds and integers, and its tables as Parquet bytes (the x travel once, here); the
        linking rows' activity and scale go to the client, which checks those rows.
        `polish`: the stages in order, each block's plan moved to a vertex first."""
        out: dict[int, dict[str, Any]] = {}
        for index, (_, x) in self.combine(weights, polish).items():
            g = self.regions[index]
            block = self.blocks[index].data
            model = g.ops.model
            problems: list[str] = []
            if not np.all(np.isfinite(x)):
                problems.append(f"the plan has {int(np.sum(~np.isfinite(x)))} values that are "
                                "not finite")
                x = np.nan_to_num(x)
            activity = block.rows @ x
            scale = 1.0 + abs(block.rows) @ np.abs(x)
            for what, excess in (("below its lower limit", block.row_lo - activity),
                                 ("above its upper limit", activity - block.row_hi)):
                bad = np.flatnonzero(excess > tolerance * scale)
                problems += [f"{row_label(model, int(g.block_rows[i]))} is {excess[i]:.6g} "
                             f"{what}" for i in bad[:MAX_SHOWN]]
            col_scale = 1.0 + np.abs(x)
            for what, excess in (("below its lower bound", block.lb - x),
                                 ("above its upper bound", x - block.ub)):
                bad = np.flatnonzero(excess > tolerance * col_scale)
                problems += [f"{column_label(model, int(j))} is {excess[j]:.6g} {what}"
                             for j in bad[:MAX_SHOWN]]
            integer = np.flatnonzero(model.integer)
            fractional = integer[np.abs(x[integer] - np.round(x[integer])) > 1e-5]
            problems += [f"{column_label(model, int(j))} = {x[j]:.6g} should be whole"
                         for j in fractional[:MAX_SHOWN]]
            self.plans[index] = x
            tables = plan_tables(g.ops, x)
            local = g.ops.data.sites[PARTITION_KEY].astype(str) == g.region
            tables["sites"] = tables["sites"][tables["sites"]["site_id"].isin(
                g.ops.data.sites.loc[local, "site_id"])]
            out[index] = {
                "problems": problems,
                "linking": np.asarray(block.linking @ x),
                "linking_scale": np.asarray(abs(block.linking) @ np.abs(x)),
                "objectives": {o.name: float(o.c @ x) for o in g.objectives},
                "magnitudes": {o.name: float(np.abs(o.c * x).sum()) for o in g.objectives},
                "tables": {name: _parquet(frame) for name, frame in tables.items()},
            }
        return out


    def sensitivity(self, stage: str, prices: np.ndarray,
                    holds: list[str]) -> dict[int, bytes]:
        """sensitivity.csv's rows of each block's own constraints for one stage: activity,
        slack and binding from the plan written; dual and range from the block at the stage's
        final master prices (`BlockOwner.priced_duals`), as Parquet bytes."""
        out: dict[int, bytes] = {}
        for index, found in self.priced_duals(stage, prices, holds).items():
            if found is None or index not in self.plans:
                continue
            g = self.regions[index]
            block = self.blocks[index].data
            x = self.plans[index]
            families = families_of(g.ops.model)
            labels = np.concatenate([join_labels(b.labels) for b in
                                     g.ops.model.con_blocks.values()])
            activity = block.rows @ x
            _, rhs, slack, binding = binding_side(activity, block.row_lo, block.row_hi)
            out[index] = _parquet(pd.DataFrame({
                "stage": stage, "kind": "constraint", "family": families[g.block_rows],
                "labels": labels[g.block_rows], "activity": activity, "rhs": rhs,
                "slack": slack,
                "binding": binding,
                "dual": found["dual"], "dual_unique": found["unique"],
                "rhs_low": found["rhs_low"], "rhs_high": found["rhs_high"],
                "range_kind": "block", "region": g.region,
                "dual_source": "block at master prices",
            }))
        return out


    def diagnose(self, blocks: list[int],
                 time_limit: float | None) -> dict[int, tuple[str, dict[str, Any]]]:
        """The ops diagnosis (elastic repairs, a conflict set) of each of these blocks that
        this owner holds, on the region's own model: a block with no plan of its own is
        infeasible whatever the other regions do, so its repairs are the region's."""
        from allocator.formulations.ops.diagnosis import diagnose, diagnosis_markdown

        out = {}
        policy = PolicyConfig(**self.recipe.policy)
        for index in blocks:
            g = self.regions.get(index)
            if g is None:
                continue
            diag = diagnose(g.ops, policy, time_limit)
            out[index] = (diagnosis_markdown(diag, f"region {g.region}"), diag.to_json())
        return out


def families_of(model: Any) -> np.ndarray:
    """Each row's constraint family (its block's name), in row order."""
    return np.concatenate([np.repeat(b.name, b.size) for b in model.con_blocks.values()]) \
        if model.con_blocks else np.zeros(0, dtype=object)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _empty(table: str) -> pd.DataFrame:
    """A table with the schema's columns and no rows (a region without staff or targets)."""
    return pd.DataFrame({c.name: pd.Series(dtype=object if c.kind in ("str", "choice")
                                           else float) for c in SCHEMAS[table].columns})
