"""The parts an environment is assembled from: action interpreters, observations, reward, limits.

Each part is small and stateless; the simulation state lives in :class:`ijules.env.engine.Engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from ijules.artifacts import NormStats
from ijules.config import Config
from ijules.sim.layout import RISK_FEATURES, RiskFeature

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PortfolioLimits:
    """What a rebalance may do: the largest weight of one position, the largest gross exposure
    (cash reserve included), the smallest rebalance worth trading (``band``) and the largest
    change of weight per bar (``max_trade``, 0 for none: a curriculum constraint)."""

    max_single: float
    max_gross: float
    band: float
    max_trade: float = 0.0

    @classmethod
    def from_config(cls, config: Config) -> PortfolioLimits:
        """Read the limits from ``environment``."""
        environment = config.environment
        return cls(
            environment.position_limit, environment.gross_limit, environment.min_trade_weight
        )

    def sim_params(self) -> dict[str, float]:
        """The step's limit parameters."""
        return {
            "max_single": self.max_single,
            "max_gross": self.max_gross,
            "band": self.band,
            "max_trade": self.max_trade,
        }


class ActionInterpreter(Protocol):
    """The action space policies act in.

    The kernel turns actions into target weights itself, (action - offset) x max_single with the
    offset 1 for :class:`DiscreteWeights` and 0 otherwise; it clips every target to the
    single-position limit and scales a batch row down to the gross limit on every step, so no
    path trades around limits.
    """

    @property
    def space(self) -> spaces.Space[npt.NDArray[np.generic]]:
        """The action space one environment exposes."""
        ...

    @property
    def volatility_target(self) -> float | None:
        """Annualised volatility a unit action runs at (None: a unit action is the limit)."""
        ...


@dataclass(frozen=True)
class ContinuousWeights:
    """Actions in [-1, 1] per instrument: the fraction of the single-position limit to hold, or
    with a ``volatility_target`` (annualised) the multiple of the position that would run at
    that volatility (Lim et al.; Zhang, Zohren & Roberts), within the limit either way."""

    n_instruments: int
    limits: PortfolioLimits
    volatility_target: float | None = None

    @property
    def space(self) -> spaces.Box:
        """Box(-1, 1) per instrument."""
        return spaces.Box(low=-1.0, high=1.0, shape=(self.n_instruments,), dtype=np.float32)


@dataclass(frozen=True)
class DiscreteWeights:
    """Actions 0, 1, 2 per instrument: short, flat or long at the single-position limit (or at
    the position that runs at ``volatility_target``, within the limit)."""

    n_instruments: int
    limits: PortfolioLimits
    volatility_target: float | None = None

    @property
    def space(self) -> spaces.MultiDiscrete:
        """Three choices per instrument."""
        return spaces.MultiDiscrete([3] * self.n_instruments)


def action_interpreter(config: Config, n_instruments: int) -> ActionInterpreter:
    """The interpreter ``environment.action_space`` names."""
    limits = PortfolioLimits.from_config(config)
    target = config.environment.volatility_target
    if config.environment.action_space == "discrete":
        return DiscreteWeights(n_instruments, limits, target)
    return ContinuousWeights(n_instruments, limits, target)


@dataclass(frozen=True)
class ObservationBuilder:
    """Standardised features, current weights and the selected risk features.

    Training and evaluation build observations with this one object and the normalisation saved
    with the model, so the same bars always give the same observation.
    """

    norm: NormStats
    clip_zscore: float
    risk_features: tuple[RiskFeature, ...]

    @property
    def observed_risk(self) -> tuple[RiskFeature, ...]:
        """The observed risk features, in the order the observation holds them."""
        return tuple(name for name in RISK_FEATURES if name in self.risk_features)

    def sim_params(self) -> dict[str, object]:
        """Each risk feature's slot after the weights (-1: not observed)."""
        observed = self.observed_risk
        return {"risk_slot": [observed.index(n) if n in observed else -1 for n in RISK_FEATURES]}

    def width(self, n_features: int, n_instruments: int) -> int:
        """Entries of one observation."""
        return n_features + n_instruments + len(self.observed_risk)

    def scaled_features(self, features: FloatArray) -> FloatArray:
        """Standardise and clip raw features (rows x features)."""
        return np.asarray(self.norm.apply(features, self.clip_zscore), dtype=np.float64)

    def names(self, feature_names: tuple[str, ...], instruments: tuple[str, ...]) -> list[str]:
        """The observation's entries by name, in order."""
        weights = (f"weight:{name}" for name in instruments)
        return [*feature_names, *weights, *self.observed_risk]

    def space(self, n_features: int, n_instruments: int) -> spaces.Box:
        """Features within +-clip, weights within [-1, 1], risk features unbounded."""
        n_risk = len(self.observed_risk)
        low = np.concatenate(
            [
                np.full(n_features, -self.clip_zscore),
                -np.ones(n_instruments),
                np.full(n_risk, -np.inf),
            ]
        )
        high = np.concatenate(
            [np.full(n_features, self.clip_zscore), np.ones(n_instruments), np.full(n_risk, np.inf)]
        )
        return spaces.Box(
            low=low.astype(np.float32), high=high.astype(np.float32), dtype=np.float32
        )


@dataclass(frozen=True)
class RewardFunction:
    """Reward = (P&L after costs - penalty) x scaling, in USD before scaling ("pnl"); or the
    differential Sharpe ratio of the bar's return after costs x scaling ("differential_sharpe",
    Moody & Saffell 2001, EMAs at rate ``sharpe_decay``).

    penalty = lambda x drawdown x capital ("drawdown"), or lambda x r^2 x capital ("variance"),
    with r the bar's portfolio return. An episode ends early when the drawdown passes
    ``dd_limit``.
    """

    scaling: float
    penalty_lambda: float
    penalty: str
    dd_limit: float | None
    kind: str = "pnl"
    sharpe_decay: float = 0.01

    @classmethod
    def from_config(cls, config: Config) -> RewardFunction:
        """Read the reward from ``reward``."""
        reward = config.reward
        return cls(
            reward.scaling,
            reward.penalty_lambda,
            reward.penalty,
            reward.dd_limit,
            reward.kind,
            reward.sharpe_decay,
        )

    def sim_params(self) -> dict[str, object]:
        """The step's reward parameters (its bounds are the safeguards')."""
        return {
            "reward_scaling": self.scaling,
            "penalty_lambda": self.penalty_lambda,
            "variance_penalty": self.penalty == "variance",
            "dd_limit": 0.0 if self.dd_limit is None else self.dd_limit,
            "differential_sharpe": self.kind == "differential_sharpe",
            "sharpe_decay": self.sharpe_decay,
        }
