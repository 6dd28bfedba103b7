"""Nothing the agent sees or trades on at bar t depends on a bar after t.

The features and regimes have their own future-perturbation tests; these cover the market arrays
the simulator trades with (marks, volatility, liquidity, VaR, capacity, correlations, regime
flags) and the whole path from the bars to the policy's actions.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from ijules.artifacts import NormStats
from ijules.env.backtest import run_backtest
from ijules.env.engine import EngineSettings
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from tests.unit.env.conftest import market_of

CUT = 700  # bars up to here are the past; every later bar is rewritten


def _rewrite_the_future(bars: pd.DataFrame, seed: int) -> pd.DataFrame:
    future = bars.copy()
    rng = np.random.default_rng(seed)
    later = future.index > CUT
    shock = np.exp(np.cumsum(rng.normal(0.0, 0.02, size=int(later.sum()))))
    for column in ("open", "high", "low", "close"):
        future.loc[later, column] = future.loc[later, column] * shock
    future.loc[later, "volume"] = future.loc[later, "volume"] * rng.uniform(0.1, 10.0, later.sum())
    return future


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    quick = {"regimes": {"garch_window_bars": 200, "garch_refit_bars": 50}}
    return load_config(write_params(tmp_path_factory.mktemp("params"), quick))


@pytest.fixture(scope="module")
def bars(btc_1h):
    return btc_1h.iloc[:1200].reset_index(drop=True)


def test_changing_future_bars_moves_no_earlier_market_array(bars, config) -> None:
    past = market_of(bars, config)
    rewritten = market_of(_rewrite_the_future(bars, 1), config)
    upto = int(np.searchsorted(past.timestamps, np.datetime64(bars["timestamp"][CUT], "ns"))) + 1
    compared = []
    for field in fields(past):
        before, after = getattr(past, field.name), getattr(rewritten, field.name)
        if isinstance(before, np.ndarray) and before.shape[:1] == (len(past),):
            np.testing.assert_array_equal(before[:upto], after[:upto], err_msg=field.name)
            compared.append(field.name)
    assert {"close", "sigma", "liquidity", "daily_var", "capacity", "correlation"} <= set(compared)
    assert not np.array_equal(past.sigma[upto:], rewritten.sigma[upto:])  # the future did move


def test_changing_future_bars_moves_no_earlier_action(bars, config) -> None:
    """Bars -> features and market -> observations -> a recurrent policy -> actions."""
    from sb3_contrib import RecurrentPPO

    past = market_of(bars, config)
    norm = NormStats.fit(past.features[:300])  # fixed, so that only the bars differ
    settings = EngineSettings.from_config(config, norm, 5.0, 1)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        TradingEnv(past, settings, Safeguards(config.safeguards)),
        policy_kwargs={"lstm_hidden_size": 8, "net_arch": [16]},
        seed=3,
        device="cpu",
    )

    def actions(market) -> np.ndarray:
        taken: list[np.ndarray] = []
        state = None
        starts = np.array([True])

        def act(observation: np.ndarray) -> np.ndarray:
            nonlocal state, starts
            action, state = model.predict(
                observation, state=state, episode_start=starts, deterministic=True
            )
            starts = np.array([False])
            taken.append(np.asarray(action, dtype=np.float64).copy())
            return np.asarray(action)

        run_backtest(TradingEnv(market, settings, Safeguards(config.safeguards)), act)
        return np.array(taken)

    upto = int(np.searchsorted(past.timestamps, np.datetime64(bars["timestamp"][CUT], "ns"))) + 1
    before = actions(past)
    after = actions(market_of(_rewrite_the_future(bars, 2), config))
    np.testing.assert_array_equal(before[:upto], after[:upto])
    assert not np.array_equal(before[upto:], after[upto:])  # the policy does react to bars
