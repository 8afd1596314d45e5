"""master_prices.csv: the decomposition master's price of every linking row, per stage.

These are the figures finance asks for at this scale (one more unit of company money, one
more FTE of a person who may work anywhere), and tomorrow's warm start: a decomposed run
started with `--warm-from` (or from the run store's last run of the scenario) begins its
column generation at these prices, matched by row label (`solve_decomposed(warm_prices=)`).

Sign as sensitivity.csv's `dual`: the change of the stage's objective, in the model's
minimized sense, per unit more of the row's limit (money for a budget row, FTE for an
availability row, objective units for a hold row).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from allocator.analysis.figures import round_sig

PRICES_FILE = "master_prices.csv"
COLUMNS = ["stage", "row", "kind", "price"]
# Under master_prices.csv's table in report.html.
MEANING = ("The company-wide prices: each row is shared by several regions (the company budget, "
           "a person who may work in any region) or holds an earlier stage's optimum. price = "
           "the change of the stage's figure per unit more of the row's limit (per 1 of money "
           "for a budget, per FTE of a person's availability, per unit of the earlier stage's "
           "figure for a hold), in the stage's own figure (service: units of weighted "
           "shortfall; cost: money; stability: additions plus removals, 2 per FTE moved); "
           "negative means more of the limit lowers (improves) the figure. "
           "Exact at the optimum (the master converged); how far each price holds is not "
           "computed.")


def prices_frame(all_prices: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per stage and linking row, in the master's order (base rows, then holds)."""
    rows = [{"stage": stage, "row": label,
             "kind": "hold" if label.startswith("hold[") else "linking", "price": price}
            for stage, prices in all_prices.items() for label, price in prices.items()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["price"] = round_sig(frame["price"].to_numpy(dtype=float))  # no -0, no float noise
    return frame


def read_prices(run: Path) -> dict[str, dict[str, float]] | None:
    """An earlier run's master prices (its folder, or a file in it); None if it has none
    or they cannot be read (the run then starts cold, and says so)."""
    folder = run if run.is_dir() else run.parent
    path = folder / PRICES_FILE
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={"stage": str, "row": str, "kind": str})
        out: dict[str, dict[str, float]] = {}
        for stage, part in frame.groupby("stage", sort=False):
            out[str(stage)] = dict(zip(part["row"], part["price"].astype(float), strict=True))
        return out
    except Exception:
        return None
