"""Reproducibility: a run's bundle (`solve --bundle`) and its replay (`allocator replay`).

`bundle.tar.gz`, in the run folder, holds everything the run depended on, so that "the plan we
sent out on the 3rd" can be made again, years later, without the database it was read from:

    manifest.json         versions (allocator, Python, HiGHS, every solver library), seed and
                          settings, each input table's hash, each stage's objective, the
                          files below with their SHA-256
    scenario.toml         the scenario file as given
    replay.toml           what the scenario and --set said, solver settings pinned whole,
                          reading tables/
    tables/<name>.parquet every input table as read: the cells as text, before validation,
                          so a replay goes through the same checks (a ';' file with decimal
                          commas is kept as the file itself: Parquet would lose that reading)
    models/<k>-<stage>.mps  each stage's model as solved (its objective, the rows holding
                          the stages before it), with readable row and column names
    warm/basis.parquet    the warm start the run used, if any (a replay starts from it too)
    expected/             the run's plan tables and summary.json

`replay` solves `replay.toml` into a new run folder and compares: each plan table's bytes
(and, where they differ, the largest difference of a value), each stage's optimum, and the
versions. With the same versions the plan is identical; with others it says which differ and
whether the optimum still matches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from allocator.core.model import LinearModel, Objective
    from allocator.scenario import Scenario
    from allocator.solvers.lexicographic import SolveResult
    from allocator.tables.readers import LoadedTable

BUNDLE_FILE = "bundle.tar.gz"
FORMAT = 1
OPTIMUM_REL_TOL = 1e-7  # two optima agree within the solvers' own tolerances


# --- TOML out (tomllib reads only) ---------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}"
                               for k, v in value.items() if v is not None) + "}"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON one


def to_toml(data: dict[str, Any]) -> str:
    """Top-level scalars, then one [section] per dict (None: left out, the default)."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items()
             if v is not None and not isinstance(v, dict)]
    for key, section in data.items():
        if isinstance(section, dict):
            lines += ["", f"[{json.dumps(key)}]"]
            lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in section.items()
                      if v is not None]
    return "\n".join(lines) + "\n"


# --- writing -------------------------------------------------------------------------------


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text_parquet(table: LoadedTable) -> bytes:
    """A table's cells as read (text, before validation), as Parquet bytes."""
    buffer = io.BytesIO()
    table.frame.astype(object).where(table.frame.notna(), None).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _replay(scenario: Scenario, tables: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    """Every setting (the manifest's) and replay.toml, reading the bundle's `tables`."""
    settings = scenario.model_dump(mode="json")  # every setting, defaults included
    # The replay's scenario says what the run's said (file and --set), no more: a default
    # written out can read as a choice (funding refuses an explicit objective.sense).
    given = scenario.model_dump(mode="json", exclude_unset=True)
    # The solver's settings pinned whole (seed, threads, method, gap, presolve), so that a
    # later version's new default does not change the replay.
    given["solver"] = settings["solver"]
    given["tables"] = settings["tables"] = tables
    given.pop("store", None)  # a replay records nothing
    given.get("output", {}).pop("bundle", None)  # and bundles nothing
    return settings, to_toml(given).encode("utf-8")


def _expected(folder: Path, expected: Sequence[str]) -> dict[str, bytes]:
    """The run's plan tables as written, for the replay to compare with."""
    return {f"expected/{name}": (folder / name).read_bytes() for name in expected
            if (folder / name).is_file()}


def _manifest_head(scenario: Scenario, settings: dict[str, Any]) -> dict[str, Any]:
    from allocator.store.record import versions

    return {"format": FORMAT, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "scenario": scenario.name, "model": scenario.model, "versions": versions(),
            "seed": scenario.solver.seed, "settings": settings}


def _snapshot(scenario: Scenario, sources: dict[str, LoadedTable],
              notes: list[str]) -> dict[str, tuple[str, bytes, dict[str, Any]]]:
    """Each input table read again as the run read it, checked against the hash the run
    recorded: (file name in the bundle, bytes, what the manifest says of it)."""
    from allocator.tables.readers import read_table

    found: dict[str, tuple[str, bytes, dict[str, Any]]] = {}
    for name, spec in scenario.tables.items():
        if name not in sources:
            continue
        table = read_table(name, spec, scenario.base_dir, origin=scenario.source,
                           max_file_mb=scenario.input.max_file_mb)
        same = table.digest == sources[name].digest
        if not same:
            notes.append(f"bundle: table '{name}' changed after the run read it "
                         f"({sources[name].source}): the bundle holds it as read now, and a "
                         "replay will not reproduce this run")
        info = {"source": sources[name].source, "rows": sources[name].rows,
                "sha256_16": sources[name].digest, "snapshot_matches": same}
        if table.decimal_comma:  # the file itself: its reading depends on its delimiter
            source = Path(table.source)
            found[name] = (f"tables/{name}{source.suffix}", source.read_bytes(),
                           {**info, "kept_as": "file (decimal commas)"})
            continue
        found[name] = (f"tables/{name}.parquet", _text_parquet(table), info)
    return found


def stage_mps(model: LinearModel, objectives: Sequence[Objective], result: SolveResult,
              folder: Path) -> list[Path]:
    """Each solved stage's model as MPS: its objective and the rows holding the stages
    before it (at the values the run held them), with block[ids] names."""
    from allocator.solvers.highs import checked, load_into_highs, new_highs

    written: list[Path] = []
    columns, rows = model.column_names(), model.row_names()
    by_name = {o.name: o for o in objectives}
    for k, stage in enumerate(result.stages):
        objective = by_name[stage.name]
        highs = new_highs()
        load_into_highs(highs, model, objective.c)
        checked(highs.changeObjectiveOffset(float(objective.constant)), "the objective")
        holds = [s for s in result.stages[:k] if s.hold_rhs is not None]
        for held in holds:
            c = by_name[held.name].c
            nz = np.flatnonzero(c)
            limit = float(held.hold_rhs or 0.0) - by_name[held.name].constant
            checked(highs.addRow(-np.inf, limit,
                                 nz.size, nz.astype(np.int32), c[nz].astype(float)),
                    "a hold row")
        for j, name in enumerate(columns):
            highs.passColName(j, name)
        for i, name in enumerate([*rows, *(f"hold[{h.name}]" for h in holds)]):
            highs.passRowName(i, name)
        path = folder / f"{k + 1}-{stage.name}.mps"
        highs.writeModel(str(path))
        written.append(path)
    return written


def write_bundle(path: Path, scenario_path: Path, scenario: Scenario,
                 sources: dict[str, LoadedTable], model: LinearModel,
                 objectives: Sequence[Objective], result: SolveResult, folder: Path,
                 expected: Sequence[str], warm_basis: Path | None) -> list[str]:
    """Write bundle.tar.gz (`folder`: the run folder being written, for the expected
    files); returns notes for the run (a table that changed under the run, say)."""

    notes: list[str] = []
    files: dict[str, bytes] = {"scenario.toml": Path(scenario_path).read_bytes()}
    tables = _snapshot(scenario, sources, notes)
    settings, files["replay.toml"] = _replay(
        scenario, {name: entry[0] for name, entry in tables.items()})
    for _name, (inside, data, _info) in tables.items():
        files[inside] = data
    with tempfile.TemporaryDirectory(prefix="allocator-bundle-") as tmp:
        for mps in stage_mps(model, objectives, result, Path(tmp)):
            files[f"models/{mps.name}"] = mps.read_bytes()
    if warm_basis is not None and warm_basis.is_file():
        files["warm/basis.parquet"] = warm_basis.read_bytes()
    files.update(_expected(folder, expected))
    manifest = {
        **_manifest_head(scenario, settings),
        "inputs": {name: entry[2] for name, entry in tables.items()},
        "objectives": {s.name: (float(s.objective) if np.isfinite(s.objective) else None)
                       for s in result.stages},
        "status": result.status.value, "warm_start": "warm/basis.parquet" in files,
        "files": {name: sha256_of(data) for name, data in sorted(files.items())},
    }
    files["manifest.json"] = json.dumps(manifest, indent=1, default=str).encode("utf-8")
    _pack(path, files)
    return notes


def _pack(path: Path, files: Mapping[str, bytes | Path]) -> None:
    """Same content, same bytes: fixed member times and order, no owner names, gzip's own
    timestamp 0 (a bundle's hash then says whether two runs depended on the same things).
    A member given as a Path is streamed from its file (a partitioned run's parts are never
    all in memory at once)."""
    with open(path, "wb") as raw, \
            tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in ["manifest.json", *sorted(n for n in files if n != "manifest.json")]:
            data = files[name]
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, 0
            if isinstance(data, Path):
                info.size = data.stat().st_size
                with open(data, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- replay --------------------------------------------------------------------------------


def expected_files(tables: Sequence[str]) -> list[str]:
    """The run's plan tables (as the formulation names them), in the bundle's expected/."""
    return [f"{name}.csv" for name in tables]


# --- partitioned runs ----------------------------------------------------------------------


def _table_path(scenario: Scenario, spec: str | dict[str, str]) -> Path | None:
    where = spec if isinstance(spec, str) else spec.get("path")
    if not where:
        return None  # a SQL query
    path = Path(where).expanduser()
    return path if path.is_absolute() else scenario.base_dir / path


def write_partitioned_bundle(path: Path, scenario_path: Path, scenario: Scenario,
                             recorded: dict[str, str], part_digests: dict[str, str],
                             objectives: dict[str, float | None], status: str, folder: Path,
                             expected: Sequence[str], warm_prices: Path | None,
                             decompose: dict[str, Any]) -> list[str]:
    """bundle.tar.gz of a run on partitioned tables. The part files are packed as they are
    (the workers read them themselves; read back here one at a time and checked against the
    digest each worker recorded, so the client never holds the staff table); other tables
    as files, or as a text snapshot when read from SQL. No models/: the whole model was never
    built. The manifest's `decompose` makes the replay decompose the same way."""
    from allocator.tables.partitioned import parts
    from allocator.tables.readers import read_table

    notes: list[str] = []
    files: dict[str, bytes | Path] = {"scenario.toml": Path(scenario_path).read_bytes()}
    tables: dict[str, str] = {}
    inputs: dict[str, Any] = {}

    def check(name: str, digest: str, expected_digest: str | None, source: str) -> bool:
        same = expected_digest is None or digest == expected_digest
        if not same:
            notes.append(f"bundle: table '{name}' changed after the run read it ({source}): "
                         "the bundle holds it as it is now, and a replay will not reproduce "
                         "this run")
        return same

    for name, spec in scenario.tables.items():
        where = _table_path(scenario, spec)
        same = True
        if where is not None and where.is_dir():
            for part in parts(where):
                inside = part.path.relative_to(where).as_posix()
                files[f"tables/{name}/{inside}"] = part.path
                if str(part.path) in part_digests:  # a part a worker read: one at a time
                    digest = read_table(name, {"path": str(part.path)}, where).digest
                    same &= check(name, digest, part_digests[str(part.path)], str(part.path))
            if not any(str(p.path) in part_digests for p in parts(where)):  # the client's
                same &= check(name, read_table(name, spec, scenario.base_dir).digest,
                              recorded.get(name), str(where))
            tables[name] = f"tables/{name}"
        elif where is not None and where.suffix.lower() in (".csv", ".txt", ".tsv", ".parquet"):
            files[f"tables/{name}{where.suffix}"] = where
            same &= check(name, read_table(name, spec, scenario.base_dir).digest,
                          recorded.get(name), str(where))
            tables[name] = f"tables/{name}{where.suffix}"
        else:  # SQL or a sheet of a workbook: the rows as read, as text
            table = read_table(name, spec, scenario.base_dir)
            same &= check(name, table.digest, recorded.get(name), table.source)
            files[f"tables/{name}.parquet"] = _text_parquet(table)
            tables[name] = f"tables/{name}.parquet"
        inputs[name] = {"source": str(where) if where is not None else "sql",
                        "sha256_16": recorded.get(name), "snapshot_matches": same}
    settings, files["replay.toml"] = _replay(scenario, tables)
    if warm_prices is not None and warm_prices.is_file():  # the name replay looks for
        files["warm/master_prices.csv"] = warm_prices.read_bytes()
    files.update(_expected(folder, expected))
    manifest = {
        **_manifest_head(scenario, settings), "inputs": inputs,
        "objectives": objectives, "status": status, "decompose": decompose,
        "warm_start": warm_prices is not None and warm_prices.is_file(),
        "files": {name: _file_sha256(data) if isinstance(data, Path) else sha256_of(data)
                  for name, data in sorted(files.items())},
    }
    files["manifest.json"] = json.dumps(manifest, indent=1, default=str).encode("utf-8")
    _pack(path, files)
    return notes
