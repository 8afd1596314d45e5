"""``allocator bench tune``: search a solver's settings, re-check the winner, write best.toml.

The anchor is Gurobi's tuning tool: search the settings that matter, re-run the winner with
other seeds before recommending it, and write a file to paste back. Here, across backends,
and honest about noise.

**Search space.** ``SPACES`` lists, per backend, the settings that matter and the values
tried (method, presolve, MIP heuristics, symmetry and cuts where the backend has them; a
thread axis where the machine has cores to spare per worker). The first value of every axis
is the backend's default, so the all-defaults point is exactly ``Config(solver)``. An axis
acts only on the instance kinds it names (HiGHS's method does nothing on a MIP; it is not
searched there). A TOML file (``--space``) replaces axes or adds solver options.

**Successive halving, not racing.** Racing (F-race, irace) drops a setting when a
statistical test over instances says it is worse; it needs many instances, and a team's
nightly model is often one. Successive halving needs no test and fixes its run count in
advance (deterministic, budgeted by counts): every candidate runs once on every instance;
the best third (``eta`` = 3) go on with three times the replicates on fresh seeds, and so on
until one is left. Bad settings are dropped after one run each, and each drop is written
down. Each solve is capped: a candidate slower than twice the best so far (plus a second)
on an instance cannot win there, so it is stopped at that cap and charged the cap.

**Verified.** Every answer is checked as the bench checks it (the published optimum where
there is one); where none is published, every proven optimum must agree with the default's
on every lexicographic stage. A setting that gives another answer is disqualified, and said
as loudly as a wrong answer.

**Re-checked.** The winner and the default are then run again, side by side, on seeds the
search never used. The gain is the ratio of their median scores, with each side's spread
over the seeds. Only when the winner's slowest seed beats the default's fastest, and the
gain is at least ``min_gain``, is the winner recommended; otherwise the default is, and the
report says the gain was within noise.
"""

from __future__ import annotations

import html
import itertools
import math
import os
import random
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator.bench.cells import decode_stages
from allocator.bench.grid import Cell, Config, Instance
from allocator.bench.schema import CellStatus, Verdict
from allocator.bench.settings_file import toml_key, toml_value
from allocator.bench.summary import RESOLUTION, SHIFT, shifted_geomean
from allocator.bench.verify import ExpectedTable, stage_disagreement
from allocator.errors import InputError, Problem
from allocator.solvers.base import METHODS, Capability

LP, MIP = frozenset({"lp"}), frozenset({"mip"})
BOTH = LP | MIP
CRITERIA = ("sgm", "max")
CONFIRM_SEED = 1000  # seeds of the re-check start here: the search never uses them


@dataclass(frozen=True)
class Axis:
    """One setting searched: its values (the backend's default first) and where it acts."""

    name: str  # "method", "presolve", "threads", or a solver option's own name
    values: tuple[Any, ...]
    kinds: frozenset[str] = BOTH
    why: str = ""
    option: bool = False  # passed through solver.options; None there = not set (default)


SPACES: dict[str, tuple[Axis, ...]] = {
    "highs": (
        Axis("method", ("auto", "dual", "primal", "ipm"), LP,
             "the LP algorithm: the largest lever on LPs (dual simplex slows on long "
             "coupling rows, interior point does not). pdlp is left out: it stops at 1e-4 "
             "accuracy; add it in a space file if that is acceptable."),
        Axis("presolve", (None, False), BOTH, "presolve on (default) or off"),
        Axis("mip_heuristic_effort", (None, 0.3), MIP,
             "HiGHS has no MIP emphasis setting; heuristic effort (default 0.05) is the "
             "nearest lever between proving and finding", option=True),
        Axis("mip_detect_symmetry", (None, False), MIP, "symmetry detection on or off",
             option=True),
    ),
    "glop": (
        Axis("method", ("auto", "dual", "primal"), LP, "GLOP's simplex variant"),
        Axis("presolve", (None, False), LP, "presolve on (default) or off"),
    ),
    "pdlp": (
        Axis("presolve", (None, True), LP, "GLOP's presolve before PDLP, off by default"),
    ),
    "scip": (
        Axis("presolve", (None, False), BOTH, "presolve on (default) or off"),
        Axis("separating/maxrounds", (None, 0), MIP,
             "cutting planes: at every node (default) or at the root only", option=True),
        Axis("heuristics/rens/freq", (None, -1), MIP, "the RENS heuristic on or off",
             option=True),
    ),
    "cbc": (
        Axis("presolve", (None, False), BOTH, "presolve on (default) or off"),
        Axis("cuts", (None, "root", "off"), MIP, "cut generation: everywhere (default), "
             "at the root only, or off", option=True),
        Axis("heuristics", (None, "off"), MIP, "primal heuristics on (default) or off",
             option=True),
    ),
    "cpsat": (
        Axis("linearization_level", (None, 2), MIP,
             "how much of the model CP-SAT linearizes (default 1)", option=True),
    ),
}
_BUILT_IN = {"method", "presolve", "threads"}


# ---------------------------------------------------------------- the space


def default_space(solver: str, spare_threads: int) -> list[Axis]:
    """The documented space of ``solver``, plus a thread axis when each worker has cores to
    spare (several timed solves sharing cores would time the contention, not the setting)."""
    from allocator.solvers.registry import backend_class

    cls = backend_class(solver)
    axes = list(SPACES.get(cls.name, (Axis("presolve", (None, False), BOTH,
                                            "presolve on (default) or off"),)))
    if Capability.THREADS in cls.capabilities and spare_threads > 1:
        axes.append(Axis("threads", (1, spare_threads), BOTH,
                         f"1 thread or {spare_threads} (the cores each worker has)"))
    return axes


def _axis_value(name: str, value: Any) -> Any:
    if name == "presolve":
        if value is None or isinstance(value, bool):
            return value
        words: dict[str, bool | None] = {"auto": None, "default": None, "on": True,
                                         "off": False}
        if str(value).lower() not in words:
            raise ValueError(f"presolve values are auto, on, off, not {value!r}")
        return words[str(value).lower()]
    if name == "method":
        if value not in METHODS:
            raise ValueError(f"method values are {', '.join(METHODS)}, not {value!r}")
        return value
    if name == "threads":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"threads values are whole numbers >= 1, not {value!r}")
        return value
    return None if value == "default" else value


def load_space(path: Path, solver: str, axes: list[Axis]) -> list[Axis]:
    """``axes`` with a space file's changes for ``solver``: ``[SOLVER]`` axes (method,
    presolve, threads) replace the built-in ones; ``[SOLVER.options]`` entries add or replace
    option axes (the value ``"default"`` leaves the option unset). Every problem at once."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"space file not found: {path}", source) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", source) from None
    from allocator.solvers.registry import backend_class

    name = backend_class(solver).name
    section = data.get(solver, data.get(name))
    problems: list[Problem] = []
    if section is None:
        raise InputError(f"no [{solver}] table: the space file changes the axes of one "
                         f"solver per table (it has: {', '.join(data) or 'none'})", source)
    by_name = {a.name: a for a in axes}
    for key, value in section.items():
        values = value if isinstance(value, list) else [value]
        if key == "options":
            if not isinstance(value, dict):
                problems.append(Problem(source, f"[{solver}.options] must be a table"))
                continue
            for option, option_values in value.items():
                listed = option_values if isinstance(option_values, list) else [option_values]
                old = by_name.get(option)
                by_name[option] = Axis(option, tuple(_axis_value(option, v) for v in listed),
                                       old.kinds if old else BOTH,
                                       _why(old, Path(path).name), option=True)
            continue
        if key not in _BUILT_IN:
            import difflib

            close = difflib.get_close_matches(key, sorted(_BUILT_IN | {"options"}), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else \
                "; use method, presolve, threads or an [options] table"
            problems.append(Problem(source, f"[{solver}] unknown key '{key}'{hint}"))
            continue
        try:
            parsed = tuple(_axis_value(key, v) for v in values)
        except ValueError as exc:
            problems.append(Problem(source, f"[{solver}] {key}: {exc}"))
            continue
        old = by_name.get(key)
        by_name[key] = Axis(key, parsed, old.kinds if old else
                            (LP if key == "method" else BOTH), _why(old, Path(path).name))
    if problems:
        raise InputError(problems)
    return list(by_name.values())


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "default" if value is None else str(value)


def _why(old: Axis | None, file: str) -> str:
    return f"{old.why} (values from {file})" if old and old.why else f"from {file}"


def candidates(solver: str, axes: Sequence[Axis], kinds: set[str]) -> list[Config]:
    """Every combination of the axes that act on these instance kinds, folded (settings the
    backend ignores put back to default) and deduplicated; the default comes first."""
    active = [a for a in axes if a.kinds & kinds and len(a.values) > 1]
    default = Config(solver).folded()
    seen: dict[str, Config] = {default.label: default}
    for combo in itertools.product(*(a.values for a in active)):
        fields: dict[str, Any] = {}
        options = []
        for axis, value in zip(active, combo, strict=True):
            if axis.option:
                if value is not None:
                    options.append((axis.name, value))
            elif axis.name == "presolve" or value is not None:
                fields[axis.name] = value
        config = replace(Config(solver), **fields, options=tuple(sorted(options))).folded()
        seen.setdefault(config.label, config)
    return list(seen.values())


# ---------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Budget:
    """What the search may spend: a count of solver runs, or wall-clock seconds."""

    runs: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.runs} runs" if self.runs is not None else f"{self.seconds:g} s"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|min|s|sec)?", re.IGNORECASE)


def parse_budget(text: str) -> Budget:
    """``30m``, ``90s``, ``1h30m``, or ``200 runs`` (a count: deterministic, for tests and CI)."""
    words = text.strip().lower()
    runs = re.fullmatch(r"(\d+)\s*runs?", words)
    if runs:
        count = int(runs.group(1))
        if count < 1:
            raise InputError("--budget: at least 1 run", "--budget")
        return Budget(runs=count)
    parts = _DURATION.findall(words)
    if not parts or _DURATION.sub("", words).strip() or any(not u for _, u in parts[:-1]):
        raise InputError(f"--budget: '{text}' is not a duration (30m, 90s, 1h30m) or a "
                         "count of runs (200 runs)", "--budget")
    scale = {"h": 3600, "m": 60, "min": 60, "s": 1, "sec": 1, "": 60}
    seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds <= 0:
        raise InputError("--budget: the duration must be positive", "--budget")
    return Budget(seconds=seconds)


def halving_rounds(count: int, eta: int) -> list[tuple[int, int]]:
    """(candidates, replicates) per round: all once, then the best 1/eta with eta× the
    replicates, until one is left (that one is not run again: the re-check runs it)."""
    rounds = []
    replicates = 1
    while count > 1:
        rounds.append((count, replicates))
        count = math.ceil(count / eta)
        replicates *= eta
    return rounds


def planned_runs(count: int, eta: int, instances: int, confirm: int) -> int:
    """Solver runs of a whole tune: the rounds, then winner and default on the re-check."""
    return instances * (sum(n * r for n, r in halving_rounds(count, eta)) + 2 * confirm)


# ---------------------------------------------------------------- scoring


def criterion_value(per_instance: pd.Series, criterion: str) -> float:
    """sgm: shifted geometric mean over the instances (shift 10 s, as the bench ranks);
    max: the slowest instance (for a nightly job that must end by a deadline)."""
    if per_instance.empty:
        return math.inf
    values = per_instance.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        return math.inf
    return float(values.max()) if criterion == "max" else shifted_geomean(values, SHIFT)


@dataclass
class Candidate:
    config: Config
    rounds: list[dict[str, Any]] = field(default_factory=list)  # score per round reached
    dropped: int | None = None  # round it was dropped after
    disqualified: str = ""  # why its answers are not to be trusted

    @property
    def label(self) -> str:
        return self.config.label


@dataclass
class TuneResult:
    """What a tune found; the writers and the CLI read it."""

    solver: str
    criterion: str
    instances: list[Instance]
    axes: list[Axis]
    candidates: list[Candidate]
    rows: pd.DataFrame  # every run: label, instance, phase, seed, status, charged time, check
    winner: Config
    default: Config
    recommended: Config
    gain: float  # default's median score / winner's, on the re-check seeds
    default_scores: list[float]
    winner_scores: list[float]
    within_noise: bool
    verdict: str  # one sentence: what is recommended and why
    eta: int
    budget: Budget
    runs: int
    seconds: float
    alarms: list[str]  # wrong or disagreeing answers (disqualified settings, a bad default)
    notes: list[str]


def _charged(rows: pd.DataFrame) -> pd.Series:
    ok = rows["status"] == CellStatus.OPTIMAL.value
    ok &= rows["check"] == ""
    return rows["solver_s"].where(ok, rows["cap_s"]).clip(lower=RESOLUTION)


def score(rows: pd.DataFrame, criterion: str) -> float:
    """A candidate's score over its runs: per instance the median charged time, then the
    criterion over instances."""
    if rows.empty:
        return math.inf
    per_instance = rows.assign(t=_charged(rows)).groupby("instance")["t"].median()
    return criterion_value(per_instance, criterion)


def scores_by_seed(rows: pd.DataFrame, criterion: str) -> list[float]:
    """One score per seed (the criterion over the instances at that seed): the spread."""
    work = rows.assign(t=_charged(rows))
    return [criterion_value(g.set_index("instance")["t"], criterion)
            for _, g in work.groupby("seed", sort=True)]


# ---------------------------------------------------------------- the search


@dataclass
class TuneSettings:
    solver: str = "highs"
    budget: Budget = field(default_factory=lambda: Budget(seconds=1800.0))
    criterion: str = "sgm"
    eta: int = 3
    confirm: int = 5  # re-check seeds for the winner and the default
    min_gain: float = 0.05  # a recommended winner is at least this much faster (5 %)
    timeout: float = 600.0  # hard limit of a baseline cell, seconds
    seed: int = 0  # picks the candidates when the budget cannot run them all
    space: Path | None = None
    workers: int | None = None


class _Runner:
    """Runs batches of cells on one Dask client into one results.csv, rows annotated."""

    def __init__(self, client: Any, folder: Path, expected: ExpectedTable,
                 say: Callable[[str], None], heartbeat: float | None) -> None:
        self.client, self.folder, self.expected = client, folder, expected
        self.say, self.heartbeat = say, heartbeat
        self.runs = 0
        self.started = False
        self.origin = time.perf_counter()  # one heartbeat schedule across the rounds

    def run(self, cells: list[Cell], phase: str, caps: dict[str, float]) -> pd.DataFrame:
        from allocator.bench.runner import run_cells

        done = run_cells(cells, self.folder, self.expected, client=self.client,
                         resume=self.started, heartbeat=self.heartbeat,
                         on_heartbeat=lambda c: self.say(c.line()),
                         heartbeat_origin=self.origin)
        self.started = True
        self.runs += len(done.rows)
        # every column of results.csv, even when no cell got far enough to time anything
        # (an unreadable file: its error row has no solver_s)
        from allocator.bench.schema import COLUMNS

        frame = pd.DataFrame(done.rows)
        frame = frame.reindex(columns=[*frame.columns,
                                       *(c for c in COLUMNS if c not in frame.columns)])
        frame["phase"] = phase
        frame["cap_s"] = frame["instance"].map(caps)
        for column in ("solver_s", "build_s", "seed", "cap_s", "mip_gap"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame


def _check_rows(frame: pd.DataFrame, reference: dict[str, dict[str, float]]) -> pd.Series:
    """'' for an answer that checks out, else why not (wrong, or not the default's optimum)."""
    checks = []
    for row in frame.itertuples():
        if row.verdict == Verdict.WRONG.value:
            checks.append(f"WRONG: {row.verdict_note}")
            continue
        if row.status != CellStatus.OPTIMAL.value or row.verdict == Verdict.CORRECT.value:
            checks.append("")
            continue
        ref = reference.get(str(row.instance))
        values = decode_stages(getattr(row, "stages", ""))
        differ = stage_disagreement(ref, values, str(row.kind or "lp"),
                                    float(row.mip_gap)) if ref else ""
        checks.append(f"DISAGREES with the default's optimum: {differ}" if differ else "")
    return pd.Series(checks, index=frame.index, dtype=str)


def tune(files: Sequence[str | Path], settings: TuneSettings, folder: Path, *,
         expected: ExpectedTable | None = None, client: Any = None,
         say: Callable[[str], None] = lambda _m: None,
         heartbeat: float | None = None) -> TuneResult:
    """Search, re-check, decide; results.csv of every run is written into ``folder``."""
    from allocator.bench.grid import find_instances

    if settings.criterion not in CRITERIA:
        raise InputError(f"--criterion must be one of {', '.join(CRITERIA)}", "--criterion")
    start = time.perf_counter()
    instances = find_instances(list(files))
    table = expected if expected is not None else ExpectedTable.beside(
        i.path for i in instances)
    workers = settings.workers or os.cpu_count() or 1
    spare = max(1, (os.cpu_count() or 1) // workers)
    axes = default_space(settings.solver, spare)
    if settings.space is not None:
        axes = load_space(settings.space, settings.solver, axes)
    default = Config(settings.solver).folded()
    need = len(instances) + planned_runs(2, settings.eta, len(instances), settings.confirm)
    if settings.budget.runs is not None and need > settings.budget.runs:
        raise InputError(f"--budget {settings.budget}: too small for {len(instances)} "
                         f"instance(s): the default's baseline and one candidate against it, "
                         f"re-checked on {settings.confirm} seeds, take {need} runs",
                         "--budget")
    own = client is None
    if own:
        from allocator.bench.runner import local_client

        client = local_client(settings.workers)
    from allocator.bench.runner import close_client

    try:
        runner = _Runner(client, folder, table, say, heartbeat)
        return _search(instances, settings, axes, default, runner, say, start)
    finally:
        if own:
            close_client(client)


def _search(instances: list[Instance], settings: TuneSettings, axes: list[Axis],
            default: Config, runner: _Runner, say: Callable[[str], None],
            start: float) -> TuneResult:
    criterion, eta = settings.criterion, settings.eta
    notes: list[str] = []
    alarms: list[str] = []
    # 1. The default on every instance, uncapped: the kinds, the caps, the reference answers.
    say(f"baseline: the default ({default.label}) on {len(instances)} instance(s)")
    by_name = {i.name: i for i in instances}
    hard = {i.name: settings.timeout for i in instances}
    base = runner.run([Cell(i, default, 0, 0, settings.timeout) for i in instances],
                      "baseline", hard)
    problems = [Problem(str(r.path), f"the default {default.label} could not solve it "
                                     f"({r.status}): {r.message}")
                for r in base.itertuples()
                if r.status in (CellStatus.ERROR.value, CellStatus.CRASHED.value,
                                CellStatus.LOST.value, CellStatus.NOT_APPLICABLE.value)]
    if problems:
        raise InputError(problems)
    reference = {str(r.instance): decode_stages(r.stages) for r in base.itertuples()
                 if r.status == CellStatus.OPTIMAL.value}
    base["check"] = _check_rows(base, {})
    for r in base[base["check"] != ""].itertuples():
        alarms.append(f"the default on {r.instance}: {r.check}")
    kinds = {str(k) for k in base["kind"].dropna() if str(k)} or {"lp"}
    solved = base["status"] == CellStatus.OPTIMAL.value
    base_time = base.set_index("instance")["solver_s"].where(
        solved.to_numpy(), settings.timeout).clip(lower=RESOLUTION)
    build = base.set_index("instance")["build_s"].fillna(0.0)
    # A candidate more than twice as slow as the default cannot win: stopped at the cap.
    caps0 = {name: float(2 * base_time[name] + 1.0) for name in by_name}

    def wall(name: str, cap: float) -> float:
        return cap + 2 * float(build[name]) + 5.0  # loading and forking are not the solve's

    pool = candidates(settings.solver, axes, kinds)
    budget = settings.budget
    if budget.runs is not None:
        others = pool[1:]
        random.Random(settings.seed).shuffle(others)
        kept = len(pool)
        used = len(instances)  # the baseline
        while kept > 2 and used + planned_runs(kept, eta, len(instances),
                                               settings.confirm) > budget.runs:
            kept -= 1
        if kept < len(pool):
            notes.append(f"the budget of {budget} fits {kept} of the {len(pool)} "
                         f"candidates: {kept - 1} drawn at random (seed {settings.seed}) "
                         "besides the default")
            pool = [pool[0], *sorted(others[:kept - 1], key=lambda c: c.label)]
    entrants = [Candidate(c) for c in pool]
    say(f"search space: {len(pool)} candidate(s) from "
        + ", ".join(f"{a.name} [{', '.join(_shown(v) for v in a.values)}]" for a in axes
                    if a.kinds & kinds and len(a.values) > 1)
        + f"; successive halving, eta {eta}")
    rows = [base]
    alive = list(entrants)
    caps = dict(caps0)
    plan = halving_rounds(len(alive), eta)
    for number, (_count, replicates) in enumerate(plan):
        if budget.seconds is not None and time.perf_counter() - start > budget.seconds:
            notes.append(f"the time budget ({budget}) ran out after round {number}: the "
                         "best candidate so far goes to the re-check")
            break
        seeds = [0] if number == 0 else [100 * number + j for j in range(replicates)]
        cells = [Cell(by_name[i.name], c.config, seed, 0, wall(i.name, caps[i.name]))
                 for seed in seeds for i in instances for c in alive
                 if not (number == 0 and c.config == default)]
        say(f"round {number + 1}/{len(plan)}: {len(alive)} candidate(s) × {len(instances)} "
            f"instance(s) × {len(seeds)} seed(s) = {len(cells)} runs")
        frame = runner.run(cells, f"round {number + 1}", caps)
        frame["check"] = _check_rows(frame, reference)
        rows.append(frame)
        everything = pd.concat(rows, ignore_index=True)
        for candidate in alive:
            mine = everything[everything["config"] == candidate.label]
            bad = mine[mine["check"] != ""]
            if len(bad) and not candidate.disqualified:
                candidate.disqualified = f"{bad.iloc[0]['instance']}: {bad.iloc[0]['check']}"
                alarms.append(f"{candidate.label} disqualified on {candidate.disqualified}")
            candidate.rounds.append({
                "round": number + 1, "runs": len(mine),
                "score": math.inf if candidate.disqualified else score(mine, criterion)})
        # Ties (times under the resolution, say) go to the default: no change for nothing.
        ranked = sorted(alive, key=lambda c: (c.rounds[-1]["score"], c.config != default,
                                              c.label))
        keep = max(1, math.ceil(len(alive) / eta))
        for candidate in ranked[keep:]:
            candidate.dropped = number + 1
        alive = [c for c in ranked[:keep] if not c.disqualified] or [entrants[0]]
        # Later rounds cap each instance at twice its best median so far, plus a second.
        latest = everything[everything["config"].isin([c.label for c in alive])]
        best = latest.assign(t=_charged(latest)).groupby(["instance", "config"])["t"] \
            .median().groupby("instance").min()
        caps = {name: min(caps0[name], float(2 * best.get(name, caps0[name]) + 1.0))
                for name in by_name}
    winner = alive[0].config
    everything = pd.concat(rows, ignore_index=True)
    # 2. The re-check: winner and default side by side on seeds the search never used.
    if winner == default:
        notes.append("the search space holds only the default: nothing to try"
                     if len(entrants) == 1 else
                     "the default won the search: nothing to re-check against")
        confirm = everything.iloc[0:0].copy()
        default_scores = winner_scores = [score(everything[everything["config"] ==
                                                           default.label], criterion)]
    else:
        seeds = [CONFIRM_SEED + j for j in range(settings.confirm)]
        cells = [Cell(by_name[i.name], c, seed, 0, wall(i.name, caps0[i.name]))
                 for seed in seeds for i in instances for c in (default, winner)]
        say(f"re-check: {winner.label} against the default on {len(seeds)} fresh seed(s) = "
            f"{len(cells)} runs")
        confirm = runner.run(cells, "re-check", caps0)
        confirm["check"] = _check_rows(confirm, reference)
        for r in confirm[confirm["check"] != ""].itertuples():
            alarms.append(f"re-check, {r.config} on {r.instance} (seed {int(r.seed)}): "
                          f"{r.check}")
        default_scores = scores_by_seed(confirm[confirm["config"] == default.label],
                                        criterion)
        winner_scores = scores_by_seed(confirm[confirm["config"] == winner.label], criterion)
        everything = pd.concat([everything, confirm], ignore_index=True)
    d_med, w_med = float(np.median(default_scores)), float(np.median(winner_scores))
    gain = d_med / w_med if w_med > 0 and math.isfinite(w_med) else 0.0
    clear = bool(max(winner_scores) < min(default_scores)) and len(winner_scores) > 1
    wrong_in_check = bool(len(confirm)) and bool(
        (confirm[confirm["config"] == winner.label]["check"] != "").any())
    name = criterion_name(criterion)
    if winner == default:
        recommended, within_noise = default, True
        verdict = (f"Keep the default ({default.label}): no other setting beat it in the "
                   "search.")
    elif wrong_in_check:
        recommended, within_noise = default, True
        verdict = (f"Keep the default ({default.label}): the winner {winner.label} gave an "
                   "answer that does not check out on the re-check.")
    elif clear and gain >= 1 + settings.min_gain:
        recommended, within_noise = winner, False
        verdict = (f"Use {winner.label}: {gain:.2f}× faster than the default by {name} "
                   f"({w_med:.3g} s [{min(winner_scores):.3g}–{max(winner_scores):.3g}] "
                   f"against {d_med:.3g} s [{min(default_scores):.3g}–"
                   f"{max(default_scores):.3g}] over {len(winner_scores)} fresh seeds).")
    else:
        recommended, within_noise = default, True
        verdict = (f"Keep the default ({default.label}): {winner.label} won the search, but "
                   f"on fresh seeds its gain ({gain:.2f}×: {w_med:.3g} s "
                   f"[{min(winner_scores):.3g}–{max(winner_scores):.3g}] against "
                   f"{d_med:.3g} s [{min(default_scores):.3g}–{max(default_scores):.3g}]) "
                   f"is within noise (the ranges overlap, or less than "
                   f"{settings.min_gain:.0%}).")
    if budget.seconds is not None and time.perf_counter() - start > budget.seconds:
        notes.append(f"the tune took {time.perf_counter() - start:.0f} s, past the budget of "
                     f"{budget}: the re-check always runs")
    return TuneResult(
        settings.solver, criterion, instances, axes, entrants, everything, winner, default,
        recommended, gain, default_scores, winner_scores, within_noise, verdict, eta, budget,
        runner.runs, time.perf_counter() - start, alarms, notes)


def criterion_name(criterion: str) -> str:
    return ("shifted geometric mean of the solver's time" if criterion == "sgm"
            else "the slowest instance's solver time")


# ---------------------------------------------------------------- outputs


def best_toml(result: TuneResult) -> str:
    """best.toml: comments that say where it came from, then a [solver] section that
    ``allocator solve --solver-settings`` accepts as is, or to paste into a scenario."""
    config = result.recommended
    names = ", ".join(i.name for i in result.instances)
    lines = [
        f"# allocator bench tune: {result.solver} on {len(result.instances)} instance(s) "
        f"({names}), criterion {result.criterion} ({criterion_name(result.criterion)}).",
        *[f"# {part}" for part in _wrap(result.verdict, 88)],
        "# Use: allocator solve SCENARIO --solver-settings best.toml, or paste [solver] into "
        "the scenario.",
        "", "[solver]", f"name = {toml_value(config.solver)}",
    ]
    if config.method != "auto":
        lines.append(f"method = {toml_value(config.method)}")
    if config.presolve is not None:
        lines.append(f"presolve = {toml_value(config.presolve)}")
    if config.threads != 1:
        lines.append(f"threads = {config.threads}")
    if config.options:
        lines += ["", "[solver.options]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in config.options]
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return out + ([line] if line else [])


def rounds_table(result: TuneResult) -> pd.DataFrame:
    """One row per candidate: its score after each round it reached, and its fate."""
    rows = []
    for c in result.candidates:
        row: dict[str, Any] = {"candidate": c.label}
        for r in c.rounds:
            row[f"round {r['round']} s"] = r["score"]
            row[f"round {r['round']} runs"] = r["runs"]
        row["fate"] = (f"DISQUALIFIED ({c.disqualified})" if c.disqualified
                       else f"dropped after round {c.dropped}" if c.dropped
                       else "winner" if c.config == result.winner else "kept")
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in [c for c in frame.columns if c.endswith(" runs")]:
        frame[column] = frame[column].astype("Int64")
    first = [c for c in frame.columns if c.startswith("round 1 s")]
    return frame.sort_values(first or ["candidate"], kind="stable") if first else frame


def runs_table(result: TuneResult) -> pd.DataFrame:
    columns = ["phase", "config", "instance", "seed", "status", "solver_s", "cap_s", "check",
               "verdict", "stages", "wall_s", "hwm_mb", "base_mb", "key"]
    frame = result.rows.copy()
    # What the tune checked: the published optimum, else the default's optimum per stage.
    check = frame["check"].fillna("")
    frame["check"] = check.where((check != "") | (frame["status"] != CellStatus.OPTIMAL.value),
                                 "ok")
    return frame[[c for c in columns if c in frame.columns]]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else "∞" if math.isinf(value) else f"{value:.4g}"
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            text = _fmt(value)
            alarm = any(w in text for w in ("WRONG", "DISAGREE", "DISQUALIFIED"))
            css = ' class="wrong"' if alarm else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(result: TuneResult, toml_text: str) -> str:
    from allocator.bench.report import _CSS

    confirm = pd.DataFrame({
        "seed": [CONFIRM_SEED + j for j in range(len(result.winner_scores))],
        f"default ({result.default.label}) s": result.default_scores,
        f"winner ({result.winner.label}) s": result.winner_scores,
    }) if result.winner != result.default else pd.DataFrame()
    space = pd.DataFrame([{"setting": a.name, "values": ", ".join(_shown(v) for v in a.values),
        "acts on": "/".join(sorted(a.kinds)), "why": a.why} for a in result.axes])
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>allocator bench tune</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>Tuning {html.escape(result.solver)}: {len(result.instances)} instance(s)</h1>",
    ]
    if result.alarms:
        items = "".join(f"<li>{html.escape(a)}</li>" for a in result.alarms)
        parts.append(f"<div class='alarm'><h2>{len(result.alarms)} wrong or disputed "
                     f"answer(s)</h2><ul>{items}</ul></div>")
    parts += [
        f"<h2>Recommendation</h2><p><b>{html.escape(result.verdict)}</b></p>",
        f"<pre>{html.escape(toml_text)}</pre>",
        f"<p>{result.runs} solver runs in {result.seconds:.0f} s; budget {result.budget}; "
        f"criterion: {html.escape(criterion_name(result.criterion))}; times under "
        f"{RESOLUTION:g} s count as {RESOLUTION:g} s. Instances: "
        f"{html.escape(', '.join(i.name for i in result.instances))}.</p>",
    ]
    if len(confirm):
        parts += ["<h2>Re-check on fresh seeds</h2>", _table(confirm),
                  f"<p>Gain {result.gain:.3g}× (the default's median score over the "
                  f"winner's); {'within noise' if result.within_noise else 'clear'}.</p>"]
    parts += [
        "<h2>Search: successive halving</h2>",
        f"<p>Every candidate ran once on every instance; after each round the best 1/"
        f"{result.eta} went on with {result.eta}× the seeds. Each solve was capped at twice "
        "the best time so far on its instance plus one second (the default's time in the "
        "first round) and charged the cap if stopped there. Answers that do not match the "
        "published optimum or the default's optimum (stage by stage) disqualify a setting."
        "</p>",
        _table(rounds_table(result)),
        "<h2>Search space</h2>", _table(space),
    ]
    if result.notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in
                                           result.notes] + ["</ul>"]
    parts += ["<h2>Every run</h2>", _table(runs_table(result)), "</body></html>"]
    return "\n".join(parts)


def write_tune(result: TuneResult, folder: Path) -> list[Path]:
    """best.toml, report.html and tune.csv beside results.csv in ``folder``."""
    text = best_toml(result)
    (folder / "best.toml").write_text(text, encoding="utf-8")
    (folder / "report.html").write_text(to_html(result, text), encoding="utf-8")
    rounds_table(result).to_csv(folder / "tune.csv", index=False)
    return [folder / "best.toml", folder / "report.html", folder / "tune.csv"]
