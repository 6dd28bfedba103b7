"""Configuration of the risk engine (master plan, phase 3) and of the VaR models."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from ijules.frozen import Fraction, Frozen, PositiveFloat
from ijules.sim.layout import ReleaseMode


class RiskLimitsConfig(Frozen):
    """Hard limits (master plan, phase 3). Fractions of equity."""

    max_daily_drawdown_pct: Fraction = 0.03
    max_monthly_drawdown_pct: Fraction = 0.08
    max_position_concentration_pct: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_leverage_ratio: Annotated[float, Field(gt=0)] = 1.0
    max_var_multiple: PositiveFloat = 2.5
    daily_var_budget: Annotated[float, Field(gt=0, le=1)] = 0.02  # also the heat ratio's unit


class RiskMonitoringConfig(Frozen):
    """What the engine watches: soft alerts (counted and logged, they do not stop trading) and
    the correlation-breakdown signal (short- against long-window correlations, in bars)."""

    drawdown_velocity_threshold: PositiveFloat = 0.01
    correlation_breakdown_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.7
    correlation_short_bars: Annotated[int, Field(ge=5)] = 24
    correlation_long_bars: Annotated[int, Field(ge=10)] = 240
    volatility_spike_threshold: Annotated[float, Field(gt=1)] = 2.0

    @model_validator(mode="after")
    def _windows_ordered(self) -> RiskMonitoringConfig:
        if self.correlation_short_bars >= self.correlation_long_bars:
            raise ValueError("correlation_short_bars must be below correlation_long_bars")
        return self


class HaltConditionsConfig(Frozen):
    """What halts trading."""

    consecutive_losses: Annotated[int, Field(ge=1)] = 5
    losing_day_pct: Fraction = 0.001  # a day counts as lost below -0.1% (not on costs alone)
    volatility_spike: Annotated[float, Field(gt=1)] = 3.0
    correlation_breakdown: bool = True


class CircuitBreakersConfig(Frozen):
    """Automatic actions on losses since the start of the trading day."""

    enabled: bool = True
    emergency_liquidation_threshold: Fraction = 0.05
    position_scaling_threshold: Fraction = 0.02
    trading_halt_conditions: HaltConditionsConfig = HaltConditionsConfig()

    @model_validator(mode="after")
    def _ordered(self) -> CircuitBreakersConfig:
        if self.position_scaling_threshold >= self.emergency_liquidation_threshold:
            raise ValueError(
                "position_scaling_threshold must be below emergency_liquidation_threshold"
            )
        return self


AttributionComponent = Literal[
    "systematic_risk", "idiosyncratic_risk", "timing_risk", "sizing_risk"
]


class AttributionConfig(Frozen):
    """Risk attribution reported with each evaluation: whether, and which components."""

    enabled: bool = True
    components: tuple[AttributionComponent, ...] = get_args(AttributionComponent)


class HaltReleaseConfig(Frozen):
    """How a halt is lifted.

    time: after ``cooldown_bars`` (a daily-loss halt also waits for the next day); condition:
    once the trigger has cleared, and not before ``cooldown_bars``; operator: only by hand.
    """

    mode: ReleaseMode = "condition"
    cooldown_bars: Annotated[int, Field(ge=1)] = 24


class RegimeLimitsConfig(Frozen):
    """Position limits scale down in these regimes (multipliers of the limits)."""

    crisis_mode: Annotated[float, Field(ge=0, le=1)] = 0.2
    recovery_mode: Annotated[float, Field(ge=0, le=1)] = 0.5
    high_volatility: Annotated[float, Field(ge=0, le=1)] = 0.6


class RiskManagementConfig(Frozen):
    """The risk engine (master plan, phase 3): every action passes through it."""

    enabled: bool = True
    limits: RiskLimitsConfig = RiskLimitsConfig()
    monitoring: RiskMonitoringConfig = RiskMonitoringConfig()
    circuit_breakers: CircuitBreakersConfig = CircuitBreakersConfig()
    attribution: AttributionConfig = AttributionConfig()
    halt_release: HaltReleaseConfig = HaltReleaseConfig()
    regime_limits: RegimeLimitsConfig = RegimeLimitsConfig()


VarModel = Literal[
    "historical_simulation",
    "parametric_normal",
    "parametric_student_t",
    "monte_carlo",
    "extreme_value_theory",
]


class ExpectedShortfallConfig(Frozen):
    """Confidence levels and the window of the VaR and expected-shortfall estimates."""

    confidence_levels: tuple[Annotated[float, Field(gt=0.5, lt=1)], ...] = (0.95, 0.99)
    tail_expectation_window: Annotated[int, Field(ge=50)] = 252


class RiskModelsConfig(Frozen):
    """VaR models (master plan, phase 3)."""

    var_models: tuple[VarModel, ...] = get_args(VarModel)
    expected_shortfall: ExpectedShortfallConfig = ExpectedShortfallConfig()
    monte_carlo_paths: Annotated[int, Field(ge=1000)] = 20_000
    evt_threshold_quantile: Annotated[float, Field(gt=0.5, lt=0.99)] = 0.90
    refit_every: Annotated[int, Field(ge=1)] = 20
