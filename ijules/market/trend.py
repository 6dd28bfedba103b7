"""Trend strength: Kaufman's efficiency ratio over a trailing window."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


def efficiency_ratio(close: pd.Series, window: int) -> npt.NDArray[np.float64]:
    """|P_t - P_{t-n}| / sum of |P_s - P_{s-1}| over the last n bars; 1 is a straight line.

    Trailing only; 0 where the path is flat, NaN before n bars of history.
    """
    change = (close - close.shift(window)).abs()
    path = close.diff().abs().rolling(window).sum()
    ratio = (change / path).where(path > 0, 0.0).where(path.notna())
    return np.asarray(ratio.to_numpy(dtype=np.float64))
