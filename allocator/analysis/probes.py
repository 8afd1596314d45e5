"""The count of warm re-solves an analysis may spend, and the one re-solve they all make.

Sensitivity extras, price ladders and hire prices are all warm re-solves of a stage LP with
one right-hand side moved; they share this budget (counted, not timed, so the same input
gives the same files) and this re-solve.
"""

from __future__ import annotations

import time

import numpy as np

from allocator.core.model import LinearModel

# The extras (left/right prices, price ranges, the value of one more FTE, ladders) are
# budgeted by work, not by wall time, so the same input gives the same files: each stage gets
# DEFAULT_PROBES warm re-solves (output.sensitivity_probes), handed out in the order and
# shares of sensitivity.PROBE_SPLIT (what one kind leaves goes to the next). Wall time is
# only a safety stop.
DEFAULT_PROBES = 200
MIN_PROBES = 10
PROBE_NONZEROS = 2e6  # default probes x nonzeros: big models get fewer (each is a ranging)
PROBES_UP_TO_NONZEROS = 500_000  # larger models get no probes unless the scenario asks


def default_probes(model: LinearModel) -> int:
    """Probes per stage when the scenario does not say (output.sensitivity_probes): every
    probe is a warm re-solve and a full ranging, whose cost grows with the model, so the
    count falls with its size (deterministically: the same model, the same count) from
    DEFAULT_PROBES on models up to 10k nonzeros to MIN_PROBES at 200k, and none past
    PROBES_UP_TO_NONZEROS: measured on the medium instance (1.06M nonzeros), one probe costs
    about 8 s against a 19 s solve, so ten a stage made the default run 8x slower (184 s
    against 22 s). There HiGHS's ranging alone is reported (range_kind = basis), as before
    the count existed; a negotiation-grade report asks for probes by setting."""
    nonzeros = max(1, int(model.nnz))
    if nonzeros > PROBES_UP_TO_NONZEROS:
        return 0
    return int(min(DEFAULT_PROBES, max(MIN_PROBES, PROBE_NONZEROS // nonzeros)))


class Probes:
    """A count of warm re-solves for one stage's extras, with a wall-time safety stop.

    `phase(share)` raises the cumulative cap by `share` of the total; `take()` spends one
    probe, or refuses (the cap is reached, or one more probe as long as the last would pass
    the safety deadline: then `stopped` says so, and the run's notes must too).
    """

    def __init__(self, total: int | None = None, deadline: float | None = None) -> None:
        self.total = total
        self.used = 0
        self.cap = 0 if total is not None else None
        self.shares = 0.0
        self.deadline = deadline
        self.stopped = ""  # the phase the safety stop cut short, if any
        self.phase_name = ""
        self._last = 0.0
        self._prev: float | None = None

    def phase(self, name: str, share: float) -> None:
        self.phase_name = name
        self.shares = min(1.0, self.shares + share)
        if self.total is not None:
            self.cap = self.total if self.shares >= 1.0 - 1e-9 else \
                round(self.shares * self.total)
        self._prev = None

    def take(self) -> bool:
        if self.cap is not None and self.used >= self.cap:
            return False
        now = time.perf_counter()
        if self._prev is not None:
            self._last = now - self._prev
        if self.deadline is not None and now + self._last > self.deadline:
            self.stopped = self.stopped or self.phase_name
            return False
        self._prev = now
        self.used += 1
        return True

    def note(self, stage: str) -> str:
        if not self.stopped:
            return ""
        return (f"sensitivity of stage '{stage}': the safety time limit "
                f"(output.sensitivity_share) stopped the extras during {self.stopped} after "
                f"{self.used} re-solves; what was not reached keeps its basis range and no "
                "left/right prices, and this run's sensitivity files may differ from another's")


def bound(value: float) -> float:
    return float(np.clip(value, -1e30, 1e30))


def solve_at(highs, row: int, lo: float, hi: float, use_hi: bool,
              value: float) -> tuple[float, float, float, float] | None:
    """Objective, dual and basis range of the row with its rhs set to `value`."""
    if use_hi:
        highs.changeRowBounds(row, bound(lo), bound(value))
    else:
        highs.changeRowBounds(row, bound(value), bound(hi))
    highs.run()
    if highs.getModelStatus().name != "kOptimal":
        return None
    _status, ranging = highs.getRanging()
    low = float(ranging.row_bound_dn.value_[row])
    high = float(ranging.row_bound_up.value_[row])
    return (float(highs.getInfo().objective_function_value),
            float(highs.getSolution().row_dual[row]),
            -np.inf if low <= -1e30 else min(low, value),
            np.inf if high >= 1e30 else max(high, value))
