"""Progress of a run as it happens: phase, stage, method, and the solver's own figures.

One stream of `Event`s goes through one callback, `solve_scenario(on_progress=...)`: the
pipeline sends the phases (load, build, solve, analysis, write) and the stages (k of n, name,
solver); HiGHS sends what its callbacks say (iterations, primal and dual objective of interior
point, incumbent, bound and gap of a MIP, its log lines). The terminal display, the plain
heartbeat of a cron job and a JSON log are each just a consumer of that stream.

HiGHS is reached through a context variable, not a parameter threaded through the stage
solver and every backend: `reporting(callback)` sets it around the solve, and
`HighsBackend.solve` wraps `highs.run()` in `watch_highs`, which subscribes the callbacks only
when someone listens (no listener: no callback, no cost). The analysis threads never see it
(a new thread starts with an empty context), so their HiGHS copies stay silent.

What the callbacks cost (measured, benchmarks/README.md "Progress"): HiGHS calls the simplex
callback every iteration (medium with per-site budgets: 90,000 calls, +9% CPU) and the
interior-point one ~120,000 times a solve on medium (inside the linear algebra), so both
methods are followed through HiGHS's log lines instead: each interior-point iteration's
primal and dual objective, the simplex iteration count and objective every few seconds. A
MIP's callbacks are rare (a node, a log line, a new incumbent) and are used. Each callback
returns at once unless a tenth of a second has passed since the last event it sent.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import highspy
    from highspy.highs import HighsCallbackEvent
    from rich.console import Console, RenderableType

HEARTBEAT_ENV = "ALLOCATOR_HEARTBEAT"  # seconds between plain lines without a terminal
HEARTBEAT_DEFAULT = 30.0
TICK = 0.1  # at most one solver event per this many seconds (the display redraws 4x a second)
# Simplex figures come from HiGHS's own log lines (every few seconds), not from its
# per-iteration callback: measured on medium with per-site budgets (90,000 iterations), the
# callback cost 9% more CPU (median of 4 against 0% for the log alone; benchmarks/README.md).
SIMPLEX_CALLBACK = False

# The pipeline's phases (allocator.run.PhaseClock) as a person reads them.
PHASES = {"load": "load · validate", "build": "build", "solve": "solve", "warm": "warm start",
          "sensitivity": "analysis", "extra": "analysis", "marginals": "analysis",
          "diagnosis": "diagnosis", "write": "write"}
METHODS = {"ipm": "interior point", "simplex": "dual simplex", "mip": "branch and bound",
           "pdlp": "PDLP", "crossover": "crossover"}


@dataclass(frozen=True)
class Event:
    """One thing that happened; `kind` says which fields mean something.

    phase: `phase` entered (or left, `done`); stage: stage `index` of `count` (`stage`,
    `solver`) started (or ended, `done`, with `objective`); solver: the running solve's
    figures; log: a line of the solver's own log (`text`); message: a line the pipeline says.
    Objectives are in the user's sense (a maximized model's are positive)."""

    kind: str
    at: float = field(default_factory=time.monotonic)
    phase: str = ""
    done: bool = False
    stage: str = ""
    index: int = 0
    count: int = 0
    solver: str = ""
    method: str = ""
    iterations: int | None = None
    objective: float | None = None  # simplex: the current objective; a stage's optimum
    primal: float | None = None  # interior point: primal and dual objective
    dual: float | None = None
    incumbent: float | None = None  # MIP: best plan, best bound, gap, nodes
    bound: float | None = None
    gap: float | None = None
    nodes: int | None = None
    text: str = ""

    def as_json(self) -> dict[str, Any]:
        """The fields that mean something (for a JSON log line); `at` is left to the log."""
        return {k: v for k, v in asdict(self).items()
                if k != "at" and v is not None and v != "" and (k != "done" or v)
                and (k not in ("index", "count") or v)}


Listener = Callable[[Event], None]


def fan_out(*listeners: Listener | None) -> Listener | None:
    """One listener calling each of these (a display and a JSON log, say)."""
    present = [listener for listener in listeners if listener is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def each(event: Event) -> None:
        for listener in present:
            listener(event)

    return each


# --- the seam to HiGHS -------------------------------------------------------------------------

_LISTENER: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "allocator_progress", default=None)
_SIGN: contextvars.ContextVar[float] = contextvars.ContextVar("allocator_sign", default=1.0)


@contextlib.contextmanager
def reporting(listener: Listener | None, sign: float = 1.0) -> Iterator[None]:
    """Solver events of this thread go to `listener` (`sign` -1: a maximized model, whose
    objectives the solver sees negated)."""
    token, sign_token = _LISTENER.set(listener), _SIGN.set(sign)
    try:
        yield
    finally:
        _LISTENER.reset(token)
        _SIGN.reset(sign_token)


_IPM_LINE = re.compile(r"^\s*(\d+)\*?\s+([-+]?\d\.\d+e[-+]\d+)\s+([-+]?\d\.\d+e[-+]\d+)\s")
_SIMPLEX_LINE = re.compile(r"^\s*(\d+)\s+([-+]?\d\.\d+e[-+]\d+)\s+(?:Ph1|Pr|Du)")
_METHOD_LINES = (("IPX model has", "ipm"), ("Interior point solve", "ipm"),
                 ("Using dual simplex", "simplex"), ("Using primal simplex", "simplex"),
                 ("Running crossover", "crossover"), ("PDLP", "pdlp"))


class _HighsWatch:
    """The callbacks of one `highs.run()`: figures to the listener, a few times a second."""

    def __init__(self, listener: Listener, sign: float, mip: bool, method: str) -> None:
        self.listener, self.sign, self.mip = listener, sign, mip
        self.method = "mip" if mip else method
        self.next = 0.0
        self.iterations = 0

    def _send(self, **figures: Any) -> None:
        self.next = time.monotonic() + TICK
        self.listener(Event("solver", method=self.method, **figures))

    def log(self, event: HighsCallbackEvent) -> None:
        line = event.message.rstrip()
        self.listener(Event("log", method=self.method, text=line))
        if self.mip:
            return
        for marker, method in _METHOD_LINES:
            if marker in line:
                self.method = method
        found = _IPM_LINE.match(line) if self.method == "ipm" else None
        if found:
            self._send(iterations=int(found[1]), primal=self.sign * float(found[2]),
                       dual=self.sign * float(found[3]))
            return
        found = _SIMPLEX_LINE.match(line)
        if found:
            self.iterations = int(found[1])
            self._send(iterations=self.iterations, objective=self.sign * float(found[2]))

    def simplex(self, event: HighsCallbackEvent) -> None:
        if time.monotonic() < self.next:  # the cheap way out, ~every iteration
            return
        if self.method not in ("simplex", "crossover"):
            self.method = "simplex"
        self.iterations = int(event.data_out.simplex_iteration_count)
        self._send(iterations=self.iterations)

    def mip_figures(self, event: HighsCallbackEvent) -> None:
        if time.monotonic() < self.next:
            return
        out = event.data_out
        incumbent, bound = float(out.mip_primal_bound), float(out.mip_dual_bound)
        gap = float(out.mip_gap)
        self._send(incumbent=self.sign * incumbent if math.isfinite(incumbent) else None,
                   bound=self.sign * bound if math.isfinite(bound) else None,
                   gap=gap if math.isfinite(gap) and gap >= 0 else None,
                   nodes=int(out.mip_node_count))

    def improving(self, event: HighsCallbackEvent) -> None:
        self.next = 0.0  # a new incumbent is always worth showing
        self.mip_figures(event)


def _option(highs: highspy.Highs, name: str) -> Any:
    """An option's value (highspy answers `(status, value)` in some versions)."""
    value = highs.getOptionValue(name)
    return value[1] if isinstance(value, tuple) else value


@contextlib.contextmanager
def watch_highs(highs: highspy.Highs, mip: bool) -> Iterator[None]:
    """Around `highs.run()`: HiGHS's callbacks to this thread's listener, if there is one.

    The log is switched on for the callback only (`log_to_console` off: nothing on stdout)
    and off again afterwards, so copies made of this Highs later stay silent."""
    listener = _LISTENER.get()
    if listener is None:
        yield
        return
    solver = str(_option(highs, "solver"))
    watch = _HighsWatch(listener, _SIGN.get(), mip, solver if solver != "choose" else "")
    highs.setOptionValue("log_to_console", False)
    highs.setOptionValue("output_flag", True)
    hooks = [(highs.cbLogging, watch.log)]
    if mip:
        hooks += [(highs.cbMipInterrupt, watch.mip_figures),
                  (highs.cbMipLogging, watch.mip_figures),
                  (highs.cbMipImprovingSolution, watch.improving)]
    elif SIMPLEX_CALLBACK:
        hooks += [(highs.cbSimplexInterrupt, watch.simplex)]
    for hook, function in hooks:
        hook.subscribe(function)
    try:
        yield
    finally:
        for hook, function in hooks:
            hook.unsubscribe(function)
        highs.setOptionValue("output_flag", False)


# --- the state every display draws from --------------------------------------------------------


class Board:
    """The latest of everything, kept by the listener, read by a display's thread."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phase = ""
        self.phases: list[str] = []  # the open ones, innermost last
        self.stage: Event | None = None
        self.stage_started = 0.0
        self.figures: Event | None = None
        self.lock = threading.Lock()

    def take(self, event: Event) -> None:
        with self.lock:
            if event.kind == "phase":
                if event.done:
                    if event.phase in self.phases:
                        self.phases.remove(event.phase)
                else:
                    self.phases.append(event.phase)
                self.phase = self.phases[-1] if self.phases else ""
            elif event.kind == "stage":
                if not event.done:
                    self.stage, self.stage_started, self.figures = event, event.at, None
                elif event.index == event.count:  # the last stage ended
                    self.stage = None
            elif event.kind == "solver":
                self.figures = event

    def line(self, now: float | None = None) -> str:
        """Where the run is, in one line of plain text (the heartbeat; the display's title)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            phase, stage, figures = self.phase, self.stage, self.figures
            stage_seconds = now - self.stage_started
        text = f"[{_clock(now - self.started)}] {PHASES.get(phase, phase) or 'starting'}"
        if phase in ("solve", "") and stage is not None:
            method = METHODS.get(figures.method, figures.method) if figures else ""
            text += (f": stage {stage.index} of {stage.count} {stage.stage} "
                     f"({', '.join(w for w in (stage.solver, method) if w)}) "
                     f"{_clock(stage_seconds)}")
            if figures is not None:
                shown = figure_text(figures)
                text += f" · {shown}" if shown else ""
        return text


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _number(value: float) -> str:
    return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def figure_text(event: Event) -> str:
    """The running solve's figures in words: iterations and objectives, or the MIP's gap."""
    parts = []
    if event.incumbent is not None or event.bound is not None:
        if event.incumbent is not None:
            parts.append(f"incumbent {_number(event.incumbent)}")
        if event.bound is not None:
            parts.append(f"bound {_number(event.bound)}")
        if event.gap is not None:
            parts.append(f"gap {event.gap:.2%}")
        if event.nodes:
            parts.append(f"nodes {event.nodes:,}")
        return " · ".join(parts)
    if event.iterations is not None:
        parts.append(f"iteration {event.iterations:,}")
    if event.primal is not None:
        parts.append(f"primal {_number(event.primal)}")
    if event.dual is not None:
        parts.append(f"dual {_number(event.dual)}")
    if event.objective is not None:
        parts.append(f"objective {_number(event.objective)}")
    return " · ".join(parts)


# --- the displays ------------------------------------------------------------------------------


class Display:
    """A listener that shows the run; used as a context manager around it."""

    def __init__(self, verbose: bool = False) -> None:
        self.board = Board()
        self.verbose = verbose

    def __call__(self, event: Event) -> None:
        self.board.take(event)
        if event.kind == "log" and self.verbose:
            self.show_log(event.text)

    def show_log(self, text: str) -> None:
        pass

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        pass


class Quiet(Display):
    """--quiet: nothing while the run goes on."""


class Heartbeat(Display):
    """No terminal (cron, CI, a pipe): one plain line at a steady interval, no control codes,
    so a log shows where a long night went; --verbose adds the solver's log lines."""

    def __init__(self, stream: IO[str], interval: float, verbose: bool = False) -> None:
        super().__init__(verbose)
        self.stream, self.interval = stream, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="progress-heartbeat",
                                        daemon=True)
        self._write_lock = threading.Lock()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def _write(self, text: str) -> None:
        with self._write_lock, contextlib.suppress(OSError, ValueError):
            self.stream.write(text + "\n")
            self.stream.flush()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._write(self.board.line())

    def show_log(self, text: str) -> None:
        self._write(text)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(1.0)


class Live(Display):
    """A terminal: rich's live display, redrawn four times a second from the board (the
    solver's thread only updates the board; drawing happens in rich's own thread)."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        super().__init__(verbose)
        from rich.live import Live as RichLive

        self.console = console
        self.live = RichLive(console=console, get_renderable=self._render,
                             refresh_per_second=4, transient=True,
                             redirect_stdout=False, redirect_stderr=False)
        LIVE.add(self)

    def _render(self) -> RenderableType:
        from rich.text import Text

        board = self.board
        now = time.monotonic()
        with board.lock:
            phase, stage, figures = board.phase, board.stage, board.figures
            stage_seconds = now - board.stage_started
        spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"[int(now * 8) % 10]
        text = Text()
        text.append(f"{spinner} ", style="cyan")
        text.append(PHASES.get(phase, phase) or "starting", style="bold")
        text.append(f"  {_clock(now - board.started)}", style="dim")
        if phase in ("solve", "") and stage is not None:
            method = METHODS.get(figures.method, figures.method) if figures else ""
            text.append(f"\n  stage {stage.index} of {stage.count}: ", style="dim")
            text.append(stage.stage, style="bold")
            text.append(f"  {', '.join(w for w in (stage.solver, method) if w)}  "
                        f"{_clock(stage_seconds)}")
            if figures is not None:
                shown = figure_text(figures)
                if shown:
                    text.append(f"\n  {shown}")
        return text

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if event.kind in ("phase", "stage") and self.live.is_started:
            self.live.refresh()  # each phase and stage drawn at least once

    def __enter__(self) -> Live:
        self.live.start(refresh=True)
        return self

    def show_log(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        """Idempotent; also what an interrupt calls before the process exits."""
        LIVE.discard(self)
        with contextlib.suppress(Exception):
            self.live.stop()  # the cursor back, the display cleared (transient)


LIVE: set[Live] = set()  # running displays: an interrupt stops them before the exit


def stop_displays() -> None:
    """Restore the terminal (cursor, no half-drawn display) before an interrupt exits."""
    for display in list(LIVE):
        display.stop()


def heartbeat_interval(value: float | None = None) -> float:
    """Seconds between heartbeat lines: the option, else $ALLOCATOR_HEARTBEAT, else 30."""
    if value is not None:
        return max(0.05, float(value))
    try:
        return max(0.05, float(os.environ.get(HEARTBEAT_ENV, HEARTBEAT_DEFAULT)))
    except ValueError:
        return HEARTBEAT_DEFAULT


def display_for(console: Console, *, quiet: bool = False, verbose: bool = False,
                interval: float | None = None) -> Display:
    """The display that suits where stderr goes: live on a terminal, heartbeat elsewhere."""
    if quiet:
        return Quiet()
    if console.is_terminal and not console.is_dumb_terminal:
        return Live(console, verbose)
    return Heartbeat(sys.stderr, heartbeat_interval(interval), verbose)


def stage_events(listener: Listener | None, names: list[str], solver: str,
                 on_stage: Callable[..., None] | None = None, sign: float = 1.0,
                 ) -> tuple[Callable[[], None], Callable[..., None] | None]:
    """The stage events of a lexicographic solve, from the stage solver's per-stage callback:
    returns (start: call before solving, on_stage: the callback to pass on, wrapping
    `on_stage`). Stage k+1 starts when stage k has ended."""
    if listener is None:
        return (lambda: None), on_stage
    count = len(names)

    def start() -> None:
        if names:
            listener(Event("stage", stage=names[0], index=1, count=count, solver=solver))

    def ended(backend: Any, stage: Any) -> None:
        if on_stage is not None:
            on_stage(backend, stage)
        index = names.index(stage.name) + 1 if stage.name in names else 0
        objective = getattr(stage, "objective", None)
        listener(Event("stage", stage=stage.name, index=index, count=count, solver=solver,
                       done=True, objective=None if objective is None else sign * objective))
        if 0 < index < count:
            listener(Event("stage", stage=names[index], index=index + 1, count=count,
                           solver=solver))

    return start, ended


def phase_listener(listener: Listener | None) -> Callable[[str, bool], None] | None:
    """For PhaseClock: a phase entered (False) or left (True), as events."""
    if listener is None:
        return None
    return lambda name, done: listener(Event("phase", phase=name, done=done))



def with_phases(inner: Callable[[str, float | None], None] | None, listener: Listener | None,
                ) -> Callable[[str, float | None], None] | None:
    """PhaseClock's listener (a phase starting: None, ending: its seconds), also telling
    `listener` (the display) as phase events."""
    if listener is None:
        return inner

    def both(name: str, seconds: float | None) -> None:
        if inner is not None:
            inner(name, seconds)
        listener(Event("phase", phase=name, done=seconds is not None))

    return both


@contextlib.contextmanager
def solving(listener: Listener | None, names: list[str], solver: str, maximize: bool,
            on_stage: Callable[..., None] | None) -> Iterator[Callable[..., None] | None]:
    """Around the stage solver: HiGHS's callbacks to `listener` (objectives in the user's
    sense), stage 1 started; yields the per-stage callback to pass on (stage k ended, k+1
    started, then `on_stage`'s own work)."""
    sign = -1.0 if maximize else 1.0
    start, staged = stage_events(listener, names, solver, on_stage, sign)
    with reporting(listener, sign):
        start()
        yield staged


def to_log(event: Callable[..., None], interval: float | None = None) -> Listener:
    """Progress into the run's log (allocator/runlog.py `RunLog.event`): each stage as it
    starts and ends (event "stage"), and the running solve's figures (event "solver") once
    every heartbeat interval (the log is kept for run.log: not ten lines a second). Not
    "progress" events: those the log also echoes on stderr, where the display is."""
    board = Board()
    every = heartbeat_interval(interval)
    last = [time.monotonic()]

    def fields(item: Event) -> dict[str, Any]:  # the log's event is the kind
        return {k: v for k, v in item.as_json().items() if k != "kind"}

    def take(item: Event) -> None:
        board.take(item)
        if item.kind == "stage":
            what = f"stage {item.index} of {item.count} {item.stage} ({item.solver})"
            if item.done:
                shown = "" if item.objective is None else f": objective {item.objective:.10g}"
                event("stage", f"{what} done{shown}", **fields(item))
            else:
                event("stage", f"{what} started", **fields(item))
        elif item.kind == "solver" and item.at - last[0] >= every:
            last[0] = item.at
            event("solver", board.line(item.at), **fields(item))

    return take
