"""The assignment model (spec/more-models.md): indivisible tasks given whole to resources.

The generalized assignment problem: ``y_tr`` binary over the listed options only (a pair not
listed is not allowed, so the model is as sparse as the options table); every task's row
``sum_r y_tr + u_t = 1`` where ``u_t`` (unassigned) exists only for tasks that are not
required and costs their ``unassigned_penalty``; ``sum_t load_tr y_tr <= capacity_r``.
`[objective] sense = "max"` reads the cost column as a profit (OR-Library's gap1-12); the
objective is stored minimized either way, with ``model.maximize`` telling readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel
from allocator.formulations.base import DataBacked
from allocator.formulations.tabular import (
    BOOL_CHOICES,
    as_bool,
    cat,
    read_tables,
    sort_ids,
)
from allocator.scenario import Scenario
from allocator.tables.readers import LoadedTable
from allocator.tables.schema import Col, Schema, check_reference

SCHEMAS: dict[str, Schema] = {
    "tasks": Schema("tasks", (
        Col("task_id"),
        Col("required", "choice", required=False, default="true", choices=BOOL_CHOICES),
        Col("unassigned_penalty", "float", required=False, default=0.0, min=0),
    ), unique=("task_id",)),
    "resources": Schema("resources", (
        Col("resource_id"),
        Col("capacity", "float", min=0, nullable=True),  # empty: no limit
    ), unique=("resource_id",)),
    "options": Schema("options", (
        Col("task_id"),
        Col("resource_id"),
        Col("cost", "float"),  # may be negative (a saving); a profit when sense = "max"
        Col("load", "float", min=0),
    ), unique=("task_id", "resource_id")),
}
REQUIRED = ("tasks", "resources", "options")
ASSIGNED = 0.5  # a binary above this is 1 (solvers return 0.9999999 as readily as 1)


@dataclass
class AssignmentData:
    """Validated tables; options carry integer codes t (task) and r (resource)."""

    tasks: pd.DataFrame
    resources: pd.DataFrame
    options: pd.DataFrame
    maximize: bool
    sources: dict[str, LoadedTable] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class AssignmentModel(DataBacked[AssignmentData]):
    model: LinearModel
    data: AssignmentData


def load_assignment(scenario: Scenario) -> AssignmentData:
    """Read and validate tasks, resources and options; every problem reported at once."""
    found = read_tables(scenario, SCHEMAS, REQUIRED, lower_columns=("required",))
    tasks, resources, options = (found.frames[n] for n in REQUIRED)
    task_ids, resource_ids = pd.Index(tasks["task_id"]), pd.Index(resources["resource_id"])
    check_reference(found.loaded["options"], options, "task_id", task_ids, "task",
                    found.problems)
    check_reference(found.loaded["options"], options, "resource_id", resource_ids, "resource",
                    found.problems)
    tasks["required"] = as_bool(tasks["required"])
    listed = tasks["task_id"].isin(options["task_id"]).to_numpy()
    found.report("tasks", tasks["required"].to_numpy() & ~listed, "task_id",
                 "a required task with no row in the options table cannot be assigned; "
                 "list an option for it or set required = false", tasks["task_id"])
    found.raise_if_any()

    options = options.assign(t=task_ids.get_indexer(options["task_id"]),
                              r=resource_ids.get_indexer(options["resource_id"]))
    data = AssignmentData(tasks, resources, options, scenario.objective.sense == "max",
                          found.loaded)
    unlisted = int((~listed).sum())
    if unlisted:
        data.warnings.append(f"{unlisted} optional tasks have no option and stay unassigned")
    cap = resources["capacity"].to_numpy(dtype=float)
    if np.isfinite(cap).all():
        least = options.groupby("t")["load"].min()
        need = least[tasks["required"].to_numpy()[least.index.to_numpy()]].sum()
        if need > cap.sum() + 1e-9:
            data.warnings.append(
                f"required tasks need at least {need:g} load and all resources hold "
                f"{cap.sum():g}: no assignment can fit")
    return data


def build_assignment(data: AssignmentData) -> AssignmentModel:
    """One call per family: assign (binary), unassigned (binary), one_resource, capacity."""
    tasks, resources, options = data.tasks, data.resources, data.options
    task_ids, resource_ids = pd.Index(tasks["task_id"]), pd.Index(resources["resource_id"])
    t, r = options["t"].to_numpy(), options["r"].to_numpy()
    m = LinearModel("assignment", maximize=data.maximize)
    y = m.add_variables("assign", pd.DataFrame({"task_id": cat(t, task_ids),
                                                "resource_id": cat(r, resource_ids)}),
                        0.0, 1.0, integer=True)
    ycol = y.start + np.arange(len(options))

    optional = np.flatnonzero(~tasks["required"].to_numpy(dtype=bool))
    rows, cols = [t], [ycol]
    if optional.size:
        u = m.add_variables("unassigned", pd.DataFrame({"task_id": cat(optional, task_ids)}),
                            0.0, 1.0, integer=True)
        rows.append(optional)
        cols.append(u.start + np.arange(optional.size))
    n_terms = sum(len(c) for c in cols)
    m.add_constraints("one_resource", pd.DataFrame({"task_id": cat(np.arange(len(tasks)),
                                                                   task_ids)}),
                      np.concatenate(rows), np.concatenate(cols), np.ones(n_terms), lo=1.0,
                      hi=1.0, description="each task given whole to one resource (or left "
                      "unassigned if optional)")

    cap = resources["capacity"].to_numpy(dtype=float)
    load = options["load"].to_numpy()
    limited = np.flatnonzero(np.isfinite(cap) & np.isin(np.arange(len(resources)), r))
    if limited.size:
        pos = np.full(len(resources), -1)
        pos[limited] = np.arange(limited.size)
        keep = (pos[r] >= 0) & (load != 0)
        m.add_constraints("capacity", pd.DataFrame({"resource_id": cat(limited, resource_ids)}),
                          pos[r][keep], ycol[keep], load[keep], hi=cap[limited],
                          description="load a resource can take")

    cost = options["cost"].to_numpy()
    terms = {"assign": -cost if data.maximize else cost}
    if optional.size:  # leaving a task out is a loss in either sense
        terms["unassigned"] = tasks["unassigned_penalty"].to_numpy()[optional]
    m.set_objective("profit" if data.maximize else "cost", terms)
    return AssignmentModel(m, data)


def assignment_tables(built: AssignmentModel, x: np.ndarray) -> dict[str, pd.DataFrame]:
    """plan (the pairs chosen), tasks (each task's fate) and resources (load against capacity)."""
    data, model = built.data, built.model
    tasks, resources, options = data.tasks, data.resources, data.options
    chosen = x[model.var_blocks["assign"].slice] > ASSIGNED
    pick = options[chosen]
    plan = sort_ids(pd.DataFrame({
        "task_id": pick["task_id"].to_numpy(), "resource_id": pick["resource_id"].to_numpy(),
        "cost": pick["cost"].to_numpy(), "load": pick["load"].to_numpy(),
    }), ["task_id", "resource_id"])

    where = pd.Series(pick["resource_id"].to_numpy(), index=pick["task_id"].to_numpy())
    cost_of = pd.Series(pick["cost"].to_numpy(), index=pick["task_id"].to_numpy())
    assigned = tasks["task_id"].isin(where.index).to_numpy()
    penalty = tasks["unassigned_penalty"].to_numpy()
    task_table = sort_ids(pd.DataFrame({
        "task_id": tasks["task_id"].to_numpy(),
        "required": tasks["required"].to_numpy(dtype=bool),
        "resource_id": where.reindex(tasks["task_id"].to_numpy()).to_numpy(),
        "cost": cost_of.reindex(tasks["task_id"].to_numpy()).fillna(0.0).to_numpy(),
        "penalty": np.where(assigned, 0.0, penalty),
    }), ["task_id"])

    r = pick["r"].to_numpy()
    n = len(resources)
    used = np.bincount(r, weights=pick["load"].to_numpy(), minlength=n)
    cap = resources["capacity"].to_numpy(dtype=float)
    resource_table = sort_ids(pd.DataFrame({
        "resource_id": resources["resource_id"].to_numpy(), "capacity": cap, "load": used,
        "headroom": cap - used, "tasks": np.bincount(r, minlength=n),
        "cost": np.bincount(r, weights=pick["cost"].to_numpy(), minlength=n),
    }), ["resource_id"])
    return {"plan": plan, "tasks": task_table, "resources": resource_table}
