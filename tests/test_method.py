"""method = "auto": the HiGHS method follows the model's shape, and never changes the answer.

Interior point for the first stage only where a large LP has coupling rows (budgets over a
region or everything), where dual simplex was measured 3-12x slower; dual simplex otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator.core.model import LinearModel
from allocator.solvers.base import SolverSettings, Status
from allocator.solvers.highs import AUTO_IPM_COLUMNS, HighsBackend, coupling_rows

N = AUTO_IPM_COLUMNS + 10_000
NEED = 1_000.0


def _model(coupled: bool, n: int = N) -> tuple[LinearModel, np.ndarray]:
    """Buy at least NEED units of n goods (each at most 1) at the least cost; groups of 10
    goods share a cap of 5 units. With `coupled`, the NEED row spans every column (a budget
    over everything); without it, the same demand is split over 20 short rows."""
    rng = np.random.default_rng(7)
    cost = rng.uniform(1.0, 100.0, n)
    m = LinearModel("t")
    m.add_variables("x", pd.DataFrame({"good": np.arange(n)}), 0.0, 1.0)
    groups = n // 10
    m.add_constraints("cap", pd.DataFrame({"group": np.arange(groups)}),
                      np.arange(groups * 10) // 10, np.arange(groups * 10), np.ones(groups * 10),
                      hi=5.0)
    if coupled:
        m.add_constraints("need", pd.DataFrame({"all": ["all"]}), np.zeros(n, dtype=int),
                          np.arange(n), np.ones(n), lo=NEED)
    else:  # 20 demand rows, each over a small slice of the goods
        cols = np.concatenate([np.arange(k * 1000, k * 1000 + 500) for k in range(20)])
        m.add_constraints("need", pd.DataFrame({"part": np.arange(20)}), np.repeat(
            np.arange(20), 500), cols, np.ones(cols.size), lo=NEED / 20)
    m.set_objective("cost", {"x": cost})
    return m, cost


def _solve(model: LinearModel, method: str) -> tuple[HighsBackend, float]:
    backend = HighsBackend(SolverSettings(method=method))  # type: ignore[arg-type]
    backend.load(model)
    backend.set_objective(model.objectives["cost"].c)
    raw = backend.solve(60.0)
    assert raw.status is Status.OPTIMAL
    return backend, raw.objective


def test_coupling_rows_are_counted_by_length() -> None:
    coupled, _ = _model(True)
    plain, _ = _model(False)
    assert coupling_rows(coupled) == 1
    assert coupling_rows(plain) == 0


@pytest.mark.parametrize("coupled", [True, False])
def test_auto_picks_by_shape_and_keeps_the_optimum(coupled: bool) -> None:
    model, cost = _model(coupled)
    auto, objective = _solve(model, "auto")
    assert auto.auto_ipm is coupled
    assert any(("interior point" if coupled else "dual simplex") in n for n in auto.notes)
    _, by_simplex = _solve(model, "simplex")
    assert objective == pytest.approx(by_simplex, rel=1e-9)
    if coupled:  # independent: the cheapest goods, at most 5 of every 10, fill NEED
        cheapest_per_group = np.sort(cost[: N // 10 * 10].reshape(-1, 10), axis=1)[:, :5]
        expected = np.sort(cheapest_per_group.ravel())[: int(NEED)].sum()
        assert objective == pytest.approx(expected, rel=1e-9)


def test_auto_leaves_small_models_and_explicit_methods_alone() -> None:
    small, _ = _model(True, n=AUTO_IPM_COLUMNS // 2)
    assert not _solve(small, "auto")[0].auto_ipm
    model, _ = _model(True)
    assert not _solve(model, "simplex")[0].auto_ipm
