from __future__ import annotations

from dataclasses import dataclass, replace

from ijules.evaluation.config import GateConfig
from ijules.evaluation.thresholds import threshold_checks
from ijules.registry.gate import apply_gate


@dataclass(frozen=True)
class Window:
    """One window's metrics, as far as the gate reads them."""

    sharpe: float
    max_drawdown: float
    daily_turnover: float
    num_trades: int


@dataclass(frozen=True)
class Folds:
    pass_rate: float


@dataclass(frozen=True)
class Stress:
    survived: int
    scenarios_run: int


GATE = GateConfig(min_sharpe=0.5, max_drawdown=0.1, max_daily_turnover=2.0, min_trades=10)
GOOD = Window(sharpe=1.2, max_drawdown=0.05, daily_turnover=1.0, num_trades=40)
FOLDS = Folds(pass_rate=2 / 3)
STRESS = Stress(survived=6, scenarios_run=6)


def test_a_model_within_every_threshold_passes() -> None:
    decision = apply_gate(GOOD, GATE, walk_forward=FOLDS, stress=STRESS)
    assert decision.passed and decision.reasons == []


def test_each_breach_is_a_reason() -> None:
    decision = threshold_checks(replace(GOOD, sharpe=0.2, daily_turnover=5.9), GATE)
    assert not decision.passed
    assert decision.reasons == ["sharpe 0.2 is not >= 0.5", "daily_turnover 5.9 is not <= 2"]


def test_thresholds_are_inclusive() -> None:
    edge = Window(sharpe=0.5, max_drawdown=0.1, daily_turnover=2.0, num_trades=10)
    assert threshold_checks(edge, GATE).passed


def test_the_gate_reads_walk_forward_and_stress_not_one_split() -> None:
    weak_folds = apply_gate(GOOD, GATE, walk_forward=Folds(pass_rate=1 / 3), stress=STRESS)
    assert weak_folds.reasons == ["walk_forward_pass_rate 0.3333 is not >= 0.6"]
    crashed = apply_gate(GOOD, GATE, walk_forward=FOLDS, stress=replace(STRESS, survived=5))
    assert crashed.reasons == ["stress_scenarios_survived 5 is not >= 6"]


def test_missing_validation_results_fail_the_gate_unless_waived() -> None:
    decision = apply_gate(GOOD, GATE)
    assert decision.reasons == [
        "no walk-forward results: the gate requires them",
        "no stress-test results: the gate requires them",
    ]
    waived = GATE.model_copy(
        update={"min_walk_forward_pass_rate": 0.0, "require_stress_survival": False}
    )
    assert apply_gate(GOOD, waived).passed
