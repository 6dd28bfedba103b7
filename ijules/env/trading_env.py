"""A gymnasium environment trading one instrument with proportional costs and a position limit.

At bar t the agent sees the standardised features of bars 0..t and its current weight, and asks
for a target weight in [-1, 1] of the position limit. The trade fills at bar t's close, pays
``proportional_cost_bps`` on the traded notional, and the position is marked at bar t+1's close.
The reward is the P&L after costs, in USD, times ``reward_scaling``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from ijules.config import EnvironmentConfig
from ijules.data.features import NormStats
from ijules.env.market_data import MarketData

Observation = npt.NDArray[np.float32]
_WEIGHT_TOLERANCE = 1e-9  # float noise in units x price / equity is not a limit breach
Action = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Fill:
    """One bar's trade and its consequence."""

    bar: int
    price: float
    traded_units: float
    traded_notional: float
    cost: float
    units_after: float
    equity_before: float
    equity_after: float


class TradingEnv(gym.Env[Observation, Action]):
    """Single-instrument trading on a window of bars.

    Parameters
    ----------
    market
        The bars and their raw features.
    norm
        Standardisation fitted on the train window (saved with the model).
    config
        Capital, limits, costs and reward scaling.
    clip_zscore
        Standardised features are clipped to +-this.
    episode_bars
        Episode length with a random start (training); ``None`` runs the whole window once from
        its first bar (evaluation).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's own attribute

    def __init__(
        self,
        market: MarketData,
        norm: NormStats,
        config: EnvironmentConfig,
        *,
        clip_zscore: float,
        episode_bars: int | None = None,
    ) -> None:
        super().__init__()
        if len(market) < 2:
            raise ValueError("an environment needs at least two bars")
        if len(norm.mean) != market.features.shape[1]:
            raise ValueError(
                f"normalisation has {len(norm.mean)} features, "
                f"the market {market.features.shape[1]}"
            )
        self.market = market
        self.config = config
        self._scaled = norm.apply(market.features, clip_zscore)
        self._limit = config.position_limit
        self._cost_rate = config.proportional_cost_bps / 10_000.0
        self._episode_bars = None if episode_bars is None else min(episode_bars, len(market) - 1)
        n_features = market.features.shape[1]
        low = np.concatenate([np.full(n_features, -clip_zscore), [-1.0]]).astype(np.float32)
        high = np.concatenate([np.full(n_features, clip_zscore), [1.0]]).astype(np.float32)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)
        self._t = 0
        self._end = len(market) - 1
        self._cash = config.initial_capital
        self._units = 0.0
        self.last_fill: Fill | None = None

    @property
    def bar(self) -> int:
        """Index of the current bar in the window."""
        return self._t

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode: a random stretch in training, the whole window in evaluation."""
        super().reset(seed=seed)
        if self._episode_bars is None:
            self._t, self._end = 0, len(self.market) - 1
        else:
            last_start = len(self.market) - 1 - self._episode_bars
            self._t = int(self.np_random.integers(0, last_start + 1))
            self._end = self._t + self._episode_bars
        self._cash = self.config.initial_capital
        self._units = 0.0
        self.last_fill = None
        return self._observation(), {"equity": self._cash}

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Rebalance towards the target weight at this bar's close, then mark at the next."""
        price = float(self.market.close[self._t])
        equity_before = self._cash + self._units * price
        weight = self._units * price / equity_before
        target = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1, 1))
        target *= self._limit
        traded_units = 0.0
        # Skip small rebalances, but always pull a position that drifted past the limit back in.
        drifted_past_limit = abs(weight) > self._limit + _WEIGHT_TOLERANCE
        if abs(target - weight) >= self.config.min_trade_weight or drifted_past_limit:
            traded_units = self._units_to_reach(target, equity_before, price)
        notional = abs(traded_units) * price
        cost = notional * self._cost_rate
        self._cash -= traded_units * price + cost
        self._units += traded_units

        self._t += 1
        equity_after = self._cash + self._units * float(self.market.close[self._t])
        self.last_fill = Fill(
            bar=self._t - 1,
            price=price,
            traded_units=traded_units,
            traded_notional=notional,
            cost=cost,
            units_after=self._units,
            equity_before=equity_before,
            equity_after=equity_after,
        )
        reward = (equity_after - equity_before) * self.config.reward_scaling
        terminated = equity_after <= 0.0
        truncated = self._t >= self._end and not terminated
        info = {"equity": equity_after, "cost": cost, "traded_notional": notional}
        return self._observation(), float(reward), terminated, truncated, info

    def _units_to_reach(self, target: float, equity: float, price: float) -> float:
        """Units to trade so the position is ``target`` of equity after paying the trade's cost.

        Solving (u + d) p = w (E - c |d| p) for d, with s = sign(d):
        d = (w E - u p) / (p (1 + w c s)).
        """
        gap = target * equity - self._units * price
        side = float(np.sign(gap))
        return gap / (price * (1.0 + target * self._cost_rate * side))

    def _observation(self) -> Observation:
        price = float(self.market.close[self._t])
        equity = self._cash + self._units * price
        weight = self._units * price / equity if equity > 0 else 0.0
        return np.append(self._scaled[self._t], np.float32(np.clip(weight, -1.0, 1.0)))
