"""A session continued from a carried state trades exactly as one session over all the bars."""

from __future__ import annotations

import numpy as np
import pytest

from ijules.env.backtest import Backtest, run_session
from ijules.env.carry import CarriedState, ContinuationError
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.sim.layout import COST_COMPONENTS
from tests.unit.env.conftest import market_of, norm_of

# A jumpy risk engine, so that its state (REDUCING, HALTED, the cooldown) crosses the cut.
JUMPY = {
    "risk_management": {
        "limits": {"max_daily_drawdown_pct": 0.004, "daily_var_budget": 0.05},
        "circuit_breakers": {
            "position_scaling_threshold": 0.002,
            "emergency_liquidation_threshold": 0.006,
        },
        "halt_release": {"mode": "condition", "cooldown_bars": 6},
    },
    "environment": {"volatility_target": None},
}
BARS_PER_DAY = 24.0  # pinned: each window would measure its own


def policy(observation: np.ndarray) -> np.ndarray:
    """A deterministic policy of the observation alone that trades a lot."""
    return np.array([np.tanh(4.0 * float(observation[:6].sum()))], dtype=np.float32)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params"), JUMPY))


@pytest.fixture(scope="module")
def market(btc_bars, config) -> MarketData:
    return market_of(btc_bars, config)


@pytest.fixture(scope="module")
def settings(market, config) -> EngineSettings:
    # One normalisation for every window, as a trained policy's.
    return EngineSettings.from_config(config, norm_of(market), 5.0, 1)


def session(
    market: MarketData, settings: EngineSettings, config, state: CarriedState | None = None
):
    env = TradingEnv(market, settings, Safeguards(config.safeguards), bars_per_day=BARS_PER_DAY)
    if state is not None:
        env.engine.continue_from(state)
    return run_session(env, policy), env.engine.carry()


def assert_same_steps(whole: Backtest, parts: list[Backtest]) -> None:
    for field in ("traded", "costs", "fills"):
        joined = np.concatenate([getattr(part, field) for part in parts])
        np.testing.assert_allclose(joined, getattr(whole, field), rtol=1e-12, atol=1e-9)
    marks = np.concatenate([parts[0].equity, *(part.equity[1:] for part in parts[1:])])
    np.testing.assert_allclose(marks, whole.equity, rtol=1e-12)
    units = np.concatenate([part.units for part in parts])
    np.testing.assert_allclose(units, whole.units, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cuts", [(700,), (350, 351, 900)])
def test_sessions_continued_from_their_carried_state_trade_as_one_session(
    market, settings, config, cuts
) -> None:
    start, end = 200, 1300
    whole, final = session(market.rows(slice(start, end + 1)), settings, config)
    parts, state, standing = [], None, start
    for cut in (*cuts, end):
        depth = 0 if state is None else len(state.history)
        window = market.rows(slice(standing - depth, cut + 1))
        # Through JSON, as a night hands it to the next.
        if state is not None:
            state = CarriedState.model_validate_json(state.model_dump_json())
        part, state = session(window, settings, config, state)
        parts.append(part)
        standing = cut
    assert_same_steps(whole, parts)
    # The risk engine did act, and on both sides of a cut.
    assert whole.risk_summary().state_changes >= 4
    assert all(part.risk_summary().refusals for part in parts)
    events = np.concatenate([part.risk_events["reason"].to_numpy() for part in parts])
    assert list(events) == list(whole.risk_events["reason"])
    assert state is not None and state.account == final.account
    assert state.history == final.history and state.standing_at == final.standing_at


def test_a_session_continued_twice_from_one_bar_trades_nothing_twice(
    market, settings, config
) -> None:
    """A window holding only the bars the state already traded gives no step to take."""
    _, state = session(market.rows(slice(200, 401)), settings, config)
    depth = len(state.history)
    with pytest.raises(ValueError, match="cannot continue"):
        session(market.rows(slice(400 - depth, 401)), settings, config, state)


def test_a_window_that_does_not_start_at_the_carried_bars_is_refused(
    market, settings, config
) -> None:
    _, state = session(market.rows(slice(200, 401)), settings, config)
    depth = len(state.history)
    assert depth == config.observation.drawdown_velocity_bars + 1
    for shifted in (400 - depth + 1, 400 - depth - 1):
        with pytest.raises(ContinuationError, match="not the carried state's"):
            session(market.rows(slice(shifted, 600)), settings, config, state)


def test_a_session_with_positions_carried_in_books_them_from_the_first_bar(
    market, settings, config
) -> None:
    whole, _ = session(market.rows(slice(200, 601)), settings, config)
    cut = 200 + int(np.flatnonzero(whole.units[100:, 0])[0]) + 101  # a bar something is held at
    first, state = session(market.rows(slice(200, cut + 1)), settings, config)
    assert np.any(state.units != 0.0)
    depth = len(state.history)
    second, _ = session(market.rows(slice(cut - depth, 601)), settings, config, state)
    np.testing.assert_allclose(second.units[0] - second.traded[0], first.units[-1])
    assert second.equity[0] == pytest.approx(first.equity[-1], rel=1e-12)
    assert second.timestamps[0] == first.timestamps[-1]
    assert set(second.costs_by_component()) == set(COST_COMPONENTS)
