"""A warm process that forks one fresh child per cell, so a cell costs its solve, not Python's
start-up.

Starting Python and importing numpy, pandas, HiGHS and OR-Tools takes about a second, more
than most small solves; a benchmark of netlib's small LPs would time the imports. So each
Dask worker thread keeps one *zygote*: a plain subprocess (not ``multiprocessing``, which a
daemonic Dask worker may not use) that imports the solver stack once, then reads one request
per line on stdin, forks, and reports the child's pid, then its exit status and rusage.

The child is still a process of its own, in its own session: ``run`` kills its whole process
group at the hard timeout (a CBC binary started by PuLP dies with it), and a crash takes only
the child. The zygote is single-threaded in Python when it forks (OpenBLAS's own threads are
reset by its fork handlers, as with multiprocessing's fork start method), and it never
solves, so no solver state crosses a fork. Peak memory includes the preloaded libraries, as
it would for a fresh process that imported them.

The zygote dies with its worker (``PR_SET_PDEATHSIG`` on Linux, else at end of input), and a
cell whose zygote died kills its own process group (``cells._watch_parent``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from importlib import import_module
from typing import Any

PRELOAD = (
    "allocator.bench.cells", "allocator.solvers.mps", "allocator.solvers.lexicographic",
    "allocator.run", "highspy", "ortools.linear_solver.python.model_builder_helper", "pulp",
)
_PR_SET_PDEATHSIG = 1
_channel = 1  # the fd replies go to; serve() moves it off fd 1, where libraries may print


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _send(message: dict[str, Any]) -> None:
    os.write(_channel, (json.dumps(message) + "\n").encode())


def _child(request: dict[str, Any]) -> None:
    """In the forked child: own session, quiet stdout, stderr to the cell's file, then run."""
    code = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.close(_channel)  # the protocol channel stays the zygote's alone
        # By name, not by an import statement: cells.py imports this module to reach its
        # zygote, and the zygote only needs the entry point in the forked child.
        child_main = import_module("allocator.bench.cells").child_main

        child_main(request["spec"], request["out"])
    except BaseException:  # report, and leave through os._exit: never back into the loop
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The zygote's loop: preload, say ready, then fork one child per request line."""
    global _channel
    _die_with_parent()
    _channel = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # a banner printed by a library goes nowhere
    for name in PRELOAD:  # a missing optional solver only costs its own cells
        with contextlib.suppress(ImportError):
            import_module(name)
    _send({"ready": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _send({"pid": pid})
        _, status, usage = os.wait4(pid, 0)
        # What the cell left running in its session (a solver binary) goes with it. Done here,
        # right after the reap: a live group keeps its id from being reused, so this kills
        # nothing else.
        kill_group(pid)
        _send({"pid": pid, "exit": os.waitstatus_to_exitcode(status),
               "maxrss_kb": usage.ru_maxrss})


@dataclass
class Outcome:
    """How a cell process ended, as its parent saw it."""

    exit_code: int
    wall_s: float
    maxrss_mb: float
    timed_out: bool


class ZygoteDied(RuntimeError):
    """The zygote went away mid-request; the Dask task raises, and Dask retries it."""


class Zygote:
    """The worker's side: start the zygote, send requests, enforce the hard timeout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "allocator.bench.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
        )
        self.buffer = b""
        ready = self._read(time.monotonic() + 300)
        if ready is None or "ready" not in ready:
            self.close()
            raise ZygoteDied("the cell zygote did not start (could it import allocator?)")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self, deadline: float | None) -> dict[str, Any] | None:
        """One message, or None at the deadline. Reads the raw pipe: a buffered reader
        could hold the next message where select() cannot see it."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ZygoteDied("the cell zygote exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, spec: str, out: str, stderr: str, timeout: float) -> Outcome:
        assert self.proc.stdin is not None
        start = time.perf_counter()
        try:
            self.proc.stdin.write((json.dumps({"spec": spec, "out": out, "stderr": stderr})
                                   + "\n").encode())
        except BrokenPipeError:
            raise ZygoteDied("the cell zygote is gone") from None
        started = self._read(time.monotonic() + 60)
        if started is None:
            raise ZygoteDied("the cell zygote did not fork within 60 s")
        pid = int(started["pid"])
        ended = self._read(time.monotonic() + max(0.0, timeout - (time.perf_counter() - start)))
        timed_out = ended is None
        if ended is None:
            kill_group(pid)
            ended = self._read(time.monotonic() + 60)
            if ended is None:
                raise ZygoteDied(f"cell process {pid} survived SIGKILL for 60 s")
        wall = time.perf_counter() - start
        return Outcome(int(ended["exit"]), wall, float(ended["maxrss_kb"]) / 1024, timed_out)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(5)


def kill_group(pid: int) -> None:
    """SIGKILL a cell's session; the pid itself if it died before making one."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


_local = threading.local()


def zygote(fresh: bool = False) -> Zygote:
    """This thread's zygote, started (again) when missing, dead, or ``fresh`` is asked."""
    current: Zygote | None = getattr(_local, "zygote", None)
    if fresh and current is not None:
        current.close()
    if fresh or current is None or not current.alive():
        current = Zygote()
        _local.zygote = current
    return current


if __name__ == "__main__":
    serve()
