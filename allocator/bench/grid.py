"""The benchmark grid: instances × configurations × replicates, each replicate one cell.

A configuration is a solver plus the shared ``SolverSettings`` minus the seed: seeds and
repeats are *replicates* of one configuration, so their spread is the noise that ``compare``
must see past, not a different configuration to rank.

Settings a backend cannot act on are folded back to their default before cells are made
(GLOP has no interior point method; SCIP here takes no thread count): otherwise the grid
would time the same solve twice under two names and call the difference a finding.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import itertools
import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from allocator.errors import InputError, Problem
from allocator.solvers.base import METHODS, Capability, SolverSettings, is_method

# Which `method` values each backend acts on (the others ignore the field; see solvers/).
_METHODS_HONOURED: dict[str, frozenset[str]] = {
    "highs": frozenset(METHODS),
    "glop": frozenset({"auto", "simplex", "dual", "primal"}),
}
INSTANCE_SUFFIXES = (".mps", ".mps.gz", ".lp", ".toml")
DEFAULT_TIMEOUT = 600.0  # seconds, for a cell whose configuration sets no time limit


@dataclass(frozen=True)
class Config:
    """One solver with one setting of every knob but the seed; hashable, so it can key tables."""

    solver: str
    threads: int = 1
    time_limit: float | None = None
    mip_gap: float = 1e-4
    presolve: bool | None = None
    method: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """A stable name: the solver, then only what differs from the defaults.

        Stable across runs so that ``compare`` can match configurations by name; it does not
        depend on which other configurations share the grid.
        """
        parts = []
        if self.method != "auto":
            parts.append(f"method={self.method}")
        if self.presolve is not None:
            parts.append(f"presolve={'on' if self.presolve else 'off'}")
        if self.threads != 1:
            parts.append(f"threads={self.threads}")
        if self.mip_gap != 1e-4:
            parts.append(f"gap={self.mip_gap:g}")
        if self.time_limit is not None:
            parts.append(f"tl={self.time_limit:g}")
        parts.extend(f"{k}={v}" for k, v in self.options)
        return f"{self.solver}[{','.join(parts)}]" if parts else self.solver

    def settings(self, seed: int) -> SolverSettings:
        if not is_method(self.method):  # never, once folded: folded() keeps known methods only
            raise ValueError(f"unknown solver method {self.method!r}")
        return SolverSettings(
            time_limit=self.time_limit, threads=self.threads, seed=seed, mip_gap=self.mip_gap,
            presolve=self.presolve, method=self.method, options=dict(self.options),
        )

    def folded(self) -> Config:
        """This configuration with the settings its backend ignores put back to default."""
        from allocator.solvers.registry import backend_class

        cls = backend_class(self.solver)
        honoured = _METHODS_HONOURED.get(cls.name, frozenset({"auto"}))
        method = self.method if self.method in honoured else "auto"
        threads = self.threads if Capability.THREADS in cls.capabilities else 1
        return replace(self, method=method, threads=threads)


@dataclass(frozen=True)
class Instance:
    """A benchmark instance: an MPS/LP file or a scenario file, with a short unique name."""

    name: str
    path: Path

    @property
    def kind(self) -> str:
        return "scenario" if self.path.suffix == ".toml" else "mps"


@dataclass(frozen=True)
class Cell:
    """One process to run: an instance, a configuration, a seed and a repeat number.

    ``fault`` is a test-only hook (never set by the CLI or a grid file): ``exit-cell`` makes
    the cell process die, ``hang-cell`` makes it sleep past its timeout, and
    ``exit-worker-once:PATH`` kills the Dask worker the first time (PATH marks that it did).
    """

    instance: Instance
    config: Config
    seed: int = 0
    repeat: int = 0
    timeout: float = DEFAULT_TIMEOUT
    fault: str | None = None

    @property
    def key(self) -> str:
        """Names the cell across runs (for --resume): instance file, settings, replicate."""
        payload = json.dumps([str(self.instance.path.resolve()), self.config.label, self.seed,
                              self.repeat])
        return hashlib.sha1(payload.encode()).hexdigest()[:16]

    def spec(self) -> dict[str, Any]:
        """What the cell process needs, as JSON-able data (it crosses process boundaries)."""
        return {
            "key": self.key, "instance": self.instance.name,
            "path": str(self.instance.path.resolve()), "kind": self.instance.kind,
            "config": asdict(self.config) | {"options": dict(self.config.options)},
            "label": self.config.label, "seed": self.seed, "repeat": self.repeat,
            "timeout": self.timeout, "fault": self.fault,
        }


@dataclass
class Grid:
    """The axes of a grid; each list is one axis, and configurations are their product."""

    solvers: list[str] = field(default_factory=lambda: ["highs"])
    threads: list[int] = field(default_factory=lambda: [1])
    time_limits: list[float | None] = field(default_factory=lambda: [None])
    mip_gaps: list[float] = field(default_factory=lambda: [1e-4])
    presolve: list[bool | None] = field(default_factory=lambda: [None])
    methods: list[str] = field(default_factory=lambda: ["auto"])
    seeds: list[int] = field(default_factory=lambda: [0])
    repeats: int = 1
    timeout: float | None = None  # None: twice the time limit plus 30 s, else DEFAULT_TIMEOUT
    extra: list[Config] = field(default_factory=list)  # [[config]] tables of a grid file
    instances: list[str] = field(default_factory=list)  # globs from a grid file

    def configs(self) -> list[Config]:
        """The product of the axes plus the explicit configurations, folded and deduplicated."""
        product = [
            Config(solver, threads, tl, gap, pre, method)
            for solver, threads, tl, gap, pre, method in itertools.product(
                self.solvers, self.threads, self.time_limits, self.mip_gaps, self.presolve,
                self.methods)
        ]
        seen: dict[str, Config] = {}
        for config in [*product, *self.extra]:
            folded = config.folded()
            seen.setdefault(folded.label, folded)
        return list(seen.values())

    def timeout_for(self, config: Config) -> float:
        if self.timeout is not None:
            return self.timeout
        if config.time_limit is not None:
            return 2 * config.time_limit + 30
        return DEFAULT_TIMEOUT

    def cells(self, instances: Sequence[Instance]) -> list[Cell]:
        """Every cell, ordered replicate-major so early results cover every instance once."""
        configs = self.configs()
        return [
            Cell(instance, config, seed, repeat, self.timeout_for(config))
            for repeat in range(self.repeats)
            for seed in self.seeds
            for instance in instances
            for config in configs
        ]


# ---------------------------------------------------------------- parsing the axes


def parse_presolve(word: str) -> bool | None:
    values: dict[str, bool | None] = {"auto": None, "on": True, "off": False, "true": True,
                                      "false": False}
    key = word.strip().lower()
    if key not in values:
        raise ValueError(f"presolve must be auto, on or off, not {word!r}")
    return values[key]


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _validate_solvers(names: Iterable[str], source: str) -> list[Problem]:
    from allocator.errors import CapabilityError
    from allocator.solvers.registry import backend_class

    problems = []
    for name in names:
        try:
            backend_class(name)
        except CapabilityError as exc:
            problems.append(Problem(source, str(exc)))
    return problems


_GRID_KEYS = {
    "solver": "solvers", "solvers": "solvers", "threads": "threads",
    "time_limit": "time_limits", "mip_gap": "mip_gaps", "gap": "mip_gaps",
    "presolve": "presolve", "method": "methods", "methods": "methods",
}
_TOP_KEYS = {"grid", "config", "seeds", "repeats", "timeout", "instances"}
_CONFIG_KEYS = {"solver", "threads", "time_limit", "mip_gap", "presolve", "method", "options"}


def _unknown(key: str, known: Iterable[str], where: str, source: str) -> Problem:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(known))}"
    return Problem(source, f"unknown key '{key}' in {where}{hint}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _presolve_value(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return parse_presolve(str(value))


def load_grid(path: Path) -> Grid:
    """Read a grid file (TOML), collecting every problem before refusing it.

    ``[grid]`` holds the axes (solver, threads, time_limit, mip_gap, presolve, method — a
    value or a list each); ``[[config]]`` tables add single configurations (with ``options``
    passed through to the solver); ``seeds``, ``repeats``, ``timeout`` and ``instances``
    (globs, relative to the file) sit at the top.
    """
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"grid file not found: {path}", source) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source) from None
    problems = [_unknown(k, _TOP_KEYS, "the grid file", source) for k in data
                if k not in _TOP_KEYS]
    grid = Grid()
    axes = data.get("grid", {})
    for key, value in axes.items():
        if key not in _GRID_KEYS:
            problems.append(_unknown(key, _GRID_KEYS, "[grid]", source))
            continue
        attr = _GRID_KEYS[key]
        try:
            values = _as_list(value)
            if attr == "presolve":
                values = [_presolve_value(v) for v in values]
            elif attr == "threads":
                values = [int(v) for v in values]
            elif attr in ("time_limits", "mip_gaps"):
                values = [None if v in ("none", "") else float(v) for v in values]
            elif attr == "methods":
                bad = [v for v in values if v not in METHODS]
                if bad:
                    raise ValueError(f"method must be one of {', '.join(METHODS)}, not {bad}")
            setattr(grid, attr, values)
        except (TypeError, ValueError) as exc:
            problems.append(Problem(source, f"[grid] {key}: {exc}"))
    problems += _validate_solvers(grid.solvers, source)
    for number, table in enumerate(data.get("config", []), start=1):
        where = f"[[config]] number {number}"
        bad = [k for k in table if k not in _CONFIG_KEYS]
        problems += [_unknown(k, _CONFIG_KEYS, where, source) for k in bad]
        if "solver" not in table:
            problems.append(Problem(source, f"{where} names no solver"))
            continue
        problems += _validate_solvers([table["solver"]], source)
        if bad:
            continue
        try:
            grid.extra.append(Config(
                solver=str(table["solver"]), threads=int(table.get("threads", 1)),
                time_limit=None if table.get("time_limit") is None
                else float(table["time_limit"]),
                mip_gap=float(table.get("mip_gap", 1e-4)),
                presolve=_presolve_value(table.get("presolve")),
                method=str(table.get("method", "auto")),
                options=tuple(sorted(dict(table.get("options", {})).items())),
            ))
        except (TypeError, ValueError) as exc:
            problems.append(Problem(source, f"{where}: {exc}"))
    try:
        grid.seeds = [int(s) for s in _as_list(data.get("seeds", [0]))]
        grid.repeats = int(data.get("repeats", 1))
        grid.timeout = None if data.get("timeout") is None else float(data["timeout"])
    except (TypeError, ValueError) as exc:
        problems.append(Problem(source, f"seeds/repeats/timeout: {exc}"))
    base = Path(path).parent
    grid.instances = [str(p) if Path(p).is_absolute() else str(base / p)
                      for p in _as_list(data.get("instances", []))]
    if problems:
        raise InputError(problems)
    return grid


# ---------------------------------------------------------------- instances


def _instance_name(path: Path) -> str:
    name = path.name
    for suffix in INSTANCE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if path.suffix == ".toml" and name == "scenario":
        name = path.parent.name  # a scenario folder is named by its folder
    return name


def find_instances(patterns: Sequence[str | Path]) -> list[Instance]:
    """Files, folders (their instance files) and globs; names made unique by their folder.

    Every pattern that matches nothing is reported at once, so a typo in the third of five
    globs does not cost a rerun per typo.
    """
    problems: list[Problem] = []
    paths: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if any(ch in text for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True))
            found = [p for p in found if p.is_file() and p.name.endswith(INSTANCE_SUFFIXES)]
        elif Path(text).is_dir():
            found = sorted(p for p in Path(text).iterdir()
                           if p.is_file() and p.name.endswith(INSTANCE_SUFFIXES))
        elif Path(text).is_file():
            found = [Path(text)]
        else:
            found = []
        if not found:
            problems.append(Problem(text, "no instance file here (.mps, .mps.gz, .lp or a "
                                          "scenario .toml)"))
        paths.extend(found)
    if problems:
        raise InputError(problems)
    unique: dict[Path, None] = dict.fromkeys(p.resolve() for p in paths)
    resolved = list(unique)
    names = [_instance_name(p) for p in resolved]
    clashes = {n for n in names if names.count(n) > 1}
    return [
        Instance(f"{p.parent.name}/{n}" if n in clashes else n, p)
        for p, n in zip(resolved, names, strict=True)
    ]
