"""Excel-Solver-style sensitivity report for any LP file, rows and columns by their names.

The file is solved by HiGHS in its own sense (MAX stays MAX), so shadow prices read as the
textbooks print them: the change of the file's objective per unit increase of the rhs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.analysis.sensitivity import highs_sensitivity
from allocator.errors import InfeasibleError, InputError, SolverFailure
from allocator.solvers.highs import new_highs


@dataclass
class MpsReport:
    name: str
    sense: str
    objective: float
    variables: pd.DataFrame
    constraints: pd.DataFrame


def mps_sensitivity(path: Path) -> MpsReport:
    import highspy

    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}", str(path))
    highs = new_highs()
    if highs.readModel(str(path)) == highspy.HighsStatus.kError:
        raise InputError("HiGHS could not read this file as MPS or LP", str(path))
    lp = highs.getLp()
    if len(lp.integrality_) and np.any(np.asarray(lp.integrality_).astype(int) != 0):
        raise InputError("this file has integer columns; a sensitivity report needs an LP "
                         "(relax the integers, or solve it with `allocator bench`)", str(path))
    highs.run()
    status = highs.getModelStatus()
    ms = highspy.HighsModelStatus
    if status in (ms.kInfeasible,):
        raise InfeasibleError(f"{path.name}: the LP is infeasible, so it has no optimum to "
                              "report on")
    if status in (ms.kUnbounded, ms.kUnboundedOrInfeasible):
        raise InputError(f"the LP is {highs.modelStatusToString(status).lower()}: it has no "
                         "optimum to report on (is a bound or a row missing?)", str(path))
    if status == ms.kModelEmpty:
        raise InputError("the LP has no columns: nothing to report on", str(path))
    if status != ms.kOptimal:
        raise SolverFailure(f"{path.name}: HiGHS ended with {highs.modelStatusToString(status)}")
    sens = highs_sensitivity(highs, "objective")
    n, m = lp.num_col_, lp.num_row_
    cols = list(lp.col_names_) if len(lp.col_names_) == n else [f"c{j}" for j in range(n)]
    rows = list(lp.row_names_) if len(lp.row_names_) == m else [f"r{i}" for i in range(m)]
    cost = np.asarray(lp.col_cost_, dtype=float)
    variables = pd.DataFrame({
        "name": cols, "final_value": sens.x, "reduced_cost": sens.col_dual,
        "objective_coefficient": cost, "allowable_increase": sens.cost_high - cost,
        "allowable_decrease": cost - sens.cost_low,
    })
    constraints = pd.DataFrame({
        "name": rows, "final_value": sens.activity, "shadow_price": sens.row_dual,
        "rhs": sens.rhs, "allowable_increase": sens.rhs_high - sens.rhs,
        "allowable_decrease": sens.rhs - sens.rhs_low, "binding": sens.binding,
        "dual_unique": sens.dual_unique, "shadow_price_down": sens.dual_left,
        "shadow_price_up": sens.dual_right,
    })
    sense = "max" if lp.sense_ == highspy.ObjSense.kMaximize else "min"
    return MpsReport(path.stem, sense, sens.objective, variables, constraints)
