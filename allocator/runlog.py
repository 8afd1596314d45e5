"""The run's log: what a nightly job's owner reads the morning after.

Every event of a run (a phase starting and ending, progress, warnings, notes, the result, the
exit code) goes to one `RunLog`. It keeps them for `run.log` in the run folder (plain text,
one line an event, control characters removed: a cron log or a mail shows it as written)
and forwards them as they happen: as the usual words on stderr, or, with `--log-format
json`, as one JSON object a line on stderr (`{"event": "phase", ...}`) for a scheduler to
parse. Thread-safe: the solver and the analyses report from their own threads.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

LOG_FILE = "run.log"
FORMATS = ("text", "json")
# ANSI escape sequences (colours, cursor moves of a progress bar) and other C0/C1 control
# characters but tab and newline: none of them belongs in a log file.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    return _CONTROL.sub("", text)


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the epoch
    kind: str  # phase, progress, warning, note, result, error, exit
    message: str
    fields: dict[str, Any] = field(default_factory=dict)

    def as_json(self, started: float) -> dict[str, Any]:
        return {"time": _iso(self.at), "elapsed": round(self.at - started, 3),
                "event": self.kind, "message": self.message, **self.fields}

    def as_text(self, started: float) -> str:
        extra = " ".join(f"{k}={_short(v)}" for k, v in self.fields.items()
                         if k not in ("summary",))
        line = f"{_iso(self.at)} +{self.at - started:8.2f}s {self.kind:<8} {self.message}"
        return plain(f"{line} [{extra}]" if extra else line).rstrip()


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) \
        else value
    return text if len(text) <= 200 else text[:197] + "..."


class RunLog:
    """Events of one run: kept (for run.log) and forwarded (stderr words, or JSON lines).

    `echo` receives the progress, warning and note lines a person reads on the terminal in
    text mode (None: kept only); `stream`, in JSON mode, receives every event as a line."""

    def __init__(self, echo: Callable[[str], None] | None = None,
                 stream: TextIO | None = None) -> None:
        self.echo, self.stream = echo, stream
        self.started = time.time()
        self.events: list[Event] = []
        self._lock = threading.Lock()

    @property
    def json(self) -> bool:
        return self.stream is not None

    def event(self, kind: str, message: str = "", **fields: Any) -> None:
        item = Event(time.time(), kind, plain(message), fields)
        with self._lock:
            self.events.append(item)
            if self.stream is not None:
                try:
                    self.stream.write(json.dumps(item.as_json(self.started), default=str,
                                                 ensure_ascii=False) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # stderr gone (a closed pipe): the log stays
                    pass
        if self.stream is None and self.echo is not None and kind in ("progress",):
            self.echo(message)

    # What the pipeline reports, by kind.
    def progress(self, message: str) -> None:
        self.event("progress", message)

    def phase(self, name: str, seconds: float | None) -> None:
        """A phase starting (`seconds` None) or ending (its own seconds)."""
        if seconds is None:
            self.event("phase", f"{name} started", phase=name, state="start")
        else:
            self.event("phase", f"{name} done in {seconds:.2f}s", phase=name, state="end",
                       seconds=round(seconds, 4))

    def outcome(self, summary: dict[str, Any], folder: str) -> None:
        """The run's warnings, notes and result, from its summary (as the folder has it)."""
        for warning in summary.get("warnings") or []:
            self.event("warning", str(warning))
        for note in summary.get("notes") or []:
            self.event("note", str(note))
        self.event("result", f"{summary.get('status')} (exit {summary.get('exit_code')})",
                   status=summary.get("status"), exit_code=summary.get("exit_code"),
                   objectives=summary.get("objectives"), seconds=summary.get("seconds"),
                   folder=folder)

    def text(self) -> str:
        with self._lock:
            return "".join(e.as_text(self.started) + "\n" for e in self.events)
