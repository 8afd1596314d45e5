"""Small helpers shared by the orchestrator and the worker (standard library only).

The orchestrator imports this module too, and must stay small: a child's ``ru_maxrss`` can
start from its parent's size on Linux (the high-water mark of the pre-exec image), so the
parent never imports numpy or pandas. Each worker also reads ``VmHWM`` from
``/proc/self/status``, which belongs to the child's own address space, as a cross-check.
"""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_SEED = 0


def _status_kb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def rss_mb() -> float:
    """Resident set size now, MiB."""
    return _status_kb("VmRSS") / 1024


def hwm_mb() -> float:
    """Peak resident set size of this process's address space so far, MiB."""
    return _status_kb("VmHWM") / 1024


def maxrss_mb() -> float:
    """resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phases:
    """Accumulates time per phase name (a phase may be entered several times), on two clocks:
    wall (``perf_counter``) and this process's CPU (``process_time``). The machine is shared
    (2 cores, other work running), so CPU time is the steadier figure; both are kept."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, name: str, seconds: float, cpu: float = 0.0) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    @contextmanager
    def time(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start, time.process_time() - cpu)
