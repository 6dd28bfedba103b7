"""Configuration of model health: what each component is judged by, and what a breach starts."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from ijules.frozen import Frozen, PositiveInt


class HealthWeights(Frozen):
    """Each component's weight in the health score (a component not measured is left out)."""

    data_drift: Annotated[float, Field(ge=0)] = 1.0
    action_drift: Annotated[float, Field(ge=0)] = 1.0
    performance: Annotated[float, Field(ge=0)] = 2.0
    regime: Annotated[float, Field(ge=0)] = 1.0
    risk: Annotated[float, Field(ge=0)] = 2.0


class HealthConfig(Frozen):
    """The nightly health of the model that trades (the champion; with none, the shadow).

    Live figures are judged only once the book has traded ``min_live_bars`` bars: a Sharpe ratio
    over a day of hourly bars says nothing. A score below ``retrain_below`` starts the weekly
    retraining early; a champion's score below ``rollback_below`` starts the rollback.
    """

    weights: HealthWeights = HealthWeights()
    retrain_below: Annotated[float, Field(gt=0, le=1)] = 0.6
    rollback_below: Annotated[float, Field(ge=0, lt=1)] = 0.35
    min_live_bars: PositiveInt = 48
    # The live Sharpe ratio is below the worst walk-forward fold's at this one-sided level.
    performance_alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    # Kolmogorov-Smirnov distance between live and test-window positions that flags action drift
    # (the distance, not its p-value: positions are autocorrelated, the test's p-value is not).
    action_drift_max: Annotated[float, Field(gt=0, le=1)] = 0.5
    # Per-bar returns in a regime below the test window's there (one-sided Welch t-test).
    regime_alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    min_regime_bars: Annotated[int, Field(ge=2)] = 24
    chart_days: PositiveInt = 30

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if self.rollback_below >= self.retrain_below:
            raise ValueError(
                f"rollback_below ({self.rollback_below}) must be below retrain_below "
                f"({self.retrain_below}): a champion is retrained before it is rolled back"
            )
        if sum(self.weights.model_dump().values()) <= 0:
            raise ValueError("at least one health weight must be positive")
        return self
