"""Configuration of the trading environment: capital and limits, observation, reward, safeguards."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ijules.frozen import Frozen, PositiveFloat
from ijules.sim.layout import RISK_FEATURES, RiskFeature

FillAt = Literal["next_open", "this_close"]


class EnvironmentConfig(Frozen):
    """The trading environment: capital, portfolio limits, actions and training episodes."""

    initial_capital: PositiveFloat = 100_000.0
    max_position_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_gross_exposure: Annotated[float, Field(gt=0, le=1)] = 1.0
    min_cash_reserve_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    action_space: Literal["continuous", "discrete"] = "continuous"
    min_trade_weight: Annotated[float, Field(ge=0, lt=1)] = 0.02
    # When a trade decided at bar t's close fills: at the next bar's open (what a live order
    # gets: the conservative default), or at bar t's close itself.
    fill_at: FillAt = "next_open"
    episode_bars: Annotated[int, Field(ge=16)] = 512
    # Annualised: an action of 1 is the position that would run at this volatility (capped by
    # the limits); None: an action of 1 is the single-position limit.
    volatility_target: PositiveFloat | None = None

    @property
    def position_limit(self) -> float:
        """Largest absolute weight of equity one position may take."""
        return min(self.max_position_fraction, self.gross_limit)

    @property
    def gross_limit(self) -> float:
        """Largest sum of absolute weights: gross exposure, net of the cash reserve."""
        return min(self.max_gross_exposure, 1.0 - self.min_cash_reserve_fraction)


class ObservationConfig(Frozen):
    """What the agent observes besides the features and its weights: the risk features
    (master plan, phase 1), in :data:`ijules.sim.layout.RISK_FEATURES` order."""

    include_risk_features: bool = True
    risk_features: tuple[RiskFeature, ...] = RISK_FEATURES
    drawdown_velocity_bars: Annotated[int, Field(ge=1)] = 24

    @field_validator("risk_features")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("risk features must not repeat")
        return value

    @property
    def active_features(self) -> tuple[RiskFeature, ...]:
        """The risk features that go into the observation."""
        return self.risk_features if self.include_risk_features else ()


class RewardConfig(Frozen):
    """Reward = (P&L after costs - penalty) x scaling ("pnl"), or the differential Sharpe ratio
    of the return after costs x scaling; an optional early end on drawdown."""

    kind: Literal["pnl", "differential_sharpe"] = "pnl"
    scaling: PositiveFloat = 0.001
    penalty_lambda: Annotated[float, Field(ge=0)] = 0.0
    penalty: Literal["drawdown", "variance"] = "drawdown"
    sharpe_decay: Annotated[float, Field(gt=0, lt=1)] = 0.01
    dd_limit: Annotated[float, Field(gt=0, le=1)] | None = None

    @model_validator(mode="after")
    def _penalty_in_usd_needs_a_reward_in_usd(self) -> RewardConfig:
        if self.kind == "differential_sharpe" and self.penalty_lambda > 0:
            raise ValueError(
                "penalty_lambda charges USD; the differential Sharpe reward has no unit: "
                "set penalty_lambda: 0 with kind: differential_sharpe"
            )
        return self


class SafeguardsConfig(Frozen):
    """Environment safeguards (master plan, phase 1). The NaN guard cannot be switched off."""

    observation_consistency_check: bool = True
    reward_bounds_check: bool = True
    reward_bounds: tuple[float, float] = (-1000.0, 1000.0)

    @field_validator("reward_bounds")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"reward_bounds must be (low, high) with low < high, got {value}")
        return value
