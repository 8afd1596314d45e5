"""Shared test helpers: run the real CLI, locate the bundled and public cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def run_cli(*args: str | Path, out: Path | None = None, timeout: float = 300) -> CliRun:
    cmd = [sys.executable, "-m", "allocator.cli", *map(str, args)]
    if out is not None:
        cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, out)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def case(tmp_path: Path) -> Path:
    """A private copy of the tiny case; returns its folder (resolved, as messages show it)."""
    folder = tmp_path.resolve() / "case"
    shutil.copytree(TINY.parent, folder)
    return folder
