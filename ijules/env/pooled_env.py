"""One policy over several instruments: their vectorised environments stepped as one batch.

Each instrument keeps its own bars, normalisation, costs and risk engine (a
:class:`VectorTradingEnv` of its own); the policy sees a single-instrument observation from each,
so it learns one mapping from features to a position that every instrument shares. The batch
holds every instrument's episodes in fixed shares, so each rollout draws from all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.safeguards import Safeguards
from ijules.env.vector_env import VectorTradingEnv
from ijules.errors import ConfigError


@dataclass(frozen=True)
class Member:
    """One instrument of a training pool: its market and the settings its observations use."""

    market: MarketData
    settings: EngineSettings


def env_shares(n_envs: int, members: int) -> list[int]:
    """Environments per member: ``n_envs`` split as evenly as it goes, the first ones first."""
    if n_envs < members:
        raise ConfigError(
            f"training.n_envs={n_envs} is below the {members} instruments pooled: each needs "
            "at least one environment"
        )
    base, extra = divmod(n_envs, members)
    return [base + (1 if k < extra else 0) for k in range(members)]


def training_env(
    members: Sequence[Member],
    safeguards: Safeguards,
    *,
    n_envs: int,
    episode_bars: int,
    seed: int | None,
) -> VectorTradingEnv | PooledVecEnv:
    """The training environment: one instrument's vectorised env, or a pool of them."""
    parts = [
        VectorTradingEnv(
            member.market,
            member.settings,
            safeguards,
            n_envs=share,
            episode_bars=episode_bars,
            seed=seed,
        )
        for member, share in zip(members, env_shares(n_envs, len(members)), strict=True)
    ]
    return parts[0] if len(parts) == 1 else PooledVecEnv(parts)


class PooledVecEnv(VecEnv):
    """Several :class:`VectorTradingEnv` (one per instrument) as one SB3 VecEnv."""

    def __init__(self, parts: Sequence[VectorTradingEnv]) -> None:
        first = parts[0]
        for k, part in enumerate(parts[1:], start=1):
            if part.observation_space != first.observation_space:
                raise ConfigError(
                    f"pooled instrument {k} observes {part.observation_space}, instrument 0 "
                    f"{first.observation_space}: pooled instruments need the same features"
                )
        self.parts = tuple(parts)
        self._starts = np.cumsum([0] + [part.num_envs for part in parts])
        self.render_mode = None
        super().__init__(int(self._starts[-1]), first.observation_space, first.action_space)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed each part from its own first index, so no two parts share a stream."""
        seeds = super().seed(seed)
        for part, start in zip(self.parts, self._starts[:-1], strict=True):
            part.seed(seeds[int(start)])
        return seeds

    def reset(self) -> npt.NDArray[np.float32]:
        """Start new episodes in every part."""
        self._reset_seeds()
        return np.concatenate([part.reset() for part in self.parts])

    def step_async(self, actions: npt.NDArray[Any]) -> None:
        """Hand each part its slice of the actions."""
        for part, start, end in self._slices():
            part.step_async(actions[start:end])

    def step_wait(self) -> VecEnvStepReturn:
        """Step every part; gather their results in order."""
        observations: list[npt.NDArray[Any]] = []
        rewards, dones, infos = [], [], []
        for part in self.parts:
            obs, reward, done, info = part.step_wait()
            observations.append(np.asarray(obs))
            rewards.append(reward)
            dones.append(done)
            infos.extend(info)
        return (
            np.concatenate(observations),
            np.concatenate(rewards),
            np.concatenate(dones),
            infos,
        )

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute of the part each asked-for copy belongs to."""
        return [part.get_attr(attr_name, [k])[0] for part, k in self._owners(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set the attribute in every part an asked-for copy belongs to."""
        for part in {id(part): part for part, _ in self._owners(indices)}.values():
            part.set_attr(attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        """Call the method once per asked-for copy, in its part."""
        return [
            part.env_method(method_name, *args, indices=[k], **kwargs)[0]
            for part, k in self._owners(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No copy is wrapped."""
        return [False] * len(self._owners(indices))

    def _slices(self) -> list[tuple[VectorTradingEnv, int, int]]:
        return [
            (part, int(self._starts[k]), int(self._starts[k + 1]))
            for k, part in enumerate(self.parts)
        ]

    def _owners(self, indices: int | Iterable[int] | None) -> list[tuple[VectorTradingEnv, int]]:
        if indices is None:
            chosen: Iterable[int] = range(self.num_envs)
        elif isinstance(indices, int):
            chosen = [indices]
        else:
            chosen = indices
        owners = []
        for index in chosen:
            k = int(np.searchsorted(self._starts, index, side="right")) - 1
            owners.append((self.parts[k], int(index - self._starts[k])))
        return owners
