"""What each worker holds: its blocks as warm HiGHS models, and the proposals they made.

A `BlockOwner` is a Dask actor (one per worker): the blocks' matrices, HiGHS models and
bases stay in the worker's memory between iterations, and a pricing call carries only the
linking rows' prices in and, per block, one proposal's linking-row activity and objective
values out (a few hundred floats). The proposals' x vectors stay where they were made; the
plan is gathered once, at the end, as each block's convex combination (`combine`).
Used in-process too (no cluster), with the same calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from allocator.solvers.highs import _finite, checked, new_highs

# A whole-mode block's MIP is closed to this gap at each pricing: its proposal need not be
# the block's exact optimum (the master only needs improving columns), and the Lagrangian
# bound uses the MIP's dual bound, so the certificate holds either way.
BLOCK_MIP_GAP = 1e-4
# ... and within a deterministic count of branch-and-bound nodes (a block's MIP at some prices
# can take minutes to close): the incumbent is the proposal, the dual bound the certificate.
BLOCK_MIP_NODES = 100


@dataclass
class BlockData:
    """One block as shipped to its owner: everything its subproblem and proposals need."""

    index: int
    cols: np.ndarray  # global column indices
    rows: sp.csr_array  # block rows x block columns
    row_lo: np.ndarray
    row_hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    linking: sp.csr_array  # linking rows x block columns
    objectives: dict[str, np.ndarray]  # stage name -> cost on the block's columns
    integer: np.ndarray | None = None  # whole mode: the block's integer columns (mask)

    @property
    def nbytes(self) -> int:
        arrays = [self.cols, self.row_lo, self.row_hi, self.lb, self.ub,
                  *self.objectives.values()]
        mats = [self.rows, self.linking]
        return int(sum(a.nbytes for a in arrays)
                   + sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in mats))


@dataclass
class Proposal:
    """One block's answer to a price: what the master needs of it, never its x."""

    block: int
    id: int
    status: str
    value: float  # the block's priced optimum (its share of the Lagrangian bound)
    linking: np.ndarray  # linking-row activity of the proposal
    objectives: dict[str, float]  # every stage objective at the proposal
    seconds: float = 0.0
    # A lower bound on the block's priced optimum: `value` for an LP block; for a whole-mode
    # block (a MIP solved to BLOCK_MIP_GAP), HiGHS's dual bound, so that the Lagrangian bound
    # stays a bound when the block's MIP is not closed.
    bound: float = float("nan")


@dataclass
class _Block:
    data: BlockData
    highs: Any
    # Each proposal's nonzeros (positions, values): a vertex of a block uses a few of its
    # columns, and dense copies grew a worker by columns x 8 bytes an iteration (on large,
    # ~1.5 GB of a single worker's 2.8 GB peak after 171 iterations).
    proposals: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def keep(self, x: np.ndarray) -> int:
        """Store a proposal sparse; its id."""
        where = np.flatnonzero(x)
        self.proposals.append((where.astype(np.int32), x[where].copy()))
        return len(self.proposals) - 1

    def proposal(self, pid: int) -> np.ndarray:
        """A proposal as a dense vector over the block's columns."""
        where, values = self.proposals[pid]
        x = np.zeros(self.data.cols.size)
        x[where] = values
        return x


class BlockOwner:
    """Owns some blocks: builds their HiGHS models once and re-prices them warm."""

    def __init__(self, blocks: list[BlockData]) -> None:
        self.blocks: dict[int, _Block] = {}
        self.holds: list[str] = []  # stage objectives whose hold rows link (in order)
        for data in blocks:
            self.add_block(data)

    def add_block(self, data: BlockData) -> None:
        """The block's HiGHS model, built once (its costs change with every price)."""
        highs = new_highs()
        highs.setOptionValue("threads", 1)
        highs.setOptionValue("solver", "simplex")
        n = data.cols.size
        empty = np.zeros(0, dtype=np.int32)
        checked(highs.addCols(n, np.zeros(n), _finite(data.lb), _finite(data.ub), 0,
                              empty, empty, np.zeros(0)), "a block's columns")
        if data.integer is not None and data.integer.any():
            checked(highs.changeColsIntegrality(
                n, np.arange(n, dtype=np.int32),
                np.where(data.integer, 1, 0).astype(np.uint8)), "a block's integers")
            highs.setOptionValue("mip_rel_gap", BLOCK_MIP_GAP)
            highs.setOptionValue("mip_max_nodes", BLOCK_MIP_NODES)
        if data.rows.shape[0]:
            checked(highs.addRows(data.rows.shape[0], _finite(data.row_lo),
                                  _finite(data.row_hi), data.rows.nnz,
                                  data.rows.indptr.astype(np.int32),
                                  data.rows.indices.astype(np.int32), data.rows.data),
                    "a block's rows")
        self.blocks[data.index] = _Block(data, highs)

    def ping(self) -> list[int]:
        return sorted(self.blocks)

    def set_holds(self, holds: list[str]) -> None:
        """The stage objectives held so far: their rows are linking rows after the others."""
        self.holds = list(holds)

    def price(self, stage: str, prices: np.ndarray,
              seconds: float | None = None) -> list[Proposal]:
        """Each block's best proposal at these linking-row prices (min c x - prices A_L x).
        `seconds`: what is left of the run's time limit (seconds, not an instant: the
        workers' clocks are their own); a block stopped by it without a plan answers with
        status "Time limit reached" and id -1 (infeasible and unbounded blocks too, with
        their status); a whole-mode block whose node count ran out before any plan answers
        id -2 with its dual bound (no proposal this round)."""
        out = []
        ends = None if seconds is None else time.perf_counter() + max(0.01, seconds)
        base = prices.size - len(self.holds)
        for index, block in self.blocks.items():
            start = time.perf_counter()
            data = block.data
            cost = data.objectives[stage] - data.linking.T @ prices[:base]
            for k, name in enumerate(self.holds):
                cost = cost - prices[base + k] * data.objectives[name]
            n = data.cols.size
            checked(block.highs.changeColsCost(n, np.arange(n, dtype=np.int32), cost),
                    "a block's costs")
            if ends is not None and time.perf_counter() >= ends:  # none starts past it
                out.append(Proposal(index, -1, "Time limit reached", float("nan"),
                                    np.zeros(0), {}, 0.0))
                continue
            whole = data.integer is not None and bool(data.integer.any())
            left = None if ends is None else max(0.01, ends - time.perf_counter())
            # HiGHS times an LP on a clock that runs across calls (add what was used), a MIP
            # from the start of its own solve.
            block.highs.setOptionValue("time_limit", float("inf") if left is None else
                                       left if whole else block.highs.getRunTime() + left)
            if n == 0:  # a block without columns (a region with no demand): HiGHS says
                # "Empty"; its only plan is nothing, feasible if its rows allow zero
                fits = bool(np.all(data.row_lo <= 0.0) and np.all(data.row_hi >= 0.0))
                if not fits:
                    out.append(Proposal(index, -1, "Infeasible", float("nan"), np.zeros(0),
                                        {}, 0.0))
                    continue
                out.append(Proposal(index, block.keep(np.zeros(0)), "Optimal", 0.0,
                                    np.zeros(data.linking.shape[0]),
                                    {name: 0.0 for name in data.objectives}, 0.0, 0.0))
                continue
            _run(block.highs, cost)
            model_status = block.highs.getModelStatus().name
            status = block.highs.modelStatusToString(block.highs.getModelStatus())
            has_plan = block.highs.getInfo().primal_solution_status == 2
            if model_status != "kOptimal" and not (whole and has_plan):
                if whole and model_status in ("kSolutionLimit", "kIterationLimit"):
                    # the node count ran out before a whole plan: no proposal this round,
                    # but the MIP's dual bound still bounds the block (id -2)
                    out.append(Proposal(index, -2, status, float("nan"), np.zeros(0), {},
                                        time.perf_counter() - start,
                                        float(block.highs.getInfo().mip_dual_bound)))
                    continue
                out.append(Proposal(index, -1, status, float("nan"), np.zeros(0), {},
                                    time.perf_counter() - start))
                continue
            x = np.asarray(block.highs.getSolution().col_value)
            if data.integer is not None and data.integer.any():
                x = x.copy()  # whole FTE exactly (HiGHS leaves integers within tolerance)
                x[data.integer] = np.round(x[data.integer])
                bound = float(block.highs.getInfo().mip_dual_bound)
            else:
                bound = float(cost @ x)
            pid = block.keep(x)
            value = float(cost @ x)
            out.append(Proposal(
                index, pid, status, value,
                np.asarray(data.linking @ x),
                {name: float(c @ x) for name, c in data.objectives.items()},
                time.perf_counter() - start, min(bound, value)))
        return out

    def priced_duals(self, stage: str, prices: np.ndarray,
                     holds: list[str]) -> dict[int, dict[str, np.ndarray] | None]:
        """Each LP block solved at a stage's final master prices (`holds`: the stages held
        in it, whose prices end `prices`), read for its rows' duals and HiGHS's ranging.

        Why these are the model's duals: at the decomposition's optimum, the linking rows'
        prices with each block's duals at those prices are an optimal dual of the whole LP
        (LP duality: the priced block's value is its convexity price). The ranges are the
        block's own, with the master's prices held fixed. A MIP block has no duals: None."""
        from allocator.analysis.sensitivity import highs_sensitivity

        out: dict[int, dict[str, np.ndarray] | None] = {}
        base = prices.size - len(holds)
        for index, block in self.blocks.items():
            data = block.data
            if (data.integer is not None and data.integer.any()) or not data.cols.size:
                out[index] = None
                continue
            cost = data.objectives[stage] - data.linking.T @ prices[:base]
            for k, name in enumerate(holds):
                cost = cost - prices[base + k] * data.objectives[name]
            n = data.cols.size
            checked(block.highs.changeColsCost(n, np.arange(n, dtype=np.int32), cost),
                    "a block's costs")
            block.highs.setOptionValue("time_limit", float("inf"))
            _run(block.highs, cost)
            if block.highs.getModelStatus().name != "kOptimal" or not data.rows.shape[0]:
                out[index] = None
                continue
            sens = highs_sensitivity(block.highs, stage, one_sided=False)
            out[index] = {"dual": sens.row_dual, "rhs_low": sens.rhs_low,
                          "rhs_high": sens.rhs_high, "unique": sens.dual_unique}
        return out

    def combine(self, weights: dict[int, dict[int, float]],
                polish: list[str] | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Each block's plan: the weighted sum of its proposals (global columns, values);
        `polish` (the stages in order): each LP block's plan then moved to a vertex
        (`polish_block`)."""
        out = {}
        for index, by_id in weights.items():
            block = self.blocks[index]
            x = np.zeros(block.data.cols.size)
            for pid, w in by_id.items():
                where, values = block.proposals[pid]
                x[where] += w * values
            if polish and not (block.data.integer is not None and block.data.integer.any()):
                x = polish_block(block.data, x, polish)
            out[index] = (block.data.cols, x)
        return out

    def memory(self) -> int:
        """This process's peak resident memory, bytes (ru_maxrss)."""
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# Priced costs are scaled down to this magnitude when HiGHS refuses them as they are.
SCALED_COST = 1e6


GAVE_UP = ("kNotset", "kUnknown", "kSolveError")  # HiGHS stopped without an answer


def _run(highs: Any, cost: np.ndarray) -> None:
    """Solve; if HiGHS gives up ("not set", "unknown" or "solve error"), solve again from
    scratch with its objective scaled (`user_objective_scale`, a power of two, when the
    costs are large), then also without presolve; the options are put back after.

    Why: the master's first prices can sit at its penalty (1e4 x the largest cost), and a
    linking row of money (a company budget) then gives a block costs of 1e13 and more: HiGHS
    stops with "excessive dual values" (status Not Set), which used to end the run as
    infeasible (small seed 2, nested budgets); and a region whose budget is 1e-5 below the
    least that solves it, priced at costs of 9e14, ended "unknown" (the run ended in an
    error, not "infeasible"); and at the first prices of a weighted run (6,000 staff, site
    budgets) one block ended "solve error" and the run failed where monolithic solved. The
    priced block's optimum does not change with a positive scale of its costs."""
    highs.run()
    if highs.getModelStatus().name not in GAVE_UP:
        return
    largest = float(np.abs(cost).max()) if cost.size else 0.0
    scale = -int(np.ceil(np.log2(largest / SCALED_COST))) if largest > SCALED_COST else 0
    for presolve in ("choose", "off"):
        if presolve == "choose" and scale == 0:
            continue  # the run above
        highs.setOptionValue("user_objective_scale", scale)
        highs.setOptionValue("presolve", presolve)
        try:
            highs.clearSolver()
            highs.run()
        finally:
            highs.setOptionValue("user_objective_scale", 0)
            highs.setOptionValue("presolve", "choose")
        if highs.getModelStatus().name not in GAVE_UP:
            return


def polish_block(data: BlockData, x: np.ndarray, stages: list[str]) -> np.ndarray:
    """A vertex as good as the block's combined plan `x`: the block's rows, its share of
    every linking row and of every earlier stage's objective held where `x` puts them, the
    last stage's objective minimized by simplex from scratch. The linking rows and holds then
    see exactly what they saw, so the whole plan stays feasible and no worse; and a vertex
    splits fewer people across sites than a mix of proposals (docs/decompose.md). If HiGHS
    does not end optimal, `x` stands."""
    n = data.cols.size
    if n == 0:
        return x
    used = np.flatnonzero(np.diff(data.linking.indptr) > 0)
    held = [data.objectives[name] for name in stages[:-1]]
    extra = sp.vstack([data.linking[used], *(sp.csr_array(c.reshape(1, -1)) for c in held)],
                      format="csr") if used.size or held else sp.csr_array((0, n))
    rows = sp.vstack([data.rows, extra], format="csr")
    fixed = np.asarray(extra @ x)
    lo = np.concatenate([data.row_lo, fixed])
    hi = np.concatenate([data.row_hi, fixed])
    highs = new_highs()
    highs.setOptionValue("threads", 1)
    highs.setOptionValue("solver", "simplex")
    empty = np.zeros(0, dtype=np.int32)
    checked(highs.addCols(n, data.objectives[stages[-1]], _finite(data.lb), _finite(data.ub),
                          0, empty, empty, np.zeros(0)), "a polished block's columns")
    if rows.shape[0]:
        checked(highs.addRows(rows.shape[0], _finite(lo), _finite(hi), rows.nnz,
                              rows.indptr.astype(np.int32), rows.indices.astype(np.int32),
                              rows.data), "a polished block's rows")
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return x
    y = np.asarray(highs.getSolution().col_value, dtype=float)
    return np.clip(y, data.lb, data.ub)
