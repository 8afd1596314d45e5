"""Long work that Ctrl-C, SIGTERM and SIGHUP stop at once and cleanly: no partial folder,
no worker process left, the run store told, the documented exit code (130/143/129)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TypeVar

from rich.console import Console

from allocator.failures import report_failure

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from allocator.runlog import RunLog

T = TypeVar("T")

# Set once a command's work has returned (its folder written, the store told): a signal
# after that cannot stop anything, so the launcher (allocator/launch.py) lets the command
# end with its own exit code instead of reporting an interrupt that undid nothing.
finished = False


def interruptible(work: Callable[[], T], fail: Callable[[BaseException], int] | None = None,
                  log: RunLog | None = None) -> T:
    """Run `work` in a worker thread so SIGINT/SIGTERM are handled at once, even while a
    solver sits in C++: the partial run folder is removed and the process exits (130/143)
    without writing a plan from an unfinished stage.

    An error ends the same way: partial folder removed and worker processes stopped. A thread
    still working when the process exits (a stage's sensitivity inside HiGHS, say) would be
    killed inside C++ by the interpreter's shutdown, and the process would abort (SIGABRT, exit
    134) instead of exiting with its code: the exit then skips that shutdown (os._exit, from an
    atexit hook, so a caller in the same process, such as a test, is not cut short).

    `fail` maps an error to its exit code, saying why (default: allocator.failures on
    stderr); `log`: the run's JSON log, which then carries the interrupt instead of stderr.
    Every command that runs long uses this one function (its own module, so that the
    commands' modules need not import the CLI's)."""
    err = Console(stderr=True, soft_wrap=True)
    say_failure = fail or (lambda exc: report_failure(exc, err))
    import atexit
    import signal
    import threading

    from allocator.outputs.folder import discard_active

    done: list[T] = []  # what `work` returned, or
    failed: list[BaseException] = []  # what it raised

    def target() -> None:
        try:
            done.append(work())
        except BaseException as exc:
            failed.append(exc)

    def on_term(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def workers() -> set[BaseProcess]:
        # The solver thread may be importing multiprocessing at this very moment: a module
        # half initialized has no active_children yet, and then no worker has started either.
        active_children = getattr(sys.modules.get("multiprocessing"), "active_children", None)
        if active_children is None:
            return set()
        try:
            return set(active_children())
        except Exception:  # its internals half set up: the same, nothing started yet
            return set()

    def stop_workers() -> None:
        """Stop the worker processes the work started (e.g. parallel re-solves)."""
        children = [child for child in workers() if child not in workers_before]
        for child in children:
            child.terminate()
        for child in children:
            child.join(2)
            if child.is_alive():
                child.kill()

    def exit_past(threads: list[threading.Thread], code: int) -> None:
        """At exit, if these threads still run: flush and exit now, past the shutdown."""
        def hook() -> None:
            if any(t.is_alive() for t in threads):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)

        if threads:
            atexit.register(hook)

    before, workers_before = set(threading.enumerate()), workers()
    # SIGTERM (a scheduler's stop) and SIGHUP (the terminal or ssh session went away) end
    # the run as SIGINT does: nothing half-written stays behind. SIGINT gets the same handler
    # (Python's own would do, but the `allocator` command's launcher puts another in place
    # while it starts: allocator/launch.py). A signal the parent set to be ignored stays
    # ignored: `nohup allocator ...` survives its terminal, a shell's background job Ctrl-C.
    handled = tuple(sig for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
                    if signal.getsignal(sig) is not signal.SIG_IGN)
    previous = {sig: signal.signal(sig, on_term) for sig in handled}
    thread = threading.Thread(target=target, name="allocator-solve", daemon=True)
    thread.start()
    global finished
    try:
        while thread.is_alive():
            thread.join(0.2)
        # Done before the launcher's handler is put back (below): a signal landing between
        # the two found the work returned but not `finished`, and the launcher's handler
        # then ended a complete run as interrupted (test_robustness saw it once, on SIGTERM).
        finished = not failed
    except KeyboardInterrupt as interrupt:
        # Each step on its own: a fault in one (the solver thread is mid-import, mid-write)
        # must not turn the stop into an internal error (exit 1) or skip the others; a second
        # Ctrl-C or SIGTERM meanwhile must not cut the clean-up short.
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        with contextlib.suppress(Exception):  # the terminal back before any word is said
            from allocator.progress import stop_displays

            stop_displays()
        with contextlib.suppress(Exception):
            discard_active(closing=True)  # os._exit below: the work thread makes no more
        with contextlib.suppress(Exception):
            stop_workers()
        name = str(interrupt) or "SIGINT"
        with contextlib.suppress(Exception):
            from allocator.store.record import mark_interrupted_active

            mark_interrupted_active(name)  # the run store: this run `interrupted` (3 s at most)
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            said = f"interrupted ({name}): stopped mid-run; no run folder was written"
            if log is not None:
                code = {"SIGTERM": 143, "SIGHUP": 129}.get(name, 130)
                log.event("error", said, exit_code=code, signal=name)
                log.event("exit", f"exit {code}", code=code)
            else:
                err.print(said)
        sys.stdout.flush()
        sys.stderr.flush()
        codes = {"SIGTERM": 143, "SIGHUP": 129}
        os._exit(codes.get(name, 130))  # the solver thread cannot be joined
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        discard_active()  # whatever failed, and wherever, no partial folder stays behind
        stop_workers()
        code = say_failure(failed[0])
        exit_past([t for t in threading.enumerate() if t not in before], code)
        sys.exit(code)
    value = done[0]
    exit_code = getattr(value, "exit_code", None)  # what the command will exit with
    if exit_code is not None:
        exit_past([t for t in threading.enumerate() if t not in before], int(exit_code))
    return value
