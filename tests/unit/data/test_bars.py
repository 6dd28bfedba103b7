from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.data.bars import derive_ohlc, threshold_bar_ids, threshold_bars, time_bars
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def es_trades() -> pd.DataFrame:
    """The E-mini sample's first session (to the Labor Day early close), as canonical trades."""
    raw = pd.read_csv(SAMPLES / "es_trades_2013-09-01_02.csv.gz")
    local = pd.to_datetime(raw["DateTime"]).dt.tz_localize("America/Chicago")
    trades = pd.DataFrame(
        {
            "timestamp": local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"),
            "price": raw["Price"].astype("float64"),
            "size": raw["Volume"].astype("float64"),
        }
    )
    return trades.loc[trades["timestamp"] < pd.Timestamp("2013-09-02T16:00Z")].reset_index(
        drop=True
    )


def test_time_bars_hold_the_ohlc_and_size_of_their_trades(es_trades) -> None:
    bars = time_bars(es_trades, pd.Timedelta("1min"))
    minute = es_trades["timestamp"].dt.floor("1min")
    expected = es_trades.groupby(minute).agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
    )
    pd.testing.assert_frame_equal(
        bars.set_index("timestamp"), expected.rename_axis("timestamp"), check_freq=False
    )
    assert bars["volume"].sum() == es_trades["size"].sum()
    # The session opens at 17:00 CDT, 22:00 UTC; the bar is stamped at its start.
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2013-09-01T22:00Z")


def test_a_minute_without_trades_gives_no_bar(es_trades) -> None:
    bars = time_bars(es_trades, pd.Timedelta("1min"))
    steps = bars["timestamp"].diff().dropna()
    assert (steps >= pd.Timedelta("1min")).all()
    assert (steps > pd.Timedelta("1min")).any()  # the overnight session is thin
    assert len(bars) == es_trades["timestamp"].dt.floor("1min").nunique()


def test_time_bars_lie_on_the_epoch_grid_for_any_length(es_trades) -> None:
    bars = time_bars(es_trades, pd.Timedelta("7min"))
    offsets = bars["timestamp"] - bars["timestamp"].dt.floor("7min")
    assert (offsets == pd.Timedelta(0)).all()


def test_a_bar_closes_on_the_trade_that_reaches_the_next_multiple_of_the_threshold() -> None:
    sizes = np.array([3.0, 3.0, 3.0, 3.0, 1.0])
    # Running totals 3, 6, 9, 12, 13: bars close on the 2nd trade (6 >= 5) and the 4th
    # (12 >= 10); the 5th waits in an open bar.
    assert threshold_bar_ids(sizes, 5.0).tolist() == [0, 0, 1, 1, -1]
    # A trade of several thresholds closes its bar alone; no empty bar follows it.
    assert threshold_bar_ids(np.array([1.0, 12.0, 1.0, 4.0]), 5.0).tolist() == [0, 0, 2, 2]
    assert threshold_bar_ids(np.array([], dtype=np.float64), 5.0).tolist() == []


def test_volume_bars_keep_every_contract_and_hold_the_threshold_on_average(es_trades) -> None:
    result = threshold_bars(es_trades, "volume", 1000.0)
    bars = result.bars
    left = es_trades["size"].iloc[len(es_trades) - result.trades_in_open_bar :].sum()
    assert bars["volume"].sum() + left == es_trades["size"].sum()
    assert bars["volume"].sum() == pytest.approx(1000.0 * len(bars), rel=0.01)
    assert bars["timestamp"].is_monotonic_increasing and bars["timestamp"].is_unique
    # Stamped at each bar's last trade, whose price is the close.
    ids = threshold_bar_ids(es_trades["size"].to_numpy(), 1000.0)
    closing = es_trades.loc[ids >= 0].groupby(ids[ids >= 0]).last()
    merged = closing.drop_duplicates("timestamp", keep="last")
    assert bars["timestamp"].tolist() == merged["timestamp"].tolist()
    assert bars["close"].tolist() == merged["price"].tolist()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()


def test_dollar_bars_close_on_price_times_size(es_trades) -> None:
    result = threshold_bars(es_trades, "dollar", 5e6)
    notional = (es_trades["price"] * es_trades["size"]).to_numpy()
    closed = len(es_trades) - result.trades_in_open_bar
    assert len(result.bars) <= int(notional.sum() // 5e6)
    assert notional[:closed].sum() >= 5e6 * len(result.bars)


def test_bars_closing_at_the_same_instant_are_one_bar() -> None:
    instant = pd.Timestamp("2024-01-02T15:00:00.123Z")
    trades = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex([instant] * 4 + [instant + pd.Timedelta("1s")] * 2),
            "price": [10.0, 11.0, 9.0, 10.5, 10.0, 10.0],
            "size": [5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
        }
    )
    bars = threshold_bars(trades, "volume", 5.0).bars
    assert bars["timestamp"].tolist() == [instant, instant + pd.Timedelta("1s")]
    first = bars.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (10.0, 11.0, 9.0, 10.5)
    assert bars["volume"].tolist() == [20.0, 10.0]


def test_a_close_only_series_gets_open_from_the_previous_close_per_instrument() -> None:
    close = pd.Series([10.0, 12.0, 11.0, 100.0, 90.0])
    instrument = pd.Series(["A", "A", "A", "B", "B"])
    derived = derive_ohlc(close, instrument)
    assert derived["open"].tolist() == [10.0, 10.0, 12.0, 100.0, 100.0]
    assert derived["high"].tolist() == [10.0, 12.0, 12.0, 100.0, 100.0]
    assert derived["low"].tolist() == [10.0, 10.0, 11.0, 100.0, 90.0]
