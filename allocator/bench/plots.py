"""The Dolan–Moré performance profile: the share of instances each configuration solves within
a factor τ of the fastest configuration on that instance.

Why a profile and not only a mean: a shifted geometric mean hides whether a configuration is
a little slower everywhere or fails on a few instances; the profile shows both (its value at
τ = 1 is the share of wins, its right end the share solved). The ratios are the summary's
own (``summary.ratios``: the same times, the same resolution, so the curve and the table
cannot disagree); unsolved or wrong answers have an infinite ratio.

Lines that coincide (two configurations tied everywhere) are drawn so that none hides
another: the first drawn is the widest, each later one narrower, each with its own dash
pattern and colour, so a line on top of another still shows the one beneath.
Drawn with matplotlib's Agg backend; SVG text is drawn as paths, so the file needs no font.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from allocator.bench.summary import RESOLUTION, ratios

_DASHES = ["-", (0, (6, 2)), (0, (2, 2)), (0, (6, 2, 2, 2)), (0, (1, 1)), (0, (8, 3, 1, 3))]


def profile_points(table: pd.DataFrame, config: str, tau_max: float) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """The step curve of one configuration: x = τ, y = share of instances within τ."""
    n = max(len(table), 1)
    r = np.sort(table[config].to_numpy())
    r = r[np.isfinite(r)]
    xs = np.concatenate([[1.0], r, [tau_max]])
    ys = np.concatenate([[np.sum(r <= 1.0) / n], np.arange(1, len(r) + 1) / n, [len(r) / n]])
    return xs, ys


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
    count = max(len(table.columns), 1)
    for number, config in enumerate(table.columns):
        xs, ys = profile_points(table, config, tau_max)
        width = 1.4 + 2.6 * (count - 1 - number) / max(count - 1, 1)
        ax.step(xs, ys, where="post", label=str(config), linewidth=width,
                linestyle=_DASHES[number % len(_DASHES)], alpha=0.85, zorder=2 + number)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(0.0, 1.04)
    ax.set_xlabel(f"τ: time within a factor τ of the fastest (log₂); times under "
                  f"{RESOLUTION:g} s tie")
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
