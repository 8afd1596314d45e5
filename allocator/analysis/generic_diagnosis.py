"""Infeasibility diagnosis for any formulation, from the labeled blocks alone.

The ops model has its own diagnosis in business words (diagnosis.py). Every other model gets
this one: an elastic relaxation of all constraint rows (one violation column per side),
minimizing the total violation relative to each row's size, reported per family and label;
and HiGHS's IIS of the LP relaxation, mapped to the same labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocator.core.model import LinearModel, join_labels
from allocator.solvers.highs import load_into_highs, new_highs

TOL = 1e-7


def _row_labels(model: LinearModel) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for block in model.con_blocks.values():
        out.extend((block.name, str(label)) for label in join_labels(block.labels))
    return out


def generic_diagnosis(model: LinearModel, title: str, time_limit: float = 60.0
                      ) -> tuple[str, dict[str, Any]]:
    labels = _row_labels(model)
    lo, hi = model.row_lo, model.row_hi
    highs = new_highs()
    load_into_highs(highs, model, np.zeros(model.num_vars))
    highs.setOptionValue("time_limit", float(time_limit))
    scale = 1.0 / np.maximum(1.0, np.where(np.isfinite(hi), np.abs(hi),
                                           np.where(np.isfinite(lo), np.abs(lo), 1.0)))
    rows = np.arange(model.num_rows)
    columns = {}
    empty = np.zeros(0, dtype=np.int32)
    for side, mask, sign in (("raise upper limit", np.isfinite(hi), -1.0),
                             ("lower lower limit", np.isfinite(lo), 1.0)):
        picked = rows[mask]
        k = picked.size
        if not k:
            continue
        start = highs.getNumCol()
        highs.addCols(k, scale[picked], np.zeros(k), np.full(k, 1e30), k,
                      np.arange(k, dtype=np.int32), picked.astype(np.int32), np.full(k, sign))
        columns[side] = (start, picked)
    del empty
    highs.run()
    repairs = []
    if highs.getModelStatus().name == "kOptimal":
        x = np.asarray(highs.getSolution().col_value)
        for side, (start, picked) in columns.items():
            values = x[start:start + picked.size]
            for r, v in zip(picked, values, strict=True):
                if v > TOL:
                    family, label = labels[r]
                    current = hi[r] if side.startswith("raise") else lo[r]
                    proposed = current + v if side.startswith("raise") else current - v
                    repairs.append({"family": family, "labels": label, "change": side,
                                    "current": float(current), "proposed": float(proposed)})
    conflict = []
    iis_model = new_highs()
    load_into_highs(iis_model, model, relax_integers=True)
    for strategy in (6, 2):
        iis_model.setOptionValue("iis_strategy", strategy)
        status, iis = iis_model.getIis()
        if status.name == "kOk" and iis.valid_ and len(iis.row_index_):
            conflict = [{"family": labels[int(r)][0], "labels": labels[int(r)][1]}
                        for r in iis.row_index_]
            break
    payload = {"repairs": repairs, "conflict_set": conflict,
               "method": "elastic rows (violation relative to each limit) and HiGHS IIS"}
    lines = [f"# No plan can be made: {title}", "",
             "The smallest relative change of the limits that makes a plan possible:", ""]
    lines += [f"- {r['family']} {r['labels']}: {r['change']} from {r['current']:g} to "
              f"{r['proposed']:g}" for r in repairs[:60]] or ["- (none found)"]
    lines += ["", "## Conflict set (these limits cannot hold together)", ""]
    lines += [f"- {c['family']} {c['labels']}" for c in conflict[:60]] or ["- (not available)"]
    return "\n".join(lines) + "\n", payload
