"""Liquidity where the data has no volume, and the check that catches an impossible cost model.

An FX series carries no central volume. Its liquidity must come from an explicit setting (per
instrument, else per asset class), and a setting that makes one fill of the whole capital cost
more than the gate's ceiling must show as such.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.env.cost_check import full_capital_fill_bps
from ijules.errors import ConfigError
from tests.conftest import SAMPLES
from tests.unit.env.conftest import market_of


@pytest.fixture(scope="module")
def eurusd_without_volume() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLES / "eurusd_1h.csv.gz", nrows=1200)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    frame["volume"] = np.nan  # as a source without a volume column delivers it
    return frame


def fx(make_config, liquidity: dict[str, object]):
    return make_config(
        {
            "data": {"symbol": "EURUSD", "calendar": "fx_24x5"},
            "microstructure": {"liquidity_model": {"asset_class": "fx", **liquidity}},
        }
    )


def test_fx_without_volume_takes_its_class_depth_and_costs_little(
    eurusd_without_volume, make_config
) -> None:
    config = fx(make_config, {})
    market = market_of(eurusd_without_volume, config, "EURUSD")
    per_day = 24 * 5 / 6  # hourly bars on trading days (about 20 a calendar day with bars)
    depth_usd = market.liquidity[:, 0] * market.close[:, 0]
    # 1e10 USD a day, half of it reachable, over the bars of a trading day.
    assert np.median(depth_usd) == pytest.approx(0.5 * 1e10 / per_day, rel=0.25)
    bps = full_capital_fill_bps(market, config)
    proportional = config.microstructure.transaction_costs.proportional_cost_bps
    assert proportional < bps["EURUSD"] < proportional + 1.0  # impact is a rounding error here
    assert bps["EURUSD"] < config.gate.max_full_capital_fill_cost_bps


def test_one_bars_capital_as_book_depth_fails_the_ceiling(
    eurusd_without_volume, make_config
) -> None:
    # The trap the old default set: $100k of depth per bar and $100k of capital.
    config = fx(make_config, {"book_depth_estimate": 100_000.0})
    market = market_of(eurusd_without_volume, config, "EURUSD")
    bps = full_capital_fill_bps(market, config)["EURUSD"]
    gamma = config.microstructure.transaction_costs.market_impact.permanent_impact_coeff
    assert bps > 1e4 * gamma  # the permanent impact alone: gamma x (q / V) with q = V
    assert bps > config.gate.max_full_capital_fill_cost_bps


def test_a_per_instrument_volume_beats_the_global_depth(eurusd_without_volume, make_config) -> None:
    config = fx(
        make_config, {"book_depth_estimate": 100_000.0, "daily_volume_usd": {"EURUSD": 2e9}}
    )
    market = market_of(eurusd_without_volume, config, "EURUSD")
    thin = full_capital_fill_bps(market, config)["EURUSD"]
    deep = full_capital_fill_bps(
        market_of(eurusd_without_volume, fx(make_config, {}), "EURUSD"), fx(make_config, {})
    )["EURUSD"]
    assert deep < thin < 100.0  # 2e9 a day is thinner than the class's 1e10, and still sane


def test_measured_volume_is_used_where_the_data_has_it(btc_bars, make_config) -> None:
    default = make_config()
    absurd = make_config({"microstructure": {"liquidity_model": {"book_depth_estimate": 1.0}}})
    # A 1-USD fallback would make every fill cost more than the fill; BTC/USD has volume (only a
    # trailing window of zero volume would reach the fallback), so it is not used.
    measured = full_capital_fill_bps(market_of(btc_bars, default), default)
    assert full_capital_fill_bps(market_of(btc_bars, absurd), absurd) == measured
    assert 0 < measured["BTCUSD"] < 1e4


def test_volume_in_contracts_counts_at_the_contract_multiplier(btc_bars, make_config) -> None:
    units = make_config()
    contracts = make_config(
        {"microstructure": {"liquidity_model": {"contract_multiplier": {"BTCUSD": 50.0}}}}
    )
    plain, scaled = market_of(btc_bars, units), market_of(btc_bars, contracts)
    measured = ~np.isnan(btc_bars["volume"].to_numpy()[: len(plain)])
    np.testing.assert_allclose(scaled.liquidity[measured], 50.0 * plain.liquidity[measured])
    # Fifty times the depth: the impact of one fill of the whole capital falls.
    assert (
        full_capital_fill_bps(scaled, contracts)["BTCUSD"]
        < full_capital_fill_bps(plain, units)["BTCUSD"]
    )


def test_a_setting_for_a_symbol_that_is_not_traded_is_refused(make_config) -> None:
    with pytest.raises(ConfigError, match=r"contract_multiplier names \['ES'\].*\(BTCUSD\)"):
        make_config({"microstructure": {"liquidity_model": {"contract_multiplier": {"ES": 50.0}}}})
