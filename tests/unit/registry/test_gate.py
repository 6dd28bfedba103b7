from __future__ import annotations

from ijules.config import GateConfig
from ijules.registry.gate import apply_gate

GATE = GateConfig(min_sharpe=0.5, max_drawdown=0.1, max_daily_turnover=2.0, min_trades=10)
GOOD = {"sharpe": 1.2, "max_drawdown": 0.05, "daily_turnover": 1.0, "num_trades": 40}


def test_a_model_within_every_threshold_passes() -> None:
    decision = apply_gate(GOOD, GATE)
    assert decision.passed and decision.reasons == []


def test_each_breach_is_a_reason() -> None:
    decision = apply_gate({**GOOD, "sharpe": 0.2, "daily_turnover": 5.9}, GATE)
    assert not decision.passed
    assert decision.reasons == ["sharpe 0.2 is not >= 0.5", "daily_turnover 5.9 is not <= 2"]


def test_thresholds_are_inclusive() -> None:
    edge = {"sharpe": 0.5, "max_drawdown": 0.1, "daily_turnover": 2.0, "num_trades": 10}
    assert apply_gate(edge, GATE).passed
