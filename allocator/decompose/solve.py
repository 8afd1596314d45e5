"""The decomposed solve: blocks found, owners started, stages solved by column generation,
the plan gathered and checked; the same `SolveResult` as a monolithic solve.

Each stage after the first holds the earlier ones at ``upper_bound + rel_tol * |ub| +
abs_tol`` (as lexicographic.py holds ``opt + ...``; the upper bound is within rel_tol of the
optimum, so the hold is never tighter than the monolithic one). The plan is re-checked by
the same `plan_problems` as every monolithic plan before it is returned.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from allocator.core.checks import StageFigure, plan_problems, row_label
from allocator.core.model import LinearModel, Objective
from allocator.decompose.blocks import Partition, find_blocks, pack_blocks
from allocator.decompose.master import Master, StageLog, block_data, solve_stage
from allocator.decompose.pool import DaskPool, LocalPool, LostProposals
from allocator.solvers.base import Status, rel_gap
from allocator.solvers.lexicographic import SolveResult, StageResult

# Stages other than the last are solved this much tighter than rel_tol, so that the hold
# (upper bound + rel_tol) sits where a monolithic solve's would, within a hundredth.
HELD_STAGE_TIGHTENING = 0.01
WHOLE_MIP_GAP = 1e-4  # HiGHS's default mip_rel_gap: what "optimal" means for a MIP stage
GATHER_TRIES = 3  # workers lost while the plan is gathered: the last stage re-priced


@dataclass
class Decomposition:
    """What summary.json reports of a decomposed solve (its `decomposition` field)."""

    blocks: int
    block_columns: list[int]
    linking_rows: int
    key: str
    threshold: int
    workers: int
    scheduler: str
    owners: int
    stages: list[StageLog] = field(default_factory=list)
    bytes_sent: int = 0
    rebuilds: int = 0
    seconds_setup: float = 0.0
    client_peak_bytes: int = 0
    worker_peak_bytes: list[int] = field(default_factory=list)
    prices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    polished: bool = False  # each LP block's plan moved to a vertex (--polish)
    # Every linking row's final price by label, per stage (holds as "hold[stage]"): what a
    # later run starts from (`solve_decomposed(warm_prices=...)`); not in summary.json.
    all_prices: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        iterations = sum(s.iterations for s in self.stages)
        return {
            "blocks": self.blocks, "block_columns": self.block_columns,
            "linking_rows": self.linking_rows, "key": self.key,
            "span_threshold": self.threshold, "workers": self.workers,
            "scheduler": self.scheduler, "owners": self.owners,
            "iterations": iterations, "bytes_sent": self.bytes_sent,
            "bytes_per_iteration": round(self.bytes_sent / max(1, iterations), 1),
            "rebuilds": self.rebuilds, "setup_seconds": round(self.seconds_setup, 4),
            "client_peak_bytes": self.client_peak_bytes,
            "worker_peak_bytes": self.worker_peak_bytes,
            "stages": [s.as_json() for s in self.stages],
            "prices": self.prices, "polished": self.polished,
        }


def _peak() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def start_pool(groups: list[list[Any]], client: Any | None) -> LocalPool | DaskPool:
    return LocalPool(groups) if client is None else DaskPool(client, groups)


def solve_decomposed(
    model: LinearModel, objectives: list[Objective], *, client: Any | None = None,
    workers: int = 1, rel_tol: float = 1e-6, abs_tol: float = 1e-9,
    time_limit: float | None = None, partition: Partition | None = None,
    on_iteration: Callable[[Any, str, int], None] | None = None,
    on_stage: Callable[[StageResult], None] | None = None,
    warm_prices: dict[str, dict[str, float]] | None = None,
    mip_gap: float | None = None, polish: bool = False,
) -> tuple[SolveResult, Decomposition]:
    """Solve the stages by Dantzig-Wolfe on `client`'s cluster (None: in this process).

    `on_iteration(pool, stage, iteration)` is told before each iteration (the fault test
    kills a worker from it). `warm_prices`: an earlier run's `Decomposition.all_prices`,
    matched by row label (rows it lacks start at 0). An integer model (whole mode) is solved
    by price-and-branch (`master.solve_stage(whole=True)`): `mip_gap` (default HiGHS's,
    1e-4) is the gap within which a stage counts as optimal; the gap is never hidden.
    `polish`: each LP block's plan moved to a vertex before it is returned (worker.py,
    `polish_block`)."""
    began = time.perf_counter()
    deadline = None if time_limit is None else time.monotonic() + time_limit
    whole = bool(model.num_integer)
    gap_tol = WHOLE_MIP_GAP if mip_gap is None else float(mip_gap)
    part = partition if partition is not None else find_blocks(model)
    data = block_data(model, part, objectives)
    whole_blocks = frozenset(d.index for d in data if d.integer is not None
                             and d.integer.any())
    if client is not None:
        workers = len(client.scheduler_info(n_workers=-1)["workers"]) or workers
    groups = [[data[b] for b in owned] for owned in pack_blocks(part, model, max(1, workers))]
    pool = start_pool(groups, client)
    info = Decomposition(len(data), part.sizes, int(part.linking.size), part.key,
                         part.threshold, pool.workers, pool.address, len(groups))
    lo = model.row_lo[part.linking]
    hi = model.row_hi[part.linking]
    scale = max([1.0, *(float(np.abs(o.c).max()) for o in objectives if o.c.size)])
    master = Master(lo, hi, len(data), penalty=1e4 * scale)
    info.seconds_setup = time.perf_counter() - began
    linking_labels = [row_label(model, int(i)) for i in part.linking]
    hook = (lambda stage, it: on_iteration(pool, stage, it)) if on_iteration else None
    try:
        stages, status, message, warm_notes, x = run_stages(
            master, pool, objectives, linking_labels, info, rel_tol=rel_tol,
            abs_tol=abs_tol, deadline=deadline, hook=hook, warm_prices=warm_prices,
            whole=whole, gap_tol=gap_tol, whole_blocks=whole_blocks, on_stage=on_stage,
            gather=lambda values: _gather(model, master, pool, values,
                                          _polish_stages(polish, objectives, info)))
    finally:
        pool.close()
    info.client_peak_bytes = _peak()
    if x is not None:
        by_name = {o.name: o for o in objectives}
        stages = [replace(s, final_value=float(by_name[s.name].c @ x + by_name[s.name].constant))
                  for s in stages]
        if info.polished and stages and stages[-1].final_value < stages[-1].objective:
            stages[-1] = replace(stages[-1], objective=stages[-1].final_value)
        _polished_bound(info, stages)
        figures = [StageFigure(s.name, s.objective, s.hold_rhs, s is stages[-1])
                   for s in stages]
        problems = plan_problems(model, objectives, figures, x)
        if problems:
            status, x = Status.ERROR, None
            message = ("the decomposed plan does not check out against the model, so it is "
                       "not written: " + "; ".join(problems))
    elif status.has_solution:
        status = Status.ERROR
    notes = run_notes(info, warm_notes, whole, x is not None, gap_tol)
    result = SolveResult(status, "highs (decomposed)", tuple(stages), x,
                         time.perf_counter() - began, notes, message)
    return result, info


def run_stages(
    master: Master, pool: Any, objectives: list[Objective], linking_labels: list[str],
    info: Decomposition, *, rel_tol: float, abs_tol: float, deadline: float | None,
    hook: Callable[[str, int], None] | None, warm_prices: dict[str, dict[str, float]] | None,
    whole: bool, gap_tol: float, whole_blocks: frozenset[int],
    on_stage: Callable[[StageResult], None] | None,
    gather: Callable[[np.ndarray], Any], converge: float | None = None,
) -> tuple[list[StageResult], Status, str, list[str], Any]:
    """The stages in turn by column generation, then the plan gathered by `gather(master
    values)` (which raises LostProposals when owners died with their proposals: the last
    stage is then priced again from the columns that survived). Shared by the in-memory
    model (solve_decomposed) and the partitioned tables (partitioned.py). Returns the stages,
    the status, a message, the warm-start notes and what `gather` returned (None: no plan);
    fills `info`. The pool is left open (the caller closes it). `converge`: run every stage
    to this gap rather than its rel_tol (the duals are the LP's only where the master has
    converged: partitioned sensitivity)."""
    hold_limits: list[float] = []
    stages: list[StageResult] = []
    status = Status.OPTIMAL
    values = np.zeros(0)
    warm_notes: list[str] = []
    message = ""
    for k, objective in enumerate(objectives):
        last = k == len(objectives) - 1
        tol = rel_tol if last else rel_tol * HELD_STAGE_TIGHTENING
        if converge is not None:
            tol = min(tol, converge)
        labels = [*linking_labels, *(f"hold[{h}]" for h in master.holds)]
        earlier = (warm_prices or {}).get(objective.name)
        warm = None if earlier is None else np.array([earlier.get(k, 0.0) for k in labels])
        if earlier is not None:
            matched = sum(label in earlier for label in labels)
            warm_notes.append(f"decomposed: stage '{objective.name}' started from earlier "
                              f"prices ({matched} of {len(labels)} linking rows matched "
                              "by label)")
        before = values  # an earlier stage's plan stands if this one finds none
        log, values = solve_stage(master, pool, objective, tol, abs_tol, hold_limits,
                                  deadline, hook, warm=warm, whole=whole,
                                  mip_gap=gap_tol, whole_blocks=whole_blocks)
        info.stages.append(log)
        info.prices[objective.name] = _prices(linking_labels, log.prices)
        if log.final is not None:
            info.all_prices[objective.name] = dict(zip(labels, log.final.tolist(),
                                                       strict=True))
        if log.status is Status.ERROR:  # a block's pricing failed: no claim, no plan
            status, values = Status.ERROR, np.zeros(0)
            if not stages:
                stages.append(StageResult(objective.name, log.status, np.nan, np.nan,
                                          np.inf, log.seconds))
            message = f"stage '{objective.name}': the decomposed solve failed: {log.error}"
            break
        if log.status in (Status.INFEASIBLE, Status.NO_SOLUTION):
            status = log.status if not stages else Status.FEASIBLE
            if not stages:
                stages.append(StageResult(objective.name, log.status, np.nan, np.nan,
                                          np.inf, log.seconds))
                values = np.zeros(0)
            else:
                values = before
            message = f"stage '{objective.name}': {log.status.value} (decomposed)"
            if whole and log.status is Status.NO_SOLUTION and not log.stopped:
                message += (": no whole plan combines the blocks' proposals "
                            "(price-and-branch); solve it without --decompose")
            break
        hold = None
        if not last:
            hold = log.upper_bound + rel_tol * abs(log.upper_bound) + abs_tol
        stage = StageResult(objective.name, log.status, log.upper_bound, log.lower_bound,
                            log.gap, log.seconds, hold_rhs=hold)
        stages.append(stage)
        if log.status is Status.FEASIBLE:
            status = Status.FEASIBLE  # stopped, or (whole mode) a gap left open
        if on_stage is not None:
            on_stage(stage)
        if hold is not None:
            hold_limits.append(hold - objective.constant)
            master.hold(objective.name, hold - objective.constant)
            pool.set_holds(master.holds)
        if log.stopped:
            break
    x = None
    for _attempt in range(GATHER_TRIES):
        if not (values.size and stages and np.isfinite(stages[-1].objective)):
            break
        try:
            x = gather(values)
            break
        except LostProposals as lost:
            # The last stage again, from the columns that survived (the rebuilt blocks
            # price anew at once): its hold rows and earlier stages are unchanged.
            objective = next(o for o in objectives if o.name == stages[-1].name)
            for b in lost.blocks:
                master.drop_block(b)
            # Each rebuilt block needs a column at once (its convexity row has none
            # left): every block priced at the stage's last prices.
            final = info.stages[-1].final
            at = final if final is not None else np.zeros(master.linking_rows)
            priced = pool.price(objective.name, at, None if deadline is None
                                else deadline - time.monotonic())
            if any(p.id < 0 for p in priced):  # cannot rebuild the stage: no plan
                values = np.zeros(0)
                break
            for b in sorted(pool.rebuilt - set(lost.blocks)):  # lost again while pricing
                master.drop_block(b)
            for p in priced:
                master.add(p)
            pool.rebuilt.clear()
            log, values = solve_stage(master, pool, objective,
                                      rel_tol if converge is None else min(rel_tol, converge),
                                      abs_tol,
                                      hold_limits, deadline, hook, whole=whole,
                                      mip_gap=gap_tol, whole_blocks=whole_blocks)
            info.stages[-1] = log
            stages[-1] = replace(stages[-1], status=log.status,
                                 objective=log.upper_bound, bound=log.lower_bound,
                                 gap=log.gap, seconds=stages[-1].seconds + log.seconds)
            if not log.status.has_solution:
                values = np.zeros(0)
    info.bytes_sent = pool.bytes_sent
    info.rebuilds = pool.rebuilds
    info.worker_peak_bytes = pool.memory()
    return stages, status, message, warm_notes, x


def run_notes(info: Decomposition, warm_notes: list[str], whole: bool, has_plan: bool,
              gap_tol: float) -> tuple[str, ...]:
    """What the run's notes say of a decomposed solve."""
    iterations = sum(s.iterations for s in info.stages)
    blocks = f"{info.blocks} block{'' if info.blocks == 1 else 's'}"
    notes: tuple[str, ...] = (f"decomposed: {blocks} on {info.workers or 1} worker(s), "
             f"{info.linking_rows} linking rows, {iterations} iterations, final gap "
             f"{max((s.gap for s in info.stages), default=0.0):.2g}",)
    notes += tuple(warm_notes)
    if info.rebuilds:
        notes += (f"decomposed: {info.rebuilds} block owner(s) rebuilt after a lost worker",)
    if info.polished and has_plan:
        notes += ("decomposed: each block's plan polished to a vertex (--polish): its share of "
                  "every linking row and earlier stage kept, the last stage no worse",)
    if whole and has_plan:
        gaps = ", ".join(f"{s.name} {s.gap:.2g}" for s in info.stages)
        notes += ("decomposed whole mode (price-and-branch): each block's whole proposals "
                  "from column generation, then one proposal per block chosen by the master; "
                  f"the gap to the Lagrangian bound, which no whole plan can beat, is {gaps} "
                  f"(a stage within {gap_tol:g} counts as optimal; the gap is not closed by "
                  "branching)",)
    return notes


SHOWN_PRICES = 50


def _prices(labels: list[str], prices: np.ndarray | None) -> list[dict[str, Any]]:
    """The master's prices of the linking rows, largest first, by business label: what one
    more unit of each (a unit of money in the company budget, an hour of a person who may
    work anywhere) is worth in the stage's objective (sign as `row_dual`: d objective / d
    limit, in the model's minimized sense). At most SHOWN_PRICES, non-zero only."""
    if prices is None or not prices.size:
        return []
    order = np.argsort(-np.abs(prices), kind="stable")
    shown = [int(k) for k in order[:SHOWN_PRICES] if abs(prices[k]) > 1e-12]
    return [{"row": labels[k], "price": float(prices[k])} for k in shown]


def _polish_stages(polish: bool, objectives: list[Objective],
                   info: Decomposition) -> list[str] | None:
    """The stages a polished plan keeps (all solved; the last one minimized), or None."""
    info.polished = polish
    return [o.name for o in objectives[:len(info.stages)]] if polish else None


def _polished_bound(info: Decomposition, stages: list[StageResult]) -> None:
    """A polished plan can beat the master's upper bound: the last stage's certificate then
    takes the plan's value (still above the Lagrangian bound, which no plan beats)."""
    if not (info.polished and stages and info.stages):
        return
    log, last = info.stages[len(stages) - 1], stages[-1]
    if last.objective < log.upper_bound:
        log.upper_bound = last.objective
        log.gap = rel_gap(log.upper_bound, log.lower_bound)
        stages[-1] = replace(last, gap=log.gap)


def master_weights(master: Master, values: np.ndarray) -> dict[int, dict[int, float]]:
    """Each block's weights on its live proposals (normalized: convexity made exact)."""
    weights: dict[int, dict[int, float]] = {}
    for k, (block, generation, pid) in enumerate(master.columns):
        w = float(values[master.where[k]]) if master.where[k] < values.size else 0.0
        if w > 0 and generation == master.generation[block]:
            weights.setdefault(block, {})[pid] = weights.get(block, {}).get(pid, 0.0) + w
    for by_id in weights.values():  # convexity holds to the master's tolerance: make it exact
        total = sum(by_id.values())
        for pid in by_id:
            by_id[pid] /= total
    return weights


def _gather(model: LinearModel, master: Master, pool: Any, values: np.ndarray,
            polish: list[str] | None = None) -> np.ndarray:
    """The plan: each block's convex combination of its live proposals, summed by owners
    (`polish`: the stages, each block's plan moved to a vertex)."""
    x = np.zeros(model.num_vars)
    for cols, part in pool.combine(master_weights(master, values), polish).values():
        x[cols] = part
    return x
