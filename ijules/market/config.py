"""Configuration of regime detection: volatility thresholds and the regime models' windows."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from ijules.frozen import Frozen


class VolatilityRegimeConfig(Frozen):
    """Annualised-volatility thresholds of the low / medium / high regimes."""

    volatility_threshold_low: Annotated[float, Field(gt=0)] = 0.15
    volatility_threshold_high: Annotated[float, Field(gt=0)] = 0.35
    trend_strength_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.6

    @model_validator(mode="after")
    def _ordered(self) -> VolatilityRegimeConfig:
        if self.volatility_threshold_low >= self.volatility_threshold_high:
            raise ValueError("volatility_threshold_low must be below volatility_threshold_high")
        return self


class RegimesConfig(Frozen):
    """Regime detection (ijules.market): GARCH volatility, trend, crisis and recovery.

    Volatility thresholds and the trend threshold are ``microstructure.regime_detection``'s.
    """

    garch_window_bars: Annotated[int, Field(ge=100)] = 1000
    garch_refit_bars: Annotated[int, Field(ge=1)] = 250
    # Cap on alpha + beta: a window cannot resolve a slower decay, and near 1 the fit is
    # ill-conditioned (see ijules.market.volatility).
    garch_max_persistence: Annotated[float, Field(ge=0.5, lt=1)] = 0.999
    markov_probabilities: bool = True
    trend_window_bars: Annotated[int, Field(ge=2)] = 24
    long_run_window_bars: Annotated[int, Field(ge=10)] = 720
    crisis_volatility_ratio: Annotated[float, Field(gt=1)] = 2.5
    crisis_drawdown: Annotated[float, Field(gt=0, lt=1)] = 0.15
    recovery_bars: Annotated[int, Field(ge=1)] = 240
