"""Duals and reduced costs of each LP stage, as one table keyed by family and input ids.

Sign convention, for every solver and both row senses: ``dual`` is the change of the stage's
(minimized) objective per unit increase of the row's right-hand side; ``reduced_cost`` the
change per unit increase of the variable. A MIP has no duals: its rows are reported without.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.analysis.stages import SolveResult
from allocator.core.model import LinearModel

BINDING_TOL = 1e-7


def _labels(frame: pd.DataFrame) -> pd.Series:
    if frame.shape[1] == 0:
        return pd.Series([""] * len(frame))
    return frame.astype(str).agg("/".join, axis=1)


def sensitivity_table(model: LinearModel, result: SolveResult) -> pd.DataFrame:
    if result.x is None:
        return pd.DataFrame()
    x = result.x
    activity = model.matrix @ x
    lo, hi = model.row_lo, model.row_hi
    slack_lo = activity - lo
    slack_hi = hi - activity
    # The side that limits the row: the nearer finite bound.
    use_hi = np.isfinite(hi) & (~np.isfinite(lo) | (slack_hi <= slack_lo))
    rhs = np.where(use_hi, hi, lo)
    slack = np.where(use_hi, slack_hi, slack_lo)
    binding = np.abs(slack) <= BINDING_TOL * np.maximum(1.0, np.abs(rhs))
    frames = []
    for stage in result.stages:
        rows = []
        for block in model.con_blocks.values():
            sl = block.slice
            dual = (stage.row_dual[: model.num_rows][sl] if stage.row_dual is not None
                    else np.full(block.size, np.nan))
            rows.append(pd.DataFrame({
                "family": block.name, "labels": _labels(block.labels).to_numpy(),
                "stage": stage.name, "kind": "constraint",
                "activity": activity[sl], "rhs": rhs[sl], "slack": slack[sl],
                "binding": binding[sl], "dual": dual,
                "rhs_low": np.nan, "rhs_high": np.nan,
                "value": np.nan, "reduced_cost": np.nan, "cost_low": np.nan, "cost_high": np.nan,
            }))
        for block in model.var_blocks.values():
            sl = block.slice
            reduced = (stage.col_dual[sl] if stage.col_dual is not None
                       else np.full(block.size, np.nan))
            rows.append(pd.DataFrame({
                "family": block.name, "labels": _labels(block.labels).to_numpy(),
                "stage": stage.name, "kind": "variable",
                "activity": np.nan, "rhs": np.nan, "slack": np.nan, "binding": False,
                "dual": np.nan, "rhs_low": np.nan, "rhs_high": np.nan,
                "value": x[sl], "reduced_cost": reduced, "cost_low": np.nan,
                "cost_high": np.nan,
            }))
        frames.extend(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
