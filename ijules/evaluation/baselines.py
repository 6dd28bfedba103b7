"""Rule baselines, backtested on the agent's window with the agent's costs and risk engine.

- ``flat``: never trades (the cost of doing nothing is zero; any loss is the agent's).
- ``buy_and_hold``: the full single-position limit, long, from the first bar.
- ``momentum``: long when the trailing return (the longest ``ret_*`` feature) is positive, short
  when it is negative, at the full limit. The return at bar t uses closes up to t; the trade
  happens at t's close, like the agent's.
- ``random``: uniform target weights in [-1, 1] drawn with the run's seed: what trading with
  no information costs.

The champion (the registry's current model) is the fifth baseline; it is backtested at
registration (:mod:`ijules.registry.register`), where the registry is read.
"""

from __future__ import annotations

import numpy as np

from ijules.artifacts import NormStats
from ijules.config import Config
from ijules.env.backtest import Backtest, Policy, baseline_env, constant, run_backtest
from ijules.env.market_data import MarketData

FLAT, BUY_AND_HOLD, MOMENTUM, RANDOM = "flat", "buy_and_hold", "momentum", "random"
RULES = (BUY_AND_HOLD, FLAT, MOMENTUM, RANDOM)


def momentum_weights(market: MarketData) -> np.ndarray:
    """sign(trailing return) per bar and instrument (0 where the return is exactly 0)."""
    names = [n for n in market.feature_names if n.split(":")[-1].startswith("ret_")]
    if not names:
        raise ValueError("momentum needs a ret_* feature")
    longest = max(names, key=lambda n: int(n.split("ret_")[-1]))
    column = market.feature_names.index(longest)
    return np.repeat(np.sign(market.features[:, column])[:, None], market.n_instruments, axis=1)


def scheduled(weights: np.ndarray) -> Policy:
    """A policy that plays ``weights[t]`` at the t-th step, whatever it observes."""
    steps = iter(np.asarray(weights, dtype=np.float32))
    return lambda _observation: next(steps)


def rule_baselines(
    config: Config, market: MarketData, norm: NormStats, clip: float
) -> dict[str, Backtest]:
    """Backtest every rule baseline over the whole of ``market``."""
    n = market.n_instruments
    rng = np.random.default_rng(config.seed)
    policies: dict[str, Policy] = {
        BUY_AND_HOLD: constant(1.0, n),
        FLAT: constant(0.0, n),
        MOMENTUM: scheduled(momentum_weights(market)),
        RANDOM: scheduled(rng.uniform(-1.0, 1.0, size=(len(market), n))),
    }
    return {
        name: run_backtest(baseline_env(config, market, norm, clip), policy)
        for name, policy in policies.items()
    }
