"""`allocator replay`: re-run a bundle (allocator/bundle.py) and say whether the plan is the
same, byte for byte, and which versions differ if it is not.

Apart from the bundle's writer because it runs the pipeline, which writes bundles: the two
would import each other."""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from allocator.bundle import BUNDLE_FILE, FORMAT, OPTIMUM_REL_TOL, sha256_of
from allocator.errors import InputError


@dataclass
class TableCheck:
    name: str
    identical: bool  # byte for byte
    largest_difference: float | None = None  # of a number, where the bytes differ
    note: str = ""


@dataclass
class ReplayReport:
    bundle: Path
    folder: Path
    exit_code: int  # the replayed run's
    versions_differ: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    objectives: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    tables: list[TableCheck] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return bool(self.tables) and all(t.identical for t in self.tables)

    @property
    def optimum_matches(self) -> bool:
        for before, after in self.objectives.values():
            if before is None or after is None:  # both without an optimum (infeasible): same
                if before is not None or after is not None:
                    return False
                continue
            if abs(before - after) > OPTIMUM_REL_TOL * max(1.0, abs(before)):
                return False
        return bool(self.objectives)

    @property
    def verdict_code(self) -> int:
        """0: reproduced (identical, or the same optimum under other versions); 1: not."""
        if self.exit_code:
            return self.exit_code
        if self.identical or (self.versions_differ and self.optimum_matches):
            return 0
        return 1

    def lines(self) -> list[str]:
        out = []
        if self.versions_differ:
            shown = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in self.versions_differ.items())
            out.append(f"versions differ from the bundle's: {shown}")
        else:
            out.append("versions: the same as the bundle's")
        for t in self.tables:
            if t.identical:
                out.append(f"{t.name}: identical (bytes)")
            else:
                largest = "" if t.largest_difference is None else \
                    f", largest difference of a value {t.largest_difference:.3g}"
                out.append(f"{t.name}: differs{largest}{'; ' + t.note if t.note else ''}")
        for stage, (before, after) in self.objectives.items():
            out.append(f"objective {stage}: bundle {before!r}, replay {after!r}")
        out.append("optimum: " + ("the same" if self.optimum_matches else "NOT the same"))
        verdict = ("plan reproduced exactly" if self.identical else
                   "same optimum under other versions" if self.verdict_code == 0 else
                   "NOT reproduced")
        out.append(f"replay: {verdict}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "folder": str(self.folder),
                "exit_code": self.exit_code, "identical": self.identical,
                "optimum_matches": self.optimum_matches, "verdict_code": self.verdict_code,
                "versions_differ": {k: list(v) for k, v in self.versions_differ.items()},
                "objectives": {k: list(v) for k, v in self.objectives.items()},
                "tables": [t.__dict__ for t in self.tables]}


def _extract(bundle: Path, into: Path) -> dict[str, Any]:
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            tar.extractall(into, filter="data")  # no links out, no absolute paths
        manifest = json.loads((into / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("not found (give a bundle.tar.gz, or the run folder holding one)",
                         str(bundle)) from None
    except (tarfile.TarError, OSError, ValueError, KeyError) as exc:
        raise InputError(f"not a readable allocator bundle: {exc}", str(bundle)) from None
    lacking = [name for name in manifest.get("files", {}) if not (into / name).is_file()]
    corrupt = [name for name, digest in manifest.get("files", {}).items()
               if name not in lacking and sha256_of((into / name).read_bytes()) != digest]
    if lacking or corrupt or manifest.get("format") != FORMAT:
        raise InputError(f"the bundle is incomplete or altered (missing: {lacking or 'none'}; "
                         f"changed: {corrupt or 'none'}; format {manifest.get('format')})",
                         str(bundle))
    return dict(manifest)


def _compare_table(name: str, expected: Path, got: Path) -> TableCheck:
    if not got.is_file():
        return TableCheck(name, False, note="not written by the replay")
    if expected.read_bytes() == got.read_bytes():
        return TableCheck(name, True)
    if name.endswith(".json"):
        return TableCheck(name, False, note="see the two summaries")
    try:
        a = pd.read_csv(expected, dtype=str, keep_default_na=False)
        b = pd.read_csv(got, dtype=str, keep_default_na=False)
    except Exception as exc:
        return TableCheck(name, False, note=f"unreadable: {exc}")
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return TableCheck(name, False, note=f"shape {a.shape} -> {b.shape}")
    largest = 0.0
    for col in a.columns:
        x, y = pd.to_numeric(a[col], errors="coerce"), pd.to_numeric(b[col], errors="coerce")
        if x.notna().all() and y.notna().all():
            largest = max(largest, float((x - y).abs().max()) if len(x) else 0.0)
        elif not a[col].equals(b[col]):
            return TableCheck(name, False, note=f"column {col} differs")
    return TableCheck(name, False, largest)


def replay_bundle(bundle: Path, out: Path, *, force: bool = False) -> ReplayReport:
    """Re-run a bundle into `out` and compare it with the run that made the bundle."""
    from allocator.decompose import entry
    from allocator.decompose.prices import PRICES_FILE
    from allocator.run import solve_scenario
    from allocator.store.record import versions

    bundle = Path(os.path.expanduser(bundle))
    if bundle.is_dir():
        bundle = bundle / BUNDLE_FILE
    with tempfile.TemporaryDirectory(prefix="allocator-replay-") as tmp:
        work = Path(tmp)
        manifest = _extract(bundle, work)
        warm = work / "warm" / "basis.parquet"
        if not warm.is_file():  # a decomposed run's warm start: its master prices
            warm = work / "warm" / PRICES_FILE
        how = manifest.get("decompose")  # a run on partitioned tables decomposes again
        before = entry.current()
        if how:
            entry.request(str(how.get("mode", "regions")), None,
                          int(how.get("workers", before.workers)), bool(how.get("polish")))
        try:
            outcome = solve_scenario(work / "replay.toml", out, force=force,
                                     warm_from=warm if warm.is_file() else None,
                                     warm_source="the bundle's warm start")
        finally:
            entry.request(before.mode, before.scheduler, before.workers, before.polish)
        report = ReplayReport(bundle, out, int(outcome.exit_code))
        now = versions()
        report.versions_differ = {k: (v, now.get(k)) for k, v in manifest["versions"].items()
                                  if now.get(k) != v}
        sign = -1.0 if outcome.summary.get("sense") == "max" else 1.0
        replayed = outcome.summary.get("objectives") or {}
        for stage, before in (manifest.get("objectives") or {}).items():
            after = replayed.get(stage)
            report.objectives[stage] = (
                before, None if after is None else sign * float(after))
        for expected in sorted((work / "expected").glob("*.csv")):
            report.tables.append(_compare_table(expected.name, expected, out / expected.name))
    return report
