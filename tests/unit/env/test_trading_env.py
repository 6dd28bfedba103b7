"""The trading environment: spaces, accounting, limits, costs, safeguards and the batch engine."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ijules.env.engine import EngineSettings
from ijules.env.safeguards import NonFiniteError, Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.env.vector_env import VectorTradingEnv
from ijules.errors import ModelCompatibilityError
from ijules.sim.layout import COST_COMPONENTS
from ijules.training.policy import RecurrentPolicy
from tests.unit.env.conftest import env_of, market_of, norm_of, random_actions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


NO_RISK_ENGINE = {"risk_management": {"enabled": False}}


@pytest.fixture(scope="module")
def config_default(tmp_path_factory):
    """params.yaml with the risk engine off: these tests are about the environment itself."""
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params"), NO_RISK_ENGINE))


@pytest.fixture
def make_config(make_config):
    """Like the shared fixture, with the risk engine off unless a test turns it on."""
    from tests.conftest import deep_merge

    return lambda overrides=None, phase=None: make_config(
        deep_merge(NO_RISK_ENGINE, overrides or {}), phase
    )


@pytest.fixture(scope="module")
def market(btc_bars, config_default):
    return market_of(btc_bars, config_default)


def test_environment_passes_the_gymnasium_and_sb3_checkers(market, config_default) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = env_of(market, config_default, episode_bars=64)
    gym_check(env, skip_render_check=True)
    sb3_check(env, warn=True)


def test_discrete_variant_passes_the_checker_and_trades_at_the_limit(btc_bars, make_config) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check

    config = make_config(
        {
            "environment": {
                "action_space": "discrete",
                "max_position_fraction": 0.5,
                "volatility_target": None,  # a long is the limit itself
            }
        }
    )
    env = env_of(market_of(btc_bars, config), config, episode_bars=64)
    gym_check(env, skip_render_check=True)
    env.reset(seed=0)
    # Long, then short, at the limit: half the equity at the fill price (the weight the
    # observation shows then drifts with the price until the next close).
    for action, sign in ((2, 1.0), (0, -1.0)):
        _, _, _, _, info = env.step(np.array([action]))
        fill = env.engine.fill_log().iloc[-1]
        held = env.engine.units()[0][0] * fill["price"]
        assert held == pytest.approx(sign * 0.5 * info["equity"], rel=0.02)


def run_episode(env, actions):
    env.reset(seed=0)
    marks = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        marks.append((reward, info["equity"]))
        if terminated or truncated:
            break
    return marks


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    limit=st.floats(0.1, 1.0),
    gross=st.floats(0.1, 1.0),
    reserve=st.floats(0.0, 0.5),
    bps=st.floats(0.0, 50.0),
    fixed=st.floats(0.0, 5.0),
)
def test_accounting_limits_and_costs_hold_on_random_actions(
    btc_bars, make_config, seed, limit, gross, reserve, bps, fixed
) -> None:
    config = make_config(
        {
            "environment": {
                "max_position_fraction": limit,
                "max_gross_exposure": gross,
                "min_cash_reserve_fraction": reserve,
            },
            "microstructure": {
                "transaction_costs": {"proportional_cost_bps": bps, "fixed_cost_per_trade": fixed}
            },
        }
    )
    market = market_of(btc_bars.iloc[:400], config)
    env = env_of(market, config)
    engine = env.engine
    capital = config.environment.initial_capital
    cap = min(limit, gross, 1 - reserve)
    env.reset()
    for action in random_actions(seed, 200):
        observation, reward, terminated, truncated, info = env.step(action)
        bar = engine.bars()[0]
        # The accounting identities, to the cent.
        equity = engine.cash()[0] + (engine.units()[0] * market.close[bar]).sum()
        assert info["equity"] == pytest.approx(equity, abs=0.01)
        pnl = capital + engine.realised()[0] + engine.unrealised()[0] - engine.costs_paid()[0].sum()
        assert equity == pytest.approx(pnl, abs=0.01)
        # Limits hold on the weights held after every trade.
        held = engine.held_weights()[0]
        assert abs(held[0]) <= cap + 1e-6
        assert (engine.costs_paid()[0] >= 0).all()
        assert np.isfinite(observation).all() and np.isfinite(reward)
        if terminated or truncated:
            break


@pytest.mark.parametrize("component", list(COST_COMPONENTS[:-1]))
def test_every_cost_component_grows_with_trade_size(make_config, component) -> None:
    from ijules.execution.costs import CostModel

    config = make_config(phase="phase2_microstructure")
    costs = CostModel.from_config(
        config.microstructure.model_copy(
            update={
                "liquidity_model": config.microstructure.liquidity_model.model_copy(
                    update={"tick_size_aware": True}
                )
            }
        )
    )
    sizes = [0.0, 0.5, 1.0, 2.0, 8.0, 32.0]
    values = [
        costs.breakdown(units, 1000.005, sigma=0.01, liquidity=50.0, tick=0.01)[component]
        for units in sizes
    ]
    assert values[0] == 0.0
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert all(v >= 0 for v in values)
    sells = [
        costs.breakdown(-units, 1000.005, sigma=0.01, liquidity=50.0, tick=0.01)[component]
        for units in sizes
    ]
    assert all(a <= b for a, b in itertools.pairwise(sells))


def test_phase2_costs_by_hand(make_config) -> None:
    """Phase 2: $0.50 per fill, 1 bp, eta 0.314159, gamma 0.1, a quarter of the bar's volume."""
    from ijules.execution.costs import CostModel

    config = make_config(phase="phase2_microstructure")
    costs = CostModel.from_config(config.microstructure)
    # Buy 10 units at 2,000 (value 20,000) with sigma 1% a bar, against V = 40 units.
    got = costs.breakdown(10.0, 2000.0, sigma=0.01, liquidity=40.0)
    assert got["fixed"] == pytest.approx(0.50)
    assert got["proportional"] == pytest.approx(20_000 * 1.0 / 10_000)  # 2.00
    assert got["temporary_impact"] == pytest.approx(
        0.314159 * 0.01 * (10 / 40) ** 0.5 * 20_000
    )  # 31.42
    assert got["permanent_impact"] == pytest.approx(0.1 * (10 / 40) * 20_000)  # 500.00
    assert got["tick"] == 0.0 and got["capacity"] == 0.0
    # Turnover of 30% of a 100,000 portfolio in high volatility: capacity 2% x 1.5 = 3%.
    charge = costs.capacity_charge(30_000, 100_000, sigma_per_bar=0.01, bars_per_year=8766)
    excess = 0.30 - 0.03
    assert charge == pytest.approx(0.314159 * 0.01 * excess**0.5 * excess * 100_000)
    # In low volatility the free capacity shrinks to 2% / 1.5.
    low = costs.capacity_charge(30_000, 100_000, sigma_per_bar=0.0005, bars_per_year=8766)
    excess_low = 0.30 - 0.02 / 1.5
    assert low == pytest.approx(0.314159 * 0.0005 * excess_low**0.5 * excess_low * 100_000)


def test_tick_rounding_charges_the_distance_to_the_tick_against_the_trader(make_config) -> None:
    from ijules.execution.costs import CostModel

    config = make_config({"microstructure": {"liquidity_model": {"tick_size_aware": True}}})
    costs = CostModel.from_config(config.microstructure)
    assert costs.breakdown(4.0, 100.003, sigma=0.0, liquidity=1e9, tick=0.01)[
        "tick"
    ] == pytest.approx(4 * 0.007)
    assert costs.breakdown(-4.0, 100.003, sigma=0.0, liquidity=1e9, tick=0.01)[
        "tick"
    ] == pytest.approx(4 * 0.003)


def test_a_round_trip_books_the_fill_costs_and_the_exit_estimate(market, config_default) -> None:
    env = env_of(market, config_default)
    env.reset()
    env.step(np.array([1.0], dtype=np.float32))
    fills = env.engine.fill_log()
    assert len(fills) == 1
    row = fills.iloc[0]
    assert row["total_cost"] == pytest.approx(sum(row[c] for c in COST_COMPONENTS))
    assert env.engine.cost_attribution()["proportional"] == pytest.approx(
        row["notional"] * 5 / 10_000
    )
    exit_costs = env.engine.exit_costs()
    assert exit_costs["proportional"] == pytest.approx(
        abs(env.engine.units()[0, 0]) * market.close[env.engine.bars()[0], 0] * 5 / 10_000
    )


def test_vectorised_copies_match_single_environments(market, config_default) -> None:
    """One kernel call for N copies must give exactly what N single environments give."""
    settings = EngineSettings.from_config(config_default, norm_of(market), 5.0, 1)
    vec = VectorTradingEnv(
        market, settings, Safeguards(config_default.safeguards), n_envs=3, episode_bars=100, seed=4
    )
    vec.reset()
    singles = []
    for b in range(3):
        env = env_of(market, config_default, episode_bars=100)
        env.reset()
        env.engine.start_episode(0, vec.engine.first_bar(b))
        singles.append(env)
    actions = random_actions(1, 50, 3)
    for step in range(50):
        observations, rewards, _dones, _ = vec.step(actions[step].reshape(3, 1))
        for b, env in enumerate(singles):
            observation, reward, *_ = env.step(actions[step][b : b + 1])
            np.testing.assert_allclose(observations[b], observation, rtol=1e-6)
            assert rewards[b] == pytest.approx(reward, rel=1e-6)


def test_training_and_evaluation_build_identical_observations(market, config_default) -> None:
    """Observation consistency: a training copy and the evaluation env see the same numbers."""
    from ijules.training.policy import policy_settings, policy_spec

    train_settings = EngineSettings.from_config(config_default, norm_of(market), 5.0, 1)
    spec = policy_spec(train_settings, market.feature_names, market.instruments)
    evaluation = TradingEnv(
        market, policy_settings(config_default, spec), Safeguards(config_default.safeguards)
    )
    vec = VectorTradingEnv(
        market,
        train_settings,
        Safeguards(config_default.safeguards),
        n_envs=1,
        episode_bars=len(market) - 1,
        seed=0,
    )
    vec.reset()
    vec.engine.start_episode(0, 0)
    first, _ = evaluation.reset()
    np.testing.assert_array_equal(vec.engine.observe()[0], first)
    for action in random_actions(7, 100):
        vec_obs, *_ = vec.step(action.reshape(1, 1))
        eval_obs, *_ = evaluation.step(action)
        np.testing.assert_array_equal(vec_obs[0], eval_obs)


def test_a_policy_keeps_the_volatility_target_it_was_trained_with(
    market, config_default, make_config
) -> None:
    """An action means what it meant in training, whatever the configuration says later."""
    from ijules.training.policy import policy_settings, policy_spec

    trained = EngineSettings.from_config(config_default, norm_of(market), 5.0, 1)
    spec = policy_spec(trained, market.feature_names, market.instruments)
    target = config_default.environment.volatility_target
    assert target is not None and spec.volatility_target == target
    later = make_config({"environment": {"volatility_target": None}})
    assert policy_settings(later, spec).actions.volatility_target == target
    # And it sizes: the same action asks for the position that runs at the target a year.
    env = TradingEnv(market, policy_settings(later, spec), Safeguards(later.safeguards))
    env.reset()
    t = env.engine.sim.bars()[0]
    sigma = market.sigma[t, 0] * np.sqrt(market.bars_per_year)
    env.step(np.array([0.5], dtype=np.float32))
    held = env.engine.sim.account("held")[0, 0]
    assert held == pytest.approx(min(0.5 * target / sigma, 1.0), rel=0.02)


def test_a_non_finite_feature_is_refused_and_counted(market, config_default) -> None:
    from dataclasses import replace

    broken = market.features.copy()
    broken[40, 2] = np.nan
    guards = Safeguards(config_default.safeguards)
    settings = EngineSettings.from_config(config_default, norm_of(market), 5.0, 1)
    when = pd.Timestamp(market.timestamps[40]).isoformat()
    with pytest.raises(NonFiniteError, match=rf"feature ret_24 is not finite at {when}"):
        from ijules.env.trading_env import TradingEnv

        TradingEnv(replace(market, features=broken), settings, guards)
    assert guards.incidents == 1


def test_a_non_finite_price_is_refused_before_anything_trades(market, config_default) -> None:
    from dataclasses import replace

    close = market.close.copy()
    close[5, 0] = np.inf
    settings = EngineSettings.from_config(config_default, norm_of(market), 5.0, 1)
    guards = Safeguards(config_default.safeguards)
    when = str(market.timestamps[5])[:19]
    with pytest.raises(NonFiniteError, match=f"market close is not finite at {when}"):
        TradingEnv(replace(market, close=close), settings, guards)
    assert guards.incidents == 1


def test_a_non_finite_reward_stops_the_step_as_an_incident(market, config_default) -> None:
    from dataclasses import replace

    capacity = market.capacity.copy()
    capacity[5:] = np.nan  # the turnover charge turns NaN: so do the costs and the reward
    env = env_of(replace(market, capacity=capacity), config_default)
    env.reset()
    with pytest.raises(NonFiniteError, match=r"non-finite values at .*incident 1"):
        for step in range(10):
            env.step(np.array([0.9 if step % 2 else -0.9], dtype=np.float32))
    assert env.engine.safeguards.incidents == 1


def test_rewards_out_of_bounds_are_alerts_not_errors(market, make_config) -> None:
    config = make_config({"safeguards": {"reward_bounds": [-0.001, 0.001]}})
    env = env_of(market, config)
    env.reset()
    for action in random_actions(3, 30):
        env.step(action)
    assert env.engine.safeguards.reward_alerts > 0
    assert env.engine.safeguards.incidents == 0


def test_with_the_reward_bounds_check_off_no_reward_is_an_alert(market, make_config) -> None:
    tight = {"reward_bounds": [-0.001, 0.001], "reward_bounds_check": False}
    env = env_of(market, make_config({"safeguards": tight}))
    env.reset()
    for action in random_actions(3, 30):
        env.step(action)
    assert env.engine.safeguards.reward_alerts == 0


def test_stepping_past_the_end_is_refused(market, config_default) -> None:
    env = env_of(market, config_default, episode_bars=5)
    env.reset(seed=0)
    for _ in range(5):
        *_, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
    assert truncated
    with pytest.raises(RuntimeError, match="after its episode ended"):
        env.step(np.array([0.0], dtype=np.float32))


def test_drawdown_limit_ends_the_episode(market, make_config) -> None:
    config = make_config({"reward": {"dd_limit": 0.001}})
    env = env_of(market, config)
    env.reset()
    terminated = False
    for action in random_actions(11, 500):
        *_, terminated, _, info = env.step(np.abs(action))
        if terminated:
            break
    assert terminated
    assert 1 - info["equity"] / env.engine.peak()[0] > 0.001


def test_policy_with_other_spaces_is_refused_naming_both(market, make_config) -> None:
    from sb3_contrib import RecurrentPPO

    from ijules.training.policy import policy_spec

    # A real (untrained) policy for an environment without the 5 risk features.
    narrow_width = len(market.feature_names) + market.n_instruments
    narrow = make_config({"observation": {"include_risk_features": False}})
    narrow_settings = EngineSettings.from_config(narrow, norm_of(market), 5.0, 1)
    narrow_env = VectorTradingEnv(
        market, narrow_settings, Safeguards(narrow.safeguards), n_envs=1, episode_bars=64
    )
    model = RecurrentPPO("MlpLstmPolicy", narrow_env, n_steps=8, batch_size=8, device="cpu")
    policy = RecurrentPolicy(
        model, policy_spec(narrow_settings, market.feature_names, market.instruments)
    )
    env = env_of(market, make_config())
    with pytest.raises(
        ModelCompatibilityError,
        match=rf"policy expects \({narrow_width},\), environment produces \({narrow_width + 5},\)",
    ):
        policy.check_compatible(
            env.observation_space.shape, env.action_space.shape, market.feature_names
        )


@pytest.mark.parametrize("fill_at", ["next_open", "this_close"])
def test_a_trade_fills_at_the_next_open_or_at_this_close(market, make_config, fill_at) -> None:
    from dataclasses import replace

    # Crypto bars open at the previous close: open every bar 1% higher to tell them apart.
    gapped = replace(market, open=market.open * 1.01)
    env = env_of(gapped, make_config({"environment": {"fill_at": fill_at}}))
    env.reset()
    env.step(np.array([0.8], dtype=np.float32))
    fill = env.engine.fill_log(0).iloc[0]
    expected = gapped.open[1, 0] if fill_at == "next_open" else gapped.close[0, 0]
    assert fill["price"] == expected
    assert gapped.open[1, 0] != gapped.close[0, 0]
