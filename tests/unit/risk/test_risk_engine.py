"""The risk engine: states never add risk, halts lift by their rule, breakers fire in crises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ijules.evaluation.risk_report import load_daily, replay_breakers
from ijules.risk.engine import trading_state
from ijules.sim import codes
from tests.conftest import REPO
from tests.unit.env.conftest import env_of, market_of

# Tight thresholds so that random trading on real BTC bars visits every state often.
TIGHT = {
    "risk_management": {
        "limits": {"max_daily_drawdown_pct": 0.02, "max_monthly_drawdown_pct": 0.05},
        "circuit_breakers": {
            "emergency_liquidation_threshold": 0.015,
            "position_scaling_threshold": 0.004,
            "trading_halt_conditions": {"consecutive_losses": 2, "losing_day_pct": 0.0},
        },
        "halt_release": {"mode": "condition", "cooldown_bars": 6},
    }
}


@pytest.fixture(scope="module")
def btc(btc_1h):
    return btc_1h.iloc[:2500].reset_index(drop=True)


def run_random(env, seed: int, steps: int):
    """Step with random targets; yield (state after the gate, units before, units after)."""
    rng = np.random.default_rng(seed)
    engine = env.engine
    env.reset()
    for _ in range(steps):
        before = engine.units()[0].copy()
        *_, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=1).astype(np.float32))
        state = int(engine.trading_states()[-1])
        yield state, before, engine.units()[0].copy()
        if terminated or truncated:
            return


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000))
def test_no_state_but_active_lets_a_position_grow(btc, make_config, seed) -> None:
    config = make_config(TIGHT)
    env = env_of(market_of(btc, config), config)
    seen = set()
    for state, before, after in run_random(env, seed, 600):
        seen.add(state)
        if state in (codes.HALTED, codes.REDUCING):
            # Trades may only shrink a position towards zero, never grow or flip it.
            assert np.all(np.abs(after) <= np.abs(before) + 1e-9)
            assert np.all(after * before >= 0)
    assert codes.HALTED in seen or codes.REDUCING in seen


def test_every_refusal_and_change_has_a_reason(btc, make_config) -> None:
    config = make_config(TIGHT)
    env = env_of(market_of(btc, config), config)
    list(run_random(env, 5, 1500))
    changes = env.engine.risk_events()
    assert len(changes) > 0
    assert all(reason and not reason.startswith("unknown") for reason in changes["reason"])
    assert set(changes["state"]) <= set(codes.STATES)
    cut = env.engine.risk_refusals()
    assert cut and all(not reason.startswith("unknown") for reason in cut)


def test_operator_release_is_the_only_way_out(btc, make_config) -> None:
    config = make_config(
        {
            **TIGHT,
            "risk_management": {
                **TIGHT["risk_management"],
                "halt_release": {"mode": "operator", "cooldown_bars": 1},
            },
        }
    )
    env = env_of(market_of(btc, config), config)
    halted_at = None
    for step, (state, *_rest) in enumerate(run_random(env, 9, 1500)):
        if state == codes.HALTED:
            halted_at = step
            break
    assert halted_at is not None
    for _ in range(200):  # days pass, conditions clear: still halted
        env.step(np.array([1.0], dtype=np.float32))
    assert trading_state(env.engine.sim) == "HALTED"
    env.engine.release_halt(0, operator="risk officer", note="reviewed")
    env.step(np.array([0.0], dtype=np.float32))
    last = env.engine.risk_events().iloc[-1]
    assert last["reason"] == codes.describe(codes.RELEASED_OPERATOR)


def test_time_release_lifts_after_the_cooldown(btc, make_config) -> None:
    config = make_config(
        {
            **TIGHT,
            "risk_management": {
                **TIGHT["risk_management"],
                "halt_release": {"mode": "time", "cooldown_bars": 5},
            },
        }
    )
    env = env_of(market_of(btc, config), config)
    list(run_random(env, 13, 1500))
    changes = env.engine.risk_events()
    released = changes[changes["code"] == codes.RELEASED_TIME]
    assert len(released) > 0
    halts = changes[changes["state"] == "HALTED"]
    for when in released["timestamp"]:
        previous = halts[halts["timestamp"] < when]["timestamp"].max()
        assert (when - previous) >= np.timedelta64(5, "h")


def test_limits_bind_on_every_action(btc, make_config) -> None:
    config = make_config({"risk_management": {"limits": {"max_position_concentration_pct": 0.1}}})
    env = env_of(market_of(btc, config), config)
    for _ in run_random(env, 3, 300):
        pass
    weights = env.engine.held_weights()[0, 0]
    assert abs(weights) <= 0.1 + 1e-9
    assert any("concentration" in reason for reason in env.engine.risk_refusals())


@pytest.fixture(scope="module")
def replays():
    from ijules.config import load_config

    config = load_config(REPO / "params.yaml")
    return replay_breakers(config, load_daily(config, REPO / config.risk_report.source))


@pytest.mark.parametrize("window", ["crisis_2008", "flash_crash_2010", "covid_2020"])
def test_breakers_fire_in_real_crises(replays, window) -> None:
    assert replays[window].breakers_fired >= 1
    assert replays[window].index_return < -0.1


def test_breakers_stay_quiet_in_a_calm_year(replays) -> None:
    calm = replays["calm_2017"]
    assert calm.breakers_fired == 0
    assert calm.replay_return == pytest.approx(calm.index_return, abs=0.01)
