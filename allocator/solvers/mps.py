"""MPS in and out through HiGHS's own reader and writer (a well-tested parser beats ours).

Objective constant convention: an RHS entry on the objective row (netlib e226) is read by
HiGHS as *minus* the objective offset, the convention of most modern solvers; the netlib
readme's published values leave that constant out. Model.objectives["objective"].constant
holds the offset HiGHS reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from allocator.core.model import LinearModel
from allocator.errors import InputError
from allocator.solvers.highs import load_into_highs, new_highs


def write_mps(model: LinearModel, path: Path, objective: str | None = None) -> None:
    """Write `model` with readable row and column names (block[ids])."""
    highs = new_highs()
    name = objective or next(iter(model.objectives), None)
    c = model.objectives[name].c if name else None
    load_into_highs(highs, model, c)
    if name:
        highs.changeObjectiveOffset(model.objectives[name].constant)
    for j, col in enumerate(model.column_names()):
        highs.passColName(j, col)
    for i, row in enumerate(model.row_names()):
        highs.passRowName(i, row)
    highs.writeModel(str(path))


def read_mps(path: Path) -> LinearModel:
    """One variable block and one constraint block, labeled by the file's own names."""
    import highspy

    highs = new_highs()
    if not Path(path).exists():
        raise InputError(f"file not found: {path}", str(path))
    status = highs.readModel(str(path))
    if status == highspy.HighsStatus.kError:
        raise InputError("HiGHS could not read this file as MPS or LP", str(path))
    lp = highs.getLp()
    n, m = lp.num_col_, lp.num_row_
    a = lp.a_matrix_
    matrix = sp.csc_array((np.asarray(a.value_), np.asarray(a.index_), np.asarray(a.start_)),
                          shape=(m, n)).tocoo()
    col_names = list(lp.col_names_) if len(lp.col_names_) == n else [f"c{j}" for j in range(n)]
    row_names = list(lp.row_names_) if len(lp.row_names_) == m else [f"r{i}" for i in range(m)]
    model = LinearModel(Path(path).stem)
    lb, ub = np.asarray(lp.col_lower_), np.asarray(lp.col_upper_)
    lb[lb <= -1e30] = -np.inf
    ub[ub >= 1e30] = np.inf
    integrality = np.asarray(lp.integrality_) if len(lp.integrality_) else np.zeros(n)
    integer = integrality.astype(int) != 0
    model.add_variables("column", pd.DataFrame({"name": col_names}), lb, ub, integer)
    lo, hi = np.asarray(lp.row_lower_), np.asarray(lp.row_upper_)
    lo[lo <= -1e30] = -np.inf
    hi[hi >= 1e30] = np.inf
    model.add_constraints("row", pd.DataFrame({"name": row_names}), matrix.row, matrix.col,
                          matrix.data, lo, hi)
    sense = 1.0 if lp.sense_ == highspy.ObjSense.kMinimize else -1.0
    model.set_objective("objective", {"column": sense * np.asarray(lp.col_cost_)},
                        sense * float(lp.offset_))
    model.maximize = sense < 0
    return model
