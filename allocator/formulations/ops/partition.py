"""A user's ops tables as Parquet partitioned by region (`allocator partition`).

Why: a decomposed run on partitioned tables is the one whose client never holds the staff
table or builds the model (docs/decompose.md), but until now only the generator wrote that
layout. Real data arrives as CSV, Excel or SQL exports; this reads them with the same
loaders and checks as `allocator solve` (every problem at once, by file, row and column;
nothing written when any is found), then writes what the workers read region by region:
sites, staff and targets as `region=<R>/part-0.parquet` folders (staff by their home site's
region, as `allocator generate --partitioned` does), services, budgets and a baseline as one
Parquet file each, and a scenario.toml that names them, its other settings copied.

The values written are the validated ones (typed, headers mapped to the contract's names,
skills as matched), so a partitioned run reads exactly the numbers a monolithic run of the
original scenario reads. This is the one step that reads the whole staff table on one
machine; it holds the tables, never the model.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from allocator.errors import InputError, Problem
from allocator.formulations.ops.data import OpsData, load_ops
from allocator.outputs.folder import ACTIVE, ACTIVE_LOCK, _open_to_new_folders, _pid_alive
from allocator.scenario import Scenario, load_scenario, scenario_toml
from allocator.store.db import OFF
from allocator.tables.partitioned import (
    PARTITION_KEY,
    PARTITIONED_TABLES,
    only_parts,
    write_partitioned,
)

SINGLE_FILE_TABLES = ("services", "budgets", "baseline")
SCENARIO_FILE = "scenario.toml"
TEMP_PREFIX = ".partition-"  # a folder being written, inside --out, named with our pid
MARKER = "# Written by allocator partition"  # scenario.toml's first line: --force may replace
# The column of each partitioned table whose site gives a row its region.
SITE_COLUMN = {"sites": "site_id", "staff": "home_site", "targets": "site_id"}


@dataclass(frozen=True)
class Partitioned:
    """What `partition` wrote: the new scenario, the rows per table and the regions."""

    scenario: Path
    rows: dict[str, int]
    regions: list[str]
    warnings: list[str]


def written_names(scenario: Scenario) -> list[str]:
    """The entries of --out this writes for `scenario`: the only ones --force replaces."""
    names = [SCENARIO_FILE]
    for table in scenario.tables:
        if table in PARTITIONED_TABLES:
            names.append(table)
        elif table in SINGLE_FILE_TABLES:
            names.append(f"{table}.parquet")
    return names


def _input_paths(scenario: Scenario) -> list[Path]:
    """The files and folders the scenario reads (SQL tables have none), symbolic links
    resolved: an --out reached through a link is still the input folder."""
    found = [Path(os.path.realpath(scenario.source))]
    for spec in scenario.tables.values():
        path = spec if isinstance(spec, str) else spec.get("path")
        if path:
            where = Path(path).expanduser()
            found.append(Path(os.path.realpath(where if where.is_absolute()
                                               else scenario.base_dir / where)))
    return found


def _ours(out: Path) -> bool:
    """Whether --out holds a scenario.toml that partition wrote (its first line says so):
    only then does --force replace its files."""
    try:
        with (out / SCENARIO_FILE).open(encoding="utf-8") as handle:
            return handle.readline().startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return a == b or os.path.samefile(a, b)
    except OSError:
        return False


def _refusals(scenario: Scenario, out: Path, force: bool) -> list[Problem]:
    """--out problems found before anything is read: a file where the folder goes, an
    --out that is, holds or sits inside an input (never written into, --force or not), an
    earlier output without --force, or, with --force, entries partition did not write."""
    if out.exists() and not out.is_dir():
        return [Problem("--out", f"{out} is a file, not a folder")]
    problems: list[Problem] = []
    target = Path(os.path.realpath(out))
    inputs = _input_paths(scenario)
    inside = [p for p in inputs if p.is_dir() and (_same(p, target) or p in target.parents)]
    if inside:
        return [Problem("--out", f"{out} is or is inside the input folder {inside[0]}: give "
                                 "another --out (the inputs are only read)")]
    ours = _ours(target)
    for name in written_names(scenario):
        entry = target / name
        hit = [p for p in inputs if _same(p, entry) or entry in p.parents]
        if hit:
            problems.append(Problem("--out", f"{entry} is an input of this scenario "
                                    f"({hit[0]}): give another --out (the inputs are only read)"))
        elif entry.exists() or entry.is_symlink():
            if not force:
                problems.append(Problem("--out", f"{entry} already exists; use --force to "
                                        "replace what an earlier partition wrote (nothing "
                                        "else in the folder is touched), or another --out"))
            elif not ours or entry.is_symlink() or (entry.is_dir() and not only_parts(entry)) \
                    or (name.endswith((".parquet", ".toml")) and entry.is_dir()) \
                    or (name in PARTITIONED_TABLES and not entry.is_dir()):
                problems.append(Problem("--out", f"{entry} is not what an earlier partition "
                                        "wrote there; move it, or give another --out"))
    return problems


def _regions(data: OpsData) -> pd.Series:
    return pd.Series(data.sites["region"].astype(str).to_numpy(),
                     index=data.sites["site_id"].to_numpy())


def _scenario_text(scenario_path: Path, scenario: Scenario, tables: dict[str, str]) -> str:
    """The user's scenario with [tables] pointing at the written files; a relative store
    path made absolute, so the new scenario records where the old one did."""
    raw: dict[str, Any] = tomllib.loads(scenario_path.read_text(encoding="utf-8-sig"))
    raw["tables"] = tables
    store = raw.get("store")
    if isinstance(store, dict) and isinstance(store.get("url"), str):
        url = store["url"].strip()
        if url and url.lower() not in OFF and "://" not in url and \
                not Path(url).expanduser().is_absolute():
            store["url"] = str(scenario.base_dir / url)
    return (f"{MARKER} from {Path(os.path.abspath(scenario_path)).as_posix()}: its tables as "
            "Parquet parts by region\n" + scenario_toml(raw))


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _clean_stale(out: Path) -> None:
    """Remove what a killed partition left in --out (its pid gone)."""

    if not out.is_dir():
        return
    for entry in out.iterdir():
        mine = f"{TEMP_PREFIX}{_host()}-"  # another host's pids mean nothing here
        if entry.name.startswith(mine) and entry.is_dir() and not entry.is_symlink():
            pid = entry.name[len(mine):].partition("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _move_in(temp: Path, out: Path, names: list[str]) -> None:
    """The written entries into --out, scenario.toml last (it names the others): an earlier
    partition's entries are set aside in `temp` first and put back if a move fails, so --out
    holds either the old set or the new one."""
    aside = temp / ".earlier"
    aside.mkdir()
    order = [n for n in names if n != SCENARIO_FILE] + [SCENARIO_FILE]
    moved: list[str] = []
    # Under ACTIVE_LOCK: an interrupt's clean-up (which removes `temp`, the earlier entries
    # set aside in it included) waits until the set in --out is whole again.
    with ACTIVE_LOCK:
        try:
            for name in order:
                if (out / name).exists() or (out / name).is_symlink():
                    os.replace(out / name, aside / name)
                moved.append(name)
                os.replace(temp / name, out / name)
        except BaseException:
            for name in reversed(moved):
                with contextlib.suppress(OSError):
                    if (out / name).is_dir() and not (out / name).is_symlink():
                        shutil.rmtree(out / name)
                    elif (out / name).exists():
                        (out / name).unlink()
                    if (aside / name).exists():
                        os.replace(aside / name, out / name)
            raise


def partition(scenario_path: str | Path, out: str | Path, force: bool = False) -> Partitioned:
    """Read and check the scenario's tables, write them partitioned by region to `out`."""
    scenario_path = Path(scenario_path)
    out = Path(out).expanduser()
    scenario = load_scenario(scenario_path)
    if scenario.model != "ops":
        raise InputError(f"allocator partition splits the ops model's tables by region; "
                         f"this scenario is '{scenario.model}'", str(scenario_path))
    problems = _refusals(scenario, out, force)
    if problems:
        raise InputError(problems)
    data = load_ops(scenario)  # every table's problems at once; nothing written before
    region = _regions(data)
    warnings = list(data.warnings)
    regions = sorted(set(region.to_numpy()))
    folded: dict[str, str] = {}
    for name in regions:  # 'North' and 'north': one folder where case is not told apart
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            raise InputError(f"regions '{other}' and '{name}' differ only by case: their "
                             "folders would be one on Windows and macOS; write them alike in "
                             "the region column", str(data.sources["sites"].source))
    if len(regions) == 1:
        warnings.append(f"every site is in one region ('{regions[0]}'): a decomposed run "
                        "has one block, so it splits nothing (sites.csv's region column "
                        "says which region each site is in)")
    out.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    with ACTIVE_LOCK:  # an interrupt removes it (allocator/interrupts.py)
        _open_to_new_folders()
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{_host()}-{os.getpid()}-",
                                     dir=out))
        ACTIVE.add(temp)
    try:
        tables: dict[str, str] = {}
        rows: dict[str, int] = {}
        for name in scenario.tables:
            frame = getattr(data, name)
            rows[name] = len(frame)
            if name in PARTITIONED_TABLES:
                by = region.loc[frame[SITE_COLUMN[name]].to_numpy()]
                # The region lives in the folder name (Hive layout), not in the file.
                kept = frame.drop(columns=[PARTITION_KEY]) if name == "sites" else frame
                write_partitioned(kept, temp / name, by)
                tables[name] = name
            else:
                frame.to_parquet(temp / f"{name}.parquet", index=False)
                tables[name] = f"{name}.parquet"
        (temp / SCENARIO_FILE).write_text(_scenario_text(scenario_path, scenario, tables),
                                          encoding="utf-8")
        load_scenario(temp / SCENARIO_FILE)  # what we wrote reads back as a scenario
        problems = _refusals(scenario, out, force)  # again: --out may have changed meanwhile
        if problems:
            raise InputError(problems)
        _move_in(temp, out, written_names(scenario))
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        with ACTIVE_LOCK:
            ACTIVE.discard(temp)
    return Partitioned(out / SCENARIO_FILE, rows, regions, warnings)

