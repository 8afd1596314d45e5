"""Answers checked against published optima: correct, wrong or unproven, never just trusted.

A solver's "optimal" is a claim. HiGHS 1.16 claims optimal at -41 on MIPLIB's noswot, whose
optimum is -43; a benchmark that ranks by status would rank that as a win. So every answer
is compared with the value the literature publishes, at 1e-6 relative for an LP and at
``max(1e-4, mip_gap)`` for a MIP (a solver told to stop at a 1 % gap is right within 1 %).

Objective constants. An MPS RHS entry on the objective row is an objective constant (netlib
e226 sets -7.113). allocator reads it as HiGHS does, as *minus* an objective offset, so e226's
optimum reads -11.6389; the netlib readme's -18.7519 leaves the constant out. When an
``expected.csv`` note says so (it mentions the constant or offset and the value solvers
report), that reported value is accepted too, and the row says which one matched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import SupportsFloat

import pandas as pd

from allocator.bench.schema import CellStatus, Verdict
from allocator.errors import InputError, Problem

LP_TOLERANCE = 1e-6
MIP_TOLERANCE = 1e-4
PUBLISHED = "published"
ALTERNATE = "alternate (expected.csv note: objective constant included)"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_MENTIONS_CONSTANT = re.compile(r"\b(objective )?(offset|constant)\b", re.IGNORECASE)
_REPORTED = re.compile(rf"\breport(?:s|ed)?\s+({_NUMBER})", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """A value an answer may match, and what matching it means."""

    value: float
    label: str


@dataclass(frozen=True)
class Known:
    """What is published for one instance file."""

    file: str
    path: Path
    optimum: float | None
    lower: float | None
    upper: float | None
    sense: str | None
    note: str
    source: str

    @property
    def targets(self) -> list[Target]:
        """The published optimum first, then any alternate the note vouches for."""
        if self.optimum is None:
            return []
        targets = [Target(self.optimum, PUBLISHED)]
        if _MENTIONS_CONSTANT.search(self.note):
            for match in _REPORTED.finditer(self.note):
                value = float(match.group(1))
                if not math.isclose(value, self.optimum, rel_tol=1e-12):
                    targets.append(Target(value, ALTERNATE))
        return targets


@dataclass(frozen=True)
class Check:
    """The verdict on one answer, with the numbers behind it."""

    verdict: Verdict
    expected: float = float("nan")
    matched: str = ""
    rel_err: float = float("nan")
    note: str = ""


def _float(value: str | SupportsFloat | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


class ExpectedTable:
    """Published answers from one or more ``expected.csv`` files, looked up by instance path.

    The ``file`` column is resolved against the CSV's own folder; an instance found there is
    matched by path, otherwise by its file name when only one CSV row has that name. A file
    with several rows (OR-Library's multi-instance files) is not an instance of its own and
    is skipped.
    """

    def __init__(self, rows: Iterable[Known] = ()) -> None:
        self.by_path: dict[Path, Known] = {}
        self.by_name: dict[str, list[Known]] = {}
        for known in rows:
            self.add(known)

    def add(self, known: Known) -> None:
        self.by_path[known.path] = known
        self.by_name.setdefault(known.file, []).append(known)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> ExpectedTable:
        table = cls()
        problems: list[Problem] = []
        for path in paths:
            try:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (OSError, pd.errors.ParserError) as exc:
                problems.append(Problem(str(path), f"cannot read: {exc}"))
                continue
            missing = [c for c in ("file",) if c not in frame.columns]
            if missing or not ({"optimum", "lower_bound", "upper_bound"} & set(frame.columns)):
                problems.append(Problem(str(path), "needs a 'file' column and an 'optimum' "
                                        "(or lower_bound/upper_bound) column; it has "
                                        f"{', '.join(frame.columns)}"))
                continue
            counts = frame["file"].value_counts()
            for _, row in frame.iterrows():
                if counts[row["file"]] > 1:
                    continue  # several instances in one file: not an instance to match
                note = str(row.get("note", row.get("notes", "")) or "")
                table.add(Known(
                    file=Path(row["file"]).name,
                    path=(Path(path).parent / row["file"]).resolve(),
                    optimum=_float(row.get("optimum")),
                    lower=_float(row.get("lower_bound")),
                    upper=_float(row.get("upper_bound")),
                    sense=(str(row.get("sense", "")).strip().lower() or None),
                    note=note,
                    source=f"{path}: {row.get('source', '')}".rstrip(": "),
                ))
        if problems:
            raise InputError(problems)
        return table

    @classmethod
    def beside(cls, instance_paths: Iterable[Path]) -> ExpectedTable:
        """The default: each instance's folder's own expected.csv, where there is one."""
        csvs = sorted({p.resolve().parent / "expected.csv" for p in instance_paths})
        return cls.load([c for c in csvs if c.is_file()])

    def lookup(self, path: Path) -> Known | None:
        resolved = Path(path).resolve()
        if resolved in self.by_path:
            return self.by_path[resolved]
        same_name = self.by_name.get(resolved.name, [])
        return same_name[0] if len(same_name) == 1 else None

    def __len__(self) -> int:
        return len(self.by_path)


def tolerance(kind: str, mip_gap: float) -> float:
    """Relative tolerance of a match: tight for an LP, the solver's own gap for a MIP."""
    return LP_TOLERANCE if kind != "mip" else max(MIP_TOLERANCE, float(mip_gap))


def _rel(value: float, target: float) -> float:
    return abs(value - target) / max(1.0, abs(target))


def check(
    known: Known | None, status: CellStatus, objective: float, bound: float, kind: str,
    mip_gap: float, maximize: bool = False,
) -> Check:
    """The verdict on one answer (objective and bound in the published sense)."""
    if status is CellStatus.NOT_APPLICABLE:
        return Check(Verdict.NOT_APPLICABLE)
    if known is None:
        return Check(Verdict.UNKNOWN)
    if known.sense in ("min", "max"):
        maximize = known.sense == "max"
    tol = tolerance(kind, mip_gap)
    targets = known.targets
    if not targets:  # only bounds are published
        return _check_bounds(known, status, objective, tol, maximize)
    published = targets[0].value
    errors = [(_rel(objective, t.value), t) for t in targets] if math.isfinite(objective) else []
    best_err, best = min(errors, key=lambda e: e[0]) if errors else (float("nan"), targets[0])
    if status in (CellStatus.INFEASIBLE, CellStatus.UNBOUNDED):
        return Check(Verdict.WRONG, published, "", float("nan"),
                     f"reports {status.value}, but {published:.10g} is published")
    if status is CellStatus.OPTIMAL:
        if best_err <= tol:
            return Check(Verdict.CORRECT, best.value, best.label, best_err)
        return Check(Verdict.WRONG, published, "", _rel(objective, published),
                     f"claims OPTIMAL at {objective:.10g}; published {published:.10g} "
                     f"(relative error {_rel(objective, published):.2e}, tolerance {tol:g})")
    # Not proven: still wrong if the value beats every target, or the bound cuts them all off.
    sign = -1.0 if maximize else 1.0  # minimization form: smaller is better
    lowest = min(sign * t.value for t in targets)
    highest = max(sign * t.value for t in targets)
    slack = tol * max(1.0, abs(published))
    if math.isfinite(objective) and sign * objective < lowest - slack:
        return Check(Verdict.WRONG, published, "", best_err,
                     f"{status.value} value {objective:.10g} is better than the published "
                     f"optimum {published:.10g}")
    if math.isfinite(bound) and sign * bound > highest + slack:
        return Check(Verdict.WRONG, published, "", best_err,
                     f"bound {bound:.10g} cuts off the published optimum {published:.10g}")
    return Check(Verdict.UNPROVEN, published, "", best_err)


def _check_bounds(
    known: Known, status: CellStatus, objective: float, tol: float, maximize: bool
) -> Check:
    low, high = known.lower, known.upper
    if status is not CellStatus.OPTIMAL or not math.isfinite(objective):
        return Check(Verdict.UNPROVEN if low is not None or high is not None
                     else Verdict.UNKNOWN)
    slack = tol * max(1.0, abs(objective))
    if (low is not None and objective < low - slack) or (
            high is not None and objective > high + slack):
        return Check(Verdict.WRONG, float("nan"), "", float("nan"),
                     f"claims OPTIMAL at {objective:.10g}, outside the published bounds "
                     f"[{low}, {high}]")
    if low is not None and high is not None and abs(high - low) <= slack:
        return Check(Verdict.CORRECT, low, PUBLISHED, _rel(objective, low))
    return Check(Verdict.UNKNOWN, note="within the published bounds; the optimum is open")


# ---------------------------------------------------------------- agreement across solvers

LATER_STAGE_TOLERANCE = 1e-4  # a later stage's optimum moves within the earlier stages' holds


def _stage_values(row: pd.Series) -> dict[str, float]:
    from allocator.bench.cells import decode_stages

    values = decode_stages(row.get("stages"))
    if not values and math.isfinite(float(row.get("objective", float("nan")))):
        values = {"objective": float(row["objective"])}
    return values


def cross_check(frame: pd.DataFrame) -> pd.DataFrame:
    """Verdicts where nothing is published: the configurations checked against each other.

    On each instance with no published optimum, every proven optimum is compared stage by
    stage (a scenario's whole lexicographic solve). All within tolerance, from two or more
    configurations: ``agreed``. Any pair apart: every optimal cell of the instance is
    ``disagree`` (one of them is wrong and nothing says which), with the values in the note.
    One configuration alone stays ``unknown``: nothing to check it against.
    """
    if frame.empty or "verdict" not in frame:
        return frame
    frame = frame.copy()
    open_rows = (frame["verdict"] == Verdict.UNKNOWN.value) & (
        frame["status"] == CellStatus.OPTIMAL.value)
    for _instance, group in frame[open_rows].groupby("instance", sort=False):
        if group["config"].nunique() < 2:
            continue
        values = {index: _stage_values(row) for index, row in group.iterrows()}
        stages = list(dict.fromkeys(name for v in values.values() for name in v))
        problems = []
        for position, stage in enumerate(stages):
            present = {i: v[stage] for i, v in values.items() if stage in v}
            if len(present) < 2:
                continue
            numbers = list(present.values())
            low, high = min(numbers), max(numbers)
            kind = str(group["kind"].iloc[0] or "lp")
            tol = tolerance(kind, float(group["mip_gap"].max()))
            if position:
                tol = max(tol, LATER_STAGE_TOLERANCE)
            spread = (high - low) / max(1.0, abs(float(pd.Series(numbers).median())))
            if spread > tol:
                by_config = {str(group.at[i, "config"]): v for i, v in present.items()}
                listed = ", ".join(f"{c} {v:.10g}" for c, v in sorted(by_config.items()))
                problems.append(f"stage {stage}: {listed} (apart by {spread:.2e} relative, "
                                f"tolerance {tol:g})")
        configs = group["config"].nunique()
        solvers = group["solver"].nunique() if "solver" in group else 1
        if problems:
            frame.loc[group.index, "verdict"] = Verdict.DISAGREE.value
            frame.loc[group.index, "verdict_note"] = (
                "no published optimum, and the solvers' proven optima disagree: "
                + "; ".join(problems))
        else:
            frame.loc[group.index, "verdict"] = Verdict.AGREED.value
            frame.loc[group.index, "verdict_note"] = (
                f"no published optimum; {configs} configurations of {solvers} solver(s) "
                f"agree on every stage ({', '.join(stages)})")
    return frame


def stage_disagreement(reference: dict[str, float], values: dict[str, float], kind: str,
                       mip_gap: float) -> str:
    """Where two answers' stage optima differ beyond tolerance ('' when they agree); the
    same tolerances as ``cross_check``."""
    problems = []
    for position, (stage, ref) in enumerate(reference.items()):
        if stage not in values:
            continue
        tol = tolerance(kind, mip_gap)
        if position:
            tol = max(tol, LATER_STAGE_TOLERANCE)
        err = _rel(values[stage], ref)
        if err > tol:
            problems.append(f"stage {stage}: {values[stage]:.10g} against {ref:.10g} "
                            f"(relative {err:.2e}, tolerance {tol:g})")
    return "; ".join(problems)
