"""A throwaway PostgreSQL server for the tests that need a real one (SQL sources, the run
store): started in a temporary folder on a free port, stopped and removed afterwards.

Skipped only where the server is not installed and this is not CI; `.ci/run` installs it and
exports CI, so there a missing server fails the tests instead of silencing them."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI: {what} is not installed; .ci/run installs it")
    pytest.skip(f"{what} is not installed")


@contextlib.contextmanager
def throwaway_postgres(prefix: str = "allocator-pg-") -> Iterator[str]:
    """A running server's URL (postgresql+psycopg, user postgres, trust auth).

    PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user."""
    bindir = _pg_bin()
    if bindir is None or (shutil.which("runuser") is None and os.geteuid() == 0):
        _missing("PostgreSQL (initdb/pg_ctl)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg (the test extras have it)")
    assert bindir is not None
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    data, port = folder / "data", free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120,
                       cwd=folder)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
            "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t",
            "60", "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc}: {getattr(exc, 'stderr', b'')!r}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
