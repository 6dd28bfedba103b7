"""Backtest: run a policy through the trading environment and record every bar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ijules.env.trading_env import Action, Observation, TradingEnv
from ijules.evaluation.metrics import PerformanceMetrics, summarise

Policy = Callable[[Observation], Action]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Backtest:
    """One pass over a window: marks, positions and trades, bar by bar."""

    timestamps: npt.NDArray[np.datetime64]
    close: FloatArray
    equity: FloatArray
    equity_before: FloatArray
    units: FloatArray
    traded_notional: FloatArray
    costs: FloatArray

    def metrics(self, bars_per_year: float) -> PerformanceMetrics:
        """Headline metrics of this backtest."""
        return summarise(
            equity=self.equity,
            equity_before=self.equity_before,
            units=self.units,
            close=self.close,
            traded_notional=self.traded_notional,
            costs=self.costs,
            timestamps=self.timestamps,
            bars_per_year=bars_per_year,
        )

    @property
    def weights(self) -> FloatArray:
        """Position after each bar's trade, as a fraction of equity before it."""
        return np.asarray(self.units * self.close[:-1] / self.equity_before, dtype=np.float64)


def run_backtest(env: TradingEnv, policy: Policy) -> Backtest:
    """Step ``env`` (built with ``episode_bars=None``) through its window with ``policy``."""
    observation, info = env.reset()
    equity = [float(info["equity"])]
    before: list[float] = []
    units: list[float] = []
    notional: list[float] = []
    costs: list[float] = []
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(policy(observation))
        fill = env.last_fill
        assert fill is not None  # set by every step
        equity.append(fill.equity_after)
        before.append(fill.equity_before)
        units.append(fill.units_after)
        notional.append(fill.traded_notional)
        costs.append(fill.cost)
        done = terminated or truncated
    bars = len(units)
    market = env.market
    return Backtest(
        timestamps=market.timestamps[: bars + 1],
        close=market.close[: bars + 1],
        equity=np.asarray(equity),
        equity_before=np.asarray(before),
        units=np.asarray(units),
        traded_notional=np.asarray(notional),
        costs=np.asarray(costs),
    )


def constant(weight: float) -> Policy:
    """A policy that always asks for the same target weight (buy-and-hold: 1, flat: 0)."""
    action = np.array([weight], dtype=np.float32)
    return lambda _observation: action
