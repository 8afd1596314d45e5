"""The next night of a scenario: a copy of its tables with a few demands changed and a few
staff added and removed, as a nightly run meets them (tests of `allocator diff` and drift,
the warm-start benchmark).

Works on scenario folders whose tables are CSV files named in `[tables]` (what `allocator
generate` writes); deterministic for a seed."""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NextDay:
    scenario: Path  # the new scenario file
    demands_changed: pd.DataFrame  # site_id, service_id, demand_a, demand_b, row (file row)
    staff_added: list[str]
    staff_removed: list[str]


def _tables(scenario: Path) -> dict[str, Path]:
    raw = tomllib.loads(scenario.read_text(encoding="utf-8"))
    found = {}
    for name, spec in (raw.get("tables") or {}).items():
        path = spec if isinstance(spec, str) else spec.get("path")
        if path:
            found[name] = (scenario.parent / path).resolve()
    return found


def next_day(scenario: str | Path, out: str | Path, *, seed: int = 1,
             demand_share: float = 0.01, demand_change: float = 0.2, min_demands: int = 2,
             staff_added: int = 2, staff_removed: int = 2,
             budget_scale: float = 1.0) -> NextDay:
    """Write day 2 of `scenario` into folder `out` (created; its scenario keeps the name, so
    the store sees two nights of one scenario). `demand_share` of the targets (at least
    `min_demands`) get their demand scaled by 1 +/- `demand_change`; `staff_removed` staff
    leave; `staff_added` new staff join, copies of existing people with new ids; every
    budget amount is multiplied by `budget_scale`."""
    scenario, out = Path(scenario), Path(out)
    rng = np.random.default_rng(seed)
    tables = _tables(scenario)
    out.mkdir(parents=True, exist_ok=True)
    text = scenario.read_text(encoding="utf-8")
    for name, path in tables.items():
        shutil.copyfile(path, out / path.name)
        text = re.sub(rf'(?m)^(\s*{re.escape(name)}\s*=\s*)"[^"]*"',
                      rf'\g<1>"{path.name}"', text)
    target = out / scenario.name
    target.write_text(text, encoding="utf-8")
    read = {"dtype": str, "keep_default_na": False}
    targets = pd.read_csv(tables["targets"], **read)
    n = min(len(targets), max(min_demands, round(demand_share * len(targets))))
    picked = np.sort(rng.choice(len(targets), size=n, replace=False))
    before = targets["demand"].astype(float)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    after = before.copy()
    after.iloc[picked] = np.round(before.iloc[picked] * (1 + sign * demand_change), 3)
    targets["demand"] = [repr(float(v)) for v in after]
    targets.to_csv(out / tables["targets"].name, index=False)
    changed = pd.DataFrame({"site_id": targets["site_id"].iloc[picked].to_numpy(),
                            "service_id": targets["service_id"].iloc[picked].to_numpy(),
                            "demand_a": before.iloc[picked].to_numpy(),
                            "demand_b": after.iloc[picked].to_numpy(),
                            "row": picked + 2})
    staff = pd.read_csv(tables["staff"], **read)
    gone = rng.choice(len(staff), size=min(staff_removed, len(staff) - 1), replace=False)
    removed = sorted(staff["staff_id"].iloc[gone])
    kept = staff.drop(staff.index[gone])
    source = kept.iloc[rng.choice(len(kept), size=staff_added, replace=True)].copy()
    added = [f"N{seed:03d}{i:04d}" for i in range(staff_added)]
    source["staff_id"] = added
    pd.concat([kept, source], ignore_index=True).to_csv(out / tables["staff"].name,
                                                       index=False)
    if budget_scale != 1.0 and "budgets" in tables:
        budgets = pd.read_csv(tables["budgets"], **read)
        budgets["amount"] = [repr(round(float(v) * budget_scale, 2)) for v in budgets["amount"]]
        budgets.to_csv(out / tables["budgets"].name, index=False)
    return NextDay(target, changed, added, removed)
