"""Dantzig-Wolfe column generation over the blocks, stage by stage, with a certificate.

The restricted master holds the linking rows (and each earlier stage's hold row) and one
convexity row per block; its columns are the blocks' proposals, plus two penalty columns
per linking row (cost `penalty`, phase 1 folded into phase 2: the master is feasible from
the first iteration, and a plan is only called feasible once they are all zero).

Stabilization: Wentges smoothing. The blocks are priced at a point between the best dual
point so far (the stability center, the prices that gave the best Lagrangian bound) and the
master's current duals: pi = alpha * center + (1 - alpha) * pi_master. It damps the
bang-bang prices of the early iterations (a company budget priced at the penalty one
iteration and at 0 the next) with one parameter and no change to the master (a proximal
term would make it a QP, a box step would add columns). When smoothing mis-prices (no
proposal improves the master at its own duals), the same iteration re-prices at the master's
duals, which keeps the method's finite convergence.

Every pricing gives a Lagrangian lower bound, sum of block optima plus the prices times the
linking limits; the master's objective, once its penalty columns are zero, is the objective
of a plan satisfying every row (the convex combination of proposals): an upper bound. A stage
stops when their relative gap is within the stage's rel_tol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from allocator.core.model import LinearModel, Objective
from allocator.decompose.blocks import Partition
from allocator.decompose.worker import BLOCK_MIP_GAP, BlockData, Proposal
from allocator.solvers.base import Status, rel_gap
from allocator.solvers.highs import _finite, checked, new_highs

ALPHA = 0.5  # Wentges smoothing weight on the stability center
MAX_ITERATIONS = 500  # per stage
PENALTY_GROWTH = 100.0
MAX_PENALTY = 1e13


@dataclass
class StageLog:
    """One stage as the decomposition solved it: the certificate and its history."""

    name: str
    status: Status = Status.OPTIMAL
    lower_bound: float = -np.inf
    upper_bound: float = np.inf
    gap: float = np.inf
    iterations: int = 0
    columns: int = 0
    seconds: float = 0.0
    pricing_seconds: float = 0.0
    mispricings: int = 0
    history: list[tuple[float, float, float]] = field(default_factory=list)  # t, lb, ub
    prices: np.ndarray | None = None  # the master's final duals of the linking rows
    final: np.ndarray | None = None  # ... and of the hold rows after them
    stopped: bool = False  # by the deadline or the iteration cap (later stages not run)
    whole: bool = False  # price-and-branch: the plan is one whole proposal per block
    relaxation: float = np.nan  # whole mode: the master LP's value before the whole choice
    # Infeasible: the blocks that have no plan on their own, or else (the master) how far
    # each linking row (base rows, then holds) is from its limits at the least violation:
    # positive = its activity must rise by that much (below its lower limit), negative = fall.
    infeasible_blocks: list[int] = field(default_factory=list)
    violations: np.ndarray | None = None
    error: str = ""  # a block's pricing failed for another reason than infeasibility

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value,
                "lower_bound": _num(self.lower_bound), "upper_bound": _num(self.upper_bound),
                "gap": _num(self.gap), "iterations": self.iterations, "columns": self.columns,
                "seconds": round(self.seconds, 4),
                "pricing_seconds": round(self.pricing_seconds, 4),
                "mispricings": self.mispricings,
                **({"method": "price-and-branch", "relaxation": _num(self.relaxation)}
                   if self.whole else {})}


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def block_data(model: LinearModel, partition: Partition,
               objectives: list[Objective]) -> list[BlockData]:
    """Each block's arrays, cut from the model once (what its owner is sent)."""
    matrix = model.matrix
    csc = matrix.tocsc()
    linking = csc[partition.linking] if partition.linking.size else None
    lb, ub, lo, hi = model.lb, model.ub, model.row_lo, model.row_hi
    out = []
    for b, (cols, rows) in enumerate(zip(partition.block_cols, partition.block_rows,
                                         strict=True)):
        sub = csc[:, cols].tocsr()
        out.append(BlockData(
            b, cols, sp.csr_array(sub[rows]), lo[rows], hi[rows], lb[cols], ub[cols],
            sp.csr_array(linking[:, cols].tocsr()) if linking is not None
            else sp.csr_array((0, cols.size)),
            {o.name: o.c[cols].copy() for o in objectives},
            model.integer[cols].copy() if model.num_integer else None))
    return out


class Master:
    """The restricted master LP in HiGHS, grown by columns (and a row per held stage)."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, blocks: int, penalty: float) -> None:
        self.highs = new_highs()
        self.highs.setOptionValue("threads", 1)
        self.highs.setOptionValue("solver", "simplex")
        self.lo, self.hi = lo.astype(float), hi.astype(float)
        self.blocks = blocks
        self.penalty = penalty
        m = lo.size
        rows_lo = np.concatenate([self.lo, np.ones(blocks)])
        rows_hi = np.concatenate([self.hi, np.ones(blocks)])
        empty = np.zeros(0, dtype=np.int32)
        checked(self.highs.addRows(m + blocks, _finite(rows_lo), _finite(rows_hi), 0, empty,
                                   empty, np.zeros(0)), "the master's rows")
        self.artificial: list[int] = []
        self.columns: list[tuple[int, int, int]] = []  # (block, generation, proposal id)
        self.where: list[int] = []  # each proposal's column in the master
        self.values: list[dict[str, float]] = []  # each column's stage objectives
        self.linking: list[np.ndarray] = []  # each column's linking activity (dense)
        self.generation = np.zeros(blocks, dtype=np.int64)
        self.holds: list[str] = []
        self.stage = ""
        self.ncols = 0
        self.seen: set[tuple[Any, ...]] = set()  # the live columns' keys (`add`)
        for i in range(m):
            self._artificial(i)

    def _artificial(self, row: int) -> None:
        for sign in (1.0, -1.0):
            checked(self.highs.addCol(self.penalty, 0.0, np.inf, 1,
                                      np.array([row], dtype=np.int32), np.array([sign])),
                    "a penalty column")
            self.artificial.append(self.ncols)
            self.ncols += 1

    @property
    def linking_rows(self) -> int:
        return self.lo.size + len(self.holds)

    def add(self, proposal: Proposal) -> bool:
        """A proposal as a new column; False (nothing added) when the block's live columns
        already hold one with the same linking activity and objectives. Such a column's true
        reduced cost is not negative: only rounding can price it below zero (seen at a
        penalty of 9e12, where it was added 500 times and the stage never ended)."""
        b = proposal.block
        key = (b, int(self.generation[b]), np.asarray(proposal.linking, dtype=float).tobytes(),
               tuple(sorted(proposal.objectives.items())))
        if key in self.seen:
            return False
        self.seen.add(key)
        coef = np.concatenate([proposal.linking,
                               [proposal.objectives[h] for h in self.holds], [1.0]])
        index = np.concatenate([np.arange(self.lo.size),
                                self.lo.size + self.blocks + np.arange(len(self.holds)),
                                [self.lo.size + b]]).astype(np.int32)
        keep = coef != 0
        checked(self.highs.addCol(proposal.objectives[self.stage], 0.0, np.inf,
                                  int(keep.sum()), index[keep], coef[keep]), "a proposal")
        self.columns.append((b, int(self.generation[b]), proposal.id))
        self.where.append(self.ncols)
        self.values.append(proposal.objectives)
        self.linking.append(proposal.linking)
        self.ncols += 1
        return True

    def drop_block(self, b: int) -> None:
        """A block's owner was rebuilt: its earlier proposals cannot be combined any more."""
        self.generation[b] += 1
        dead = [self.where[k] for k, (blk, _, _) in enumerate(self.columns) if blk == b]
        if dead:
            idx = np.array(dead, dtype=np.int32)
            self.highs.changeColsBounds(idx.size, idx, np.zeros(idx.size), np.zeros(idx.size))

    def set_stage(self, name: str) -> None:
        self.stage = name
        idx = np.array(self.where, dtype=np.int32)
        if idx.size:
            costs = np.array([v[name] for v in self.values])
            checked(self.highs.changeColsCost(idx.size, idx, costs), "the stage's costs")

    def set_penalty(self, penalty: float) -> None:
        self.penalty = penalty
        idx = np.array(self.artificial, dtype=np.int32)
        if idx.size:
            self.highs.changeColsCost(idx.size, idx, np.full(idx.size, penalty))

    def hold(self, name: str, limit: float) -> None:
        """Hold a solved stage's objective: a new linking row over every column so far."""
        idx = np.array(self.where, dtype=np.int32)
        coef = np.array([v[name] for v in self.values])
        checked(self.highs.addRow(-np.inf, limit, idx.size, idx, coef), "a hold row")
        self.holds.append(name)  # its limit is kept by the caller (`hold_limits`)
        self._artificial(self.lo.size + self.blocks + len(self.holds) - 1)

    def solve_whole(self, time_limit: float | None, mip_gap: float,
                    whole_blocks: frozenset[int] | None = None,
                    ) -> tuple[str, float, float, float, np.ndarray]:
        """Price-and-branch's last step: the master with one whole proposal per block (its
        columns binary), the penalty columns still allowed (then no whole plan combines the
        columns found). Status, objective, the MIP's own bound, the penalty columns' total,
        and the column values; the master is an LP again afterwards."""
        cols = np.array([w for w, (b, _, _) in zip(self.where, self.columns, strict=True)
                         if whole_blocks is None or b in whole_blocks], dtype=np.int32)
        highs = self.highs
        checked(highs.changeColsIntegrality(cols.size, cols, np.ones(cols.size, np.uint8)),
                "the master's proposals as whole choices")
        highs.setOptionValue("mip_rel_gap", float(mip_gap))
        # a MIP's time limit counts from the start of its own solve (an LP's does not)
        highs.setOptionValue("time_limit", 1e30 if time_limit is None
                             else float(max(0.5, time_limit)))
        try:
            highs.run()
            status = highs.modelStatusToString(highs.getModelStatus())
            info = highs.getInfo()
            if info.primal_solution_status != 2:  # no whole plan found at all
                return status, np.inf, float(info.mip_dual_bound), np.inf, np.zeros(0)
            value = np.asarray(highs.getSolution().col_value).copy()
            value[cols] = np.round(value[cols])  # chosen or not, exactly (0.9999995 is 1)
            return (status, float(info.objective_function_value), float(info.mip_dual_bound),
                    float(value[self.artificial].sum()), value)
        finally:
            checked(highs.changeColsIntegrality(cols.size, cols,
                                                np.zeros(cols.size, np.uint8)),
                    "the master back to an LP")
            highs.setOptionValue("time_limit", 1e30)
            highs.clearSolver()

    def violations(self, values: np.ndarray) -> np.ndarray:
        """Each linking row's penalty columns at `values` (base rows, then holds): what its
        activity would have to move by to meet its limits (+ rise, - fall)."""
        art = np.asarray(self.artificial, dtype=np.int64)
        if values.size <= int(art.max(initial=-1)):  # not a solution of this master
            return np.full(art.size // 2, np.inf)
        taken = values[art]
        return taken[0::2] - taken[1::2]  # each row's (+1, -1) pair, in the rows' order

    def solve(self) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray]:
        """Objective, linking duals (base rows then holds), convexity duals, the penalty
        columns' total, and the column values."""
        self.highs.run()
        if self.highs.getModelStatus().name != "kOptimal":
            # Seen on small: a warm re-solve after added columns ends "not set"; from a
            # cold start the same master solves.
            self.highs.clearSolver()
            self.highs.run()
        if self.highs.getModelStatus().name != "kOptimal":
            # Seen at a company budget at the least amount that solves (800 staff): penalty
            # costs of 8e8 beside costs of 30 and budget rows of 9e6 end "unknown" after
            # presolve; without presolve the same master is optimal. Then it is an error.
            self.highs.setOptionValue("presolve", "off")
            try:
                self.highs.clearSolver()
                self.highs.run()
            finally:
                self.highs.setOptionValue("presolve", "choose")
        if self.highs.getModelStatus().name != "kOptimal":
            raise RuntimeError("the restricted master is not optimal: "
                               + self.highs.modelStatusToString(self.highs.getModelStatus()))
        sol = self.highs.getSolution()
        dual = np.asarray(sol.row_dual)
        m = self.lo.size
        prices = np.concatenate([dual[:m], dual[m + self.blocks:]])
        value = np.asarray(sol.col_value)
        art = float(value[self.artificial].sum())
        return (float(self.highs.getInfo().objective_function_value), prices,
                dual[m:m + self.blocks], art, value)


def _refused(log: StageLog, bad: list[Proposal]) -> None:
    """Blocks that answered a pricing without a proposal: infeasible only if HiGHS proved
    it; any other status (unbounded, a numerical failure) is an error that names it, not a
    claim about the business."""
    if all(p.status == "Infeasible" for p in bad):
        log.status = Status.INFEASIBLE
        log.infeasible_blocks = sorted(p.block for p in bad)
    else:
        log.status = Status.ERROR
        log.error = "; ".join(f"block {p.block}: HiGHS ended '{p.status}'" for p in bad
                              if p.status != "Infeasible")


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _timed_out(proposals: list[Proposal]) -> bool:
    return any(p.id < 0 and "time limit" in p.status.lower() for p in proposals)


def _bound(proposal: Proposal) -> float:
    """The block's share of the Lagrangian bound (its MIP's dual bound in whole mode)."""
    return proposal.value if np.isnan(proposal.bound) else proposal.bound


def _lagrangian_rhs(prices: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """sum_i prices_i * (lo_i if priced up else hi_i): the bound's constant part."""
    return float(np.sum(np.where(prices > 0, prices * np.where(np.isfinite(lo), lo, 0.0),
                                 prices * np.where(np.isfinite(hi), hi, 0.0))))


def _clip(prices: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Prices a Lagrangian bound may use: none on a side the row does not have."""
    out = np.where(np.isfinite(lo), prices, np.minimum(prices, 0.0))
    return np.where(np.isfinite(hi), out, np.maximum(out, 0.0))


@dataclass
class StageOutcome:
    log: StageLog
    x: np.ndarray | None
    objective: float  # the plan's objective (the upper bound)


def solve_stage(master: Master, pool: Any, objective: Objective, rel_tol: float,
                abs_tol: float, hold_limits: list[float], deadline: float | None,
                on_iteration: Callable[[str, int], None] | None = None,
                alpha: float = ALPHA, warm: np.ndarray | None = None,
                whole: bool = False, mip_gap: float = 1e-4,
                whole_blocks: frozenset[int] = frozenset(),
                ) -> tuple[StageLog, np.ndarray]:
    """Column generation for one stage until the gap is within rel_tol; returns its log
    and the master's column values at the end. `warm`: prices of the linking rows (base
    rows, then holds) from an earlier run: the blocks are priced there first, and it is the
    first stability center.

    `whole` (integer blocks): price-and-branch. Column generation closes the Lagrangian
    relaxation (the blocks' whole proposals, its bound from their MIPs' dual bounds); then
    the master picks one proposal per block (`Master.solve_whole`). That plan is the upper
    bound; the gap to the Lagrangian bound is honest, not closed by branching: within
    max(rel_tol, mip_gap) the stage is optimal, else feasible (the run says so)."""
    log = StageLog(objective.name, whole=whole)
    if whole:  # the blocks' MIPs are closed to BLOCK_MIP_GAP: no tighter than that
        rel_tol = max(rel_tol, BLOCK_MIP_GAP)
    start = time.perf_counter()
    master.set_stage(objective.name)
    center: np.ndarray | None = None
    lo = np.concatenate([master.lo, np.full(len(master.holds), -np.inf)])
    hi = np.concatenate([master.hi, np.asarray(hold_limits, dtype=float)])
    values = np.zeros(0)
    # A row is met when its penalty columns are within 1e-9 of its own limit's size (and
    # within HiGHS's primal feasibility tolerance, 1e-7, below that): one tolerance for all
    # rows, scaled by the largest (a company budget of 1.6e8), let a move limit of 150 FTE
    # pass 0.02 over, and the plan checker refused the plan.
    row_tol = np.maximum(1e-7, 1e-9 * (1.0 + np.maximum(
        np.where(np.isfinite(lo), np.abs(lo), 0.0), np.where(np.isfinite(hi), np.abs(hi), 0.0))))

    def meets(at: np.ndarray) -> bool:
        return bool(np.all(np.abs(master.violations(at)) <= row_tol))
    if master.ncols == len(master.artificial) or warm is not None or pool.rebuilt:
        # First stage: every block's own optimum (or its answer to the warm prices); blocks
        # rebuilt since the last pricing (between stages) lose their columns first.
        for b in sorted(pool.rebuilt):
            master.drop_block(b)
        at = np.zeros(lo.size) if warm is None else _clip(warm, lo, hi)
        proposals = pool.price(objective.name, at, _left(deadline))
        if any(p.id < 0 for p in proposals):  # a block with no column cannot start
            stopped = _timed_out(proposals) or any(p.id == -2 for p in proposals)
            log.status = Status.NO_SOLUTION if stopped else Status.INFEASIBLE
            log.stopped = stopped
            if not stopped:
                _refused(log, [p for p in proposals if p.id == -1])
            return log, values
        for p in proposals:
            master.add(p)
        pool.rebuilt.clear()
        if warm is not None:
            log.lower_bound = (sum(_bound(p) for p in proposals)
                               + _lagrangian_rhs(at, lo, hi) + objective.constant)
            center = at
    while True:
        log.iterations += 1
        if on_iteration is not None:
            on_iteration(objective.name, log.iterations)
        obj, prices, mu, _art, values = master.solve()
        feasible = meets(values)
        if feasible:  # the master's plan meets every row: its objective is an upper bound
            log.upper_bound = obj + objective.constant
        smooth = alpha if center is not None else 0.0
        point = _clip(prices, lo, hi)
        lost = False  # an owner rebuilt during this iteration's pricing
        while True:
            at = point if smooth == 0.0 or center is None else _clip(
                smooth * center + (1 - smooth) * point, lo, hi)
            t0 = time.perf_counter()
            proposals = pool.price(objective.name, at, _left(deadline))
            log.pricing_seconds += time.perf_counter() - t0
            bad = [p for p in proposals if p.id == -1]  # -2: no proposal, a bound
            if bad and _timed_out(bad):  # the run's deadline, mid-pricing: stop as solved
                log.stopped = True
                log.status = Status.FEASIBLE if feasible else Status.NO_SOLUTION
                break
            if bad:
                _refused(log, bad)
                log.seconds = time.perf_counter() - start
                return log, values
            for b in sorted(pool.rebuilt):
                master.drop_block(b)
            lost = lost or bool(pool.rebuilt)
            pool.rebuilt.clear()
            bound = sum(_bound(p) for p in proposals) + _lagrangian_rhs(at, lo, hi) \
                + objective.constant
            if bound > log.lower_bound:
                log.lower_bound, center = bound, at
            added = 0
            for p in proposals:
                if p.id < 0:
                    continue
                reduced = (p.objectives[objective.name] - float(prices[:master.lo.size]
                                                                @ p.linking)
                           - sum(prices[master.lo.size + k] * p.objectives[h]
                                 for k, h in enumerate(master.holds)) - mu[p.block])
                scale = 1e-9 * (1.0 + abs(p.objectives[objective.name]))
                if (reduced < -scale or lost) and master.add(p):
                    added += 1
            if added or smooth == 0.0:
                break
            log.mispricings += 1
            smooth = 0.0  # mis-priced: the master's own duals this time
        if log.stopped:
            break
        log.columns = master.ncols - len(master.artificial)
        log.gap = rel_gap(log.upper_bound, log.lower_bound) if feasible else np.inf
        log.history.append((time.perf_counter() - start, log.lower_bound, log.upper_bound))
        if lost:  # this iteration's upper bound counted columns that are gone: go on
            log.upper_bound, log.gap = np.inf, np.inf
            continue
        if feasible and (log.gap <= rel_tol or abs(log.upper_bound - log.lower_bound) <= abs_tol):
            break
        if not added:
            if feasible and whole:  # block MIPs are closed to a gap: no proof, keep the bound
                break
            if feasible:  # no improving column at the master's duals: the master is optimal
                log.lower_bound = max(log.lower_bound, log.upper_bound)
                log.gap = 0.0
                break
            if master.penalty >= MAX_PENALTY:
                log.status = Status.INFEASIBLE
                log.violations = master.violations(values)
                break
            master.set_penalty(master.penalty * PENALTY_GROWTH)
            center = None
        if log.iterations >= MAX_ITERATIONS or (deadline is not None
                                                and time.monotonic() > deadline):
            log.status = Status.FEASIBLE if feasible else Status.NO_SOLUTION
            log.stopped = True
            break
    # Read the final column values after the last columns were added: one more master solve.
    obj, final_prices, _, _art, values = master.solve()
    log.prices = final_prices[:master.lo.size]
    log.final = final_prices
    if meets(values) and obj + objective.constant < log.upper_bound:
        log.upper_bound = obj + objective.constant
        log.gap = rel_gap(log.upper_bound, log.lower_bound)
    if whole and log.status.has_solution:
        log.relaxation = log.upper_bound
        left = None if deadline is None else deadline - time.monotonic()
        _status, chosen, _mip_bound, _art, picked = master.solve_whole(left, mip_gap,
                                                                       whole_blocks)
        if picked.size and meets(picked):
            values = picked
            log.upper_bound = chosen + objective.constant
            log.gap = rel_gap(log.upper_bound, log.lower_bound)
            if not log.stopped:
                log.status = (Status.OPTIMAL if log.gap <= max(rel_tol, mip_gap)
                              else Status.FEASIBLE)
        else:  # no whole plan combines the proposals found (nor does a monolithic proof)
            log.status, log.upper_bound, log.gap = Status.NO_SOLUTION, np.inf, np.inf
            values = np.zeros(0)
    log.seconds = time.perf_counter() - start
    return log, values
