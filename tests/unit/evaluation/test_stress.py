"""Stress reshaping: bars stay bars, returns and volatility are what the scenario says; the
correlation breakdown halts the risk engine for a stretch of the window, not all of it. Survival:
an agent that never traded in a scenario has not survived it, nor one whose position grew while
the engine was halted."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ijules.artifacts import SurvivalChecks
from ijules.config import Config, load_config
from ijules.env.backtest import Backtest, baseline_env, constant, run_backtest
from ijules.env.market_data import MarketData
from ijules.env.trading_env import Observation
from ijules.evaluation.stress import (
    breakdown_stretch,
    breaker_violations,
    correlation_broken,
    crisis_replay,
    reshape,
    survival,
    volatility_scaled,
)
from ijules.sim import codes
from tests.conftest import write_params
from tests.unit.env.conftest import market_of, norm_of

PER_YEAR = 24 * 365.25


@pytest.fixture(scope="module")
def segment(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[1000:1720][
        ["timestamp", "open", "high", "low", "close", "volume"]
    ].reset_index(drop=True)


def log_returns(frame: pd.DataFrame, previous: float) -> np.ndarray:
    return np.diff(np.log(np.concatenate([[previous], frame["close"].to_numpy()])))


def assert_valid_bars(frame: pd.DataFrame) -> None:
    prices = frame[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1) * (1 - 1e-12)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1) * (1 + 1e-12)).all()


def test_reshape_sets_close_returns_and_keeps_bars_valid(segment: pd.DataFrame) -> None:
    previous = 4000.0
    wanted = np.random.default_rng(1).normal(0.0, 0.02, len(segment))
    out = reshape(segment, previous, wanted, 2.0)
    np.testing.assert_allclose(log_returns(out, previous), wanted, atol=1e-12)
    assert_valid_bars(out)
    assert (out["volume"] == segment["volume"]).all() and (
        out["timestamp"] == segment["timestamp"]
    ).all()


def test_volatility_shock_multiplies_deviations_from_the_mean(segment: pd.DataFrame) -> None:
    previous = float(segment["close"].iloc[0])
    base = log_returns(segment, previous)
    out = volatility_scaled(segment, previous, 3.0)
    shocked = log_returns(out, previous)
    assert np.std(shocked) == pytest.approx(3.0 * np.std(base), rel=1e-9)
    assert np.mean(shocked) == pytest.approx(np.mean(base), abs=1e-12)
    # High-low ranges scale with the shock too.
    ratio = (out["high"] / out["low"]).map(np.log) / (segment["high"] / segment["low"]).map(np.log)
    assert ratio.dropna().median() == pytest.approx(3.0, rel=1e-6)
    assert_valid_bars(out)


def test_a_crisis_replays_its_daily_moves_in_the_instruments_volatility(
    segment: pd.DataFrame,
) -> None:
    previous = float(segment["close"].iloc[0])
    crisis = np.array([-0.05, 0.02, -0.09, 0.01, -0.03])  # index daily log returns
    out = crisis_replay(
        segment, previous, crisis_returns=crisis, calm_sigma=0.01, instrument_daily_sigma=0.04
    )
    days = out["timestamp"].dt.floor("D")
    assert days.nunique() == len(crisis)  # one replayed day per crisis day
    per_day = pd.Series(log_returns(out, previous)).groupby(days.to_numpy()).sum().to_numpy()
    # Each day moves by the crisis day's z-score times the instrument's daily volatility.
    np.testing.assert_allclose(per_day, crisis / 0.01 * 0.04, atol=1e-9)
    assert_valid_bars(out)


def test_a_crisis_longer_than_the_window_is_cut_to_the_window(segment: pd.DataFrame) -> None:
    short = segment.iloc[:72].reset_index(drop=True)  # three days of hourly bars
    out = crisis_replay(
        short,
        float(short["close"].iloc[0]),
        crisis_returns=np.full(10, -0.01),
        calm_sigma=0.01,
        instrument_daily_sigma=0.03,
    )
    assert out["timestamp"].dt.floor("D").nunique() == short["timestamp"].dt.floor("D").nunique()
    assert out["close"].iloc[-1] < short["close"].iloc[0]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(write_params(tmp_path_factory.mktemp("params")))


@pytest.fixture(scope="module")
def market(btc_1h: pd.DataFrame, config: Config) -> MarketData:
    return market_of(btc_1h.iloc[:1500].reset_index(drop=True), config)


def judged(config: Config, market: MarketData, weight: float) -> tuple[SurvivalChecks, Backtest]:
    """Backtest a constant weight through the risk engine and judge its survival."""
    env = baseline_env(config, market, norm_of(market), 5.0)
    backtest = run_backtest(env, constant(weight))
    violations = breaker_violations(backtest, env.engine.trading_states())
    return survival(config, backtest, backtest.metrics(PER_YEAR), violations), backtest


def test_an_agent_halted_for_the_whole_scenario_has_not_survived_it(
    config: Config, market: MarketData
) -> None:
    # A correlation breakdown on every bar (what the scenario once forced) halts the risk engine
    # from the first bar to the last.
    halted = replace(market, correlation_break=np.ones(len(market), dtype=bool))
    checks, backtest = judged(config, halted, 1.0)
    # It asked for the full limit on every bar and the halt refused it every time.
    assert set(backtest.risk_refusals) == {"HALTED: no new risk"}
    assert not np.any(backtest.traded)
    # Its drawdown, equity and breakers are all fine, because nothing happened.
    assert checks.unmet == ["agent_traded"]
    assert not checks.all_met


def test_a_policy_that_never_trades_has_not_survived(config: Config, market: MarketData) -> None:
    checks, _ = judged(config, market, 0.0)
    assert checks.unmet == ["agent_traded"]
    assert not checks.all_met


def test_an_agent_that_traded_within_the_limits_has_survived(
    config: Config, market: MarketData
) -> None:
    checks, backtest = judged(config, market, 0.5)
    assert np.any(backtest.traded)
    assert checks.agent_traded and checks.all_met and checks.unmet == []


def test_the_breakdown_stretch_is_the_span_of_the_window() -> None:
    middle = breakdown_stretch(9, (1 / 3, 2 / 3))
    assert middle.tolist() == [False] * 3 + [True] * 3 + [False] * 3
    # However short the window or narrow the span, the breakdown takes at least one bar.
    assert breakdown_stretch(2, (0.9, 0.95)).tolist() == [False, True]
    assert breakdown_stretch(10, (0.5, 0.5001)).sum() == 1


def test_the_correlation_breakdown_is_forced_only_within_its_stretch(
    config: Config, market: MarketData
) -> None:
    span = config.stress.correlation_breakdown_span
    assert span == pytest.approx((1 / 3, 2 / 3), abs=1e-3)  # params.yaml: the middle third
    broken = correlation_broken(market, span)
    stretch = breakdown_stretch(len(market), span)
    assert not stretch[0] and not stretch[-1]  # it starts and ends within the window
    np.testing.assert_array_equal(broken.correlation_break, market.correlation_break | stretch)
    assert broken.correlation_break[stretch].all()
    # Outside the stretch the signal and the gap stay what the bars say.
    np.testing.assert_array_equal(
        broken.correlation_break[~stretch], market.correlation_break[~stretch]
    )
    np.testing.assert_array_equal(broken.correlation[~stretch], market.correlation[~stretch])
    # Within it the gap is at its worst: above anything the window showed.
    assert (broken.correlation[stretch] > np.max(np.abs(market.correlation))).all()


def stretch_policy(stretch: np.ndarray, calm: float, during: float) -> Callable[..., np.ndarray]:
    """Ask for ``calm`` of the limit outside ``stretch`` and ``during`` within it, step by step."""
    steps = itertools.count()

    def act(_observation: Observation) -> np.ndarray:
        return np.array([during if stretch[next(steps)] else calm])

    return act


def broken_run(config: Config, market: MarketData) -> tuple[Backtest, np.ndarray, np.ndarray]:
    """Backtest, under the correlation breakdown, an agent that tries to add risk through it:
    the backtest, the stretch and the risk engine's states."""
    span = config.stress.correlation_breakdown_span
    broken = correlation_broken(market, span)
    stretch = breakdown_stretch(len(broken), span)
    env = baseline_env(config, broken, norm_of(broken), 5.0)
    # A small weight, so no drawdown halt of its own runs into the breakdown's.
    backtest = run_backtest(env, stretch_policy(stretch, calm=0.2, during=1.0))
    return backtest, stretch, env.engine.trading_states()[: len(backtest.units)]


def test_an_agent_survives_the_breakdown_halted_through_it_and_trading_before_and_after(
    config: Config, market: MarketData
) -> None:
    backtest, stretch, states = broken_run(config, market)
    first, last = int(np.argmax(stretch)), int(len(stretch) - np.argmax(stretch[::-1]))
    events = backtest.risk_events
    halts = events.loc[events["code"] == codes.CORRELATION_BREAKDOWN, "timestamp"].to_numpy()
    # The breakdown halts the engine at its first bar, and the halt lifts once it has cleared.
    assert np.searchsorted(market.timestamps, halts).tolist() == [first]
    assert (states[first:last] == codes.HALTED).all() and states[last] == codes.ACTIVE
    # It asked for five times its weight through the breakdown and the halt refused every growth.
    assert backtest.risk_refusals["HALTED: no new risk"] > 0
    units = np.abs(backtest.units[:, 0])
    assert (units[first:last] <= units[first - 1 : last - 1] * (1 + 1e-9) + 1e-9).all()
    traded = np.flatnonzero(np.abs(backtest.traded[:, 0]) > 0)
    assert (traded < first).any() and (traded >= last).any()
    violations = breaker_violations(backtest, states)
    checks = survival(config, backtest, backtest.metrics(PER_YEAR), violations)
    assert violations == 0 and checks.all_met


def test_a_position_grown_during_the_breakdown_fails_survival(
    config: Config, market: MarketData
) -> None:
    backtest, stretch, states = broken_run(config, market)
    inside = int(np.argmax(stretch)) + 10
    before = int(np.flatnonzero(states[: np.argmax(stretch)] == codes.ACTIVE)[-1])

    def grown_at(step: int) -> Backtest:
        units = backtest.units.copy()
        units[step:] += 1.0  # one more unit from this step on (the agent holds long)
        return replace(backtest, units=units)

    # Growth while the breakdown halts the engine breaks the breakers' rule...
    grown = grown_at(inside)
    violations = breaker_violations(grown, states)
    checks = survival(config, grown, grown.metrics(PER_YEAR), violations)
    assert violations == 1 and checks.unmet == ["no_growth_while_restricted"]
    # ...the same growth while the engine was active does not.
    assert breaker_violations(grown_at(before), states) == 0
