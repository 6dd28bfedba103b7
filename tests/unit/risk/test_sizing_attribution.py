"""Enhanced Kelly sizing by hand, and risk attribution on constructed returns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ijules.risk.attribution import risk_attribution
from ijules.risk.sizing import PortfolioOptimizationConfig, RegimeStrategyConfig, enhanced_kelly


@pytest.fixture
def optimisation():
    """The master plan's phase 5 sizing parameters."""
    return PortfolioOptimizationConfig(
        regime_adaptation={
            "strategy_parameters": {
                "low_volatility_trending": RegimeStrategyConfig(position_size_multiplier=1.2),
                "high_volatility_ranging": RegimeStrategyConfig(position_size_multiplier=0.6),
                "crisis_mode": RegimeStrategyConfig(position_size_multiplier=0.2),
            }
        }
    )


def size(optimisation, **overrides):
    inputs = {
        "expected_return": 0.0004,
        "variance": 0.0004,
        "current_drawdown": 0.0,
        "recent_max_drawdown": 0.0,
        "current_volatility": 0.15,
        "regime": "medium_volatility_ranging",
        "correlation_gap": 0.0,
    }
    return enhanced_kelly(**{**inputs, **overrides}, config=optimisation)


def test_each_factor_by_hand(optimisation) -> None:
    decision = size(
        optimisation,
        current_drawdown=0.03,
        recent_max_drawdown=0.06,
        current_volatility=0.30,
        regime="high_volatility_ranging",
        correlation_gap=0.2,
    )
    assert decision.base_kelly == pytest.approx(1.0)  # 0.0004 / 0.0004
    assert decision.drawdown_scalar == pytest.approx(math.exp(-0.15) * 0.5)
    assert decision.volatility_scalar == pytest.approx(0.5)  # 15% target / 30%
    assert decision.regime_scalar == pytest.approx(0.6)
    assert decision.correlation_scalar == pytest.approx(0.8)
    expected = math.exp(-0.15) * 0.5 * 0.5 * 0.6 * 0.8
    assert decision.enhanced_kelly == pytest.approx(expected)
    assert decision.final_position_size == pytest.approx(expected)  # 0.104: inside the bounds


def test_bounds_and_no_edge(optimisation) -> None:
    capped = size(optimisation)
    assert capped.final_position_size == pytest.approx(0.20)
    assert "capped" in capped.bound
    assert size(optimisation, expected_return=-0.001).final_position_size == 0.0
    tiny = size(optimisation, expected_return=0.000001)
    assert tiny.enhanced_kelly > 0 and tiny.final_position_size == 0.0
    crisis = size(optimisation, regime="crisis_mode", current_volatility=0.6)
    assert crisis.regime_scalar == pytest.approx(0.2)


def test_attribution_separates_beta_from_noise_and_timing_from_sizing() -> None:
    rng = np.random.default_rng(0)
    benchmark = rng.normal(0, 0.01, 5000)
    hedged = 0.5 * benchmark + rng.normal(0, 0.001, 5000)
    result = risk_attribution(hedged, benchmark, np.full(5000, 0.5), benchmark)
    assert result.beta == pytest.approx(0.5, abs=0.01)
    assert result.systematic_risk_share is not None and result.systematic_risk_share > 0.95
    assert result.sizing_pnl == pytest.approx(0.0, abs=1e-12)  # constant size: all timing
    varying = np.where(benchmark > 0, 1.0, 0.2)  # bigger when right: sizing adds P&L
    sized = risk_attribution(varying * benchmark, benchmark, varying, benchmark)
    assert sized.sizing_pnl is not None and sized.sizing_pnl > 0
    assert sized.timing_pnl is not None
    assert sized.timing_pnl + sized.sizing_pnl == pytest.approx(float(np.sum(varying * benchmark)))
