"""Two instruments on different calendars (EUR/USD 24/5, BTC/USD 24/7) on one clock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.data.features import BAR_COLUMNS, compute_features
from ijules.env.market_data import align_instruments
from tests.conftest import SAMPLES
from tests.unit.env.conftest import env_of


def bars(name: str, symbol: str) -> pd.DataFrame:
    frame = pd.read_csv(SAMPLES / f"{name}.csv.gz")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    window = (frame["timestamp"] >= "2017-09-01") & (frame["timestamp"] < "2017-10-01")
    return frame.loc[window].reset_index(drop=True).assign(symbol=symbol)


@pytest.fixture(scope="module")
def aligned(make_config_module):
    config = make_config_module
    frames = {"EURUSD": bars("eurusd_1h", "EURUSD"), "BTCUSD": bars("btcusd_1h", "BTCUSD")}
    features = {
        name: compute_features(frame, config.features).drop(columns=list(BAR_COLUMNS))
        for name, frame in frames.items()
    }
    market = align_instruments(frames, features, config=config, bars_per_year=24 * 365.25)
    return market, frames, config


@pytest.fixture(scope="module")
def make_config_module(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params")))


def test_the_clock_is_the_union_of_both_calendars(aligned) -> None:
    market, frames, _ = aligned
    stamps = pd.DatetimeIndex(market.timestamps).tz_localize("UTC")
    eur, btc = market.instruments.index("EURUSD"), market.instruments.index("BTCUSD")
    assert market.tradable[:, btc].all()  # crypto trades every hour
    weekend = stamps.weekday == 5
    assert weekend.any() and not market.tradable[weekend, eur].any()  # FX is shut on Saturdays
    btc_times = set(frames["BTCUSD"]["timestamp"])
    assert set(stamps) <= btc_times | set(frames["EURUSD"]["timestamp"])
    # A closed market's last close is carried forward: Saturday marks equal Friday's last close.
    saturday = np.flatnonzero(weekend)[0]
    last_open = np.flatnonzero(market.tradable[:saturday, eur])[-1]
    assert market.close[saturday, eur] == market.close[last_open, eur]
    # Features of the closed instrument are carried forward too: never a later bar's.
    eur_columns = [i for i, name in enumerate(market.feature_names) if name.startswith("EURUSD:")]
    np.testing.assert_array_equal(
        market.features[saturday, eur_columns], market.features[last_open, eur_columns]
    )


def test_a_closed_market_does_not_trade_but_the_portfolio_is_marked(aligned) -> None:
    market, _, config = aligned
    env = env_of(market, config)
    env.reset()
    eur, btc = market.instruments.index("EURUSD"), market.instruments.index("BTCUSD")
    targets = np.zeros(2, dtype=np.float32)
    equities = []
    for step in range(len(market) - 1):
        targets[eur] = 0.5 if step % 2 else -0.5  # ask for a trade on every bar
        targets[btc] = 0.3
        *_, info = env.step(targets)
        equities.append(info["equity"])
    log = env.engine.fill_log()
    eur_fills = log[log["instrument"] == "EURUSD"]
    # A trade decided at bar t's close fills at bar t+1's open (fill_at: next_open): t+1 must
    # be open, whatever t was (a decision on Sunday evening fills at the reopening).
    assert config.environment.fill_at == "next_open"
    decided = np.searchsorted(market.timestamps, eur_fills["timestamp"].to_numpy())
    assert len(decided) and market.tradable[decided + 1, eur].all(), (
        "EUR/USD traded while its market was shut"
    )
    assert not market.tradable[:, eur].all()  # there were closed bars to avoid
    assert len(equities) == len(market) - 1 and np.isfinite(equities).all()
    # Risk features see both instruments: the correlation signal is defined (not all zero).
    assert np.abs(market.correlation).max() > 0
