"""Two benchmark runs side by side: what got slower, faster, lost, gained or wrong.

Noise is the enemy here: the same solve on the same machine varies by several per cent, and
by far more for solves of a few milliseconds. A change is called only when all three hold:

1. the median ratio passes the threshold (``ratio``, default 1.25 per instance, and
   ``config_ratio``, default 1.10, for a configuration's shifted geometric mean);
2. the times moved by at least ``min_seconds`` (default 0.05 s), so a 2 ms → 4 ms solve is
   not a "100 % regression";
3. the replicates do not overlap: every new time is above every old one (or below, for
   faster). With three replicates a side, pure noise orders them so with probability 1/20.
   With one replicate on a side there is no spread to test, so a change that passes 1 and 2
   is only "slower?" / "faster?" (unconfirmed), which ``--strict`` does not count.

Verdict changes outrank timing: a configuration that turned wrong is reported whatever its
speed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.bench.schema import Verdict
from allocator.bench.summary import charged_time, load_results, shifted_geomean, solved_rows
from allocator.errors import InputError


class Change(enum.StrEnum):
    BECAME_WRONG = "became wrong"
    STILL_WRONG = "still wrong"
    FIXED = "no longer wrong"
    LOST = "no longer solved"
    GAINED = "newly solved"
    SLOWER = "slower"
    FASTER = "faster"
    SLOWER_UNCONFIRMED = "slower?"  # one replicate: could be noise
    FASTER_UNCONFIRMED = "faster?"
    SAME = "same (within noise)"
    UNSOLVED = "unsolved in both"
    ONLY_OLD = "only in old"
    ONLY_NEW = "only in new"


ALARMS = frozenset({Change.BECAME_WRONG, Change.STILL_WRONG, Change.LOST, Change.SLOWER})


@dataclass(frozen=True)
class Thresholds:
    ratio: float = 1.25
    config_ratio: float = 1.10
    min_seconds: float = 0.05


@dataclass
class Comparison:
    instances: pd.DataFrame  # config, instance, old/new median, min, max, ratio, change
    configs: pd.DataFrame  # config, old/new sgm with replicate range, ratio, counts, change
    one_replicate: bool  # the spread test was blind (a single replicate on a side)

    @property
    def alarms(self) -> pd.DataFrame:
        changes = pd.concat([self.instances["change"], self.configs["change"]])
        return changes[changes.isin([c.value for c in ALARMS])].to_frame()


def _results_path(path: Path) -> Path:
    path = Path(path)
    candidate = path / "results.csv" if path.is_dir() else path
    if not candidate.is_file():
        raise InputError(f"no results.csv at {path}: give a bench output folder or its "
                         "results.csv", str(path))
    return candidate


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-replicate times as the summary charges them; cells a solver cannot take dropped."""
    work = frame[frame["status"] != "n/a"].copy()
    work["solved"] = solved_rows(work)
    work["wrong"] = work["verdict"].isin([Verdict.WRONG.value, Verdict.DISAGREE.value])
    work["t"] = charged_time(work)
    work["replicate"] = work["seed"].astype(int).astype(str) + "/" + work["repeat"].astype(
        int).astype(str)
    return work


def _pair_change(old: pd.DataFrame, new: pd.DataFrame, th: Thresholds) -> dict[str, object]:
    o, n = old["t"].to_numpy(), new["t"].to_numpy()
    old_s, new_s = float(np.median(o)), float(np.median(n))
    row: dict[str, object] = {
        "old_s": old_s, "old_min": float(o.min()), "old_max": float(o.max()),
        "new_s": new_s, "new_min": float(n.min()), "new_max": float(n.max()),
        "replicates": f"{len(o)}/{len(n)}",
    }
    row["ratio"] = new_s / old_s
    old_wrong, new_wrong = bool(old["wrong"].any()), bool(new["wrong"].any())
    old_solved, new_solved = bool(old["solved"].all()), bool(new["solved"].all())
    if new_wrong:
        change = Change.STILL_WRONG if old_wrong else Change.BECAME_WRONG
    elif old_wrong:
        change = Change.FIXED
    elif old_solved and not new_solved:
        change = Change.LOST
    elif new_solved and not old_solved:
        change = Change.GAINED
    elif not old_solved:
        change = Change.UNSOLVED
    else:
        change = _timing(o, n, th.ratio, th.min_seconds)
    row["change"] = change.value
    return row


def _timing(old: np.ndarray, new: np.ndarray, ratio: float, min_seconds: float) -> Change:
    mo, mn = float(np.median(old)), float(np.median(new))
    spread_known = len(old) > 1 and len(new) > 1
    if mn >= ratio * mo and mn - mo >= min_seconds:
        if not spread_known:
            return Change.SLOWER_UNCONFIRMED
        if new.min() > old.max():
            return Change.SLOWER
    if mo >= ratio * mn and mo - mn >= min_seconds:
        if not spread_known:
            return Change.FASTER_UNCONFIRMED
        if old.min() > new.max():
            return Change.FASTER
    return Change.SAME


def compare(old_path: Path, new_path: Path, thresholds: Thresholds | None = None) -> Comparison:
    """Compare two results.csv files (or bench folders), configuration by configuration."""
    th = thresholds or Thresholds()
    old = _prepare(load_results(_results_path(old_path)))
    new = _prepare(load_results(_results_path(new_path)))
    rows = []
    keys = sorted(set(map(tuple, old[["config", "instance"]].to_numpy()))
                  | set(map(tuple, new[["config", "instance"]].to_numpy())))
    old_groups = dict(iter(old.groupby(["config", "instance"])))
    new_groups = dict(iter(new.groupby(["config", "instance"])))
    for key in keys:
        if key not in new_groups:
            rows.append({"config": key[0], "instance": key[1], "change": Change.ONLY_OLD.value})
        elif key not in old_groups:
            rows.append({"config": key[0], "instance": key[1], "change": Change.ONLY_NEW.value})
        else:
            rows.append({"config": key[0], "instance": key[1],
                         **_pair_change(old_groups[key], new_groups[key], th)})
    instances = pd.DataFrame(rows)
    configs = _config_changes(old, new, instances, th)
    one = bool(old.groupby(["config", "instance"]).size().min() < 2
               or new.groupby(["config", "instance"]).size().min() < 2)
    return Comparison(instances, configs, one)


def _replicate_sgms(frame: pd.DataFrame, instances: list[str]) -> np.ndarray:
    subset = frame[frame["instance"].isin(instances)]
    return np.array([shifted_geomean(g["t"]) for _, g in subset.groupby("replicate")])


def _config_changes(old: pd.DataFrame, new: pd.DataFrame, instances: pd.DataFrame,
                    th: Thresholds) -> pd.DataFrame:
    rows = []
    for config in sorted(set(old["config"]) & set(new["config"])):
        mine = instances[instances["config"] == config]
        both = mine[~mine["change"].isin([Change.ONLY_OLD.value, Change.ONLY_NEW.value])]
        common = list(both["instance"])
        o = _replicate_sgms(old[old["config"] == config], common)
        n = _replicate_sgms(new[new["config"] == config], common)
        counts = mine["change"].value_counts()
        if not len(o) or not len(n):
            continue
        if counts.get(Change.BECAME_WRONG.value, 0):
            change = Change.BECAME_WRONG
        elif counts.get(Change.LOST.value, 0) > counts.get(Change.GAINED.value, 0):
            change = Change.LOST
        else:
            change = _timing(o, n, th.config_ratio, 0.0)
        rows.append({
            "config": config, "instances": len(common),
            "old_sgm": float(np.median(o)), "old_min": float(o.min()), "old_max": float(o.max()),
            "new_sgm": float(np.median(n)), "new_min": float(n.min()), "new_max": float(n.max()),
            "ratio": float(np.median(n) / np.median(o)),
            "slower": int(counts.get(Change.SLOWER.value, 0)),
            "faster": int(counts.get(Change.FASTER.value, 0)),
            "wrong": int(counts.get(Change.BECAME_WRONG.value, 0)
                         + counts.get(Change.STILL_WRONG.value, 0)),
            "lost": int(counts.get(Change.LOST.value, 0)),
            "gained": int(counts.get(Change.GAINED.value, 0)),
            "change": change.value,
        })
    return pd.DataFrame(rows)
