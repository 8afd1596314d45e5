"""The vocabulary of a benchmark: what a cell ended as, what verification said, the CSV columns.

Statuses and verdicts are enums (``StrEnum``, so they read and write as plain words in the
CSV) because a benchmark that compares strings spelt in three places miscounts silently.
"""

from __future__ import annotations

import enum

from allocator.solvers.base import Status


class CellStatus(enum.StrEnum):
    """How one cell ended: the solver's own termination, or what the harness saw instead."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # a solution, optimality not proven (time limit, gap)
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    NO_SOLUTION = "no_solution"  # limit reached before any solution
    ERROR = "error"  # the solver or the reader reported an error
    NOT_APPLICABLE = "n/a"  # the solver cannot take this instance (an LP solver on a MIP)
    TIMEOUT = "timeout"  # the cell process outlived its hard timeout and was killed
    CRASHED = "crashed"  # the cell process died (signal, os._exit) without an answer
    LOST = "lost"  # the Dask worker died every time this cell was tried

    @classmethod
    def from_solver(cls, status: Status) -> CellStatus:
        return {
            Status.OPTIMAL: cls.OPTIMAL,
            Status.FEASIBLE: cls.FEASIBLE,
            Status.INFEASIBLE: cls.INFEASIBLE,
            Status.UNBOUNDED: cls.UNBOUNDED,
            Status.NO_SOLUTION: cls.NO_SOLUTION,
            Status.ERROR: cls.ERROR,
        }[status]

    @property
    def is_failure(self) -> bool:
        """The harness lost the answer (not a solver's honest 'no solution in time')."""
        return self in (CellStatus.ERROR, CellStatus.TIMEOUT, CellStatus.CRASHED, CellStatus.LOST)


class Verdict(enum.StrEnum):
    """An answer checked against the published optimum."""

    CORRECT = "correct"  # proven optimal, and at the published value (or a documented alternate)
    WRONG = "wrong"  # optimal at another value, an impossible value or bound, or infeasible
    UNPROVEN = "unproven"  # no proof of optimality (limit, failure), and nothing contradicted
    UNKNOWN = "unknown"  # no published value for this instance
    NOT_APPLICABLE = "n/a"  # the solver cannot take this instance
    # No published value, so the configurations are checked against each other, stage by
    # stage: every proven optimum agrees (AGREED), or they differ (DISAGREE: at least one
    # is wrong, and nobody can say which, so it is reported as loudly as WRONG).
    AGREED = "agreed"
    DISAGREE = "disagree"

    @property
    def is_alarm(self) -> bool:
        """A verdict that must lead every output and fail the run (exit 6)."""
        return self in (Verdict.WRONG, Verdict.DISAGREE)


# results.csv, in this order. Appended one row per finished cell; --resume reads `key`.
COLUMNS: tuple[str, ...] = (
    "key", "instance", "config", "solver", "threads", "time_limit", "mip_gap", "presolve",
    "method", "options", "seed", "repeat", "status", "objective", "bound", "gap",
    "wall_s", "solver_s", "solve_s", "build_s", "maxrss_mb", "hwm_mb",
    "kind", "sense", "rows", "cols", "integers", "obj_constant",
    "expected", "verdict", "matched", "rel_err", "verdict_note",
    "message", "exit_code", "timeout_s", "worker", "finished_at",
    # Appended columns (an older results.csv is rewritten with them empty on --resume):
    # the idle cell process's memory, and every lexicographic stage's optimum and time.
    "base_mb", "stages", "stage_s",
    "path",
)
