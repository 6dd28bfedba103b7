from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ijules.artifacts import NormStats
from ijules.config import Config
from ijules.data.features import compute_features, feature_columns
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData, build_market
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv


def market_of(bars: pd.DataFrame, config: Config, symbol: str = "BTCUSD") -> MarketData:
    """Single-instrument market data from canonical bars, through the features code: the
    market state over every bar, then the bars after the features' warm-up."""
    table = compute_features(bars, config.features)
    names = feature_columns(table)
    index = pd.DatetimeIndex(table["timestamp"])
    market = build_market(
        pd.DataFrame({symbol: table["close"].to_numpy()}, index=index),
        pd.DataFrame({symbol: table["volume"].to_numpy()}, index=index),
        pd.DataFrame(table[list(names)].to_numpy(), index=index, columns=list(names)),
        config=config,
        bars_per_year=24 * 365.25,
    )
    return market.rows(slice(config.features.warmup_bars, None))


def norm_of(market: MarketData) -> NormStats:
    values = market.features
    return NormStats(mean=tuple(values.mean(axis=0)), std=tuple(values.std(axis=0) + 1e-12))


def env_of(market: MarketData, config: Config, **kwargs: Any) -> TradingEnv:
    settings = EngineSettings.from_config(config, norm_of(market), 5.0, market.n_instruments)
    return TradingEnv(market, settings, Safeguards(config.safeguards), **kwargs)


@pytest.fixture(scope="module")
def btc_bars(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[:1500].reset_index(drop=True)


def random_actions(seed: int, steps: int, n: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, n)).astype(np.float32)
