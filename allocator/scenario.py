"""The scenario file: typed, validated once, with `--set` overrides and key suggestions.

pydantic does the typing; unknown keys are refused (``extra="forbid"``) and reported with the
nearest valid key, because a misspelt ``time_limt`` silently ignored would cost a night's run.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from allocator.errors import InputError, Problem

TableSpec = str | dict[str, str]

Stage = Literal["service", "cost", "stability"]
OutputFormat = Literal["csv", "parquet", "xlsx", "json"]
STAGES: tuple[Stage, ...] = ("service", "cost", "stability")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ObjectiveConfig(_Strict):
    order: list[Stage] = Field(default_factory=lambda: list(STAGES))
    mode: Literal["lexicographic", "weighted"] = "lexicographic"
    weights: dict[Stage, float] = Field(default_factory=dict)
    rel_tol: float = Field(1e-6, ge=0)
    abs_tol: float = Field(1e-9, ge=0)
    sense: Literal["min", "max"] = "min"

    @field_validator("order")
    @classmethod
    def _unique(cls, order: list[str]) -> list[str]:
        if len(set(order)) != len(order) or not order:
            raise ValueError("stages must be listed once each, and at least one")
        return order


class SolverConfig(_Strict):
    name: str = "highs"
    time_limit: float | None = Field(None, gt=0)
    mip_gap: float | None = Field(None, ge=0)  # None: the solver's own default
    threads: int = Field(1, ge=0)
    seed: int = Field(0, ge=0)
    presolve: bool | None = None
    method: Literal["auto", "simplex", "dual", "primal", "ipm", "pdlp"] = "auto"
    options: dict[str, Any] = Field(default_factory=dict)


class PolicyConfig(_Strict):
    assignment: Literal["fractional", "whole"] = "fractional"
    max_moved_fte: float | None = Field(None, ge=0)
    # network: each demand point served by one site (binary lanes); lanes longer than
    # max_distance (lanes.distance) dropped. funding: non-concave curves allowed (a MIP).
    single_source: bool = False
    max_distance: float | None = Field(None, ge=0)
    allow_nonconcave: bool = False


class OutputConfig(_Strict):
    formats: list[OutputFormat] = Field(default_factory=lambda: list[OutputFormat](["csv"]))
    sensitivity: bool = True

    @field_validator("formats", mode="before")
    @classmethod
    def _one_format(cls, value: Any) -> Any:
        """`--set output.formats=csv` means the list of one format."""
        return [value] if isinstance(value, str) else value

    # The extra re-solves behind one-sided prices, price ranges, the value of one more FTE
    # and ladders: this many per stage, counted (not timed) so the same input gives the same
    # files. Default (None): 200 on models up to 10k nonzeros, 2e6 / nonzeros above (each
    # probe is a re-solve and a full ranging), at least 10. Raise it for a negotiation-grade
    # report.
    sensitivity_probes: int | None = Field(None, ge=0)
    # Only a safety stop: the extras end after this share of each stage's own solve time
    # (at least 20 s) even if probes are left, and the run's notes say so.
    sensitivity_share: float = Field(0.05, ge=0)
    report: bool = True
    # MIP (whole mode): limits are moved by this share (at least 1 unit) and re-solved.
    marginal_step: float = Field(0.01, gt=0)
    marginal_rows: int = Field(30, ge=0)
    # Each price ladder also covers today's right-hand side +- this share (0.2: from 0.8x to
    # 1.2x of today's budget), so a "-10%?" question has its answer in the report.
    ladder_span: float | None = Field(None, ge=0, le=1)
    # The assumed cost per FTE of a new hire in hiring.csv: "median" (the median cost_per_fte
    # of staff with that skill in the site's region, else of the company) or one number.
    hiring_cost: Literal["median"] | float = "median"
    # Also write bundle.tar.gz, all a replay needs (as `solve --bundle`;
    # docs/reproducibility.md).
    bundle: bool = False


class InputConfig(_Strict):
    # Input files larger than this (MB) are refused before they are opened; raise it for a
    # genuinely huge table (docs/input-rules.md).
    max_file_mb: float = Field(2048.0, gt=0)


class StoreConfig(_Strict):
    # Where runs are recorded (docs/run-store.md): a database URL, or a SQLite file or folder
    # (relative to the scenario file). Unset: $ALLOCATOR_STORE, else the user's default store.
    url: str | None = None


class Scenario(_Strict):
    model: Literal["ops", "assignment", "network", "funding"] = "ops"
    name: str = "scenario"

    @field_validator("name", mode="before")
    @classmethod
    def _name_as_text(cls, value: Any) -> Any:
        """A name is text even when it looks like a number (`--set name=2026`)."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else value
    tables: dict[str, TableSpec]
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    solver: SolverConfig = Field(default_factory=SolverConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    # Where relative table paths are resolved; set from the file's location, not by users.
    base_dir: Path = Field(default=Path("."), exclude=True)
    _source: str = PrivateAttr(default="scenario")

    @property
    def source(self) -> str:
        """The scenario file as given, so messages about its contents name it."""
        return self._source


def _valid_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The field names allowed at `path` (a pydantic error location), for suggestions."""
    current: Any = model
    for part in path[:-1]:
        if isinstance(part, int) or current is None:
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        current = annotation if isinstance(annotation, type) and issubclass(
            annotation, BaseModel
        ) else None
    if current is None:
        return []
    return [k for k in current.model_fields if k != "base_dir"]


def _problems(error: ValidationError, source: str,
              overridden: dict[str, str] | None = None) -> list[Problem]:
    """Each validation failure, blamed on the file or on the --set that gave the value."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        given = next((text for dotted, text in (overridden or {}).items()
                      if key == dotted or key.startswith(dotted + ".")), None)
        where = f"--set {given}" if given is not None else source
        if item["type"] == "extra_forbidden":
            valid = _valid_keys(Scenario, loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            choices = f" (valid keys here: {', '.join(valid)})" if valid else ""
            problems.append(Problem(where, f"unknown key '{key}'{hint}{choices}"))
        else:
            problems.append(Problem(where, f"key '{key}': {item['msg']}"))
    return problems


def _parse_value(text: str) -> Any:
    """Read a --set value as TOML would (numbers, booleans, lists), else as a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(source, f"--set '{item}': expected KEY=VALUE"))
            continue
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(Problem(source, f"--set '{item}': '{part}' is not a section"))
                break
        else:
            node[parts[-1]] = _parse_value(value.strip())
    if problems:
        raise InputError(problems)
    return raw


# A scenario file is a page of settings; anything larger is not one (a FIFO or /dev/zero
# given by mistake would otherwise block or fill memory).
MAX_SCENARIO_BYTES = 1 << 20


def _read_scenario_bytes(path: Path) -> bytes:
    """The file's bytes, read only if it is a regular file of sensible size (never blocks)."""
    import stat

    info = path.stat()  # FileNotFoundError is the caller's
    if stat.S_ISDIR(info.st_mode):
        raise InputError("a folder, not a file: give the scenario .toml inside it", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file (a device, FIFO or socket): give a scenario "
                         ".toml file", str(path))
    if info.st_size > MAX_SCENARIO_BYTES:
        raise InputError(f"{info.st_size:,} bytes: a scenario file is a page of settings "
                         f"(at most {MAX_SCENARIO_BYTES:,} bytes)", str(path))
    with path.open("rb") as handle:
        return handle.read(MAX_SCENARIO_BYTES + 1)


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file; every problem is reported at once."""
    path = Path(path)
    source = str(path)
    try:
        text = _read_scenario_bytes(path).decode("utf-8-sig")  # Notepad writes a BOM
    except FileNotFoundError:
        raise InputError(f"scenario file not found: {path}", source) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source) from None
    raw = apply_overrides(raw, overrides or [], source)
    overridden = {item.partition("=")[0].strip(): item for item in overrides or []}
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise InputError(_problems(exc, source, overridden)) from None
    # Relative table paths are read from the folder the scenario file is named in: a
    # symbolic link to a shared template reads the tables beside the link, not the template.
    scenario.base_dir = Path(os.path.abspath(path)).parent
    scenario._source = source
    return scenario


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, but characters past U+FFFF written as they are
    (JSON's surrogate pairs are not valid TOML) and DEL escaped (TOML forbids it raw)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: object) -> str:
    """A bare key where TOML allows one (`time_limit`), else a quoted one."""
    text = str(key)
    return text if text and all(c.isascii() and (c.isalnum() or c in "_-") for c in text) \
        else toml_string(text)


def toml_literal(value: Any) -> str:
    """A value as TOML (what `--set` parses and what written scenarios hold)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_literal(v)}"
                               for k, v in value.items()) + "}"
    return toml_string(str(value))


def scenario_toml(raw: dict[str, Any]) -> str:
    """A scenario file's text from its parsed form: top-level keys, then one [section] per
    table (Python's tomllib reads TOML but does not write it; this is all a scenario needs)."""
    top = [f"{toml_key(k)} = {toml_literal(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    sections = [f"\n[{toml_key(k)}]\n" + "\n".join(f"{toml_key(sk)} = {toml_literal(sv)}"
                                         for sk, sv in v.items())
                for k, v in raw.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(sections) + "\n"
