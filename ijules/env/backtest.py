"""Backtest: run a policy through the trading environment and keep every bar's record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.analytics.metrics import bar_returns, summarise
from ijules.artifacts import CostComponent, NormStats, PerformanceMetrics, RiskEngineSummary
from ijules.config import Config
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.parts import ContinuousWeights, PortfolioLimits
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import Action, Observation, TradingEnv
from ijules.sim.layout import COST_COMPONENTS

Policy = Callable[[Observation], Action]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Backtest:
    """One pass over a window: marks, positions, fills and their costs, bar by bar.

    ``equity`` and ``close`` have one row per bar including the first (steps + 1); ``units``
    (held after each bar's trade), ``traded`` (units traded), ``fills`` (the price a trade at
    that step fills at) and ``costs`` (per instrument and component) have one row per step.
    A backtest ends flat: closing what it holds at the last mark costs ``exit_costs``, which
    come off the last equity mark and count with the last step's costs.
    """

    timestamps: npt.NDArray[np.datetime64]
    close: FloatArray
    equity: FloatArray
    units: FloatArray
    traded: FloatArray
    fills: FloatArray
    costs: FloatArray
    exit_costs: dict[CostComponent, float]
    risk_events: pd.DataFrame
    risk_refusals: dict[str, int]

    def metrics(
        self, bars_per_year: float, benchmark_returns: FloatArray | None = None
    ) -> PerformanceMetrics:
        """Every metric of this backtest (the information ratio against ``benchmark_returns``)."""
        return summarise(
            equity=self.equity,
            units=self.units,
            traded=self.traded,
            costs=self.costs.sum(axis=2),
            close=self.close,
            timestamps=self.timestamps,
            bars_per_year=bars_per_year,
            benchmark_returns=benchmark_returns,
            fills=self.fills,
            exit_notional=self.exit_notional,
        )

    @property
    def returns(self) -> FloatArray:
        """Per-bar returns of equity."""
        return bar_returns(self.equity)

    @property
    def exit_notional(self) -> float:
        """The value the exit closes at the last mark (0 before any step)."""
        if not len(self.units):
            return 0.0
        return float(np.abs(self.units[-1]) @ self.close[-1])

    @property
    def asset_returns(self) -> FloatArray:
        """Per-bar returns of the first instrument (the price path itself, before any costs)."""
        return bar_returns(self.close[:, 0])

    def risk_summary(self) -> RiskEngineSummary:
        """The risk engine's changes of state (by reason) and its refusals, over the window."""
        changes = self.risk_events
        by_reason = changes["reason"].value_counts().to_dict() if len(changes) else {}
        return RiskEngineSummary(
            state_changes=len(changes),
            by_reason={str(k): int(v) for k, v in by_reason.items()},
            refusals=self.risk_refusals,
        )

    def costs_by_component(self) -> dict[CostComponent, float]:
        """Costs paid over the window, by component."""
        totals = self.costs.sum(axis=(0, 1))
        return dict(zip(COST_COMPONENTS, map(float, totals), strict=True))

    def window(self, first: int, last: int) -> Backtest:
        """The bars ``first`` to ``last`` (marks) and the steps between them, as a backtest."""
        steps = slice(first, last)
        return Backtest(
            timestamps=self.timestamps[first : last + 1],
            close=self.close[first : last + 1],
            equity=self.equity[first : last + 1],
            units=self.units[steps],
            traded=self.traded[steps],
            fills=self.fills[steps],
            costs=self.costs[steps],
            exit_costs=self.exit_costs,
            risk_events=self.risk_events[
                (self.risk_events["timestamp"] >= self.timestamps[first])
                & (self.risk_events["timestamp"] <= self.timestamps[last])
            ],
            risk_refusals=self.risk_refusals,
        )

    def liquidated(self) -> Backtest:
        """This backtest with its exit paid at the last mark (see the class docstring)."""
        exit_total = float(sum(self.exit_costs.values()))
        equity = self.equity.copy()
        equity[-1] -= exit_total
        costs = self.costs.copy()
        if len(costs):
            costs[-1, 0] += np.array([self.exit_costs[name] for name in COST_COMPONENTS])
        return replace(self, equity=equity, costs=costs)

    @property
    def weights(self) -> FloatArray:
        """Positions after each bar's trade, as fractions of the equity before it."""
        return np.asarray(self.units * self.close[:-1] / self.equity[:-1, None])


def run_backtest(env: TradingEnv, policy: Policy) -> Backtest:
    """Step ``env`` (built with ``episode_bars=None``) through its window with ``policy``, and
    pay the exit at the last mark."""
    return run_session(env, policy).liquidated()


def run_session(env: TradingEnv, policy: Policy) -> Backtest:
    """Step ``env`` (built with ``episode_bars=None``) through its window with ``policy``; what
    it holds at the end stays open (its ``exit_costs`` say what closing it would cost).

    A session that continues a carried state (:meth:`ijules.env.engine.Engine.continue_from`)
    starts at the bar the state stands at, with its positions.
    """
    observation, info = env.reset()
    equity = [float(info["equity"])]
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(policy(observation))
        equity.append(float(info["equity"]))
        done = terminated or truncated
    engine = env.engine
    steps = len(equity) - 1
    first = engine.first_bar(0)
    row = engine.first_observation()
    engine.safeguards.check_observations(
        engine.observations[row : row + steps + 1], env.observation_space, env.observation_names
    )
    traded = engine.traded_units(0)
    return Backtest(
        timestamps=env.market.timestamps[first : first + steps + 1],
        close=env.market.close[first : first + steps + 1],
        equity=np.asarray(equity),
        units=engine.opening_units(0) + np.cumsum(traded, axis=0),
        traded=traded,
        fills=engine.fill_prices()[first : first + steps],
        costs=engine.traded_costs(0),
        exit_costs=engine.exit_costs(0),
        risk_events=engine.risk_events(),
        risk_refusals=engine.risk_refusals(),
    )


def baseline_env(config: Config, market: MarketData, norm: NormStats, clip: float) -> TradingEnv:
    """An evaluation environment for rule baselines: continuous weights, the configured costs."""
    base = EngineSettings.from_config(config, norm, clip, market.n_instruments)
    actions = ContinuousWeights(market.n_instruments, PortfolioLimits.from_config(config))
    return TradingEnv(market, replace(base, actions=actions), Safeguards(config.safeguards))


def constant(weight: float, n_instruments: int = 1) -> Policy:
    """Always ask for the same fraction of the single-position limit (1 hold, 0 flat)."""
    action = np.full(n_instruments, weight, dtype=np.float32)
    return lambda _observation: action
