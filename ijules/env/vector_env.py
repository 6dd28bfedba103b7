"""N copies of the trading environment stepped together in one kernel call (an SB3 VecEnv).

Each copy has its own episode (random start, own portfolio); finished copies restart at once, as
SB3 expects, with the last observation of the finished episode in ``terminal_observation``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from ijules.env.engine import Engine, EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.safeguards import Safeguards


class VectorTradingEnv(VecEnv):
    """``n_envs`` training environments over one market, advanced as one batch."""

    def __init__(
        self,
        market: MarketData,
        settings: EngineSettings,
        safeguards: Safeguards,
        *,
        n_envs: int,
        episode_bars: int,
        seed: int | None = None,
    ) -> None:
        # Exploration trips the risk engine constantly: its changes go to DEBUG, not WARNING.
        self.engine = Engine(
            market,
            settings,
            safeguards,
            n_envs=n_envs,
            episode_bars=episode_bars,
            seed=seed,
            risk_log_level=logging.DEBUG,
        )
        self.render_mode = None
        self.engine.set_reward_bounds(*safeguards.reward_window())
        observation_space = settings.observation.space(
            len(market.feature_names), market.n_instruments
        )
        super().__init__(n_envs, observation_space, settings.actions.space)
        self._actions: npt.NDArray[Any] | None = None
        self._returns = np.zeros(n_envs)
        # Per-episode metrics (Sharpe, drawdown, ...) for the curriculum: off unless asked.
        self.episode_metrics = False

    def reset(self) -> npt.NDArray[np.float32]:
        """Start new episodes everywhere."""
        if self._seeds[0] is not None:
            self.engine.rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._returns[:] = 0.0
        self.engine.reset()
        return self.engine.observations.copy()

    def step_async(self, actions: npt.NDArray[Any]) -> None:
        """Remember the actions for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step every copy; restart those whose episode ended."""
        engine = self.engine
        assert self._actions is not None
        observations = engine.step(self._actions).copy()
        rewards = engine.rewards()
        self._returns += rewards
        terminated, truncated = engine.terminated(), engine.truncated()
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(done)
        if len(finished):
            for b in finished:
                length = engine.steps_taken(int(b))
                infos[b] = {
                    "terminal_observation": observations[b].copy(),
                    "TimeLimit.truncated": bool(truncated[b] and not terminated[b]),
                    "episode": {"r": float(self._returns[b]), "l": length, "t": 0.0},
                    "episode_costs": engine.cost_attribution(int(b)),
                }
                if self.episode_metrics:
                    infos[b]["episode_metrics"] = episode_metrics(engine, int(b))
                self._returns[b] = 0.0
            engine.reset(finished.tolist())
            observations[finished] = engine.observations[finished]
        return observations, rewards.astype(np.float32), done, infos

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute (of the engine, else of this wrapper), once per copy asked for."""
        owner = self.engine if hasattr(self.engine, attr_name) else self
        return [getattr(owner, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an engine attribute (shared by every copy)."""
        setattr(self.engine, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        """Call an engine method once per copy asked for."""
        method = getattr(self.engine, method_name)
        return [method(*args, **kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No copy is wrapped."""
        return [False] * len(self._indices(indices))

    def _indices(self, indices: int | Iterable[int] | None) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def episode_metrics(engine: Engine, b: int) -> dict[str, float]:
    """Sharpe, drawdown, win rate, information ratio and Calmar of ``b``'s finished episode."""
    from ijules.analytics.metrics import summarise

    equity = engine.episode_equity(b)
    steps = len(equity) - 1
    start = engine.first_bar(b)
    traded = engine.traded_units(b)
    close = engine.market.close[start : start + steps + 1]
    benchmark = close[1:, 0] / close[:-1, 0] - 1.0
    result = summarise(
        equity=equity,
        units=np.cumsum(traded, axis=0),
        traded=traded,
        costs=engine.traded_costs(b).sum(axis=2),
        fills=engine.fill_prices()[start : start + steps],
        close=close,
        timestamps=engine.market.timestamps[start : start + steps + 1],
        bars_per_year=engine.market.bars_per_year,
        benchmark_returns=benchmark,
    )
    return {**result.stage_targets(), "daily_turnover": result.daily_turnover}
