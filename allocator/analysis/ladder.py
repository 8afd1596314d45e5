"""Price ladders: how a shadow price steps as one right-hand side keeps moving past its range.

Exact parametric analysis by successive ranging: at each breakpoint the LP is re-solved a hair
beyond it (warm, from the last basis), and HiGHS's ranging gives the next breakpoint. The
objective is piecewise linear in the right-hand side; each rung is one linear piece.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.analysis.figures import round_sig
from allocator.analysis.links import linked_bounds
from allocator.analysis.probes import Probes, bound, solve_at
from allocator.core.model import LinearModel

LADDER_FAMILIES = ("budget", "capacity", "min_staff", "fte", "moved")
MAX_RUNGS = 8  # per direction
TOP_ROWS = 5  # ladders per stage
# output.ladder_span: each ladder also covers today's value +- this share; the rungs that
# takes are counted apart from the extras' probes (at most SPAN_RUNGS per direction), so a
# span asked for is a span given, and the same input still gives the same file.
SPAN_RUNGS = 60


def row_ladder(highs, row: int, rhs: float, use_hi: bool,
               lo: float, hi: float, probes: Probes | None = None,
               span: tuple[float, float] | None = None,
               ) -> list[dict]:
    """The rungs of one row's ladder; `lo`/`hi` are the row's bounds, restored at the end.

    Each rung is a warm re-solve plus a full ranging (HiGHS has no per-row ranging), counted
    against `probes`: the rungs nearest the plan come first. Neighbouring bases with the same
    price are one rung (a price, not a basis, is what the ladder shows). `span` (low, high):
    the ladder goes on until it covers both (up to SPAN_RUNGS per direction).
    """
    probes = probes if probes is not None else Probes()
    rungs: list[dict] = []
    if not probes.take():
        return rungs
    start = solve_at(highs, row, lo, hi, use_hi, rhs)
    if start is None:
        highs.changeRowBounds(row, bound(lo), bound(hi))
        return rungs
    rungs.append({"rhs_from": start[2], "rhs_to": start[3], "dual": start[1],
                  "objective_at_rhs": start[0], "rhs": rhs})
    for direction in (1.0, -1.0):
        piece = start
        goal = None if span is None else (span[1] if direction > 0 else span[0])
        for count in range(SPAN_RUNGS if goal is not None else MAX_RUNGS):
            end = piece[3] if direction > 0 else piece[2]
            covered = goal is None or direction * (end - goal) >= 0
            if not np.isfinite(end) or (count >= MAX_RUNGS and covered):
                break
            if not probes.take():
                break
            probe = end + direction * max(1e-6 * max(1.0, abs(end)), 1e-7)
            nxt = solve_at(highs, row, lo, hi, use_hi, probe)
            if nxt is None:
                rungs.append({"rhs_from": end if direction > 0 else -np.inf,
                              "rhs_to": np.inf if direction > 0 else end, "dual": np.nan,
                              "objective_at_rhs": np.nan, "rhs": probe})
                break
            rung = {"rhs_from": nxt[2], "rhs_to": nxt[3], "dual": nxt[1],
                    "objective_at_rhs": nxt[0], "rhs": probe}
            rungs.append(rung)
            if abs(nxt[1]) <= 1e-12 and (direction > 0) == use_hi:
                # A price of 0 inside a piece while the row is relaxed: the objective is
                # convex and never worsens as a limit is relaxed, so it is flat from here on.
                rung["rhs_to" if direction > 0 else "rhs_from"] = direction * np.inf
                break
            far = nxt[3] if direction > 0 else nxt[2]
            if direction * (far - probe) <= 1e-9 * max(1.0, abs(probe)):
                break  # the basis range does not reach past the probe: no progress
            piece = nxt
    highs.changeRowBounds(row, bound(lo), bound(hi))  # the next probe re-solves from here
    return _merge(sorted(rungs, key=lambda r: (r["rhs"], r["rhs_from"], r["rhs_to"])))


def _merge(rungs: list[dict]) -> list[dict]:
    """Adjacent rungs with the same price are one piece of the objective. Each rung holds
    the point it was solved at (`rhs`); where two basis ranges overlap (a range HiGHS
    reports for a slack row can reach past the next price), the boundary is put between
    the two points, at the end the nearer rung states."""
    out: list[dict] = []
    for rung in rungs:
        if out:
            last = out[-1]
            if rung["rhs_from"] < last["rhs_to"]:
                edge = last["rhs_to"] if last["rhs_to"] <= rung["rhs"] else \
                    max(rung["rhs_from"], last["rhs"])
                last["rhs_to"], rung = edge, {**rung, "rhs_from": edge}
            same = (np.isnan(rung["dual"]) and np.isnan(last["dual"])) or \
                abs(rung["dual"] - last["dual"]) <= 1e-9 * max(1.0, abs(last["dual"]))
            touching = rung["rhs_from"] <= last["rhs_to"] + 1e-6 * max(1.0, abs(last["rhs_to"]))
            if same and touching:
                last["rhs_to"] = max(last["rhs_to"], rung["rhs_to"])
                continue
        out.append(dict(rung))
    return out


def stage_ladders(highs, model: LinearModel, sens, top: int = TOP_ROWS,
                  probes: Probes | None = None, span_share: float | None = None
                  ) -> pd.DataFrame:
    """Ladders for the stage's top bottlenecks (largest |price| x |rhs| in LADDER_FAMILIES).

    For a staff member (family `fte`) the ladder moves their FTE: the availability row with
    the bounds that follow it relaxed (analysis.links.LinkedBounds), as the FTE values are
    priced. `rhs_today` is the right-hand side in the plan (the report's "today" line)."""
    impacts, rows, families = [], [], []
    for name in LADDER_FAMILIES:
        if name == "fte":
            if sens.input_rows is None:
                continue
            k = np.flatnonzero(np.abs(sens.input_dual) > 1e-9)
            impacts.append(np.abs(sens.input_dual[k]) * np.maximum(1.0, sens.input_rhs[k]))
            rows.append(sens.input_rows[k])
            families += [name] * k.size
            continue
        block = model.con_blocks.get(name)
        if block is None:
            continue
        idx = np.arange(block.start, block.start + block.size)
        idx = idx[sens.binding[idx] & (np.abs(sens.row_dual[idx]) > 1e-9)]
        impacts.append(np.abs(sens.row_dual[idx]) * np.maximum(1.0, np.abs(sens.rhs[idx])))
        rows.append(idx)
        families += [name] * idx.size
    frames = []
    links = None
    if "fte" in families:
        links = linked_bounds(model)
    if rows:
        impact, row_index = np.concatenate(impacts), np.concatenate(rows)
        order = np.argsort(-impact, kind="stable")[:top]  # ties keep family, then row order
        row_lo, row_hi = model.row_lo, model.row_hi
        for k in order:
            if not span_share and probes is not None and (probes.stopped or (
                    probes.cap is not None and probes.used + 2 > probes.cap)):
                break  # at least two rungs
            r, family = int(row_index[k]), families[k]
            block = model.con_blocks["availability" if family == "fte" else family]
            label = "/".join(map(str, block.labels.iloc[r - block.start].tolist()))
            use_hi = bool(sens.rhs[r] == row_hi[r]) or family == "fte"
            relax = _relax_fte(highs, links, r - block.start) if family == "fte" and \
                links is not None else None
            today = float(row_hi[r] if family == "fte" else sens.rhs[r])
            span, own = None, probes
            if span_share:
                reach = abs(today) * float(span_share)
                span = (today - reach, today + reach)
                own = Probes(2 * SPAN_RUNGS + 1, probes.deadline if probes else None)
                own.phase("ladder span", 1.0)
            try:
                rungs = row_ladder(highs, r, today, use_hi, float(row_lo[r]),
                                   float(row_hi[r]), own, span)
            finally:
                if relax is not None:
                    relax()
            if rungs:
                frame = pd.DataFrame(rungs)
                frame.insert(0, "labels", label)
                frame.insert(0, "family", family)
                frame.insert(0, "stage", sens.stage)
                frame["rhs_today"] = float(row_hi[r] if family == "fte" else sens.rhs[r])
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["stage", "family", "labels", "rhs_from", "rhs_to", "dual",
                                     "objective_at_rhs", "rhs", "rhs_today"])
    out = pd.concat(frames, ignore_index=True)
    if model.maximize:  # the objective in the user's sense (a value, a profit: positive)
        out["objective_at_rhs"] = -out["objective_at_rhs"]
    for column in ("rhs_from", "rhs_to", "dual", "objective_at_rhs", "rhs", "rhs_today"):
        out[column] = round_sig(out[column].astype(float).to_numpy())  # no -0, no noise
    return out


def _relax_fte(highs, links, k: int):
    """Relax the bounds that follow person k's FTE (implied by their availability row);
    returns the function that restores them."""
    lp = highs.getLp()
    col_lo = np.asarray(lp.col_lower_, dtype=float)
    col_hi = np.asarray(lp.col_upper_, dtype=float)
    mine = links.cols[links.col_ptr[k]:links.col_ptr[k + 1]].astype(np.int32)
    lr = links.link_rows[links.link_ptr[k]:links.link_ptr[k + 1]]
    z = links.link_z[links.link_ptr[k]:links.link_ptr[k + 1]]
    row_lo = np.asarray(lp.row_lower_, dtype=float)
    row_hi = np.asarray(lp.row_upper_, dtype=float)
    lr = lr[(z >= 0) & (col_lo[np.maximum(z, 0)] > 0.5)]  # site decision fixed at 1
    highs.changeColsBounds(mine.size, mine, col_lo[mine], np.full(mine.size, 1e30))
    for row in lr:
        highs.changeRowBounds(int(row), float(row_lo[row]), 1e30)

    def restore() -> None:
        highs.changeColsBounds(mine.size, mine, col_lo[mine], col_hi[mine])
        for row in lr:
            highs.changeRowBounds(int(row), float(row_lo[row]), float(row_hi[row]))

    return restore
