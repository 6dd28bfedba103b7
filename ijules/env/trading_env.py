"""A gymnasium trading environment: one or more instruments, realistic costs, hard limits.

At bar t the agent sees the standardised features of bars up to t, its current weights and its
risk features, and asks for target weights. Trades fill at bar t's close and pay every cost
component; the portfolio is marked at bar t+1's close. The reward is the P&L after costs (less
an optional risk penalty), scaled. See :mod:`ijules.sim` for the arithmetic.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from ijules.artifacts import NormStats
from ijules.config import Config
from ijules.env.engine import Engine, EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.safeguards import Safeguards

Observation = npt.NDArray[np.float32]
Action = npt.NDArray[Any]


class TradingEnv(gym.Env[npt.NDArray[Any], Action]):
    """A batch-of-one view of :class:`Engine` with the gymnasium API.

    Parameters
    ----------
    market
        Bars, market state and raw features of the window to trade.
    settings
        The parts: actions, observations, reward, costs and limits.
    safeguards
        NaN guard and reward-bound alerts.
    episode_bars
        Training: episodes of this length from random starts. ``None`` (evaluation): one
        episode over the whole window from its first bar.
    bars_per_day
        See :class:`Engine`; ``None``: measured on the window.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's own attribute

    def __init__(
        self,
        market: MarketData,
        settings: EngineSettings,
        safeguards: Safeguards,
        *,
        episode_bars: int | None = None,
        bars_per_day: float | None = None,
    ) -> None:
        super().__init__()
        self.engine = Engine(
            market,
            settings,
            safeguards,
            episode_bars=episode_bars,
            observations_by_step=True,
            bars_per_day=bars_per_day,
        )
        self.engine.set_reward_bounds(*safeguards.reward_window())
        self.observation_space: spaces.Box = settings.observation.space(
            len(market.feature_names), market.n_instruments
        )
        self.action_space = settings.actions.space
        self.observation_names = settings.observation.names(
            market.feature_names, market.instruments
        )
        self._sim = self.engine.sim

    @property
    def market(self) -> MarketData:
        """The window being traded."""
        return self.engine.market

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode: a random stretch in training, the whole window in evaluation, or
        the carried state's continuation (:meth:`Engine.continue_from`)."""
        super().reset(seed=seed)
        if seed is not None:
            self.engine.rng = np.random.default_rng(seed)
        self.engine.reset()
        first = self.engine.observations[self.engine.first_observation()]
        return first, {"equity": float(self.engine.equity()[0])}

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Trade towards the action's target weights at this bar, mark at the next.

        The observation returned is this episode's own row: later steps never overwrite it.
        """
        sim = self._sim
        try:  # the hot path: a policy's float32 vector
            result = sim.step_float32(action) if action.ndim == 1 else sim.step(action)
        except (AttributeError, TypeError):
            result = sim.step(action)
        flagged, reward, terminated, truncated, equity, step = result
        if flagged:
            self.engine.check()
        info: dict[str, Any] = {"equity": equity}
        if terminated or truncated:
            info["episode_costs"] = self.engine.cost_attribution(0)
        return sim.observations[step], reward, terminated, truncated, info


def make_env(
    config: Config,
    market: MarketData,
    norm: NormStats,
    clip_zscore: float,
    *,
    episode_bars: int | None = None,
    safeguards: Safeguards | None = None,
) -> TradingEnv:
    """Assemble the environment ``config`` describes over ``market``, with this normalisation."""
    settings = EngineSettings.from_config(config, norm, clip_zscore, market.n_instruments)
    guards = safeguards if safeguards is not None else Safeguards(config.safeguards)
    return TradingEnv(market, settings, guards, episode_bars=episode_bars)
