"""Other shapes of source data through ingest, validate and features into a market.

Several instruments from one folder, trades that become bars, and a close-only series without
volume: each reaches a :class:`~ijules.env.market_data.MarketData` the environment can trade.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ijules.artifacts import FeatureSet, IngestReport
from ijules.data.features import run_features
from ijules.data.ingest import run_ingest
from ijules.data.validate import run_validate
from ijules.env.market_data import MarketData, load_windows
from ijules.errors import ConfigError, DataValidationError
from ijules.evaluation.baselines import BASELINES, PASSIVE, rule_baselines
from ijules.evaluation.stress import run_scenario
from ijules.evaluation.walk_forward import run_fold
from ijules.execution.costs import DAILY_VOLUME_USD
from tests.conftest import ES_TRADES, SAMPLES, SP500_CLOSE_ONLY, TINY, deep_merge

pytestmark = pytest.mark.slow

WINDOWS = ("train", "validation", "test")


def pipeline(config: Any, root: Path) -> tuple[FeatureSet, list[MarketData]]:
    """Ingest, validate and compute features in ``root``; return the meta and the windows."""
    staged, raw = root / "staging" / "bars.parquet", root / "raw" / "bars.parquet"
    run_ingest(config, source=None, output=staged, report=root / "ingest.json")
    run_validate(config, staged=staged, output=raw, result=root / "validation.json")
    meta = run_features(config, bars=raw, output=root / "features.parquet", meta=root / "m.json")
    return meta, load_windows(root / "features.parquet", meta, WINDOWS, config)


def assert_trades_through_the_baselines(config: Any, meta: FeatureSet, market: MarketData) -> None:
    """The environment trades ``market``: every benchmark ends finite, the passive one in one
    entry fill whose cost (entry and exit) is under the gate's ceiling."""
    backtests = rule_baselines(config, market, slice(None), meta.norm, meta.clip_zscore)
    assert set(backtests) == set(BASELINES)
    for name, backtest in backtests.items():
        assert np.isfinite(backtest.equity).all(), name
    passive = backtests[PASSIVE].metrics(market.bars_per_year)
    assert passive.num_trades == 1 and passive.total_cost > 0
    assert passive.cost_bps < config.gate.max_full_capital_fill_cost_bps


def test_two_instruments_from_one_folder_trade_on_a_common_clock(
    make_config, tmp_path, mlflow_store
) -> None:
    folder = tmp_path / "source"
    folder.mkdir()
    for name in ("btcusd_1h.csv.gz", "eurusd_1h.csv.gz"):
        shutil.copy(SAMPLES / name, folder / name)
    data = {
        "source": str(folder),
        "symbol": ["BTCUSD", "EURUSD"],
        "calendar": {"BTCUSD": "continuous", "EURUSD": "fx_24x5"},
        "start": "2017-07-01T00:00:00Z",
        "end": "2017-10-15T00:00:00Z",
    }
    config = make_config({"data": data, "split": {"embargo_bars": 24}})
    meta, markets = pipeline(config, tmp_path)

    assert meta.symbols == ("BTCUSD", "EURUSD")
    for market in markets:
        assert market.instruments == ("BTCUSD", "EURUSD") and market.n_instruments == 2
        assert market.close.shape == (len(market), 2)
        assert market.features.shape == (len(market), 2 * len(meta.feature_names))
        assert len(meta.norm.mean) == market.features.shape[1]
        assert market.feature_names[0].startswith("BTCUSD:")
        assert np.isfinite(market.features).all()
        # Crypto trades every bar; FX is closed at the weekend, when its last close is its mark.
        assert market.tradable[:, 0].all() and not market.tradable[:, 1].all()
        weekend = pd.DatetimeIndex(market.timestamps).weekday == 5
        assert weekend.any() and not market.tradable[weekend, 1].any()
    train, validation, test = markets
    assert train.timestamps[-1] < validation.timestamps[0] < test.timestamps[0]
    report = IngestReport.read(tmp_path / "ingest.json")
    assert report.rows_by_symbol is not None and set(report.rows_by_symbol) == {"BTCUSD", "EURUSD"}

    # A walk-forward fold trains and tests on both instruments' development bars.
    tiny = deep_merge(
        TINY, {"data": data, "split": {"embargo_bars": 24}, "walk_forward": {"min_train_bars": 500}}
    )
    fold = run_fold(
        make_config(tiny),
        fold_id=0,
        features=tmp_path / "features.parquet",
        meta=tmp_path / "m.json",
        output=tmp_path / "fold_0.json",
        checkpoints=tmp_path / "checkpoints",
    )
    assert set(fold.window.full_capital_fill_bps) == {"BTCUSD", "EURUSD"}
    assert fold.training.timesteps == TINY["walk_forward"]["total_timesteps"]
    assert pd.Timestamp(fold.window.train_last) < pd.Timestamp(fold.window.test_first)

    # Stress scenarios reshape one instrument's bars: refused by name, nothing written.
    with pytest.raises(ConfigError, match=r"holds 2 \(BTCUSD, EURUSD\)"):
        run_scenario(
            config,
            scenario=config.stress.scenarios[0],
            features=tmp_path / "features.parquet",
            meta=tmp_path / "m.json",
            model_dir=tmp_path / "no-model",
            output=tmp_path / "scenario.json",
        )
    assert not (tmp_path / "scenario.json").exists()


def test_e_mini_trades_become_minute_bars_on_the_cme_calendar(make_config, tmp_path) -> None:
    data = {**ES_TRADES, "calendar": "exchange:CME Globex Equity"}
    # statsmodels' Markov-switching fit fails on these thin minutes; the other regimes do not
    # need it.
    regimes = {"markov_probabilities": False}
    # Sizes are contracts of 50 times the index: without the multiplier one fill of the whole
    # capital would cost about 1,200 bps on these thin holiday minutes.
    liquidity = {"liquidity_model": {"contract_multiplier": {"ES": 50.0}}}
    config = make_config(
        {
            "data": data,
            "split": {"embargo_bars": 24},
            "regimes": regimes,
            "features": {"regime_signals": ["efficiency_ratio"]},
            "microstructure": liquidity,
        }
    )
    meta, markets = pipeline(config, tmp_path)
    assert meta.symbols == ("ES",) and meta.calendar == "exchange:CME Globex Equity"
    stamps = np.concatenate([m.timestamps for m in markets])
    # No bar between the Labor Day early close (15:30 UTC) and the reopening (22:00 UTC).
    closed = (stamps >= np.datetime64("2013-09-02T15:30")) & (
        stamps < np.datetime64("2013-09-02T22:00")
    )
    assert not closed.any()
    assert all(m.tradable.all() and (m.liquidity > 0).all() for m in markets)
    assert_trades_through_the_baselines(config, meta, markets[-1])


def test_a_close_only_series_trades_on_its_asset_class_liquidity(make_config, tmp_path) -> None:
    data = {**SP500_CLOSE_ONLY, "calendar": "exchange:XNYS", "start": "2015-01-01T00:00:00Z"}
    liquidity = {"liquidity_model": {"asset_class": "equity"}}
    config = make_config(
        {"data": data, "quality": {"max_missing_bars": 0}, "microstructure": liquidity}
    )
    meta, markets = pipeline(config, tmp_path)
    assert not any(name.startswith("volume") for name in meta.feature_names)
    share = config.microstructure.transaction_costs.market_impact.liquidity_decay_factor
    depth = share * DAILY_VOLUME_USD["equity"]  # one bar a day
    for market in markets:
        # No volume data: liquidity is the class's daily volume in units at each bar's price,
        # and no bar is taken for one that printed no volume.
        np.testing.assert_allclose(market.liquidity[:, 0], depth / market.close[:, 0])
        assert not market.stale.any()
    assert_trades_through_the_baselines(config, meta, markets[-1])


def test_a_delivery_with_a_bar_decades_ahead_is_not_published(make_config, tmp_path) -> None:
    config = make_config({"data": {"end": "2017-08-01T00:00:00Z"}})
    staged, raw = tmp_path / "staged.parquet", tmp_path / "raw.parquet"
    run_ingest(config, source=None, output=staged, report=tmp_path / "ingest.json")
    bars = pd.read_parquet(staged)
    bars.loc[len(bars) - 1, "timestamp"] = pd.Timestamp("2057-08-01T00:00:00Z")
    bars.to_parquet(staged, index=False)
    with pytest.raises(DataValidationError) as caught:
        run_validate(config, staged=staged, output=raw, result=tmp_path / "result.json")
    message = str(caught.value)
    assert "not_in_future" in message and f"row {len(bars) - 1} (BTCUSD, 2057-08-01" in message
    assert "\n" not in message
    assert not raw.exists()
