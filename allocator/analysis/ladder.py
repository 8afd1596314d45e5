"""Price ladders: how a shadow price steps as one right-hand side keeps moving past its range.

Exact parametric analysis by successive ranging: at each breakpoint the LP is re-solved a hair
beyond it (warm, from the last basis), and HiGHS's ranging gives the next breakpoint. The
objective is piecewise linear in the right-hand side; each rung is one linear piece.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from allocator.analysis.sensitivity import affordable
from allocator.core.model import LinearModel

LADDER_FAMILIES = ("budget", "capacity", "min_staff", "availability", "moved")
MAX_RUNGS = 8  # per direction
TOP_ROWS = 5  # ladders per stage


def _bound(value: float) -> float:
    return float(np.clip(value, -1e30, 1e30))


def _solve_at(highs, row: int, lo: float, hi: float, use_hi: bool,  # type: ignore[no-untyped-def]
              value: float) -> tuple[float, float, float, float] | None:
    """Objective, dual and basis range of the row with its rhs set to `value`."""
    if use_hi:
        highs.changeRowBounds(row, _bound(lo), _bound(value))
    else:
        highs.changeRowBounds(row, _bound(value), _bound(hi))
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return None
    _status, ranging = highs.getRanging()
    low = float(ranging.row_bound_dn.value_[row])
    high = float(ranging.row_bound_up.value_[row])
    return (float(highs.getInfo().objective_function_value),
            float(highs.getSolution().row_dual[row]),
            -np.inf if low <= -1e30 else min(low, value),
            np.inf if high >= 1e30 else max(high, value))


def row_ladder(highs, row: int, rhs: float, use_hi: bool,  # type: ignore[no-untyped-def]
               lo: float, hi: float, deadline: float | None = None,
               ) -> list[dict]:  # type: ignore[type-arg]
    """The rungs of one row's ladder; `lo`/`hi` are the row's bounds, restored at the end.

    Each rung is a warm re-solve plus a full ranging (HiGHS has no per-row ranging), so a
    rung starts only if one more (as long as the last one took) fits before the deadline: a
    large model gets the rungs nearest the plan first.
    """
    rungs: list[dict] = []  # type: ignore[type-arg]
    started = time.perf_counter()
    start = _solve_at(highs, row, lo, hi, use_hi, rhs)
    rung_seconds = time.perf_counter() - started
    if start is None:
        highs.changeRowBounds(row, _bound(lo), _bound(hi))
        return rungs
    seen = {(round(start[2], 9), round(start[3], 9))}
    rungs.append({"rhs_from": start[2], "rhs_to": start[3], "dual": start[1],
                  "objective_at_rhs": start[0], "rhs": rhs})
    for direction in (1.0, -1.0):
        piece = start
        for _ in range(MAX_RUNGS):
            if not affordable(deadline, rung_seconds):
                break
            end = piece[3] if direction > 0 else piece[2]
            if not np.isfinite(end):
                break
            probe = end + direction * max(1e-6 * max(1.0, abs(end)), 1e-7)
            started = time.perf_counter()
            nxt = _solve_at(highs, row, lo, hi, use_hi, probe)
            rung_seconds = time.perf_counter() - started
            if nxt is None:
                rungs.append({"rhs_from": end if direction > 0 else -np.inf,
                              "rhs_to": np.inf if direction > 0 else end, "dual": np.nan,
                              "objective_at_rhs": np.nan, "rhs": probe})
                break
            key = (round(nxt[2], 9), round(nxt[3], 9))
            if key in seen:
                break
            seen.add(key)
            rungs.append({"rhs_from": nxt[2], "rhs_to": nxt[3], "dual": nxt[1],
                          "objective_at_rhs": nxt[0], "rhs": probe})
            piece = nxt
    highs.changeRowBounds(row, _bound(lo), _bound(hi))  # the next probe re-solves from here
    return sorted(rungs, key=lambda r: (r["rhs_from"], r["rhs_to"]))


def stage_ladders(highs, model: LinearModel, sens, top: int = TOP_ROWS,  # type: ignore[no-untyped-def]
                  deadline: float | None = None) -> pd.DataFrame:
    """Ladders for the stage's top bottlenecks (largest |dual| x |rhs| in LADDER_FAMILIES)."""
    impacts, rows, families = [], [], []
    for name in LADDER_FAMILIES:
        block = model.con_blocks.get(name)
        if block is None:
            continue
        idx = np.arange(block.start, block.start + block.size)
        idx = idx[sens.binding[idx] & (np.abs(sens.row_dual[idx]) > 1e-9)]
        impacts.append(np.abs(sens.row_dual[idx]) * np.maximum(1.0, np.abs(sens.rhs[idx])))
        rows.append(idx)
        families += [name] * idx.size
    frames = []
    if rows:
        impact, row_index = np.concatenate(impacts), np.concatenate(rows)
        order = np.argsort(-impact, kind="stable")[:top]  # ties keep family, then row order
        row_lo, row_hi = model.row_lo, model.row_hi
        for k in order:
            if not affordable(deadline, 2 * sens.ranging_seconds):  # at least two rungs
                break
            r, family = int(row_index[k]), families[k]
            block = model.con_blocks[family]
            label = "/".join(map(str, block.labels.iloc[r - block.start].tolist()))
            use_hi = bool(sens.rhs[r] == row_hi[r])
            rungs = row_ladder(highs, r, float(sens.rhs[r]), use_hi, float(row_lo[r]),
                               float(row_hi[r]), deadline)
            if rungs:
                frame = pd.DataFrame(rungs)
                frame.insert(0, "labels", label)
                frame.insert(0, "family", family)
                frame.insert(0, "stage", sens.stage)
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["stage", "family", "labels", "rhs_from", "rhs_to", "dual",
                                     "objective_at_rhs", "rhs"])
    return pd.concat(frames, ignore_index=True)
