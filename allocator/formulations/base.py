"""What every formulation provides, so the pipeline, outputs and analysis stay model-agnostic.

A formulation turns a validated scenario into a `Built` (the LinearModel plus what maps its
columns back to the business) and turns a solution vector back into output tables. It never
imports a solver.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import pandas as pd

from allocator.core.model import LinearModel
from allocator.scenario import Scenario
from allocator.tables.readers import LoadedTable


class Built(Protocol):
    model: LinearModel

    @property
    def sources(self) -> dict[str, LoadedTable]: ...

    @property
    def warnings(self) -> list[str]: ...


class Validated(Protocol):
    """What every formulation's validated data carries: the loaded sources (for
    summary.json) and the input warnings."""

    @property
    def sources(self) -> dict[str, LoadedTable]: ...

    @property
    def warnings(self) -> list[str]: ...


def _labelled(row: pd.Series) -> str:
    return f"{row['family']} {row['labels']}: price {row.get('dual')}"


@dataclass(frozen=True)
class ReportWords:
    """What report.html says in a model's own words; the generic report knows none of them.

    `stage_scale`: a stage objective in the user's unit (the ops stability stage counts 2 per
    FTE moved: 0.5); `stage_notes`: a line under the figures when the stage is present;
    `sentence`: a bottlenecks.csv row in words (where the table has no `sentence` column);
    `what_if`: the ladders' answers to "what if a budget changes"; `hiring`: hiring.csv's top
    rows in words; `table_notes`: a line under another table's heading (what its figures
    mean, in the user's units)."""

    stage_scale: Mapping[str, float] = field(default_factory=dict)
    stage_notes: Mapping[str, str] = field(default_factory=dict)
    sentence: Callable[[pd.Series], str] = _labelled
    what_if: Callable[[pd.DataFrame | None], list[str]] | None = None
    hiring: Callable[[pd.DataFrame | None], list[str]] | None = None
    table_notes: Mapping[str, str] = field(default_factory=dict)


DataT = TypeVar("DataT")
ValidatedT = TypeVar("ValidatedT", bound=Validated)
BuiltT = TypeVar("BuiltT", bound=Built)


class DataBacked(Generic[ValidatedT]):
    """Mixin for built models that keep their validated data in `self.data`, which carries
    the loaded sources (for summary.json) and the input warnings.

    `DataBacked[FundingData]` types `self.data`; a bare `DataBacked` leaves it `Any`."""

    data: ValidatedT

    @property
    def sources(self) -> dict[str, LoadedTable]:
        return self.data.sources

    @property
    def warnings(self) -> list[str]:
        # What the readers noticed without refusing (a ';' delimiter, decimal commas, ids
        # unique only by case: LoadedTable.notes) comes first, then the model's own.
        notes = [note for table in self.data.sources.values() for note in table.notes
                 if note not in self.data.warnings]
        return notes + list(self.data.warnings)


class Formulation(abc.ABC, Generic[DataT, BuiltT]):
    """One `model = "..."` of the scenario file.

    Generic in what `load` returns (`DataT`) and what `build` makes of it (`BuiltT`), so a
    subclass declares `Formulation[FundingData, FundingModel]` and its methods take its own
    types. A bare `Formulation` (the pipeline's view, any model) is `Formulation[Any, Any]`.
    """

    name: str = ""

    @abc.abstractmethod
    def load(self, scenario: Scenario) -> DataT:
        """Read and validate the tables; raise InputError with every problem found."""

    @abc.abstractmethod
    def build(self, data: DataT, scenario: Scenario) -> BuiltT:
        """Validated data -> labeled sparse model (vectorized)."""

    @abc.abstractmethod
    def plan_tables(self, built: BuiltT, x: np.ndarray) -> dict[str, pd.DataFrame]:
        """The output tables of a solution (plan.csv first)."""

    def bottlenecks(
        self, built: BuiltT, sensitivity: pd.DataFrame, tables: dict[str, pd.DataFrame],
        title: str, ladders: pd.DataFrame | None,
    ) -> tuple[str, pd.DataFrame] | None:
        """bottlenecks.md and its ranked table; None where the model has no such story."""
        return None

    def extra_outputs(
        self, built: BuiltT, x: np.ndarray, deadline: float | None = None
    ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """Model-specific extra tables and text files (e.g. funding's trade-off curve).
        `deadline` (time.monotonic()): the run's time limit, which extra re-solves respect."""
        return {}, {}

    def report_words(self) -> ReportWords:
        """The model's own words in report.html (none by default)."""
        return ReportWords()

    def input_tables(self, built: BuiltT) -> dict[str, pd.DataFrame]:
        """The validated input tables by name (targets, budgets, ...): what a generic analysis
        may read of the inputs (the MIP marginals step by targets' demand) without knowing
        the model's data class."""
        return {}

    def diagnose(self, built: BuiltT, scenario: Scenario) -> tuple[str, dict[str, Any]] | None:
        """diagnosis.md and diagnosis.json for an infeasible instance (labels, not business
        words: formulations override this to speak their own tables)."""
        from allocator.analysis.diagnosis import generic_diagnosis

        return generic_diagnosis(built.model, scenario.name, scenario.solver.time_limit or 60.0)
