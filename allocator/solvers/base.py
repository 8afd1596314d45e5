"""What every backend shares: settings, capabilities, statuses and the raw solution shape."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, get_args

import numpy as np

from allocator.core.model import LinearModel


class Capability(enum.Enum):
    """What a backend can do; the registry checks these before a model is handed over."""

    CONTINUOUS = "continuous variables"
    INTEGER = "integer variables"
    DUALS = "duals and reduced costs"
    RANGING = "sensitivity ranging"
    WARM_START = "warm start between stages"
    TIME_LIMIT = "time limit"
    THREADS = "threads"
    SEED = "random seed"
    MIP_GAP = "relative MIP gap"


class Status(enum.Enum):
    """Termination, solver-neutral. FEASIBLE means a plan exists but is not proven optimal."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    # HiGHS's presolve can prove only that no optimum exists; for models whose objective is
    # bounded (every allocator formulation) that means infeasible, and it is diagnosed so.
    INFEASIBLE_OR_UNBOUNDED = "infeasible or unbounded"
    UNBOUNDED = "unbounded"
    NO_SOLUTION = "time limit, no solution"
    ERROR = "error"

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)

    @property
    def is_infeasible(self) -> bool:
        return self in (Status.INFEASIBLE, Status.INFEASIBLE_OR_UNBOUNDED)


class Limit(enum.Enum):
    """What stopped a solve before it proved its answer (MathOpt's termination limit)."""

    TIME = "time"
    ITERATIONS = "iteration"
    SOLUTIONS = "solution"
    INTERRUPT = "interrupt"
    OTHER = "other"


Method = Literal["auto", "simplex", "dual", "primal", "ipm", "pdlp"]
METHODS: tuple[Method, ...] = get_args(Method)


def is_method(word: str) -> TypeGuard[Method]:
    return word in METHODS


@dataclass(frozen=True)
class SolverSettings:
    """One typed settings object for every solver; `options` passes through unchanged."""

    time_limit: float | None = None
    threads: int = 1
    seed: int = 0
    # None: the solver's own default (HiGHS 1e-4; CBC, SCIP, CP-SAT prove optimality)
    mip_gap: float | None = None
    presolve: bool | None = None
    method: Method = "auto"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawSolution:
    """One solve's answer in model column/row order (duals: d objective / d rhs)."""

    status: Status
    objective: float = float("nan")
    bound: float = float("nan")
    x: np.ndarray | None = None
    row_dual: np.ndarray | None = None
    col_dual: np.ndarray | None = None
    seconds: float = 0.0
    message: str = ""
    limit: Limit | None = None  # set when a limit, not a proof, ended the solve


class Backend(abc.ABC):
    """A solver session: load once, then set objectives and add rows between solves.

    The incremental shape exists for the lexicographic stages: a backend that keeps its model
    (HiGHS) re-solves from the last basis; the others simply rebuild what they must.
    """

    name: str = ""
    display: str = ""
    capabilities: frozenset[Capability] = frozenset()
    methods: frozenset[str] = frozenset({"auto"})  # the solver.method values it honours
    # How far (relative to each row's own magnitude) the plan may miss a row and still be
    # the solver's honest answer: vertex solvers meet rows to ~1e-9; first-order methods
    # (PDLP) meet their tolerance on the norm of all rows, so single rows miss by more.
    plan_tolerance: float = 1e-6

    def __init__(self, settings: SolverSettings) -> None:
        self.settings = settings
        self.notes: list[str] = []  # things the user should know (scaling, fallbacks)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, ""

    @abc.abstractmethod
    def load(self, model: LinearModel) -> None: ...

    @abc.abstractmethod
    def set_objective(self, c: np.ndarray, constant: float = 0.0) -> None: ...

    @abc.abstractmethod
    def add_row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None: ...

    @abc.abstractmethod
    def solve(self, time_limit: float | None) -> RawSolution: ...


def rel_gap(objective: float, bound: float) -> float:
    """Relative gap as HiGHS and SCIP define it, 0 when both agree."""
    if not np.isfinite(objective) or not np.isfinite(bound):
        return float("inf")
    diff = abs(objective - bound)
    if diff <= 1e-9:
        return 0.0
    return diff / max(abs(objective), 1e-10)
