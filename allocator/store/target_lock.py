"""A lock per run target, taken when a solve starts: a second run into the same --out fails
at once (exit 2, naming the run that holds it) instead of after solving. A lock left by a dead
process is taken over (the kernel releases a dead process's flock).

The lock is a file named by a hash of the target's real path, in a folder shared by this
machine's users (`$ALLOCATOR_LOCK_DIR`, else `allocator-locks` in the temporary folder, mode
1777 like /tmp), locked with flock for as long as the run lives and holding the holder's pid,
host, start time, command and target. Nothing is added beside the user's run folders, and a
run killed outright leaves nothing there either. It guards runs on one machine; runs of
several machines into one shared folder are kept apart by the run folder's own checks
(allocator/outputs/folder.py), where this lock may move.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from allocator.errors import InputError


def lock_dir() -> Path:
    return Path(os.environ.get("ALLOCATOR_LOCK_DIR") or
                Path(tempfile.gettempdir()) / "allocator-locks")


def target_key(out: Path) -> str:
    """The target's real path (its parent's links resolved: two spellings, one lock)."""
    out = Path(os.path.abspath(out))
    return os.path.join(os.path.realpath(out.parent), out.name)


def lock_path(out: Path) -> Path:
    digest = hashlib.sha256(target_key(out).encode("utf-8", "surrogateescape")).hexdigest()
    return lock_dir() / f"{digest[:32]}.lock"


def _shared_dir(folder: Path) -> bool:
    """The lock folder, made if missing: a real folder (not a link), writable by every user
    with the sticky bit, as /tmp is."""
    try:
        folder.mkdir(mode=0o777, parents=True, exist_ok=True)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode):
            return False
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o1777:
            os.chmod(folder, 0o1777)  # mkdir's mode is cut by the umask
    except OSError:
        return False
    return True


def _holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _refusal(out: Path, info: dict[str, Any]) -> InputError:
    who = ", ".join(x for x in (
        f"pid {info['pid']}" if info.get("pid") else "",
        f"on {info['host']}" if info.get("host") else "",
        f"since {info['started']}" if info.get("started") else "",
        f"command: {info['command']}" if info.get("command") else "") if x)
    return InputError(f"is being written by another run ({who or 'holder unknown'}): wait for "
                      f"it to finish or choose another --out (lock: {lock_path(out)})",
                      str(out))


def _held_elsewhere(info: dict[str, Any]) -> bool:
    """Without flock (some network file systems): is the recorded holder alive?"""
    from allocator.store.db import process_gone

    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return bool(info)  # another machine's: cannot tell, so it holds
    return pid != os.getpid() and process_gone(pid, info.get("pid_start")) is None


def acquire(out: Path) -> int | None:
    """Lock the target for this process; the descriptor (None: the target's place cannot
    hold a lock file: the run's own checks say why). InputError if another run holds it."""
    from allocator.store.db import proc_start

    if Path(out).name in ("", ".", ".."):
        return None
    path = lock_path(out)
    for _attempt in range(20):
        try:
            if not _shared_dir(path.parent):
                return None
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            except PermissionError:  # another user's lock file: a read-only one locks too
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _refusal(out, _holder(fd)) from None
            except OSError:  # no flock here: the recorded process id must do
                info = _holder(fd)
                if _held_elsewhere(info):
                    raise _refusal(out, info) from None
            # The file may have been removed (a holder finishing) between open and lock.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            info = {"pid": os.getpid(), "pid_start": proc_start(os.getpid()),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join(sys.argv)[:500], "target": target_key(out)}
            with contextlib.suppress(OSError):  # (not when the file is another user's)
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    return None


def release(out: Path, fd: int | None) -> None:
    """Remove the lock file (while still holding it) and let go."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        if os.path.samestat(os.fstat(fd), os.stat(lock_path(out), follow_symlinks=False)):
            os.unlink(lock_path(out))
    with contextlib.suppress(OSError):
        os.close(fd)


@contextlib.contextmanager
def hold_target(out: Path) -> Iterator[None]:
    """Hold the target's lock for the block (the whole run: load, solve, write)."""
    fd = acquire(out)
    try:
        yield
    finally:
        release(out, fd)
