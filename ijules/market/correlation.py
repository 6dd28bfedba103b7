"""Correlation breakdown: how far instruments' recent co-movement strays from its norm."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def _pair_correlations(
    log_returns: pd.DataFrame, short: int, long: int
) -> Iterator[tuple[pd.Series, pd.Series]]:
    """Each instrument pair's trailing short- and long-window correlations (NaN read as 0)."""
    columns = list(log_returns.columns)
    for a, first in enumerate(columns):
        for second in columns[a + 1 :]:
            pair = log_returns[[first, second]].fillna(0.0)
            near = pair[first].rolling(short).corr(pair[second])
            far = pair[first].rolling(long, min_periods=short).corr(pair[second])
            yield near, far


def correlation_gap(log_returns: pd.DataFrame, short: int, long: int) -> FloatArray:
    """Mean |short-window minus long-window correlation| over instrument pairs (0 for one).

    Trailing windows only; NaN (too little history, or a flat stretch) reads 0.
    """
    if len(log_returns.columns) < 2:
        return np.zeros(len(log_returns))
    gaps = [(near - far).abs() for near, far in _pair_correlations(log_returns, short, long)]
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
    flags = np.zeros(len(log_returns), dtype=bool)
    for near_series, far_series in _pair_correlations(log_returns, short, long):
        near, far = near_series.to_numpy(), far_series.to_numpy()
        meaningful = np.abs(far) >= 0.2
        kept = np.divide(near, far, out=np.ones_like(near), where=meaningful & np.isfinite(far))
        flags |= meaningful & np.isfinite(near) & (kept < threshold)
    return flags
