"""The btcusd_1h sample as our environment sees it, shared by the environment benchmarks."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from ijules.artifacts import NormStats
from ijules.config import Config, load_config
from ijules.data.features import compute_features, feature_columns
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData, build_market
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.env.vector_env import VectorTradingEnv

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "btcusd_1h.csv.gz"


def sample_bars() -> pd.DataFrame:
    bars = pd.read_csv(SAMPLE)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    return bars


@functools.cache
def prepared() -> tuple[Config, MarketData, EngineSettings]:
    """params.yaml and the sample's market and settings, built once: the market (GARCH regimes
    over the whole sample) takes seconds, and every environment only reads it."""
    config = load_config(REPO / "params.yaml")
    bars = sample_bars()
    table = compute_features(bars, config.features)
    names = list(feature_columns(table))
    index = pd.DatetimeIndex(table["timestamp"])
    market = build_market(
        pd.DataFrame({"BTCUSD": table["close"].to_numpy()}, index=index),
        pd.DataFrame({"BTCUSD": table["volume"].to_numpy()}, index=index),
        pd.DataFrame(table[names].to_numpy(), index=index, columns=names),
        config=config,
        bars_per_year=24 * 365.25,
    ).rows(slice(config.features.warmup_bars, None))  # market state over every bar, then trade
    # Normalised over the whole sample: these environments are timed, not evaluated.
    values = market.features
    norm = NormStats(mean=tuple(values.mean(axis=0)), std=tuple(values.std(axis=0)))
    settings = EngineSettings.from_config(config, norm, config.features.clip_zscore, 1)
    return config, market, settings


def sample_env(*, risk_on: bool, episode_bars: int | None = None) -> TradingEnv:
    """One environment on the sample: full costs, risk features, safeguards; risk engine on/off."""
    config, market, settings = prepared()
    env = TradingEnv(
        market,
        settings,
        Safeguards(config.safeguards),
        episode_bars=episode_bars or config.environment.episode_bars,
    )
    env.engine.reconfigure(risk=settings.risk.switched(enabled=risk_on))
    return env


def sample_vector_env(n_envs: int) -> VectorTradingEnv:
    """``n_envs`` copies stepped in one kernel call, as training uses them (risk engine on)."""
    config, market, settings = prepared()
    return VectorTradingEnv(
        market,
        settings,
        Safeguards(config.safeguards),
        n_envs=n_envs,
        episode_bars=config.environment.episode_bars,
        seed=0,
    )
