"""`allocator serve`: the negotiation room in the browser."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

EXIT_CODES = """\b
Exit codes:
  0  stopped (Ctrl-C)
  143  stopped by SIGTERM (a service manager's stop)
  1  internal error
  2  bad input (scenario, run folder, host or port), or the web extra not installed
  8  the machine failed (disk full, read-only)"""


@click.command(epilog=EXIT_CODES)
@click.argument("source", metavar="RUN_OR_SCENARIO", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only).")
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free one).")
@click.option("--token", default=None, help="The token every request needs (default: a "
              "random one, printed in the URL).")
def serve(source: Path, host: str, port: int, token: str | None) -> None:
    """A negotiation room in the browser: edit budgets, capacities, staffing floors and
    demands, solve (a warm re-solve), and see the plan, the shortfall and the reasons change
    against the base; alternatives kept side by side. Prints the URL to open (with its
    token); docs/serve.md."""
    from allocator.failures import report_failure

    try:
        from allocator.serve.server import serve as run_server
    except ImportError as exc:  # fastapi/uvicorn are in the 'serve' extra
        click.echo(f"error: allocator serve needs the web extra ({exc.name} is missing): "
                   "pip install 'allocator[serve]'", err=True)
        sys.exit(2)
    if not host.strip():
        # `--host "$HOST"` with HOST unset bound every interface (the network could reach
        # the room) and printed the URL http://:8750/: say it, let the user choose
        click.echo("error (bad input): --host is empty: give 127.0.0.1 (this machine only) "
                   "or 0.0.0.0 (every interface, reachable from other machines)", err=True)
        sys.exit(2)
    if token is not None and len(token) < 8:
        click.echo("error (bad input): --token: at least 8 characters", err=True)
        sys.exit(2)
    if token is not None and not re.fullmatch(r"[A-Za-z0-9._~-]+", token):
        # it travels in the printed URL: '#' would cut it off there, '&', '+' or a space
        # would change it, so the link would open a room that refuses every request
        bad = "".join(sorted({c for c in token if not re.fullmatch(r"[A-Za-z0-9._~-]", c)}))
        click.echo(f"error (bad input): --token: letters, digits and . _ ~ - only (it goes "
                   f"into the URL); found {bad!r}", err=True)
        sys.exit(2)
    import signal

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # SIGTERM (a service manager's stop) while loading, or re-raised by uvicorn once it has
    # shut down: the room's temporary folder removed and exit 143, as documented (the default
    # action killed the process: exit -15, the folder left in /tmp).
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        run_server(source, host, port, token, say=lambda m: click.echo(m, err=True))
    except KeyboardInterrupt as stop:
        for sig in (signal.SIGINT, *previous):
            signal.signal(sig, signal.SIG_IGN)
        sys.exit({"SIGTERM": 143, "SIGHUP": 129}.get(str(stop), 0))
    except Exception as exc:
        sys.exit(report_failure(exc))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
