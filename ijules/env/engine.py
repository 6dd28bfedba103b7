"""The engine: a batch of environments over one market, on the simulation core.

The engine assembles the simulator's parameters from its parts (the action interpreter, the
observation builder, the reward, the cost model, the limits and the risk engine), starts
episodes, and turns what the compiled step flags into safeguard incidents and log lines.
:class:`ijules.env.trading_env.TradingEnv` is a batch of one;
:class:`ijules.env.vector_env.VectorTradingEnv` steps N copies in one call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.artifacts import CostComponent, NormStats
from ijules.config import Config
from ijules.env.carry import CarriedState, carried_state, check_window
from ijules.env.config import FillAt
from ijules.env.market_data import MarketData
from ijules.env.market_data import bars_per_day as measured_bars_per_day
from ijules.env.parts import (
    ActionInterpreter,
    DiscreteWeights,
    ObservationBuilder,
    PortfolioLimits,
    RewardFunction,
    action_interpreter,
)
from ijules.env.safeguards import NonFiniteError, Safeguards
from ijules.execution.costs import CostModel
from ijules.risk import engine as risk_engine
from ijules.risk.engine import RiskSettings, log_changes
from ijules.sim import layout
from ijules.sim.codes import describe
from ijules.sim.simulator import Market, Simulator

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EngineSettings:
    """Everything an engine needs besides the market and the batch size."""

    actions: ActionInterpreter
    observation: ObservationBuilder
    reward: RewardFunction
    costs: CostModel
    limits: PortfolioLimits
    risk: RiskSettings
    initial_capital: float
    drawdown_velocity_bars: int
    fill_at: FillAt = "next_open"

    @classmethod
    def from_config(
        cls, config: Config, norm: NormStats, clip_zscore: float, n_instruments: int
    ) -> EngineSettings:
        """Assemble the parts that ``config`` describes, with a model's normalisation."""
        return cls(
            actions=action_interpreter(config, n_instruments),
            observation=ObservationBuilder(norm, clip_zscore, config.observation.active_features),
            reward=RewardFunction.from_config(config),
            costs=CostModel.from_config(config.microstructure),
            limits=PortfolioLimits.from_config(config),
            risk=RiskSettings.from_config(config.risk_management),
            initial_capital=config.environment.initial_capital,
            drawdown_velocity_bars=config.observation.drawdown_velocity_bars,
            fill_at=config.environment.fill_at,
        )

    def sim_params(self, bars_per_day: float, bars_per_year: float) -> dict[str, Any]:
        """Every parameter of the compiled step, by name, from the parts."""
        discrete = isinstance(self.actions, DiscreteWeights)
        target = self.actions.volatility_target
        return {
            "capital": self.initial_capital,
            "action_offset": 1.0 if discrete else 0.0,
            "volatility_target": 0.0 if target is None else target,
            "sqrt_bars_per_year": float(np.sqrt(bars_per_year)),
            "bars_per_day": bars_per_day,
            "velocity_bars": self.drawdown_velocity_bars,
            **self.limits.sim_params(),
            **self.costs.sim_params(),
            **self.reward.sim_params(),
            **self.observation.sim_params(),
            **self.risk.sim_params(),
        }


def sim_market(market: MarketData, features: FloatArray, fill_at: FillAt) -> Market:
    """The market in the simulator's layouts, with the (standardised) ``features``.

    With ``fill_at`` "next_open", a trade decided at bar t fills at bar t+1's open, if that bar
    trades (and, with adverse-selection protection, printed volume); at the last bar nothing can
    fill. With "this_close" it fills at bar t's close.
    """
    packed = Market.empty(len(market), market.n_instruments, features.shape[1])
    bars = packed.bars
    bars["close"] = market.close
    if fill_at == "next_open":
        bars["fill"] = np.vstack([market.open[1:], market.close[-1:]])
        bars["tradable"] = np.vstack([market.tradable[1:], np.zeros_like(market.tradable[:1])])
        bars["stale"] = np.vstack([market.stale[1:], np.ones_like(market.stale[:1])])
    else:
        bars["fill"] = market.close
        bars["tradable"] = market.tradable
        bars["stale"] = market.stale
    bars["sigma"] = market.sigma
    bars["liquidity"] = market.liquidity
    bars["daily_var"] = market.daily_var
    bars["tick"] = market.tick[None, :]
    bars["capacity"] = market.capacity
    bars["correlation"] = market.correlation
    bars["volatility_ratio"] = market.volatility_ratio
    bars["crisis"] = market.crisis
    bars["recovery"] = market.recovery
    bars["high_volatility"] = market.high_volatility
    bars["correlation_break"] = market.correlation_break
    bars["day"] = market.day
    bars["month"] = market.month
    packed.features[:] = features
    return packed


def _require_market_state(market: MarketData, safeguards: Safeguards) -> None:
    """Refuse bars whose trailing market state is missing (too little history before them)."""
    for name in ("close", "sigma", "liquidity", "daily_var"):
        values = getattr(market, name)
        if not np.isfinite(values).all():
            row = int(np.argwhere(~np.isfinite(values))[0][0])
            safeguards.incidents += 1
            raise NonFiniteError(
                f"market {name} is not finite at "
                f"{pd.Timestamp(market.timestamps[row]).isoformat()}: too little history before "
                "the window (market state is computed on the bars before it, never filled back)"
            )


class Engine:
    """Episodes of ``n_envs`` environments trading ``market``.

    Parameters
    ----------
    market
        Bars, market state and raw features.
    settings
        The parts and parameters; :meth:`reconfigure` changes them.
    safeguards
        Checks every step; its counts are shared by the batch.
    n_envs
        Batch size.
    episode_bars
        Training episodes of this many bars from random starts; ``None``: one episode over the
        whole market, from its first bar.
    observations_by_step
        A batch of one only: keep each step's observation in its own row of a buffer allocated
        per episode, so a step hands back a view that later steps never overwrite.
    risk_log_level
        The level the risk engine's changes of state are logged at (always recorded).
    bars_per_day
        Bars per calendar day for the daily figures (VaR heat); ``None``: measured on
        ``market``. A session continued over another window of bars passes the first one's.
    """

    def __init__(
        self,
        market: MarketData,
        settings: EngineSettings,
        safeguards: Safeguards,
        *,
        n_envs: int = 1,
        episode_bars: int | None = None,
        seed: int | None = None,
        observations_by_step: bool = False,
        risk_log_level: int = logging.INFO,
        bars_per_day: float | None = None,
    ) -> None:
        if len(market) < 2:
            raise ValueError("an environment needs at least two bars")
        self.market = market
        self.settings = settings
        self.safeguards = safeguards
        self.risk_log_level = risk_log_level
        self.n_envs = n_envs
        n_bars = len(market)
        self.episode_steps = n_bars - 1 if episode_bars is None else min(episode_bars, n_bars - 1)
        self.random_starts = episode_bars is not None
        self.rng = np.random.default_rng(seed)
        self.bars_per_day = (
            measured_bars_per_day(market.timestamps) if bars_per_day is None else bars_per_day
        )
        self.carried: CarriedState | None = None
        _require_market_state(market, safeguards)
        features = settings.observation.scaled_features(market.features)
        if not np.isfinite(features).all():
            row, column = np.argwhere(~np.isfinite(features))[0]
            safeguards.incidents += 1
            raise NonFiniteError(
                f"feature {market.feature_names[column]} is not finite at "
                f"{pd.Timestamp(market.timestamps[row]).isoformat()}"
            )
        self.reward_bounds = (-np.inf, np.inf)
        self.sim = Simulator(
            sim_market(market, features, settings.fill_at),
            self._params(),
            n_envs=n_envs,
            episode_steps=self.episode_steps,
            observation_width=settings.observation.width(features.shape[1], market.n_instruments),
            observations_by_step=observations_by_step,
        )
        self.start_pool: npt.NDArray[np.int64] | None = None
        self.reset()

    @property
    def observations(self) -> npt.NDArray[np.float32]:
        """The observation buffer the last step or reset wrote."""
        return self.sim.observations

    def reconfigure(self, **parts: Any) -> None:
        """Replace parts of the settings (limits, costs, risk, ...) and the step's parameters.

        The one way parameters change after construction (the curriculum's difficulty, stress
        shocks): ``settings`` always describes what the step runs with.
        """
        self.settings = replace(self.settings, **parts)
        self._write_params()

    def set_reward_bounds(self, low: float, high: float) -> None:
        """Rewards outside [low, high] are counted as alerts."""
        self.reward_bounds = (low, high)
        self._write_params()

    def _write_params(self) -> None:
        self.sim.set_params(self._params())

    def _params(self) -> dict[str, Any]:
        low, high = self.reward_bounds
        params = self.settings.sim_params(self.bars_per_day, self.market.bars_per_year)
        return {**params, "reward_low": low, "reward_high": high}

    def set_start_pool(self, bars: npt.NDArray[np.int64] | None) -> None:
        """Draw training episodes' first bars from ``bars`` only (``None``: from anywhere).

        Bars too late to fit a whole episode are dropped; an empty pool is refused.
        """
        if bars is None:
            self.start_pool = None
            return
        last_start = len(self.market) - 1 - self.episode_steps
        pool = np.asarray(bars, dtype=np.int64)
        pool = pool[(pool >= 0) & (pool <= last_start)]
        if len(pool) == 0:
            raise ValueError("no bar of the start pool leaves room for a whole episode")
        self.start_pool = pool

    def continue_from(self, state: CarriedState) -> None:
        """Continue a carried state from now on: every reset resumes it rather than starting a
        new episode. The market must begin with the carried steps' bars and the bar the state
        stands at (:func:`ijules.env.carry.check_window`); the episode runs to its last bar."""
        if self.random_starts:
            raise ValueError("a carried state continues over the whole market, not random starts")
        check_window(state, self.market.timestamps)
        self.carried = state
        self.reset()

    def carry(self, b: int = 0) -> CarriedState:
        """Environment ``b``'s state now, for :meth:`continue_from` in a later session."""
        return carried_state(self.sim.carry(b), self.market.timestamps)

    def reset(self, which: Sequence[int] | None = None) -> None:
        """Start new episodes for the environments in ``which`` (all by default), or resume the
        carried state (:meth:`continue_from`)."""
        chosen = range(self.n_envs) if which is None else which
        last_start = len(self.market) - 1 - self.episode_steps
        for b in chosen:
            if self.carried is not None:
                carried = self.carried.carried(self.market.n_instruments)
                self.sim.resume(b, carried, len(self.market) - 1)
                continue
            if not self.random_starts:
                begin = 0
            elif self.start_pool is not None:
                begin = int(self.rng.choice(self.start_pool))
            else:
                begin = int(self.rng.integers(0, last_start + 1))
            self.sim.start(b, begin, begin + self.episode_steps, self.settings.initial_capital)
        self.sim.new_observation_buffer()
        self.observe()

    def start_episode(self, b: int, begin: int) -> None:
        """Restart environment ``b``'s episode at bar ``begin`` (a replay of a chosen stretch)."""
        if not 0 <= begin <= len(self.market) - 1 - self.episode_steps:
            raise ValueError(
                f"an episode of {self.episode_steps} steps cannot start at bar {begin}"
            )
        self.sim.start(b, begin, begin + self.episode_steps, self.settings.initial_capital)
        self.observe()

    def observe(self) -> npt.NDArray[np.float32]:
        """Write every environment's observation of its current bar; return the buffer."""
        return self.sim.observe()

    def step(self, actions: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Trade every environment towards its action's targets; return the new observations.

        Rewards and episode ends are read with :meth:`rewards`, :meth:`terminated` and
        :meth:`truncated`.
        """
        flagged, *_ = self.sim.step(actions)
        if flagged:
            self.check()
        return self.sim.observations

    def check(self) -> None:
        """Handle what the step flagged: state changes, safeguards (raises on non-finite)."""
        sim = self.sim
        if sim.account("after_end").any():
            raise RuntimeError("an environment was stepped after its episode ended; reset it first")
        if (sim.account("changed") > 0).any():
            log_changes(sim, lambda b: self.where(b, previous=True), self.risk_log_level)
        nonfinite = sim.account("nonfinite")
        out_of_bounds = sim.account("out_of_bounds")
        flagged = (nonfinite > 0) | out_of_bounds
        if not flagged.any():
            return
        rewards = self.rewards()
        bad_rewards = int((~np.isfinite(rewards)).sum())
        self.safeguards.check_step(
            rewards,
            bad_rewards,
            int(nonfinite.sum()) - bad_rewards,
            int(out_of_bounds.sum()),
            self.where(int(np.argmax(flagged))),
        )

    def where(self, b: int = 0, *, previous: bool = False) -> str:
        """The bar environment ``b`` is at (or just traded at), for messages."""
        bar = int(self.sim.bars()[b]) - (1 if previous else 0)
        bar = min(max(bar, 0), len(self.market) - 1)
        return pd.Timestamp(self.market.timestamps[bar]).isoformat()

    # Reading the state ------------------------------------------------------------------------

    def bars(self) -> npt.NDArray[np.int64]:
        """The current bar of each environment."""
        return self.sim.bars()

    def steps_taken(self, b: int = 0) -> int:
        """Steps of environment ``b``'s episode so far."""
        return self.sim.steps_taken(b)

    def first_bar(self, b: int = 0) -> int:
        """The first bar of environment ``b``'s episode."""
        return self.sim.first_bar(b)

    def rewards(self) -> FloatArray:
        """The last step's rewards."""
        return np.asarray(self.sim.account("reward"), dtype=np.float64)

    def terminated(self) -> npt.NDArray[np.bool_]:
        """Whether each episode ended early (ruin or the drawdown limit)."""
        return np.asarray(self.sim.account("terminated"))

    def truncated(self) -> npt.NDArray[np.bool_]:
        """Whether each episode reached its last bar."""
        return np.asarray(self.sim.account("truncated"))

    def units(self) -> FloatArray:
        """Units held per instrument."""
        return np.asarray(self.sim.account("units"), dtype=np.float64)

    def held_weights(self) -> FloatArray:
        """The weights held over the last bar, as the step booked them."""
        return np.asarray(self.sim.account("held"), dtype=np.float64)

    def cash(self) -> FloatArray:
        """Cash after every fill and cost."""
        return np.asarray(self.sim.account("cash"), dtype=np.float64)

    def peak(self) -> FloatArray:
        """The highest equity of each episode so far."""
        return np.asarray(self.sim.account("peak"), dtype=np.float64)

    def equity(self) -> FloatArray:
        """Cash plus positions marked at the current bar."""
        prices = self.market.close[self.bars()]
        return np.asarray(self.cash() + (self.units() * prices).sum(axis=1))

    def weights(self) -> FloatArray:
        """Positions as fractions of equity at the current bar."""
        marked = self.units() * self.market.close[self.bars()]
        return np.asarray(marked / self.equity()[:, None])

    def realised(self) -> FloatArray:
        """P&L of closed units against their average cost (before costs)."""
        return np.asarray(self.sim.account("realised"), dtype=np.float64)

    def unrealised(self) -> FloatArray:
        """Mark-to-market P&L of open units against their average cost."""
        average = self.sim.account("avg_cost")
        prices = self.market.close[self.bars()]
        return np.asarray((self.units() * (prices - average)).sum(axis=1))

    def costs_paid(self) -> FloatArray:
        """Costs paid this episode, by component (environments x components)."""
        return np.asarray(self.sim.account("costs"), dtype=np.float64)

    def cost_attribution(self, b: int = 0) -> dict[str, float]:
        """Costs paid so far this episode, by component, for environment ``b``."""
        return dict(zip(layout.COST_COMPONENTS, map(float, self.costs_paid()[b]), strict=True))

    def exit_costs(self, b: int = 0) -> dict[CostComponent, float]:
        """What closing every position at the current bar would cost, by component."""
        costs = self.sim.exit_costs(b)
        return dict(zip(layout.COST_COMPONENTS, map(float, costs), strict=True))

    def episode_equity(self, b: int = 0) -> FloatArray:
        """Equity at the start of the episode (this session) and after each step so far."""
        marks = self.sim.log(b)["equity"]
        return np.concatenate([[self.sim.opening_marks[b]], marks])

    def opening_units(self, b: int = 0) -> FloatArray:
        """Units held when this session began (none for a new episode)."""
        if self.carried is None:
            return np.zeros(self.market.n_instruments)
        return self.carried.units

    def first_observation(self) -> int:
        """The row of the by-step observation buffer that holds the session's first one."""
        return int(self.sim.carried_steps[0])

    def fill_prices(self) -> FloatArray:
        """The price a trade decided at each bar fills at (bars x instruments)."""
        return np.asarray(self.sim.market.bars["fill"], dtype=np.float64)

    def traded_units(self, b: int = 0) -> FloatArray:
        """Units traded at each step of the episode so far (steps x instruments)."""
        return np.array(self.sim.log(b)["units"], dtype=np.float64)

    def traded_costs(self, b: int = 0) -> FloatArray:
        """Costs of each step's fills (steps x instruments x components)."""
        return np.array(self.sim.log(b)["costs"], dtype=np.float64)

    def risk_events(self, b: int = 0) -> pd.DataFrame:
        """The episode's changes of trading state, with their reasons."""
        return risk_engine.events(self.sim, self.market.timestamps, b)

    def risk_refusals(self, b: int = 0) -> dict[str, int]:
        """How many targets the risk engine cut this episode, by reason."""
        return risk_engine.refusals(self.sim, b)

    def trading_states(self, b: int = 0) -> npt.NDArray[np.int64]:
        """The trading state at each step of the episode so far."""
        return risk_engine.states(self.sim, b)

    def release_halt(self, b: int = 0, *, operator: str, note: str) -> None:
        """An operator lifts environment ``b``'s halt (``halt_release.mode: operator``)."""
        risk_engine.release(self.sim, b, operator=operator, note=note)

    def fill_log(self, b: int = 0) -> pd.DataFrame:
        """Every non-zero fill of the episode so far, with its cost breakdown."""
        log = self.sim.log(b)
        rows, columns = np.nonzero(log["units"])
        bars = self.first_bar(b) + rows
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(self.market.timestamps[bars]),
                "instrument": [self.market.instruments[c] for c in columns],
                "units": log["units"][rows, columns],
                "price": self.fill_prices()[bars, columns],
            }
        )
        frame["notional"] = frame["units"].abs() * frame["price"]
        costs = log["costs"][rows, columns]
        for k, name in enumerate(layout.COST_COMPONENTS):
            frame[name] = costs[:, k]
        frame["total_cost"] = costs.sum(axis=1)
        refused = log["refusal"][rows, columns]
        frame["risk_refusal"] = [describe(code) if code else "" for code in refused]
        return frame
