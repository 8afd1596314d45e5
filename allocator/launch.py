"""The `allocator` command's entry point: the CLI's imports (pandas, highspy, SQLAlchemy:
about a second) happen here, under a handler, so that Ctrl-C or SIGTERM in that second ends
the command as an interrupt at any other time does (exit 130 or 143, one line, nothing
written yet) instead of a KeyboardInterrupt traceback from inside an import.

The handler stays until the command puts its own in place (allocator/interrupts.py, around
the work that writes): a signal while Click parses the arguments is exit 130/143 too, not
Click's "Aborted!" with exit 1. Kept free of imports beyond the standard library: it must
run before anything slow.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    caught: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        done = getattr(sys.modules.get("allocator.interrupts"), "finished", False)
        if done:  # the work has returned, its folder written: end with the command's code
            return
        caught.append(signum)
        raise SystemExit(128 + signum)

    # A signal the parent set to be ignored (a shell's background job) stays ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, stop)
    try:
        from allocator.cli import main as cli
    except SystemExit as exit_:
        sys.stderr.write("allocator: interrupted while starting; nothing was written\n")
        raise SystemExit(exit_.code) from None
    try:
        cli()
    finally:
        if caught:  # ours, not the command's own handler (which says what it stopped)
            sys.stderr.write("allocator: interrupted\n")


if __name__ == "__main__":  # pragma: no cover
    main()
