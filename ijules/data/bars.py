"""Bars from what a source holds: trades aggregated into time, volume or dollar bars, and the
open, high and low of a close-only series.

Time bars cover [start, start + frequency) on the epoch grid and are stamped at their start, like
the bars a vendor delivers: open, high, low and close of the trade prices, volume the sum of the
sizes. A period without a trade gives no bar: the market calendar then tells validation whether
that was a closure or a gap in a session.

Volume and dollar bars (López de Prado, *Advances in Financial Machine Learning*, ch. 2) close on
the trade that takes the running total of size (volume bars) or of price x size (dollar bars)
to the next multiple of the threshold, and are stamped at that trade. Because the total runs on,
what a bar's last trade carries past the threshold counts towards the next bar: bars hold the
threshold on average, and no volume is lost. Bars that close at the same instant are one bar
(their stamps could not tell them apart), and the trades after the last closed bar wait for the
next delivery.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.data.schema import TIMESTAMP

PRICE, SIZE = "price", "size"  # the canonical trade columns besides timestamp and symbol
OHLCV = ("open", "high", "low", "close", "volume")


class ThresholdBars(NamedTuple):
    """Volume or dollar bars, and the trades left after the last closed bar."""

    bars: pd.DataFrame
    trades_in_open_bar: int


def time_bars(trades: pd.DataFrame, bar: pd.Timedelta) -> pd.DataFrame:
    """Aggregate time-ordered trades (timestamp, price, size) into time bars of length ``bar``.

    Returns timestamp (each bar's start) and open, high, low, close, volume; periods without a
    trade give no bar. Volume is NaN where the trades carry no size.
    """
    indexed = trades.set_index(TIMESTAMP)
    grouped = indexed.resample(bar, label="left", closed="left", origin="epoch")
    out = grouped[PRICE].ohlc()
    out["volume"] = grouped[SIZE].sum(min_count=1)
    out = out.loc[grouped[PRICE].count() > 0]
    return out.rename_axis(TIMESTAMP).reset_index()[[TIMESTAMP, *OHLCV]]


def threshold_bar_ids(measure: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.int64]:
    """Number each trade's bar: a bar closes on the trade whose running total of ``measure``
    reaches the next multiple of ``threshold``. Trades after the last closed bar get -1."""
    total = np.cumsum(measure)
    ids = np.floor((total - measure) / threshold).astype(np.int64)
    closed = int(np.floor(total[-1] / threshold)) if len(total) else 0
    ids[ids >= closed] = -1
    return ids


def threshold_bars(
    trades: pd.DataFrame, kind: Literal["volume", "dollar"], threshold: float
) -> ThresholdBars:
    """Aggregate time-ordered trades (timestamp, price, size) into volume or dollar bars.

    Each bar is stamped at its last trade; bars closing at the same instant are merged.
    """
    size = trades[SIZE].to_numpy(dtype=np.float64)
    price = trades[PRICE].to_numpy(dtype=np.float64)
    ids = threshold_bar_ids(size if kind == "volume" else price * size, threshold)
    closed = ids >= 0
    inside = trades.loc[closed]
    # Group by each bar's closing instant: consecutive bars closing together become one.
    stamps = inside[TIMESTAMP].groupby(ids[closed]).transform("last")
    grouped = inside.groupby(stamps.to_numpy(), sort=True)
    out = grouped[PRICE].agg(["first", "max", "min", "last"])
    out.columns = ["open", "high", "low", "close"]
    out["volume"] = grouped[SIZE].sum()
    out = out.rename_axis(TIMESTAMP).reset_index()
    out[TIMESTAMP] = out[TIMESTAMP].astype(trades[TIMESTAMP].dtype)
    return ThresholdBars(out[[TIMESTAMP, *OHLCV]], int((~closed).sum()))


def derive_ohlc(close: pd.Series, instrument: pd.Series) -> pd.DataFrame:
    """Open, high and low of a close-only series, each instrument from its own closes: open is
    the previous close (a bar's own close for the instrument's first), high and low the larger
    and smaller of open and close."""
    values = close.astype("float64")
    opened = values.groupby(instrument.to_numpy(), sort=False).shift(1).fillna(values)
    return pd.DataFrame(
        {"open": opened, "high": np.fmax(opened, values), "low": np.fmin(opened, values)},
        index=close.index,
    )
