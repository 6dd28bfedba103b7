"""The benchmark and the simple rules the agent is judged against, on its bars and costs.

- ``passive_buy_and_hold``: the whole capital (split equally over the instruments) in one entry
  fill at the first bar, held to the end, the exit paid at the end; no risk engine, no limit
  trims, no rebalancing. A benchmark, not a strategy: what holding the instrument earned.
- ``risk_managed_long``: asks for the full single-position limit, long, on every bar, through
  the risk engine (whose VaR and regime limits keep cutting it, so it rebalances).
- ``tsmom``: time-series momentum (Moskowitz, Ooi & Pedersen 2012): the sign of the return
  over the last ``horizon_bars``, sized to an annualised volatility target.
- ``macd``: the trend signal of Baz et al. (2015): for each (short, long) pair, the gap of two
  exponential moving averages of the price, over the price's trailing standard deviation, over
  that ratio's own trailing standard deviation, through the response y exp(-y^2 / 4) / 0.89;
  averaged over the pairs and sized to a volatility target.
- ``flat``: never trades.
- ``random``: uniform target weights in [-1, 1] drawn with the run's seed: what trading with
  no information costs.

Every rule but the passive benchmark trades through the same environment, costs and risk engine
as the agent. A rule's weight at bar t uses closes up to t only, computed over the whole history
before the window so that its first bars are sized like the others; the trade is then decided at
t's close like the agent's. The champion is judged at registration
(:mod:`ijules.registry.register`), where the registry is read. The agent is judged against the
passive benchmark and against the best of the rules (:data:`RULES`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import NormStats
from ijules.config import Config
from ijules.env.backtest import Backtest, Policy, baseline_env, constant, run_backtest
from ijules.env.engine import Engine
from ijules.env.market_data import MarketData
from ijules.env.parts import PortfolioLimits
from ijules.evaluation.config import MacdConfig, TsmomConfig
from ijules.market.trend import macd_indicator

FloatArray = npt.NDArray[np.float64]

PASSIVE = "passive_buy_and_hold"
RISK_MANAGED_LONG = "risk_managed_long"
TSMOM = "tsmom"
MACD = "macd"
FLAT = "flat"
RANDOM = "random"
BASELINES = (PASSIVE, RISK_MANAGED_LONG, TSMOM, MACD, FLAT, RANDOM)
RULES = (RISK_MANAGED_LONG, TSMOM, MACD)  # the simple rules; the best of them is the bar
_MACD_SCALE = 0.89  # Baz et al.: the response's maximum, so that it peaks near 1
_OUT_OF_REACH = 1e9  # a weight limit no held position reaches


def volatility_scale(
    close: FloatArray, bars_per_year: float, target: float, bars: int
) -> FloatArray:
    """target / annualised trailing volatility of log returns (NaN until ``bars`` returns)."""
    returns = pd.DataFrame(np.log(close)).diff()
    sigma = returns.rolling(bars, min_periods=bars).std().to_numpy() * np.sqrt(bars_per_year)
    return np.asarray(target / np.where(sigma > 0, sigma, np.nan))


def tsmom_weights(close: FloatArray, bars_per_year: float, config: TsmomConfig) -> FloatArray:
    """sign(log return over ``horizon_bars``) x volatility scale, per bar and instrument."""
    logs = np.log(close)
    trend = np.full_like(logs, np.nan)
    trend[config.horizon_bars :] = logs[config.horizon_bars :] - logs[: -config.horizon_bars]
    scale = volatility_scale(close, bars_per_year, config.volatility_target, config.volatility_bars)
    return np.asarray(np.sign(trend) * scale)


def macd_weights(close: FloatArray, bars_per_year: float, config: MacdConfig) -> FloatArray:
    """The average normalised MACD response over the pairs x volatility scale."""
    prices = pd.DataFrame(close)
    responses = []
    for short, long in config.pairs:
        y = macd_indicator(prices, short, long, config.price_window_bars, config.signal_window_bars)
        responses.append((y * np.exp(-(y**2) / 4.0) / _MACD_SCALE).to_numpy())
    signal = np.mean(responses, axis=0)
    scale = volatility_scale(close, bars_per_year, config.volatility_target, config.volatility_bars)
    return np.asarray(signal * scale)


def scheduled(weights: FloatArray) -> Policy:
    """A policy that plays ``weights[t]`` at the t-th step, whatever it observes."""
    steps = iter(np.asarray(weights, dtype=np.float32))
    return lambda _observation: next(steps)


def _as_actions(weights: FloatArray, max_single: float) -> FloatArray:
    """Target weights as actions (fractions of the single-position limit); no signal: flat."""
    return np.asarray(np.clip(np.nan_to_num(weights / max_single), -1.0, 1.0))


def passive_buy_and_hold(
    config: Config, market: MarketData, norm: NormStats, clip: float
) -> Backtest:
    """The whole capital in one entry fill at the first bar, held; the exit paid at the end.

    The same environment and costs as every backtest, without the risk engine; once the entry
    has filled nothing may trade, not even a limit's trim (the entry's cost, paid from cash,
    leaves the position a little above the capital).
    """
    env = baseline_env(config, market, norm, clip)
    n = market.n_instruments
    env.engine.reconfigure(
        risk=env.engine.settings.risk.switched(enabled=False),
        limits=PortfolioLimits(max_single=1.0 / n, max_gross=1.0, band=0.0),
    )
    return run_backtest(env, _EnterThenHold(env.engine, n))


class _EnterThenHold:
    """Asks for the single-position limit at the first step; from the second on, no weight may
    move (an infinite band) and no limit can force one to (limits out of reach)."""

    def __init__(self, engine: Engine, n_instruments: int) -> None:
        self.engine = engine
        self.action = np.ones(n_instruments, dtype=np.float32)
        self.steps = 0

    def __call__(self, _observation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.steps += 1
        if self.steps == 2:
            self.engine.reconfigure(
                limits=PortfolioLimits(
                    max_single=_OUT_OF_REACH, max_gross=_OUT_OF_REACH, band=np.inf
                )
            )
        return self.action


def rule_baselines(
    config: Config,
    history: MarketData,
    window: slice | npt.NDArray[np.bool_],
    norm: NormStats,
    clip: float,
) -> dict[str, Backtest]:
    """Backtest the benchmark and every rule over ``history.rows(window)``.

    The rules' weights are computed over the whole of ``history`` (contiguous bars up to the
    window's end at most matter: each weight uses closes up to its bar), then cut to the window.
    """
    market = history.rows(window)
    n = market.n_instruments
    rng = np.random.default_rng(config.seed)
    max_single = config.environment.position_limit
    per_year = history.bars_per_year
    rules = config.baselines
    weights: Mapping[str, FloatArray] = {
        TSMOM: tsmom_weights(history.close, per_year, rules.tsmom)[window],
        MACD: macd_weights(history.close, per_year, rules.macd)[window],
    }
    policies: dict[str, Policy] = {
        RISK_MANAGED_LONG: constant(1.0, n),
        TSMOM: scheduled(_as_actions(weights[TSMOM], max_single)),
        MACD: scheduled(_as_actions(weights[MACD], max_single)),
        FLAT: constant(0.0, n),
        RANDOM: scheduled(rng.uniform(-1.0, 1.0, size=(len(market), n))),
    }
    backtests = {PASSIVE: passive_buy_and_hold(config, market, norm, clip)}
    for name, policy in policies.items():
        backtests[name] = run_backtest(baseline_env(config, market, norm, clip), policy)
    return {name: backtests[name] for name in BASELINES}


def best_rule(sharpes: Mapping[str, float]) -> str:
    """The rule (of :data:`RULES`) with the highest Sharpe ratio."""
    return max(RULES, key=lambda name: sharpes[name])
