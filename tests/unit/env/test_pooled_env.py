"""One policy over several instruments: the pool steps each instrument's environments exactly as
they would step alone, and a RecurrentPPO trains on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.env.engine import EngineSettings
from ijules.env.pooled_env import Member, PooledVecEnv, env_shares, training_env
from ijules.env.safeguards import Safeguards
from ijules.env.vector_env import VectorTradingEnv
from ijules.errors import ConfigError
from tests.conftest import SAMPLES
from tests.unit.env.conftest import market_of, norm_of, random_actions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params")))


@pytest.fixture(scope="module")
def members(btc_bars, config):
    eur = pd.read_csv(SAMPLES / "eurusd_1h.csv.gz", nrows=1500)
    eur["timestamp"] = pd.to_datetime(eur["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    out = []
    for bars, symbol in ((btc_bars, "BTCUSD"), (eur, "EURUSD")):
        market = market_of(bars, config, symbol)
        settings = EngineSettings.from_config(config, norm_of(market), 5.0, 1)
        out.append(Member(market, settings))
    return out


def test_env_shares_split_evenly_and_refuse_too_few_envs() -> None:
    assert env_shares(16, 2) == [8, 8]
    assert env_shares(5, 2) == [3, 2]
    with pytest.raises(ConfigError, match="below the 3 instruments"):
        env_shares(2, 3)


def test_the_pool_steps_each_instrument_as_it_would_step_alone(members, config) -> None:
    """Same seeds, same actions: each slice of the pool equals that instrument's own env, so
    pooling changes which episodes the batch holds, not how any of them trades."""
    safeguards = Safeguards(config.safeguards)
    pool = training_env(members, safeguards, n_envs=5, episode_bars=64, seed=None)
    assert isinstance(pool, PooledVecEnv) and pool.num_envs == 5
    seeds = pool.seed(11)
    alone = []
    for member, start, n in ((members[0], 0, 3), (members[1], 3, 2)):
        env = VectorTradingEnv(
            member.market, member.settings, safeguards, n_envs=n, episode_bars=64
        )
        env.seed(seeds[start])
        alone.append(env)
    np.testing.assert_array_equal(pool.reset(), np.concatenate([env.reset() for env in alone]))
    actions = random_actions(3, 150, 5)  # past the episode length: restarts included
    restarted = 0
    for step in range(150):
        obs, rewards, dones, infos = pool.step(actions[step].reshape(5, 1))
        parts = [alone[0].step(actions[step][:3, None]), alone[1].step(actions[step][3:, None])]
        np.testing.assert_array_equal(obs, np.concatenate([part[0] for part in parts]))
        np.testing.assert_array_equal(rewards, np.concatenate([part[1] for part in parts]))
        np.testing.assert_array_equal(dones, np.concatenate([part[2] for part in parts]))
        restarted += int(dones.sum())
        assert [("episode" in info) for info in infos] == list(dones)
    assert restarted >= 5
    # The instruments really differ: EUR/USD's closes are not BTC/USD's.
    assert pool.get_attr("market", [0])[0].instruments == ("BTCUSD",)
    assert pool.get_attr("market", [4])[0].instruments == ("EURUSD",)


def test_a_pool_refuses_instruments_with_different_observations(members, config) -> None:
    safeguards = Safeguards(config.safeguards)
    narrow = members[1].market
    narrow = narrow.__class__(
        **{
            **narrow.__dict__,
            "features": narrow.features[:, :-1],
            "feature_names": narrow.feature_names[:-1],
        }
    )
    settings = EngineSettings.from_config(config, norm_of(narrow), 5.0, 1)
    with pytest.raises(ConfigError, match="need the same features"):
        training_env(
            [members[0], Member(narrow, settings)],
            safeguards,
            n_envs=4,
            episode_bars=64,
            seed=0,
        )


def test_recurrent_ppo_trains_one_policy_on_the_pool(members, config) -> None:
    from ijules.training.fit import build_model

    pool = training_env(members, Safeguards(config.safeguards), n_envs=4, episode_bars=64, seed=0)
    small = config.model_copy(
        update={
            "training": config.training.model_copy(
                update={"n_steps": 32, "batch_size": 64, "n_envs": 4}
            )
        }
    )
    model = build_model(small, pool, "cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    # Every instrument's environments moved: both engines stepped bars of their own market.
    for part in pool.parts:
        assert part.engine.bars().max() > 0
