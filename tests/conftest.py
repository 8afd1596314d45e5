"""Shared test helpers: run the real CLI, locate the bundled and public cases."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

# Every run of the suite records into a run store of its own (the default store is the
# user's, under $XDG_DATA_HOME): the tests never touch the machine's real history.
os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="allocator-tests-xdg-"))


@pytest.fixture(autouse=True)
def _own_run_store(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A default run store per test: a solve warm-starts from the store's last run of the
    same scenario, so a shared store would make each test depend on the ones before it."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CASES = SHARED / "cases"
TINY = ROOT / "tests" / "cases" / "tiny" / "scenario.toml"
DEMO = ROOT / "models" / "demo.toml"


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    out: Path | None = None

    def table(self, name: str) -> pd.DataFrame:
        assert self.out is not None
        return pd.read_csv(self.out / f"{name}.csv", dtype={"staff_id": str, "site_id": str,
                                                            "service_id": str, "budget_id": str})

    @property
    def summary(self) -> dict:
        assert self.out is not None
        return json.loads((self.out / "summary.json").read_text())


def run_cli(*args: str | Path, out: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None, cwd: Path = ROOT,
            umask: int | None = None) -> CliRun:
    """`allocator ARGS` in a process of its own, forked from a server that has the imports
    done (tests/cli_server.py: the same code, exit code and files, without 1-2 s of
    start-up a call). `env`: the whole environment (default: this process's)."""
    argv = [*map(str, args), *(["--out", str(out)] if out is not None else [])]
    code, stdout, stderr = _SERVER.run(argv, timeout, env if env is not None else
                                       dict(os.environ), cwd, umask)
    return CliRun(code, stdout, stderr, out)


def run_cli_fresh(*args: str | Path, out: Path | None = None, timeout: float = 300) -> CliRun:
    """`python -m allocator.cli ARGS` in a fresh interpreter: for what a fork would share
    with its server (the hash seed: the determinism tests), and for the start-up itself."""
    cmd = [sys.executable, "-m", "allocator.cli", *map(str, args)]
    if out is not None:
        cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, out)


class _CliServer:
    """The client of tests/cli_server.py: started on first use, one per test process."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pending = b""
        self.lock = threading.Lock()
        self.files = Path(tempfile.mkdtemp(prefix="allocator-cli-"))
        atexit.register(shutil.rmtree, self.files, True)

    def _start(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.cli_server"], cwd=ROOT,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.pending = b""
        return self.process

    def _line(self, fd: int, timeout: float | None) -> dict | None:
        """The server's next line, read from the descriptor itself (a buffered reader
        could hold the second line while select waits for the descriptor)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("the CLI test server (tests/cli_server.py) died")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, argv: list[str], timeout: float, env: dict[str, str], cwd: Path,
            umask: int | None) -> tuple[int, str, str]:
        if not self.lock.acquire(blocking=False):  # a test running the CLI from threads
            done = subprocess.run([sys.executable, "-m", "allocator.cli", *argv], env=env,
                                  capture_output=True, text=True, timeout=timeout, cwd=cwd)
            return done.returncode, done.stdout, done.stderr
        try:
            return self._run(argv, timeout, env, cwd, umask)
        finally:
            self.lock.release()

    def _run(self, argv: list[str], timeout: float, env: dict[str, str], cwd: Path,
             umask: int | None) -> tuple[int, str, str]:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        stdout, stderr = self.files / "stdout", self.files / "stderr"
        for stale in (stdout, stderr):  # never read an earlier call's output as this one's
            stale.unlink(missing_ok=True)
        request = {"args": argv, "cwd": str(cwd), "env": env, "umask": umask,
                   "stdout": str(stdout), "stderr": str(stderr)}
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.flush()
        fd = process.stdout.fileno()
        started: dict | None = None
        try:
            started = self._line(fd, None)
            assert started is not None
            ended = self._line(fd, timeout)
        except BaseException:  # Ctrl-C, or the server died: no child left, a fresh server
            if started is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(started["pid"], signal.SIGKILL)
            process.kill()
            process.wait()
            self.process = None
            raise
        if ended is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started["pid"], signal.SIGKILL)
            self._line(fd, None)
            raise subprocess.TimeoutExpired(["allocator", *argv], timeout)
        code = os.waitstatus_to_exitcode(ended["status"])
        def text(path: Path) -> str:
            return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

        return code, text(stdout), text(stderr)


_SERVER = _CliServer()


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def case(tmp_path: Path) -> Path:
    """A private copy of the tiny case; returns its folder (resolved, as messages show it)."""
    folder = tmp_path.resolve() / "case"
    shutil.copytree(TINY.parent, folder)
    return folder
