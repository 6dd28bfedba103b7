"""The engine: a batch of environments over one market, advanced by the compiled kernel.

The engine owns the simulation state (the clock and the portfolio of each environment) and the
parts: the action interpreter, the observation builder, the reward, the cost model, the limits and
the safeguards. :class:`ijules.env.trading_env.TradingEnv` is a batch of one;
:class:`ijules.env.vector_env.VectorTradingEnv` steps N copies in one kernel call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.config import Config
from ijules.data.features import NormStats
from ijules.env import kernel, layout
from ijules.env.market_data import MarketData, bars_per_day
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
from ijules.risk.codes import describe
from ijules.risk.engine import RiskSettings, log_changes

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
    min_trade_weight: float
    drawdown_velocity_bars: int

    @classmethod
    def from_config(
        cls, config: Config, norm: NormStats, clip_zscore: float, n_instruments: int
    ) -> EngineSettings:
        """Assemble the parts that ``config`` describes, with a model's normalisation."""
        return cls(
            actions=action_interpreter(config, n_instruments),
            observation=ObservationBuilder(norm, clip_zscore, config.risk.active_features),
            reward=RewardFunction.from_config(config),
            costs=CostModel.from_config(config.microstructure),
            limits=PortfolioLimits.from_config(config),
            risk=RiskSettings(config.risk_management, config.risk.daily_var_budget),
            initial_capital=config.environment.initial_capital,
            min_trade_weight=config.environment.min_trade_weight,
            drawdown_velocity_bars=config.risk.drawdown_velocity_bars,
        )


@dataclass(frozen=True)
class Layout:
    """Where each block sits in the packed arrays (see :mod:`ijules.env.kernel`)."""

    n_assets: int
    n_features: int
    ring: int

    @property
    def units(self) -> int:
        """Offset of the units held, per instrument."""
        return layout.N_SCALARS

    @property
    def avg_cost(self) -> int:
        """Offset of the average cost per instrument."""
        return self.units + self.n_assets

    @property
    def held(self) -> int:
        """Offset of the weights held over the last bar."""
        return self.avg_cost + self.n_assets

    @property
    def costs(self) -> int:
        """Offset of the costs paid this episode, by component."""
        return self.held + self.n_assets

    @property
    def drawdowns(self) -> int:
        """Offset of the drawdown ring."""
        return self.costs + layout.N_COSTS

    @property
    def width(self) -> int:
        """Columns of ``state``, the kernel's work space included."""
        return self.drawdowns + self.ring + kernel.work_size(self.n_assets)

    def dims(self, risk_mask: npt.NDArray[np.bool_]) -> FloatArray:
        """The dims block of the kernel's parameters."""
        dims = np.zeros(layout.N_DIMS)
        dims[layout.D_ASSETS] = self.n_assets
        dims[layout.D_FEATURES] = self.n_features
        dims[layout.D_RING] = self.ring
        dims[layout.D_UNITS] = self.units
        dims[layout.D_AVG] = self.avg_cost
        dims[layout.D_HELD] = self.held
        dims[layout.D_COSTS] = self.costs
        dims[layout.D_DRAWDOWNS] = self.drawdowns
        dims[layout.D_RISK_MASK :] = risk_mask.astype(np.float64)
        return dims


class Engine:
    """Simulation state for ``n_envs`` environments trading ``market``.

    Parameters
    ----------
    market
        Bars, market state and raw features.
    settings
        The parts and parameters.
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
    ) -> None:
        if len(market) < 2:
            raise ValueError("an environment needs at least two bars")
        if observations_by_step and n_envs != 1:
            raise ValueError("observations by step are for a batch of one")
        self.market = market
        self.settings = settings
        self.safeguards = safeguards
        self.risk_log_level = risk_log_level
        self.n_envs = n_envs
        n_bars, n_assets = market.close.shape
        self.episode_steps = n_bars - 1 if episode_bars is None else min(episode_bars, n_bars - 1)
        self.random_starts = episode_bars is not None
        self.rng = np.random.default_rng(seed)

        features = settings.observation.scaled_features(market.features)
        if not np.isfinite(features).all():
            row, column = np.argwhere(~np.isfinite(features))[0]
            safeguards.incidents += 1
            raise NonFiniteError(
                f"feature {market.feature_names[column]} is not finite at "
                f"{pd.Timestamp(market.timestamps[row]).isoformat()}"
            )
        self.layout = Layout(n_assets, features.shape[1], settings.drawdown_velocity_bars + 1)
        self.table = market_table(market, features)
        risk_mask = settings.observation.risk_mask
        self.params = self._params(market, settings)
        self.params[layout.P_DIMS : layout.P_TICKS] = self.layout.dims(risk_mask)
        self.params[layout.P_OBS_BY_STEP] = float(observations_by_step)
        self.state = np.zeros((n_envs, self.layout.width))
        self.fills = np.zeros((n_envs, self.episode_steps, n_assets, layout.FILL_WIDTH))
        self.width = self.layout.n_features + n_assets + int(risk_mask.sum())
        self.observations_by_step = observations_by_step
        self.observations = self._observation_buffer()
        self.start_pool: npt.NDArray[np.int64] | None = None
        self.reset()

    def _observation_buffer(self) -> npt.NDArray[np.float32]:
        rows = self.episode_steps + 1 if self.observations_by_step else self.n_envs
        return np.zeros((rows, self.width), dtype=np.float32)

    @staticmethod
    def _params(market: MarketData, settings: EngineSettings) -> FloatArray:
        params = np.zeros(layout.P_TICKS + market.n_instruments)
        params[layout.P_CAPITAL] = settings.initial_capital
        params[layout.P_MAX_SINGLE] = settings.limits.max_single
        params[layout.P_MAX_GROSS] = settings.limits.max_gross
        params[layout.P_BAND] = settings.min_trade_weight
        params[layout.P_BARS_PER_DAY] = bars_per_day(market.timestamps)
        discrete = isinstance(settings.actions, DiscreteWeights)
        params[layout.P_ACTION_OFFSET] = 1.0 if discrete else 0.0
        settings.costs.write_params(params)
        settings.reward.write_params(params)
        settings.risk.write_params(params)
        params[layout.P_REWARD_LOW] = -np.inf
        params[layout.P_REWARD_HIGH] = np.inf
        params[layout.P_TICKS :] = market.tick
        return params

    def set_reward_bounds(self, low: float, high: float) -> None:
        """Rewards outside [low, high] are counted as alerts."""
        self.params[layout.P_REWARD_LOW] = low
        self.params[layout.P_REWARD_HIGH] = high

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

    def reset(self, which: Sequence[int] | None = None) -> None:
        """Start new episodes for the environments in ``which`` (all by default)."""
        chosen = range(self.n_envs) if which is None else which
        last_start = len(self.market) - 1 - self.episode_steps
        capital = self.settings.initial_capital
        for b in chosen:
            if not self.random_starts:
                begin = 0
            elif self.start_pool is not None:
                begin = int(self.rng.choice(self.start_pool))
            else:
                begin = int(self.rng.integers(0, last_start + 1))
            row = self.state[b]
            row[:] = 0.0
            row[layout.S_T] = row[layout.S_START] = row[layout.S_STATE_SINCE] = begin
            row[layout.S_END] = begin + self.episode_steps
            row[layout.S_CASH] = row[layout.S_PEAK] = row[layout.S_MARK] = capital
            row[layout.S_DAY] = row[layout.S_MONTH] = -1.0  # the first bar starts a day and month
            self.fills[b] = 0.0
        if self.observations_by_step:
            self.observations = self._observation_buffer()
        self.observe()

    def observe(self) -> npt.NDArray[np.float32]:
        """Write every environment's observation of its current bar; return the buffer."""
        kernel.observe_batch(self.state, self.table, self.params, self.observations)
        return self.observations

    def step(self, actions: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Trade every environment towards its action's targets; return the new observations.

        Rewards and episode ends are read with :meth:`rewards`, :meth:`terminated` and
        :meth:`truncated`.
        """
        flagged, *_ = kernel.step_batch(
            self.state,
            self.table,
            self.params,
            np.ascontiguousarray(actions).reshape(-1),
            self.fills,
            self.observations,
        )
        if flagged:
            self.check()
        return self.observations

    def check(self) -> None:
        """Handle what the kernel flagged: state changes, safeguards (raises on non-finite)."""
        state = self.state
        if state[:, layout.S_AFTER_END].any():
            raise RuntimeError("an environment was stepped after its episode ended; reset it first")
        if state[:, layout.S_CHANGED].any():
            log_changes(self, self.risk_log_level)
        flagged = state[:, layout.S_NONFINITE] + state[:, layout.S_OUT_OF_BOUNDS]
        if not flagged.any():
            return
        rewards = state[:, layout.S_REWARD]
        bad_rewards = int((~np.isfinite(rewards)).sum())
        self.safeguards.check_step(
            rewards,
            bad_rewards,
            int(state[:, layout.S_NONFINITE].sum()) - bad_rewards,
            int(state[:, layout.S_OUT_OF_BOUNDS].sum()),
            self.where(int(np.argmax(flagged))),
        )

    def where(self, b: int = 0, *, previous: bool = False) -> str:
        """The bar environment ``b`` is at (or just traded at), for messages."""
        bar = int(self.state[b, layout.S_T]) - (1 if previous else 0)
        bar = min(max(bar, 0), len(self.market) - 1)
        return pd.Timestamp(self.market.timestamps[bar]).isoformat()

    # Reading the state ------------------------------------------------------------------------

    def bars(self) -> npt.NDArray[np.int64]:
        """The current bar of each environment."""
        return self.state[:, layout.S_T].astype(np.int64)

    def rewards(self) -> FloatArray:
        """The last step's rewards."""
        return np.asarray(self.state[:, layout.S_REWARD])

    def terminated(self) -> npt.NDArray[np.bool_]:
        """Whether each episode ended early (ruin or the drawdown limit)."""
        return np.asarray(self.state[:, layout.S_TERMINATED] > 0.0)

    def truncated(self) -> npt.NDArray[np.bool_]:
        """Whether each episode reached its last bar."""
        return np.asarray(self.state[:, layout.S_TRUNCATED] > 0.0)

    def units(self) -> FloatArray:
        """Units held per instrument."""
        start = self.layout.units
        return np.asarray(self.state[:, start : start + self.layout.n_assets])

    def cash(self) -> FloatArray:
        """Cash after every fill and cost."""
        return np.asarray(self.state[:, layout.S_CASH])

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
        return np.asarray(self.state[:, layout.S_REALISED])

    def unrealised(self) -> FloatArray:
        """Mark-to-market P&L of open units against their average cost."""
        start = self.layout.avg_cost
        average = self.state[:, start : start + self.layout.n_assets]
        prices = self.market.close[self.bars()]
        return np.asarray((self.units() * (prices - average)).sum(axis=1))

    def costs_paid(self) -> FloatArray:
        """Costs paid this episode, by component (environments x components)."""
        start = self.layout.costs
        return np.asarray(self.state[:, start : start + layout.N_COSTS])

    def cost_attribution(self, b: int = 0) -> dict[str, float]:
        """Costs paid so far this episode, by component, for environment ``b``."""
        return dict(zip(layout.COST_COMPONENTS, map(float, self.costs_paid()[b]), strict=True))

    def exit_costs(self, b: int = 0) -> dict[str, float]:
        """What closing every position at the current bar would cost, by component."""
        bar = int(self.state[b, layout.S_T])
        prices = self.market.close[bar]
        units = self.units()[b]
        equity = float(self.equity()[b])
        total = np.zeros(layout.N_COSTS)
        breakdown = np.zeros(layout.N_COSTS)
        for i in range(self.market.n_instruments):
            kernel.fill_costs(
                -units[i],
                prices[i],
                self.market.tick[i],
                self.market.sigma[bar, i],
                self.market.liquidity[bar, i],
                self.params,
                breakdown,
                0,
            )
            total += breakdown
        traded = float(np.abs(units * prices).sum())
        if self.params[layout.P_CAPACITY_ON] > 0.0 and traded > 0.0:
            sigma = float((np.abs(units * prices) * self.market.sigma[bar]).sum() / traded)
            total[layout.CAPACITY] = kernel.capacity_charge(
                traded, equity, self.market.capacity[bar], sigma, self.params[layout.P_ETA]
            )
        return dict(zip(layout.COST_COMPONENTS, map(float, total), strict=True))

    def episode_equity(self, b: int = 0) -> FloatArray:
        """Equity at the start of the episode and after each step so far."""
        steps = int(self.state[b, layout.S_T] - self.state[b, layout.S_START])
        marks = self.fills[b, :steps, 0, 1 + layout.N_COSTS + layout.F_EQUITY]
        return np.concatenate([[self.settings.initial_capital], marks])

    def fill_log(self, b: int = 0) -> pd.DataFrame:
        """Every non-zero fill of the episode so far, with its cost breakdown."""
        steps = int(self.state[b, layout.S_T] - self.state[b, layout.S_START])
        log = self.fills[b, :steps]
        rows, columns = np.nonzero(log[:, :, 0])
        bars = int(self.state[b, layout.S_START]) + rows
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(self.market.timestamps[bars]),
                "instrument": [self.market.instruments[c] for c in columns],
                "units": log[rows, columns, 0],
                "price": self.market.close[bars, columns],
            }
        )
        frame["notional"] = frame["units"].abs() * frame["price"]
        costs = log[rows, columns, 1 : 1 + layout.N_COSTS]
        for k, name in enumerate(layout.COST_COMPONENTS):
            frame[name] = costs[:, k]
        frame["total_cost"] = costs.sum(axis=1)
        refused = log[rows, columns, 1 + layout.N_COSTS + layout.F_REFUSAL].astype(int)
        frame["risk_refusal"] = [describe(code) if code else "" for code in refused]
        return frame


def market_table(market: MarketData, features: FloatArray) -> FloatArray:
    """Pack the market into the kernel's table (see :mod:`ijules.env.layout`)."""
    blocks = [
        market.close,
        market.tradable.astype(np.float64),
        market.stale.astype(np.float64),
        market.sigma,
        market.liquidity,
        market.daily_var,
    ]
    scalars = [
        market.capacity,
        market.correlation,
        market.volatility_ratio,
        market.crisis.astype(np.float64),
        market.recovery.astype(np.float64),
        market.high_volatility.astype(np.float64),
        market.correlation_break.astype(np.float64),
        market.day,
        market.month,
    ]
    assert len(blocks) == layout.N_BLOCKS and len(scalars) == layout.N_MARKET_SCALARS
    return np.ascontiguousarray(np.column_stack([*blocks, *scalars, features]))
