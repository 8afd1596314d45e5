"""The run folder through the real CLI: what --force may replace, what killed runs leave, the
umask, and an output place that cannot be written, found before anything is loaded.

Exit codes: 2 for an --out that must not be replaced or cannot be written (found before the
model is built: no 'model:' line), 8 for a full disk met while writing (nothing left behind).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT, SHARED, TINY, run_cli

BAD_INPUT, ENVIRONMENT = 2, 8
WYNDOR = SHARED / "cases" / "textbook" / "wyndor.mps"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`, with its content's hash: byte-for-byte."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def written(folder: Path) -> list[str]:
    """What runs left in `folder`, but the run store's database (it records refused runs too,
    beside --out: allocator/store)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("runs.sqlite"))


def assert_refused_early(run, *needles: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 2 with the reason, before the scenario was loaded and the model built."""
    assert run.code == BAD_INPUT, (run.code, run.stdout, run.stderr)
    assert "model:" not in run.stderr, f"refused only after building the model:\n{run.stderr}"
    assert "--out" in run.stderr
    for needle in needles:
        assert needle in run.stderr, (needle, run.stderr)


def cli(*args: str | Path, cwd: Path = ROOT, umask: int | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own with a chosen current folder and umask."""
    done = run_cli(*args, cwd=cwd, umask=umask, timeout=timeout)
    return subprocess.CompletedProcess(list(map(str, args)), done.code, done.stdout,
                                       done.stderr)


# --- 5. --force replaces only an earlier run, or an empty folder -------------------------------


def test_force_refuses_a_folder_of_the_users_files(tmp_path: Path) -> None:
    out = tmp_path / "important"
    (out / "drafts").mkdir(parents=True)
    (out / "notes.docx").write_bytes(b"PK\x03\x04 the only copy")
    (out / "plan.csv").write_text("staff_id,site_id\nmine,mine\n")
    (out / "drafts" / "v1.txt").write_text("draft")
    before = snapshot(out)
    run = run_cli("solve", TINY, "--force", out=out)
    assert_refused_early(run, str(out), "notes.docx", "not an allocator run", "refusing")
    assert snapshot(out) == before
    assert leftovers(out) == []


def test_force_refuses_a_run_folder_the_user_added_files_to(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("solve", TINY, out=out).code == 0
    (out / "my-analysis.xlsx").write_bytes(b"mine")
    before = snapshot(out)
    run = run_cli("solve", TINY, "--force", out=out)
    assert_refused_early(run, "my-analysis.xlsx", "allocator did not write")
    assert snapshot(out) == before


@pytest.mark.slow
def test_force_replaces_an_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("solve", TINY, out=out).code == 0
    first = json.loads((out / "summary.json").read_text())
    time.sleep(0.01)
    run = run_cli("solve", TINY, "--force", "--set", 'name="second"', out=out)
    assert run.code == 0, run.stderr
    assert first["name"] == "tiny" and run.summary["name"] == "second"
    assert leftovers(out) == []


def test_force_replaces_a_run_of_a_version_without_the_marker(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"version": "0.0.9", "exit_code": 0}))
    (out / "plan.csv").write_text("yesterday\n")
    run = run_cli("solve", TINY, "--force", out=out)
    assert run.code == 0, run.stderr
    assert run.summary["name"] == "tiny"
    assert leftovers(out) == []


def test_force_on_an_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    run = run_cli("solve", TINY, "--force", out=out)
    assert run.code == 0, run.stderr
    assert (out / "plan.csv").exists()


@pytest.mark.slow
def test_force_refuses_a_symbolic_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    assert run_cli("solve", TINY, out=real).code == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    run = run_cli("solve", TINY, "--force", out=link)
    assert_refused_early(run, "symbolic link")
    assert link.is_symlink() and (real / "plan.csv").exists()


def test_sensitivity_force_refuses_users_folder_and_replaces_its_own(tmp_path: Path) -> None:
    if not WYNDOR.exists():
        pytest.skip(f"{WYNDOR} not available")
    out = tmp_path / "report"
    out.mkdir()
    (out / "budget.xlsx").write_bytes(b"mine")
    before = snapshot(out)
    run = run_cli("sensitivity", WYNDOR, "--out", out, "--force")
    assert run.code == BAD_INPUT, run.stderr
    assert "budget.xlsx" in run.stderr and "refusing" in run.stderr
    assert snapshot(out) == before

    mine = tmp_path / "mine"
    assert run_cli("sensitivity", WYNDOR, "--out", mine).code == 0
    assert (mine / ".allocator-run").exists()
    run = run_cli("sensitivity", WYNDOR, "--out", mine, "--force")
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in mine.iterdir() if not p.name.startswith(".")) == [
        "constraints.csv", "variables.csv"]
    assert leftovers(mine) == []


APPEARS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from allocator.outputs import folder
    real_commit = folder.RunFolder.commit
    def commit(self, force):  # the user's folder appears after the early check
        self.out.mkdir()
        (self.out / "notes.docx").write_bytes(b"the only copy")
        real_commit(self, force)
    folder.RunFolder.commit = commit
    from allocator.cli import main
    main(sys.argv[1:])
""")


@pytest.mark.slow
@pytest.mark.parametrize("force", [False, True])
def test_folder_that_appears_during_the_run_is_not_replaced(tmp_path: Path,
                                                            force: bool) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", APPEARS, "solve", str(TINY), "--out", str(out),
                           *(["--force"] if force else [])], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == BAD_INPUT, proc.stderr
    assert "appeared during the run" in proc.stderr or "not an allocator run" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.docx"]
    assert (out / "notes.docx").read_bytes() == b"the only copy"
    assert leftovers(out) == []


def test_force_refuses_a_mount_point(mount_tmpfs) -> None:  # type: ignore[no-untyped-def]
    place = mount_tmpfs("size=1m")  # empty, but a mount point cannot be renamed away
    run = run_cli("solve", TINY, "--force", out=place)
    assert_refused_early(run, "mount point")


# --- 7. what killed runs leave behind --------------------------------------------------------

HOLD_A_RUN_FOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from allocator.outputs.folder import RunFolder
    folder = RunFolder(Path(sys.argv[1]), ["csv"])
    (folder.tmp / "plan.csv").write_bytes(b"x" * 100_000)  # a big half-written run
    print(folder.tmp, flush=True)
    time.sleep(600)
""")


def start_run_folder(out: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process holding a temporary run folder of `out`, as a run writing its plan does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_A_RUN_FOLDER, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, "the helper did not start"
    return proc, Path(line)


def test_partial_folder_of_a_killed_run_is_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    killed, stale = start_run_folder(out)
    alive, live = start_run_folder(out)
    try:
        os.kill(killed.pid, signal.SIGKILL)  # as kill -9 or the OOM killer does
        killed.wait(timeout=30)
        assert stale.exists() and live.exists()
        # Look-alikes that are not ours: no lock file, or not our naming pattern.
        foreign = tmp_path / ".run.partial-abcd1234"
        foreign.mkdir()
        (foreign / "keep.txt").write_text("not allocator's")
        other = tmp_path / ".run.partial-mine"
        other.mkdir()
        run = run_cli("solve", TINY, out=out)
        assert run.code == 0, run.stderr
        assert not stale.exists(), "the killed run's partial folder was left behind"
        assert live.exists(), "a live run's partial folder was removed"
        assert (foreign / "keep.txt").exists() and other.exists()
    finally:
        alive.kill()
        alive.wait(timeout=30)


def fake_partial(parent: Path, name: str, host: str) -> Path:
    """A temporary folder as a run on `host` leaves it (lock file, lock not held)."""
    folder = parent / name
    folder.mkdir()
    info = {"pid": 2**22 + 12345, "host": host, "started": "2026-01-01T00:00:00+0000"}
    (folder / ".allocator-partial").write_text(json.dumps(info))
    (folder / "plan.csv").write_text("half\n")
    return folder


def test_partial_folder_of_another_machine_is_removed_only_once_idle(tmp_path: Path) -> None:
    """A folder shared between machines (or containers with new host names): another host's
    unlocked partial folder goes only after a day without change."""
    out = tmp_path / "run"
    recent = fake_partial(tmp_path, ".run.partial-recent01", "another-host")
    idle = fake_partial(tmp_path, ".run.partial-idle0001", "another-host")
    here = fake_partial(tmp_path, ".run.partial-here0001", socket.gethostname())
    two_days_ago = time.time() - 2 * 86400
    for path in (idle, *idle.iterdir()):
        os.utime(path, (two_days_ago, two_days_ago))
    assert run_cli("solve", TINY, out=out).code == 0
    assert recent.exists() and not idle.exists() and not here.exists()


@pytest.mark.slow
def test_earlier_run_set_aside_by_a_cut_replace_is_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("solve", TINY, out=out).code == 0
    old = tmp_path / ".run.old"
    # killed after the new run moved in, before the earlier one was removed
    assert run_cli("solve", TINY, out=tmp_path / "spare").code == 0
    (tmp_path / "spare").rename(old)
    run = run_cli("solve", TINY, "--force", out=out)
    assert run.code == 0, run.stderr
    assert not old.exists()
    # killed between the two renames: the target is missing, the earlier run set aside
    out.rename(old)
    run = run_cli("solve", TINY, out=out)
    assert run.code == BAD_INPUT and "exists" in run.stderr, run.stderr
    assert (out / "plan.csv").exists() and not old.exists()


# --- 8. the umask ----------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "folder_mode", "file_mode"),
                         [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_run_folder_follows_the_umask(tmp_path: Path, umask: int, folder_mode: int,
                                      file_mode: int) -> None:
    out = tmp_path / "run"
    proc = cli("solve", TINY, "--out", out, umask=umask)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == folder_mode
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {file_mode}, modes


# --- 9. an output place that cannot be written, found before loading ---------------------------


def test_out_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file")
    run = run_cli("solve", TINY, out=tmp_path / "notes.txt" / "run")
    assert_refused_early(run, "is a file")
    assert (tmp_path / "notes.txt").read_text() == "a file"


@pytest.mark.slow
def test_out_dot_and_the_current_folder(tmp_path: Path) -> None:
    here = tmp_path / "empty"  # --force would replace an empty folder: not the current one
    here.mkdir()
    for target in (".", "..", "../empty", str(tmp_path)):
        proc = cli("solve", TINY, "--out", target, "--force", cwd=here)
        assert proc.returncode == BAD_INPUT, (target, proc.stderr)
        assert "model:" not in proc.stderr and "--out" in proc.stderr, proc.stderr
    assert here.is_dir() and list(here.iterdir()) == []
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_name_too_long_for_the_temporary_folder(tmp_path: Path) -> None:
    out = tmp_path / ("x" * 245)  # fits, but not with '.NAME.partial-XXXXXXXX' around it
    run = run_cli("solve", TINY, out=out)
    assert_refused_early(run, "too long", "255")
    assert written(tmp_path) == []
    out = tmp_path / ("y" * 300) / "run"
    run = run_cli("solve", TINY, out=out)
    assert_refused_early(run, "300 bytes")
    assert written(tmp_path) == []


@pytest.fixture
def mount_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Mount a small tmpfs (root only); skipped where mounting is not permitted."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_out_on_a_read_only_place(tmp_path: Path, mount_tmpfs) -> None:  # type: ignore[no-untyped-def]
    """As a user: a mode 0555 folder (permission denied). As root, whom permissions do not
    stop: a read-only file system (skipped where root may not mount one)."""
    if os.geteuid() == 0:
        place, reason = mount_tmpfs("ro,size=64k"), "read-only file system"
    else:
        place, reason = tmp_path / "locked", "permission denied"
        place.mkdir()
        place.chmod(0o555)
    try:
        run = run_cli("solve", TINY, out=place / "run")
        assert_refused_early(run, reason)
        assert written(place) == []
    finally:
        if os.geteuid() != 0:
            place.chmod(0o755)


def test_full_disk_is_an_environment_failure_and_leaves_nothing(mount_tmpfs) -> None:  # type: ignore[no-untyped-def]
    place = mount_tmpfs("size=16k")  # room for the early check, not for the run's tables
    run = run_cli("solve", TINY, out=place / "run")
    assert run.code == ENVIRONMENT, (run.code, run.stderr)
    assert "no space left on device" in run.stderr and str(place / "run") in run.stderr
    assert "nothing was written" in run.stderr and "bug" not in run.stderr.replace(
        "not a bug", "")
    assert written(place) == []


def test_scenario_path_under_a_file_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for command in (("validate",), ("solve", "--out", str(tmp_path / "run"))):
        proc = cli(command[0], tmp_path / "afile" / "s.toml", *command[1:])
        assert proc.returncode == BAD_INPUT, proc.stderr
        assert "is a file, not a folder" in proc.stderr and "bug" not in proc.stderr


MID_RUN = textwrap.dedent("""
    import sys
    import allocator.run
    allocator.run.check_target = lambda out, force: None  # the early check off: fail mid-run
    from allocator.cli import main
    main(sys.argv[1:])
""")


@pytest.mark.slow
def test_error_after_the_solve_exits_with_its_code_not_sigabrt(tmp_path: Path) -> None:
    """An error while a stage's sensitivity still runs in HiGHS on the other thread: the exit
    code is the error's (2), never 134 (SIGABRT at the interpreter's shutdown) or 1."""
    (tmp_path / "afile").write_text("")
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", MID_RUN, "solve", str(DEMO), "--out",
                               str(tmp_path / "afile" / "run")], capture_output=True,
                              text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == BAD_INPUT, (proc.returncode, proc.stderr)
        assert "model:" in proc.stderr and "is a file" in proc.stderr, proc.stderr
        assert "bug" not in proc.stderr


def test_an_interrupt_while_the_writability_probe_exists_removes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe folder `check_target` makes beside --out (to prove it can be written) was not
    registered for removal: a Ctrl-C landing between its making and removal left
    `.d.partial-*` behind (test_hunt's diff interrupt test caught it, rarely). Here the
    interrupt's clean-up runs at that very moment, and the process would exit before
    removing the probe itself."""
    from allocator.outputs import folder

    def interrupted(probe: Path) -> None:
        assert probe.is_dir()  # the moment: the probe made, not yet removed
        folder.discard_active(closing=True)  # what the interrupt handler does, then os._exit
        # os._exit follows: nothing after this point runs in the real case, so the probe
        # must be gone now, not later
        assert not list(tmp_path.iterdir())

    monkeypatch.setattr(folder, "_remove_probe", interrupted)
    monkeypatch.setattr(folder, "CLOSING", False)  # put back after: discard_active closes
    folder.check_target(tmp_path / "d", force=False)
    assert not list(tmp_path.iterdir())
    # and the work thread, running on until the process exits, can make no new folder:
    # one made then stayed behind (a Ctrl-C during the probe, the run's folder a moment later)
    with pytest.raises(folder.Closing):
        folder.RunFolder(tmp_path / "d", ["csv"])
    assert not list(tmp_path.iterdir())
