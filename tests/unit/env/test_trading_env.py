from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijules.config import EnvironmentConfig, FeaturesConfig
from ijules.data.features import NormStats, compute_features, feature_columns
from ijules.env.market_data import MarketData
from ijules.env.trading_env import TradingEnv


@pytest.fixture(scope="module")
def market(btc_1h: pd.DataFrame) -> MarketData:
    cfg = FeaturesConfig()
    table = compute_features(btc_1h.iloc[:800], cfg).iloc[cfg.warmup_bars :].reset_index(drop=True)
    names = feature_columns(table)
    return MarketData(
        timestamps=table["timestamp"].to_numpy(dtype="datetime64[ns]"),
        close=table["close"].to_numpy(),
        features=table[list(names)].to_numpy(),
        feature_names=names,
    )


def norm_for(market: MarketData) -> NormStats:
    return NormStats(tuple(market.features.mean(axis=0)), tuple(market.features.std(axis=0)))


def make_env(market: MarketData, **overrides) -> TradingEnv:
    config = EnvironmentConfig(**{"min_trade_weight": 0.0, **overrides})
    return TradingEnv(market, norm_for(market), config, clip_zscore=5.0)


def test_environment_passes_the_gymnasium_and_sb3_checkers(market) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = TradingEnv(
        market, norm_for(market), EnvironmentConfig(), clip_zscore=5.0, episode_bars=64
    )
    gym_check(env, skip_render_check=True)
    sb3_check(env, warn=True)


def test_costs_are_bps_of_traded_notional_and_sizing_leaves_the_target_weight(market) -> None:
    env = make_env(market, proportional_cost_bps=10.0, initial_capital=100_000.0)
    env.reset()
    env.step(np.array([1.0], dtype=np.float32))
    fill = env.last_fill
    assert fill is not None
    assert fill.cost == pytest.approx(fill.traded_notional * 10.0 / 10_000)
    # After paying the cost, the position is exactly 100% of what equity is left.
    assert fill.traded_notional == pytest.approx(100_000.0 / (1 + 0.001))
    assert fill.units_after * fill.price / (fill.equity_before - fill.cost) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(
    actions=st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=5, max_size=120),
    limit=st.floats(min_value=0.1, max_value=1.0),
    reserve=st.floats(min_value=0.0, max_value=0.5),
    bps=st.floats(min_value=0.0, max_value=50.0),
)
def test_accounting_holds_and_limits_are_never_exceeded(
    market, actions, limit, reserve, bps
) -> None:
    env = make_env(
        market,
        max_position_fraction=limit,
        min_cash_reserve_fraction=reserve,
        proportional_cost_bps=bps,
    )
    position_limit = min(limit, 1 - reserve)
    env.reset()
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(np.array([action], dtype=np.float32))
        fill = env.last_fill
        assert fill is not None
        next_price = market.close[fill.bar + 1]
        # Equity moves by exactly the position's mark-to-market minus the cost paid.
        held_before = fill.units_after - fill.traded_units
        expected = fill.equity_before + fill.units_after * (next_price - fill.price) - fill.cost
        assert fill.equity_after == pytest.approx(expected, rel=1e-12, abs=1e-6)
        assert held_before * fill.price + (
            fill.equity_before - held_before * fill.price
        ) == pytest.approx(fill.equity_before)
        assert fill.cost >= 0 and np.isfinite([reward, fill.equity_after]).all()
        assert reward == pytest.approx(
            (fill.equity_after - fill.equity_before) * env.config.reward_scaling
        )
        weight_after_trade = fill.units_after * fill.price / (fill.equity_before - fill.cost)
        assert abs(weight_after_trade) <= position_limit + 1e-9
        if terminated or truncated:
            break


def test_small_rebalances_are_skipped(market) -> None:
    env = make_env(market, min_trade_weight=0.05)
    env.reset()
    env.step(np.array([0.5], dtype=np.float32))
    env.step(np.array([0.48], dtype=np.float32))  # inside the band: no trade
    assert env.last_fill is not None and env.last_fill.traded_units == 0.0
    env.step(np.array([0.3], dtype=np.float32))  # outside the band
    assert env.last_fill is not None and env.last_fill.traded_units < 0


def test_a_position_that_drifts_past_the_limit_is_pulled_back_despite_the_band(market) -> None:
    env = make_env(market, min_trade_weight=0.05, max_position_fraction=0.5)
    env.reset()
    rises = np.flatnonzero(np.diff(market.close) > 0)
    while env.bar not in rises:  # stand aside until the next bar closes higher
        env.step(np.array([0.0], dtype=np.float32))
    env.step(np.array([1.0], dtype=np.float32))  # at the limit, then the price rises
    env.step(np.array([1.0], dtype=np.float32))  # same target: only the breach makes it trade
    assert env.last_fill is not None and env.last_fill.traded_units < 0
    fill = env.last_fill
    assert fill.units_after * fill.price / (fill.equity_before - fill.cost) == pytest.approx(0.5)


def test_evaluation_episode_covers_the_whole_window_once(market) -> None:
    env = make_env(market)
    env.reset()
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
        steps += 1
        done = terminated or truncated
    assert steps == len(market) - 1


def test_training_episodes_start_at_random_bars_with_a_fixed_length(market) -> None:
    env = TradingEnv(
        market, norm_for(market), EnvironmentConfig(), clip_zscore=5.0, episode_bars=50
    )
    starts = set()
    for seed in range(5):
        env.reset(seed=seed)
        starts.add(env.bar)
        for step in range(50):
            *_, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
            assert truncated == (step == 49)
    assert len(starts) > 1


def test_observation_is_standardised_features_plus_current_weight(market) -> None:
    env = make_env(market)
    observation, _ = env.reset()
    norm = norm_for(market)
    expected = np.clip((market.features[0] - np.array(norm.mean)) / np.array(norm.std), -5, 5)
    np.testing.assert_allclose(observation[:-1], expected, rtol=1e-5)
    assert observation[-1] == 0.0
    observation, *_ = env.step(np.array([-1.0], dtype=np.float32))
    assert observation[-1] == pytest.approx(-1.0, abs=0.01)
