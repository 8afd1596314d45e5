"""The `allocator` command's entry point: the CLI's imports (pandas, highspy, SQLAlchemy:
about a second) happen here, under a handler, so that Ctrl-C or SIGTERM in that second ends
the command as an interrupt at any other time does (exit 130 or 143, one line, nothing
written yet) instead of a KeyboardInterrupt traceback from inside an import.

Kept free of imports beyond the standard library: it must run before anything slow.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # A signal the parent set to be ignored (a shell's background job) stays ignored.
    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)
              if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        from allocator.cli import main as cli
    except SystemExit as exit_:
        sys.stderr.write("allocator: interrupted while starting; nothing was written\n")
        raise SystemExit(exit_.code) from None
    for sig, handler in before.items():  # the CLI installs its own (allocator/interrupts.py)
        signal.signal(sig, handler)
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
