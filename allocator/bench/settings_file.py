"""``allocator solve --solver-settings best.toml``: a settings file's ``[solver]`` section as the
``--set solver.KEY=VALUE`` overrides the solve command already understands.

Why overrides and not a second settings path: the scenario file, ``--set`` and this file then
go through the same validation (unknown keys with the nearest valid one suggested, typed
values), and a later ``--set`` or ``--solver`` still wins over the file. Options are passed
one key at a time (``solver.options.KEY``), so the scenario's other solver options stay.

Light on purpose (tomllib only): ``allocator solve`` imports it, and must not pay for the
bench's pandas or Dask.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from allocator.errors import InputError, Problem

# The keys of a scenario's [solver] section (allocator.scenario.SolverConfig).
SOLVER_KEYS = ("name", "time_limit", "mip_gap", "threads", "seed", "presolve", "method",
               "options")


def toml_value(value: Any) -> str:
    """A value as TOML source, as ``--set`` reads it back (numbers, booleans, strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no TOML form here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: quotes, backslashes, \uXXXX escaped
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ValueError(f"{value!r} is not a number, boolean, string or list")


def toml_key(key: str) -> str:
    """A bare key where TOML allows one, else a quoted key (SCIP's ``separating/maxrounds``)."""
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def settings_overrides(path: Path) -> list[str]:
    """The ``[solver]`` section of ``path`` as ``solver.KEY=VALUE`` overrides; every problem
    with the file reported at once."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"solver settings file not found: {path}", source) from None
    except IsADirectoryError:
        raise InputError("a folder, not a settings file (give its best.toml)", source) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", source) from None
    section = data.get("solver")
    if not isinstance(section, dict):
        raise InputError("no [solver] section: a settings file (like the best.toml that "
                         "`allocator bench tune` writes) holds the solver's settings under "
                         "[solver]", source)
    problems: list[Problem] = []
    overrides: list[str] = []
    for key, value in section.items():
        if key not in SOLVER_KEYS:
            import difflib

            close = difflib.get_close_matches(key, SOLVER_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else \
                f"; known: {', '.join(SOLVER_KEYS)}"
            problems.append(Problem(source, f"[solver] unknown key '{key}'{hint}"))
            continue
        if key == "options":
            if not isinstance(value, dict):
                problems.append(Problem(source, "[solver] options must be a table "
                                                "([solver.options])"))
                continue
            for name, option in value.items():
                if "." in name:
                    problems.append(Problem(source, f"[solver.options] '{name}': an option "
                                                    "name with a dot cannot be passed on"))
                    continue
                try:
                    overrides.append(f"solver.options.{name}={toml_value(option)}")
                except ValueError as exc:
                    problems.append(Problem(source, f"[solver.options] '{name}': {exc}"))
            continue
        try:
            overrides.append(f"solver.{key}={toml_value(value)}")
        except ValueError as exc:
            problems.append(Problem(source, f"[solver] '{key}': {exc}"))
    problems += _value_problems(source, {k: v for k, v in section.items()
                                         if k in SOLVER_KEYS and k != "options"})
    if problems:
        raise InputError(problems)
    return overrides


def _value_problems(source: str, values: dict[str, Any]) -> list[Problem]:
    """The section's values checked here, so a wrong one is said against this file (the
    scenario's check would blame a `--set solver.KEY=...` the user never typed)."""
    from pydantic import ValidationError

    from allocator.scenario import SolverConfig

    try:
        SolverConfig.model_validate(values)
    except ValidationError as exc:
        return [Problem(source, f"[solver] {'.'.join(str(p) for p in err['loc'])}: "
                                f"{err['msg']}, found {err.get('input')!r}")
                for err in exc.errors()]
    return []
