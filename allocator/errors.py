"""One exception base for the package; the CLI maps each class to the documented exit code."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeGuard


class ExitCode(IntEnum):
    """The exit codes of data-contract.md, named so no caller writes a bare number."""

    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    INFEASIBLE = 3
    TIME_LIMIT_NO_PLAN = 4
    TIME_LIMIT_WITH_PLAN = 5
    BENCH_WRONG_ANSWER = 6  # allocator bench: a solver gave a wrong answer (checked optimum)
    BENCH_REGRESSION = 7  # allocator bench compare --strict: a regression was found
    ENVIRONMENT = 8  # the machine failed the run (disk full, quota, read-only, I/O error)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as a person would look for it."""

    source: str  # file name, or table name with its SQL query
    message: str
    row: int | None = None  # 1-based, as a spreadsheet shows it (header is row 1)
    column: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" column '{self.column}'"
        return f"{where}: {self.message}"


class AllocatorError(Exception):
    """Base of every error allocator raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(AllocatorError):
    """Bad input or usage; carries every problem found, not only the first."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem] | str, source: str = "input") -> None:
        if isinstance(problems, str):
            problems = [Problem(source, problems)]
        self.problems = problems
        super().__init__(self.render())

    def render(self, limit: int = 200) -> str:
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


class CapabilityError(InputError):
    """The chosen solver cannot do what the model needs; the message names an alternative."""


class InfeasibleError(AllocatorError):
    """No plan satisfies the hard constraints."""

    exit_code = ExitCode.INFEASIBLE


class SolverFailure(AllocatorError):
    """The solver stopped abnormally (numerical trouble, crash, unbounded model)."""

    exit_code = ExitCode.INTERNAL


# Failures of the machine, not of the input or of allocator: a run that meets one is not a bug.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})

_ENVIRONMENT_HINTS = {
    errno.ENOSPC: ("no space left on device", "free some space, or choose another --out"),
    errno.EDQUOT: ("disk quota exceeded", "free some space within the quota, or choose "
                   "another --out"),
    errno.EROFS: ("read-only file system", "choose an --out on a writable file system"),
    errno.EIO: ("input/output error (a failing disk or network share)",
                "check the disk or the share"),
}


class EnvironmentFailure(AllocatorError):
    """The machine failed the run (disk full, quota exceeded, file system gone read-only, I/O
    error): exit 8 with what happened and what to do, never "this is a bug"."""

    exit_code = ExitCode.ENVIRONMENT

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str | None = None) -> EnvironmentFailure:
        """`doing`: e.g. "while writing the run folder runs/x (plan.csv)"."""
        what, hint = _ENVIRONMENT_HINTS.get(
            exc.errno or 0, (exc.strerror or os.strerror(exc.errno or 0), "check the machine"))
        if doing is None:
            doing = f"at {exc.filename}" if exc.filename else "during the run"
        return cls(f"{what} {doing}; nothing was written (a run folder is written whole or "
                   f"not at all). This is not a bug in allocator: {hint}, then run again.")


def is_environment_error(exc: BaseException) -> TypeGuard[OSError]:
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS
