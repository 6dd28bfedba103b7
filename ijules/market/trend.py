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


def ex_ante_volatility(close: pd.DataFrame, span: int) -> pd.DataFrame:
    """Exponentially weighted standard deviation of one-bar log returns (span ``span`` bars).

    Trailing only (the EWMA at t weighs returns up to t); NaN before ``span`` returns.
    """
    returns = close.apply(np.log).diff()
    volatility: pd.DataFrame = returns.ewm(span=span, adjust=True, min_periods=span).std()
    return volatility


def normalised_returns(close: pd.DataFrame, horizon: int, span: int) -> pd.DataFrame:
    """Log return over ``horizon`` bars over the ex-ante volatility scaled to that horizon.

    Lim, Zohren & Roberts (2019): r(t - h, t) / (sigma_t sqrt(h)), comparable across
    horizons and instruments; 0 where the volatility is 0.
    """
    sigma = ex_ante_volatility(close, span) * np.sqrt(horizon)
    moved = close.apply(np.log).diff(horizon)
    ratio: pd.DataFrame = (moved / sigma).where(sigma > 0, 0.0)
    return ratio.where(sigma.notna() & moved.notna())


def macd_indicator(
    close: pd.DataFrame, short: int, long: int, price_window: int, signal_window: int
) -> pd.DataFrame:
    """Baz et al. (2015): the gap of two EWMAs of the price, over the price's trailing standard
    deviation (``price_window`` bars), over that ratio's own trailing standard deviation
    (``signal_window`` bars). Trailing only; NaN until both windows are full (the first
    ``price_window + signal_window - 2`` bars)."""
    gap = close.ewm(span=short, adjust=False).mean() - close.ewm(span=long, adjust=False).mean()
    q = gap / close.rolling(price_window).std()
    return q / q.rolling(signal_window).std()
