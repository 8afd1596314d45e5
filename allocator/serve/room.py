"""The negotiation room: one scenario solved, its what-ifs, and the alternatives kept.

One solve at a time: a what-if that finds another one running waits for it (up to
`queue_seconds`), then is refused with a clear 'busy' answer rather than left hanging; the
session behind the room keeps one model and one basis, which two solves must not share.
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocator.errors import AllocatorError, ExitCode, InputError
from allocator.serve.edits import EDITABLE, KEYS, Change, parse_changes
from allocator.serve.engine import SessionEngine
from allocator.serve.outcome import Outcome, _records, diff

NAME = re.compile(r"^[\w .,:;()+\-–%€$£/#&'!?]{1,60}$")
MAX_ALTERNATIVES = 50
# Pieces per stage of a value curve (each two warm re-solves): sweep --exact's 400 up to 50k
# nonzeros, fewer above (2e7 / nonzeros, at least 10), so that a curve of a large model holds
# the room for minutes, not an hour; the page says where a curve stopped.
CURVE_PIECES = 400
CURVE_WORK = 2e7


def alt_folder(name: str) -> str:
    """The alternative's name as a folder name (the zip's one folder)."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-.") or "alternative"


class Busy(AllocatorError):
    """Another solve held the room for longer than a request waits."""

    exit_code = ExitCode.INTERNAL


@dataclass(frozen=True)
class Alternative:
    name: str
    changes: tuple[Change, ...]
    outcome: Outcome
    number: int


class Room:
    def __init__(self, engine: SessionEngine, base: Outcome, source: Path,
                 queue_seconds: float = 30.0) -> None:
        self.engine, self.base, self.source = engine, base, source
        self.queue_seconds = queue_seconds
        self.solving = threading.Lock()
        self.alternatives: dict[str, Alternative] = {}
        self._count = 0
        self._state = threading.Lock()  # guards the alternatives dict and the curves
        self._curves: dict[tuple[str, float, float], dict[str, Any]] = {}

    # ---- reading ----------------------------------------------------------------------
    def inputs(self) -> dict[str, Any]:
        """The editable cells with their base values (ids as the API names them)."""
        out: dict[str, Any] = {}
        for table, columns in EDITABLE.items():
            frame = self.engine.tables[table]
            keep = [*KEYS[table], *(c for c in ("scope", "region") if c in frame.columns),
                    *columns]
            out[table] = {"key": list(KEYS[table]), "columns": list(columns),
                          "rows": _records(frame[keep])}
        return out

    def state(self) -> dict[str, Any]:
        return {
            "name": self.engine.name,
            "source": self.source.name,
            "base": self.base.as_json(),
            "inputs": self.inputs(),
            "alternatives": [self._summary(a) for a in self._listed()],
            "limits": {"max_changes": 500, "queue_seconds": self.queue_seconds},
        }

    def _listed(self) -> list[Alternative]:
        with self._state:
            return sorted(self.alternatives.values(), key=lambda a: a.number)

    def _summary(self, alt: Alternative) -> dict[str, Any]:
        return {"name": alt.name, "changes": [c.as_json() for c in alt.changes],
                "status": alt.outcome.status, "kpis": alt.outcome.kpis(),
                "objectives": alt.outcome.objectives, "seconds": alt.outcome.seconds}

    def alternative(self, name: str) -> Alternative:
        with self._state:
            found = self.alternatives.get(name)
        if found is None:
            raise InputError(f"no alternative named {name!r} in this session", "request")
        return found

    # ---- solving ----------------------------------------------------------------------
    def whatif(self, raw_changes: Any, name: str | None = None) -> dict[str, Any]:
        """Check the changes, re-solve warm, and answer with the figures and the difference
        against the base; with a `name`, keep it as an alternative."""
        if name is not None:
            name = name.strip()
            if not NAME.match(name):
                raise InputError("an alternative's name is 1 to 60 letters, digits, spaces "
                                 "or common punctuation", "request name")
        changes = parse_changes(raw_changes, self.engine.tables, self.engine.session.schemas)
        waited = time.perf_counter()
        if not self.solving.acquire(timeout=self.queue_seconds):
            raise Busy(f"another solve has been running for over {self.queue_seconds:g} s; "
                       "try again when it is done")
        try:
            waited = time.perf_counter() - waited
            began = time.perf_counter()
            outcome = self.engine.solve(changes)
            seconds = time.perf_counter() - began
        finally:
            self.solving.release()
        answer: dict[str, Any] = {
            "name": name,
            "changes": [c.as_json() for c in changes],
            "status": outcome.status,
            "stages": [{"name": k, "objective": v} for k, v in outcome.objectives.items()],
            "cost": outcome.kpis()["cost"] if outcome.solved else None,
            "shortfall": outcome.kpis()["unmet"] if outcome.solved else None,
            "weighted_shortfall": outcome.objectives.get("service"),
            "outcome": outcome.as_json(),
            "difference": diff(self.base, outcome) if outcome.solved else None,
            "seconds": {"solve": round(seconds, 4), "queued": round(waited, 4)},
        }
        answer["moves"] = answer["difference"]["moves"] if answer["difference"] else []
        if name is not None:
            with self._state:
                if name not in self.alternatives and \
                        len(self.alternatives) >= MAX_ALTERNATIVES:
                    raise InputError(f"at most {MAX_ALTERNATIVES} alternatives are kept; "
                                     "delete one first", "request name")
                self._count += 1
                self.alternatives[name] = Alternative(name, tuple(changes), outcome,
                                                      self._count)
        return answer

    def curve(self, budget_id: str, low: float | None = None, high: float | None = None
              ) -> dict[str, Any]:
        """The exact value curve of one budget (each stage's optimum against its amount, by
        parametric analysis: allocator.negotiate.parametric), over today's amount +-30% by
        default, and what a 10% cut or rise reads off it."""
        import numpy as np

        from allocator.negotiate.parametric import exact_curve
        from allocator.negotiate.session import Edit, Target

        budgets = self.engine.tables["budgets"]
        row = budgets[budgets["budget_id"].astype(str) == budget_id]
        if row.empty:
            raise InputError(f"no budget {budget_id!r} (budgets: "
                             f"{', '.join(map(str, budgets['budget_id'][:10]))})", "request")
        today = float(row["amount"].iloc[0])
        low = max(0.0, 0.7 * today) if low is None else low
        high = 1.3 * today if high is None else high
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low < high < 1e15):
            raise InputError(f"the curve's range must be 0 <= low < high < 1e15 (finite; "
                             f"1e15 or more is no budget anyone means); found low "
                             f"{low:.6g}, high {high:.6g}", "request")
        known = self._curves.get((budget_id, low, high))
        if known is not None:  # the base does not change: neither does its curve
            return known
        if not self.solving.acquire(timeout=self.queue_seconds):
            raise Busy(f"another solve has been running for over {self.queue_seconds:g} s; "
                       "try again when it is done")
        try:
            began = time.perf_counter()
            edit = Edit(Target("budgets", "amount", (budget_id,)), "set", today)
            nnz = self.engine.session.built.model.nnz
            pieces = int(max(10, min(CURVE_PIECES, CURVE_WORK / max(nnz, 1))))
            frame = exact_curve(self.engine.session, edit, low, high, max_pieces=pieces)
            seconds = time.perf_counter() - began
        finally:
            self.solving.release()
        readings = []
        for stage, part in frame.groupby("stage", sort=False):
            x, y = part["parameter"].to_numpy(float), part["objective"].to_numpy(float)
            for share in (-0.1, 0.0, 0.1):
                at = today * (1 + share)
                if x.min() - 1e-9 <= at <= x.max() + 1e-9:
                    readings.append({"stage": stage, "change": share, "amount": at,
                                     "objective": float(np.interp(at, x, y))})
        found = {"budget_id": budget_id, "today": today, "low": low, "high": high,
                 "points": _records(frame), "readings": readings,
                 "seconds": round(seconds, 4)}
        with self._state:
            if len(self._curves) >= MAX_ALTERNATIVES:
                self._curves.clear()
            self._curves[(budget_id, low, high)] = found
        return found

    def forget(self, name: str) -> None:
        self.alternative(name)
        with self._state:
            self.alternatives.pop(name, None)

    def compare(self) -> dict[str, Any]:
        """The base and every alternative side by side, as `allocator compare` puts runs: KPIs,
        each stage's objective, budget use and headroom, what binds, and the inputs each one
        changed."""
        def column(name: str, outcome: Outcome, changes: tuple[Change, ...]) -> dict[str, Any]:
            return {"name": name, "status": outcome.status, "kpis": outcome.kpis(),
                    "objectives": outcome.objectives,
                    "changes": [c.as_json() for c in changes],
                    "budgets": _records(outcome.budgets),
                    "binding": _records(outcome.binding())}

        columns = [column("base", self.base, ())]
        columns += [column(alt.name, alt.outcome, alt.changes) for alt in self._listed()]
        return {"alternatives": columns}

    def export(self, name: str) -> bytes:
        """A zip: the alternative's scenario file and its edited tables, which `allocator
        solve` (or a nightly job) runs as they are."""
        alt = self.alternative(name)
        with tempfile.TemporaryDirectory(prefix="allocator-export-") as tmp:
            folder = Path(tmp)
            names = self.engine.export(list(alt.changes), folder)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in names:  # a fixed date: the same alternative, the same bytes
                    info = zipfile.ZipInfo(f"{alt_folder(name)}/{file}", (2000, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, (folder / file).read_bytes())
        return buffer.getvalue()
