"""Figures as written: float noise rounded off, so 23.3 is never 23.299999999999997."""

from __future__ import annotations

import numpy as np
import pandas as pd

SIG_DIGITS = 12  # figures in the CSVs: float noise past this, not a figure


def round_sig(values: np.ndarray, digits: int = SIG_DIGITS) -> np.ndarray:
    """Each figure to `digits` significant digits (23.299999999999997 is 23.3), no -0."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v) & (v != 0)
    out = v.copy()
    if finite.any():
        mag = np.floor(np.log10(np.abs(v[finite])))
        scale = 10.0 ** (digits - 1 - mag)
        out[finite] = np.round(v[finite] * scale) / scale
    return out + 0.0


def tidy_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """The float columns of a written table rounded by `round_sig`."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            frame[column] = round_sig(frame[column].to_numpy())
    return frame
