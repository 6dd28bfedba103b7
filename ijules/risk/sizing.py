"""Enhanced Kelly position sizing (master plan, phase 5): a pure function with its reasons.

size = base Kelly x drawdown scalar x volatility scalar x regime scalar x correlation scalar,
then bounded:

- base Kelly: mu / sigma^2 (0 when mu <= 0 or sigma^2 <= 0: no edge, no position);
- drawdown: exp(-5 dd) once the current drawdown dd passes 1%, halved again when the recent
  maximum drawdown passed 5%, within [0.1, 1];
- volatility targeting: target / current annualised volatility, within [0.2, 2];
- regime: the regime's ``position_size_multiplier`` (1 for a regime without one);
- correlation: 1 - |correlation gap| (how far co-movement strays from its norm), within [0.5, 1];
- bounds: at most min(max_kelly_fraction, max_position_size); below min_position_size the size
  is 0, not rounded up: a position too small to matter is no position.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from ijules.frozen import Fraction, Frozen, PositiveFloat


class KellyConstraintsConfig(Frozen):
    """Bounds of the enhanced Kelly size."""

    max_kelly_fraction: Annotated[float, Field(gt=0, le=1)] = 0.25
    min_position_size: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_position_size: Annotated[float, Field(gt=0, le=1)] = 0.20
    volatility_target: PositiveFloat = 0.15


class PositionSizingConfig(Frozen):
    """Enhanced Kelly sizing (master plan, phase 5)."""

    kelly_enhancements: tuple[
        Literal[
            "drawdown_scaling",
            "volatility_targeting",
            "regime_adjustment",
            "correlation_adjustment",
        ],
        ...,
    ] = ("drawdown_scaling", "volatility_targeting", "regime_adjustment", "correlation_adjustment")
    constraints: KellyConstraintsConfig = KellyConstraintsConfig()


class RegimeStrategyConfig(Frozen):
    """Per-regime parameters of phase 5's regime adaptation."""

    position_size_multiplier: Annotated[float, Field(ge=0)] = 1.0
    turnover_tolerance: Annotated[float, Field(ge=0)] | None = None
    risk_budget_allocation: Annotated[float, Field(ge=0, le=1)] | None = None
    emergency_liquidation_threshold: Fraction | None = None


class RegimeAdaptationConfig(Frozen):
    """Phase 5's regime classes and their parameters (the sizer's regime scalar)."""

    enabled: bool = True
    strategy_parameters: dict[str, RegimeStrategyConfig] = Field(default_factory=dict)


class PortfolioOptimizationConfig(Frozen):
    """Position sizing and regime adaptation (master plan, phase 5).

    Not reachable from params.yaml yet (``portfolio_optimization`` is refused there by name):
    the sizer is a tested pure function that no environment calls.
    """

    position_sizing: PositionSizingConfig = PositionSizingConfig()
    regime_adaptation: RegimeAdaptationConfig = RegimeAdaptationConfig()


@dataclass(frozen=True)
class KellyDecision:
    """Each factor of a sizing decision, and the result."""

    base_kelly: float
    drawdown_scalar: float
    volatility_scalar: float
    regime_scalar: float
    correlation_scalar: float
    enhanced_kelly: float
    final_position_size: float
    bound: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def enhanced_kelly(
    *,
    expected_return: float,
    variance: float,
    current_drawdown: float,
    recent_max_drawdown: float,
    current_volatility: float,
    regime: str,
    correlation_gap: float,
    config: PortfolioOptimizationConfig,
) -> KellyDecision:
    """Size a position from its expected return and variance (per period), with every factor."""
    sizing = config.position_sizing
    enhancements = set(sizing.kelly_enhancements)
    constraints = sizing.constraints
    base = expected_return / variance if expected_return > 0 and variance > 0 else 0.0

    drawdown = 1.0
    if "drawdown_scaling" in enhancements:
        if current_drawdown > 0.01:
            drawdown = math.exp(-5.0 * current_drawdown)
        if recent_max_drawdown > 0.05:
            drawdown *= 0.5
        drawdown = _clip(drawdown, 0.1, 1.0)
    volatility = 1.0
    if "volatility_targeting" in enhancements and current_volatility > 0:
        volatility = _clip(constraints.volatility_target / current_volatility, 0.2, 2.0)
    regime_scalar = 1.0
    adaptation = config.regime_adaptation
    if "regime_adjustment" in enhancements and adaptation.enabled:
        parameters = adaptation.strategy_parameters.get(regime)
        regime_scalar = parameters.position_size_multiplier if parameters else 1.0
    correlation = 1.0
    if "correlation_adjustment" in enhancements:
        correlation = _clip(1.0 - abs(correlation_gap), 0.5, 1.0)

    enhanced = base * drawdown * volatility * regime_scalar * correlation
    ceiling = min(constraints.max_kelly_fraction, constraints.max_position_size)
    if enhanced <= 0.0:
        final, bound = 0.0, "no edge"
    elif enhanced < constraints.min_position_size:
        final, bound = 0.0, "below min_position_size"
    elif enhanced > ceiling:
        final, bound = ceiling, "capped at min(max_kelly_fraction, max_position_size)"
    else:
        final, bound = enhanced, "within bounds"
    return KellyDecision(
        base, drawdown, volatility, regime_scalar, correlation, enhanced, final, bound
    )
