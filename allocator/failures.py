"""Exceptions to exit codes and words on stderr: the one mapping every command uses (the main
CLI, `bench`, `runs`, `convert`), kept out of cli.py so library modules need not import it."""

from __future__ import annotations

import errno
import os
import tempfile
import traceback

from rich.console import Console

from allocator.errors import (
    AllocatorError,
    EnvironmentFailure,
    ExitCode,
    InputError,
    is_environment_error,
)


def report_failure(exc: BaseException, err: Console | None = None) -> int:
    """Map any exception to its documented exit code, saying on stderr what happened and
    what to do: bad input and the machine's failures in words, anything else as a bug with
    the traceback saved to a log. The one mapping every command group uses."""
    err = err or Console(stderr=True, soft_wrap=True)
    if isinstance(exc, KeyboardInterrupt):
        err.print("interrupted: stopped; nothing was written", highlight=False)
        return 130
    if is_environment_error(exc):  # a full disk, a read-only remount: the machine, not a bug
        exc = EnvironmentFailure.from_os_error(exc)
    path_faults = {  # a path the user gave that cannot be opened: bad input, with the reason
        errno.ENOENT: "not found", errno.ENOTDIR: "a part of this path is a file, not a folder",
        errno.EISDIR: "a folder, not a file", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied", errno.ELOOP: "a loop of symbolic links",
        errno.ENAMETOOLONG: "a name in this path is too long for the file system"}
    if isinstance(exc, OSError) and exc.filename and exc.errno in path_faults:
        exc = InputError(path_faults[exc.errno], str(exc.filename))
    if isinstance(exc, AllocatorError):
        err.print(f"[bold red]error[/] ({exc.exit_code.name.lower().replace('_', ' ')}):",
                  highlight=False)
        err.print(str(exc), markup=False, highlight=False)
        return int(exc.exit_code)
    text = "".join(traceback.format_exception(exc))
    try:
        handle, name = tempfile.mkstemp(prefix="allocator-crash-", suffix=".log")
        with os.fdopen(handle, "w", encoding="utf-8") as log:
            log.write(text)
        where = f"The traceback is in {name}"
    except OSError:  # e.g. /tmp is full too: the traceback goes to stderr instead
        where = f"The traceback (it could not be saved to a file):\n{text}"
    err.print(f"[bold red]internal error[/]: {type(exc).__name__}: {exc}", markup=True,
              highlight=False)
    err.print(f"This is a bug. {where}", highlight=False, markup=False)
    return int(ExitCode.INTERNAL)
