"""A fork server for the CLI tests: one interpreter that has imported allocator and its heavy
libraries once, forking a fresh child process for each `allocator ...` the tests run.

Why: a test that runs the CLI as a user would (a real process: its own exit code, stdout,
stderr, environment, working directory and signal handlers) paid 1-2 s of interpreter
start-up and imports per call (pandas, highspy, scipy, matplotlib, SQLAlchemy), over 250
calls in the suite. A forked child starts with those modules loaded and runs exactly what
`python -m allocator.cli ARGS` runs, then exits with its code.

What a fork shares with its server and a fresh interpreter would not: the hash seed (so the
tests that compare two runs' files for determinism use a fresh interpreter,
`run_cli_fresh`) and whatever the imports set up. The server never starts a thread or a
solver before forking (a fork copies one thread; a HiGHS scheduler forked with its workers
would hang).

Protocol (one JSON line each way on stdin/stdout): request {args, cwd, env, umask, stdout, stderr};
the server answers {"pid": P} as the child starts and {"status": S} (os.waitpid's) when it
ends. The client kills P on its own timeout.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile


def _preload() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import highspy  # noqa: F401
    import matplotlib.pyplot
    import pyarrow.parquet  # noqa: F401
    import scipy.optimize
    import scipy.sparse  # noqa: F401

    import allocator.cli
    import allocator.outputs.report
    import allocator.run
    import allocator.store.db
    import allocator.store.record

    # What every run's first use costs besides imports: the migrations' scripts (a store
    # opened on a scratch SQLite file, closed before any fork) and matplotlib's font set-up.
    with tempfile.TemporaryDirectory() as scratch:
        store = allocator.store.db.open_store(f"sqlite:///{scratch}/warm.sqlite")
        store.close()
    figure = matplotlib.pyplot.figure()
    figure.gca().bar(["a"], [1.0])
    figure.savefig(io.StringIO(), format="svg")
    matplotlib.pyplot.close(figure)


def _child(request: dict) -> None:
    """In the forked child: become `python -m allocator.cli ARGS` and never return."""
    code = 1
    try:
        # The output files first: whatever fails after this is said in them.
        stdin = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (stdin, out, err):
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
        os.setpgid(0, 0)  # its own group: a timeout kills it and whatever it started
        os.chdir(request["cwd"])
        if request.get("umask") is not None:
            os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [sys.argv[0], *request["args"]]
        from allocator.cli import main

        try:
            main(args=request["args"], prog_name="allocator")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None
                                                                   else 1)
            if not isinstance(exit_.code, int | None):
                print(exit_.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        # What interpreter shutdown does: join the non-daemon threads, run atexit.
        import atexit
        import threading

        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:  # the set-up itself failed: say why, exit 1
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    _preload()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": status}), flush=True)


if __name__ == "__main__":
    serve()
