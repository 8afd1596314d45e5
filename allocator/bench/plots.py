"""The Dolan–Moré performance profile: the share of instances each configuration solves within
a factor τ of the fastest configuration on that instance.

Why a profile and not only a mean: a shifted geometric mean hides whether a configuration is
a little slower everywhere or fails on a few instances; the profile shows both (its value at
τ = 1 is the share of wins, its right end the share solved). Unsolved or wrong answers have
an infinite ratio. Times under 10 ms count as 10 ms: below that the ratio measures the timer.
Drawn with matplotlib's Agg backend; SVG text is drawn as paths, so the file needs no font.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TIME_FLOOR = 0.01


def ratios(cells: pd.DataFrame, instances: list[str]) -> pd.DataFrame:
    """Performance ratios, instances × configurations (inf where not solved)."""
    subset = cells[cells["instance"].isin(instances)]
    time = subset["time"].clip(lower=TIME_FLOOR).where(subset["solved"], np.inf)
    table = subset.assign(t=time).pivot(index="instance", columns="config", values="t")
    best = table.min(axis=1)
    return table.div(best.where(np.isfinite(best), np.nan), axis=0).fillna(np.inf)


def plot_profile(cells: pd.DataFrame, instances: list[str], paths: list[Path],
                 title: str = "Performance profile") -> list[Path]:
    """Write the profile to each path (the suffix picks PNG or SVG); returns what it wrote."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = ratios(cells, instances)
    finite = table.to_numpy()[np.isfinite(table.to_numpy())]
    tau_max = max(2.0, float(finite.max()) * 1.5) if finite.size else 2.0
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    n = max(len(table), 1)
    for config in table.columns:
        r = np.sort(table[config].to_numpy())
        r = r[np.isfinite(r)]
        xs = np.concatenate([[1.0], r, [tau_max]])
        ys = np.concatenate([[np.sum(r <= 1.0) / n], np.arange(1, len(r) + 1) / n,
                             [len(r) / n]])
        ax.step(xs, ys, where="post", label=str(config), linewidth=1.6)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("τ: time within a factor τ of the fastest (log₂)")
    ax.set_ylabel("share of instances solved")
    ax.set_title(f"{title} ({len(table)} instances)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    written = []
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "allocator"}):
        for path in paths:
            fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
            written.append(path)
    plt.close(fig)
    return written
