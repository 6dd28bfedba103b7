"""Correlation breakdown: how far instruments' recent co-movement strays from its norm."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def correlation_gap(log_returns: pd.DataFrame, short: int, long: int) -> FloatArray:
    """Mean |short-window minus long-window correlation| over instrument pairs (0 for one).

    Trailing windows only; NaN (too little history, or a flat stretch) reads 0.
    """
    columns = list(log_returns.columns)
    if len(columns) < 2:
        return np.zeros(len(log_returns))
    gaps = []
    for a, first in enumerate(columns):
        for second in columns[a + 1 :]:
            pair = log_returns[[first, second]].fillna(0.0)
            near = pair[first].rolling(short).corr(pair[second])
            far = pair[first].rolling(long, min_periods=short).corr(pair[second])
            gaps.append((near - far).abs())
    gap = pd.concat(gaps, axis=1).mean(axis=1)
    return np.asarray(gap.replace([np.inf, -np.inf], np.nan).fillna(0.0).to_numpy(np.float64))


def correlation_breakdown(
    log_returns: pd.DataFrame, short: int, long: int, threshold: float
) -> npt.NDArray[np.bool_]:
    """Flag bars where some pair's short-window correlation kept less than ``threshold`` of its
    long-run value (e.g. 0.7: a drop of more than 30%), or changed sign.

    Pairs whose long-run correlation is weak (|rho| < 0.2) cannot break down and are ignored.
    Trailing windows only; False for a single instrument.
    """
    columns = list(log_returns.columns)
    flags = np.zeros(len(log_returns), dtype=bool)
    for a, first in enumerate(columns):
        for second in columns[a + 1 :]:
            pair = log_returns[[first, second]].fillna(0.0)
            near = pair[first].rolling(short).corr(pair[second]).to_numpy()
            far = pair[first].rolling(long, min_periods=short).corr(pair[second]).to_numpy()
            meaningful = np.abs(far) >= 0.2
            kept = np.divide(near, far, out=np.ones_like(near), where=meaningful & np.isfinite(far))
            flags |= meaningful & np.isfinite(near) & (kept < threshold)
    return flags
