"""A run folder that is complete or absent: written beside the target, renamed into place.

A rename within one filesystem is atomic, so a scheduler never sees half a plan; an
interrupted run leaves only a hidden temporary folder, removed on the way out. A run killed
outright (kill -9, out of memory) cannot remove its own: the next run to the same target does,
once it knows that no live run owns it (each temporary folder holds a lock file that its run
keeps locked for as long as it lives).

The target is checked before anything is loaded: a place that cannot be written (its parent
is a file, a read-only file system, no permission, a name too long for the temporary folder,
`--out .`) is refused at once with the reason. `--force` replaces only a folder that allocator
wrote (it holds the marker file `.allocator-run`, which lists its files; or, from older
versions, a `summary.json` with allocator's keys) or an empty folder: never anything else.
Folders and files follow the umask, as `mkdir` and `open` do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from allocator.errors import (
    ENVIRONMENT_ERRNOS,
    AllocatorError,
    EnvironmentFailure,
    InputError,
)
from allocator.outputs.cells import FORMULA_START
from allocator.version import __version__

MARKER = ".allocator-run"  # in every run folder allocator writes: what wrote it, its files
LOCK = ".allocator-partial"  # in a temporary folder: its run (pid, host, start), kept locked
_RANDOM = re.compile(r"[a-z0-9_]{8}")  # the random part tempfile.mkdtemp adds
_RUN_SUFFIXES = frozenset({".csv", ".parquet", ".json", ".xlsx", ".md", ".html", ".svg",
                           ".txt"})
# The names (stems) of the files runs wrote before the marker existed: an older run folder is
# replaced only if every file in it is one of these, so a copy of a run with a user's own
# files beside it (staff_v2.csv, notes.md) is never taken for a run.
_RUN_STEMS = frozenset({"plan", "coverage", "budgets", "sites", "summary", "sensitivity",
                        "bottlenecks", "ladders", "marginals", "report", "diagnosis",
                        "tradeoff", "points", "groups", "resources", "tasks", "hiring",
                        "variables", "constraints"})
_SENSITIVITY_FILES = frozenset({"variables.csv", "constraints.csv"})  # older `sensitivity --out`

# Temporary folders of runs in progress: an interrupt handler removes them before exiting.
# A folder is made and registered under ACTIVE_LOCK, which `discard_active` takes too: an
# interrupt that lands (in the main thread) while the work thread has just made its folder
# waits the microseconds until it is registered, instead of leaving it behind.
ACTIVE: set[Path] = set()
ACTIVE_LOCK = threading.RLock()
WRITERS: set[ThreadPoolExecutor] = set()  # their background CSV writers


# Set by `discard_active` as the process ends: the work thread, which runs on meanwhile, may
# make no new temporary folder after the clean-up took its list (one made then stayed behind:
# a Ctrl-C during `check_target`'s probe let the run's own folder be made a moment later).
CLOSING = False


class Closing(RuntimeError):
    """A temporary folder asked for after the process began to end (an interrupt)."""


def _open_to_new_folders() -> None:
    """Under ACTIVE_LOCK, before making a temporary folder."""
    if CLOSING:
        raise Closing("the process is ending: no new temporary folder")


def discard_active(closing: bool = False) -> None:
    """Remove every temporary folder of this process. `closing`: the process is about to
    end (an interrupt, then os._exit) while its work thread runs on, so refuse new folders
    from now on; a failure's clean-up passes False (a CLI called in-process, as Click's test
    runner does, goes on to the next command)."""
    global CLOSING
    for writer in list(WRITERS):  # no queued table may land in a folder being removed
        writer.shutdown(wait=True, cancel_futures=True)
    with ACTIVE_LOCK:
        CLOSING = CLOSING or closing
        doomed_paths = list(ACTIVE)
    for path in doomed_paths:
        # Renamed away first: the work thread may still be writing (diff.md, a report) and
        # would add a file after rmtree listed the folder, which then stays behind.
        doomed = path
        with contextlib.suppress(OSError):
            doomed = path.rename(path.with_name(path.name + "-discarded"))
        shutil.rmtree(doomed, ignore_errors=True)
        ACTIVE.discard(path)


# --- the umask ---------------------------------------------------------------------------------


def _proc_umask() -> int | None:
    """The umask from /proc (Linux 4.7+): reading it there changes nothing, so no thread can
    create a file under a wrong umask meanwhile (os.umask can only read by setting)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    found = _proc_umask()
    if found is None:  # no /proc: read it the racy way once, at import, before our threads
        found = os.umask(0o022)
        os.umask(found)
    return found


_UMASK_AT_IMPORT = _umask_at_import()


def current_umask() -> int:
    found = _proc_umask()
    return _UMASK_AT_IMPORT if found is None else found


# --- what --force may replace ------------------------------------------------------------------


def _listed_files(folder: Path) -> set[str] | None:
    """The files the marker says allocator wrote into `folder`; None without a valid marker."""
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("written_by") != "allocator" \
            or not isinstance(info.get("files"), list):
        return None
    return {str(name) for name in info["files"]}


def _is_old_run(folder: Path, names: list[str]) -> bool:
    """A run folder of a version before the marker: summary.json with allocator's keys, or a
    `sensitivity --out` folder (variables.csv and constraints.csv with allocator's header)."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        if isinstance(summary, dict) and "version" in summary and "exit_code" in summary:
            return True
    except (OSError, ValueError):
        pass
    if set(names) == _SENSITIVITY_FILES:
        try:
            with open(folder / "variables.csv", encoding="utf-8") as handle:
                header = handle.readline()
        except (OSError, ValueError):
            return False
        return header.replace('"', "").startswith("name,final_value,reduced_cost")
    return False


def _shown(names: list[str], limit: int = 5) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _own_subfolder(path: Path) -> bool:
    """A folder that allocator wrote inside one of its own (the runs a comparison solved):
    a run folder, or a folder holding only run folders."""
    if os.path.islink(path):
        return False
    if replace_refusal(path) is None:
        return True
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return all(not os.path.islink(path / n) and (path / n).is_dir()
               and replace_refusal(path / n) is None for n in names)


def replace_refusal(folder: Path) -> str | None:
    """Why --force must not replace `folder` (None: an empty folder, or one allocator wrote
    holding nothing else)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not names:
        return None
    listed = _listed_files(folder)
    if listed is None and not _is_old_run(folder, names):
        return f"holds files that are not an allocator run ({_shown(names)})"
    foreign = []
    for name in names:
        try:
            mode = os.lstat(folder / name).st_mode
        except OSError:  # gone meanwhile
            continue
        # with a marker: the files it lists; an older run: the kinds of file runs write
        ours = name in (MARKER, LOCK) or (
            name in listed if listed is not None else (
                Path(name).suffix.lower() in _RUN_SUFFIXES and Path(name).stem in _RUN_STEMS))
        if not stat.S_ISREG(mode):
            if stat.S_ISDIR(mode) and listed is not None and name in listed \
                    and _own_subfolder(folder / name):
                continue
            foreign.append(name + ("/" if stat.S_ISDIR(mode) else ""))
        elif not ours:
            foreign.append(name)
    if foreign:
        return f"holds files that allocator did not write ({_shown(foreign)})"
    return None


# --- the target, checked before anything is loaded ----------------------------------------------


def _partial_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


def _refuse(out: Path, reason: str) -> InputError:
    return InputError(f"output folder {out} {reason}", "--out")


def _place_error(out: Path, where: Path, exc: OSError) -> AllocatorError:
    """An OSError met creating the run folder (or its parents), as the reason to give."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return EnvironmentFailure.from_os_error(exc, f"while creating the run folder {out}")
    reasons = {
        errno.EACCES: f"cannot be written: permission denied in {where}",
        errno.EPERM: f"cannot be written: permission denied in {where}",
        errno.EROFS: f"cannot be written: {where} is on a read-only file system",
        errno.ENAMETOOLONG: "has a name too long for this file system (with the temporary "
                            "folder's suffix); choose a shorter --out",
        errno.ENOTDIR: f"cannot be created: a part of {where} is a file, not a folder",
        errno.EEXIST: f"cannot be created: a part of {where} is a file, not a folder",
        errno.ELOOP: f"cannot be created: {where} is a loop of symbolic links",
    }
    return _refuse(out, reasons.get(exc.errno or 0,
                                    f"cannot be written: {exc.strerror} ({where})"))


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _check_place(out: Path) -> None:
    """--out names a folder of its own: not '.', '..', the current folder or one above it."""
    if out.name in ("", ".", ".."):
        raise _refuse(out, "names no folder of its own: give the name of the run folder to "
                           "write, e.g. --out runs/today")
    try:
        here = Path.cwd().resolve()
        real = out.resolve()
    except (OSError, RuntimeError):  # no current folder, a loop of links: found below
        return
    if real == here or real in here.parents:
        raise _refuse(out, "is the current folder or one that contains it: give the name of "
                           "the run folder to write, e.g. --out runs/today")


def _check_existing(out: Path, force: bool) -> None:
    if os.path.islink(out):
        if not os.path.exists(out):
            raise _refuse(out, f"is a symbolic link to {os.readlink(out)}, which does not "
                               "exist; remove the link or choose another --out")
        if force:
            raise _refuse(out, "is a symbolic link; --force does not replace links: give the "
                               "folder it points to, or remove the link")
    if not os.path.exists(out):
        return
    if not out.is_dir():  # said first: --force would not help
        raise InputError(f"{out} is a file, not a folder: a run folder cannot replace it; "
                         "choose another --out", "--out")
    if not force:
        raise InputError(f"output folder {out} exists; use --force to replace it, or another "
                         "--out", "--out")
    if os.path.ismount(out):
        raise _refuse(out, "is a mount point, which cannot be replaced: write the run folder "
                           f"inside it, e.g. --out {out / 'run'}")
    reason = replace_refusal(out)
    if reason:
        raise _refuse(out, f"{reason}; refusing to replace it (--force replaces only a run "
                           "folder allocator wrote, or an empty folder)")


def _check_writable(out: Path) -> None:
    """The honest test: create (and remove) the temporary folder where the run will."""
    existing = Path(os.path.abspath(out)).parent
    missing: list[str] = []
    while not os.path.exists(existing) and existing != existing.parent:
        if os.path.islink(existing):
            raise _refuse(out, f"cannot be created: {existing} is a symbolic link to "
                               f"{os.readlink(existing)}, which does not exist")
        missing.append(existing.name)
        existing = existing.parent
    if not existing.is_dir():
        raise _refuse(out, f"cannot be created: {existing} is a file, not a folder")
    limit = _name_max(existing)
    for name in reversed(missing):
        if len(os.fsencode(name)) > limit:
            raise _refuse(out, f"cannot be created: the folder name '{name[:40]}...' is "
                               f"{len(os.fsencode(name))} bytes, over this file system's "
                               f"limit of {limit}")
    temporary = f"{_partial_prefix(out)}xxxxxxxx"
    if len(os.fsencode(temporary)) > limit:
        raise _refuse(out, f"has a name too long: its temporary folder beside it "
                           f"('.NAME.partial-xxxxxxxx') would be {len(os.fsencode(temporary))} "
                           f"bytes, over this file system's limit of {limit}; choose a name of "
                           f"at most {limit - len(temporary) + len(out.name)} bytes")
    prefix = f".{missing[-1]}.partial-" if missing else _partial_prefix(out)
    try:
        with ACTIVE_LOCK:  # an interrupt between its making and removal removes it too
            _open_to_new_folders()
            probe = Path(tempfile.mkdtemp(prefix=prefix, dir=existing))
            ACTIVE.add(probe)
    except OSError as exc:
        raise _place_error(out, existing, exc) from exc
    try:
        _remove_probe(probe)
    finally:  # an exception in between (a Ctrl-C in this thread) still removes it
        with ACTIVE_LOCK:
            with contextlib.suppress(OSError):
                os.rmdir(probe)
            ACTIVE.discard(probe)


def _remove_probe(probe: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(probe)


def check_target(out: Path, force: bool) -> None:
    """Refuse early (before any loading or solving) an --out that must not be replaced or
    cannot be written, with the reason (exit 2); first remove what killed runs left of it."""
    _check_place(out)
    clean_leftovers(out)
    _check_existing(out, force)
    _check_writable(out)


# --- what killed runs left behind ---------------------------------------------------------------


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # cannot tell: treat as alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def _partial_state(path: Path) -> str:
    """'stale' (ours, its run is gone), 'live' (its run still holds it) or 'foreign'."""
    if os.path.islink(path) or not os.path.isdir(path):
        return "foreign"
    try:
        fd = os.open(path / LOCK, os.O_RDONLY | os.O_NOFOLLOW)  # another user's too
    except OSError:  # no lock file: not ours (or a run still setting up): left alone
        return "foreign"
    try:
        try:
            info = json.loads(os.read(fd, 65536).decode("utf-8"))
        except (OSError, ValueError):
            return "foreign"
        if not isinstance(info, dict):
            return "foreign"
        here = info.get("host") == socket.gethostname()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "live"
        except OSError:  # no locks on this file system: the process id must do
            if not here:
                return "foreign"  # another machine's process cannot be seen from here
            return "live" if _pid_alive(info.get("pid")) else "stale"
        # Free lock: its run is gone. Another machine's (a shared folder, a container with a
        # new host name) is trusted only once idle for a day: a file system mounted without
        # shared locks would show its live runs unlocked.
        return "stale" if here or _idle_for(path, OTHER_HOST_IDLE) else "foreign"
    finally:
        os.close(fd)


OTHER_HOST_IDLE = 24 * 3600.0  # seconds


def _idle_for(path: Path, seconds: float) -> bool:
    """Nothing in `path` (a flat folder) changed for `seconds`."""
    try:
        newest = max([path.stat().st_mtime,
                      *(entry.stat(follow_symlinks=False).st_mtime for entry in os.scandir(path))])
    except OSError:
        return False
    return time.time() - newest > seconds


def clean_leftovers(out: Path) -> None:
    """Remove the temporary folders of this target that killed runs left (only ours: named as
    ours and holding our lock file; only stale: no live run holds its lock), and the earlier
    run set aside by a replace that was cut short (put back if the target is missing)."""
    parent = Path(os.path.abspath(out)).parent
    prefix = _partial_prefix(out)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    live = False
    for name in names:
        if not name.startswith(prefix) or not _RANDOM.fullmatch(name[len(prefix):]):
            continue
        state = _partial_state(parent / name)
        if state == "stale":
            shutil.rmtree(parent / name, ignore_errors=True)
        live = live or state == "live"
    old = parent / f".{out.name}.old"
    if live or os.path.islink(old) or not os.path.isdir(old) or replace_refusal(old):
        return  # a live run may be replacing the target right now: its business
    with contextlib.suppress(OSError):
        if os.path.lexists(out):
            shutil.rmtree(old)
        else:  # cut between the two renames of a replace: the earlier run goes back
            os.rename(old, out)


def _lock_partial(tmp: Path, out: Path) -> int:
    """Write the temporary folder's lock file, locked before it takes its name (a cleaner
    never sees it unlocked while its run lives); the lock lasts as long as the descriptor."""
    staging = tmp / f"{LOCK}.new"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with contextlib.suppress(OSError):  # no locks on this file system: the pid must do
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "target": str(out)}
        os.write(fd, json.dumps(info).encode("utf-8"))
        os.rename(staging, tmp / LOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells starting like a formula get a leading quote (CSV/Excel injection).

    Vectorized on the first character; the frame is copied only when a cell needs it."""
    out = frame
    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        values = frame[col]
        if isinstance(dtype, pd.CategoricalDtype):  # decide per category, not per row
            categories = values.cat.categories.astype(str)
            if not categories.str[:1].isin(FORMULA_START).any():
                continue
        if isinstance(dtype, pd.StringDtype):  # object columns may hold anything
            mask = values.str.startswith(FORMULA_START).fillna(False).astype(bool)
        else:  # object columns may hold numbers or None beside text
            mask = values.astype(str).str[:1].isin(FORMULA_START) & values.notna()
        text = values.astype(object)
        if mask.any():
            if out is frame:
                out = frame.copy()
            out[col] = text.where(~mask, "'" + text.astype(str))
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV through Arrow's C++ writer, formula-like text neutralized on the way.

    About 10x faster than `DataFrame.to_csv` on the large sensitivity tables (440k rows:
    0.24 s against 2.2 s), and it releases the GIL, so the run folder writes tables in a
    thread while the report renders. Text is always quoted, booleans read true/false, whole
    floats print without '.0'; any CSV reader (pandas, Excel, R) reads it back to the same
    values. A frame Arrow cannot type falls back to pandas. Arrow is imported here, after the
    solve: not held in memory while the model is built."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table = None
    plain = table is not None and all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
        or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)
        or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))
        for t in table.schema.types)
    if not plain:  # dates, lists, mixed objects: pandas writes them as before
        _neutralize(frame).to_csv(path, index=False)
        return
    starts = pa.array(list(FORMULA_START))
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            risky = pc.fill_null(pc.is_in(pc.utf8_slice_codeunits(col, 0, 1),
                                          value_set=starts), False)
            if pc.any(risky).as_py():
                quote, nothing = pa.scalar("'", col.type), pa.scalar("", col.type)
                col = pc.if_else(risky, pc.binary_join_element_wise(quote, col, nothing), col)
        columns.append(col)
    # An absolute path: Arrow expands a leading '~' itself, which would write a folder
    # literally named '~' (from `--out=~/x`, which the shell leaves alone) into $HOME.
    pa_csv.write_csv(pa.Table.from_arrays(columns, names=table.column_names),
                     str(Path(path).absolute()))


class RunFolder:
    """Collects files in a temporary folder; `commit` moves it into place."""

    def __init__(self, out: Path, formats: Sequence[str]) -> None:
        self.out = out
        self.formats = formats
        self._committed = False
        self._lock: int | None = None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with ACTIVE_LOCK:  # made and registered as one step (see ACTIVE)
                _open_to_new_folders()
                self.tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(out),
                                                 dir=out.parent))
                ACTIVE.add(self.tmp)
        except OSError as exc:
            raise _place_error(out, out.parent, exc) from exc
        try:
            os.chmod(self.tmp, 0o777 & ~current_umask())  # mkdtemp's is 0700, whatever umask
            self._lock = _lock_partial(self.tmp, out)
        except BaseException as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            ACTIVE.discard(self.tmp)
            if isinstance(exc, OSError):
                raise _place_error(out, out.parent, exc) from exc
            raise
        # CSV files are written by one background thread (Arrow releases the GIL), in the
        # order given; `commit` waits for them, so the folder is still complete or absent.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-writer")
        WRITERS.add(self._writer)
        self._pending: list[Future[None]] = []
        self._sheets: dict[str, pd.DataFrame] = {}  # formats = ["xlsx"]: plan.xlsx's tables
        self._summary: dict[str, Any] | None = None

    @contextlib.contextmanager
    def _writing(self, name: str = "") -> Iterator[None]:
        """A full disk (or quota, read-only remount, I/O error) is the machine's failure."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_ERRNOS:
                raise
            what = f" ({name})" if name else ""
            raise EnvironmentFailure.from_os_error(
                exc, f"while writing the run folder {self.out}{what}") from exc

    def table(self, name: str, frame: pd.DataFrame) -> None:
        """Write a table; the caller must not change `frame` afterwards (written later)."""
        self._pending.append(self._writer.submit(write_csv, frame, self.tmp / f"{name}.csv"))
        with self._writing(name):
            if "parquet" in self.formats:
                frame.to_parquet(self.tmp / f"{name}.parquet", index=False)
            if "json" in self.formats:
                frame.to_json(self.tmp / f"{name}.json", orient="records", indent=1)
            if "xlsx" in self.formats:  # one plan.xlsx of every table, written at commit
                self._sheets[name] = frame

    def flush(self) -> None:
        """Wait for the tables still being written; a failed write raises here."""
        pending, self._pending = self._pending, []
        with self._writing():
            for future in pending:
                future.result()

    def json(self, name: str, payload: dict[str, Any]) -> None:
        if name == "summary.json":
            self._summary = payload  # the workbook's summary sheet
        with self._writing(name):
            (self.tmp / name).write_text(json.dumps(payload, indent=2, default=str) + "\n")

    def text(self, name: str, content: str) -> None:
        with self._writing(name):
            (self.tmp / name).write_text(content, encoding="utf-8")

    def _mark(self) -> None:
        """The marker that lets a later --force know this folder as allocator's, and which
        files are its own (anything else found there later is the user's)."""
        files = sorted(n for n in os.listdir(self.tmp) if n not in (MARKER, LOCK))
        info = {"written_by": "allocator", "version": __version__,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
        with self._writing(MARKER):
            (self.tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")

    def commit(self, force: bool) -> None:
        self.flush()
        if "xlsx" in self.formats and (self._sheets or self._summary is not None):
            from allocator.outputs.workbook import WORKBOOK, write_workbook

            with self._writing(WORKBOOK):
                write_workbook(self.tmp / WORKBOOK, self._sheets, self._summary)
        self._mark()
        try:
            if os.path.lexists(self.out):
                self._replace(force)
            else:
                self.tmp.rename(self.out)
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise EnvironmentFailure.from_os_error(
                    exc, f"while moving the run folder {self.out} into place") from exc
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise _refuse(self.out, "appeared during the run; use --force to replace "
                                        "it") from exc
            if exc.errno in (errno.EBUSY, errno.EACCES, errno.EPERM, errno.EXDEV):
                raise _refuse(self.out, f"could not be put in place: {exc.strerror}") from exc
            raise
        self._committed = True
        ACTIVE.discard(self.tmp)
        with contextlib.suppress(OSError):  # the lock has done its work: the run is in place
            os.unlink(self.out / LOCK)

    def _replace(self, force: bool) -> None:
        """Set the earlier run aside, move this one in, remove the earlier one. The target is
        checked again: it may have appeared, or changed, during the run."""
        if not force and not os.path.islink(self.out):
            raise _refuse(self.out, "appeared during the run; use --force to replace it")
        _check_existing(self.out, force)
        old = self.out.with_name(f".{self.out.name}.old")
        if os.path.lexists(old):  # left by a replace cut short
            if os.path.islink(old) or not os.path.isdir(old) or replace_refusal(old):
                raise _refuse(self.out, f"cannot be set aside: {old} exists and is not an "
                                        "earlier run; remove it")
            shutil.rmtree(old)
        self.out.rename(old)
        try:
            self.tmp.rename(self.out)
        except BaseException:
            with contextlib.suppress(OSError):
                old.rename(self.out)  # the earlier run stays where it was
            raise
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        self._writer.shutdown(wait=True, cancel_futures=True)  # one in progress finishes
        WRITERS.discard(self._writer)
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        ACTIVE.discard(self.tmp)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None


@contextlib.contextmanager
def run_folder(out: Path, formats: Sequence[str], force: bool) -> Iterator[RunFolder]:
    folder = RunFolder(out, formats)
    try:
        yield folder
        folder.commit(force)
    except OSError as exc:
        # A write that fails past open() (a full disk at flush or close, in pyarrow, in
        # XlsxWriter) carries no file name: say which run folder it was, for the message.
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(out)) from exc
        raise
    finally:
        folder.discard()
