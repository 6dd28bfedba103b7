from __future__ import annotations

from dataclasses import dataclass, replace

from ijules.evaluation.config import GateConfig
from ijules.evaluation.thresholds import Benchmarks, threshold_checks
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
BEATEN = Benchmarks(passive_sharpe=0.9, best_rule="tsmom", best_rule_sharpe=1.1)
FILL = {"BTCUSD": 20.0}  # bps for one fill of the whole capital


def test_a_model_within_every_threshold_passes() -> None:
    decision = apply_gate(GOOD, GATE, BEATEN, FILL, walk_forward=FOLDS, stress=STRESS)
    assert decision.passed and decision.reasons == []


def test_each_breach_is_a_reason() -> None:
    decision = threshold_checks(replace(GOOD, sharpe=0.2, daily_turnover=5.9), GATE, BEATEN, FILL)
    assert not decision.passed
    assert decision.reasons == [
        "sharpe 0.2 is not > 0.5",
        "daily_turnover 5.9 is not <= 2",
        "sharpe_vs_passive_buy_and_hold 0.2 is not >= 0.9",
        "sharpe_vs_best_rule_tsmom 0.2 is not >= 1.1",
    ]


def test_thresholds_are_inclusive_except_the_sharpe_floor() -> None:
    edge = Window(sharpe=0.5 + 1e-9, max_drawdown=0.1, daily_turnover=2.0, num_trades=10)
    level = replace(BEATEN, passive_sharpe=edge.sharpe, best_rule_sharpe=edge.sharpe)
    assert threshold_checks(edge, GATE, level, {"BTCUSD": 100.0}).passed


def test_a_sharpe_ratio_equal_to_the_floor_fails_and_just_above_it_passes() -> None:
    at_floor = threshold_checks(replace(GOOD, sharpe=0.5), GATE, BEATEN, FILL)
    (sharpe,) = [check for check in at_floor.checks if check.metric == "sharpe"]
    assert (sharpe.rule, sharpe.passed) == (">", False)
    assert "sharpe 0.5 is not > 0.5" in at_floor.reasons
    above = threshold_checks(replace(GOOD, sharpe=0.5 + 1e-9), GATE, BEATEN, FILL)
    assert "sharpe" not in {check.metric for check in above.checks if not check.passed}


def test_a_flat_agent_with_a_sharpe_of_zero_fails_a_floor_of_zero() -> None:
    flat = Window(sharpe=0.0, max_drawdown=0.0, daily_turnover=0.0, num_trades=0)
    lenient = GATE.model_copy(
        update={"min_sharpe": 0.0, "min_trades": 0, "beat_passive_buy_and_hold": False}
    )
    level = replace(BEATEN, best_rule_sharpe=0.0)
    decision = threshold_checks(flat, lenient, level, FILL)
    assert decision.reasons == ["sharpe 0 is not > 0"]


def test_no_stress_scenario_run_or_fewer_than_configured_is_no_evidence() -> None:
    none_run = apply_gate(
        GOOD, GATE, BEATEN, FILL, walk_forward=FOLDS, stress=Stress(survived=0, scenarios_run=0)
    )
    assert none_run.reasons == ["stress_scenarios_survived 0 is not >= 1"]
    fewer = apply_gate(
        GOOD, GATE, BEATEN, FILL, walk_forward=FOLDS, stress=Stress(4, 4), required_scenarios=6
    )
    assert fewer.reasons == ["stress_scenarios_survived 4 is not >= 6"]
    assert apply_gate(GOOD, GATE, BEATEN, FILL, walk_forward=FOLDS, stress=STRESS).passed


def test_the_gate_reads_walk_forward_and_stress_not_one_split() -> None:
    weak_folds = apply_gate(
        GOOD, GATE, BEATEN, FILL, walk_forward=Folds(pass_rate=1 / 3), stress=STRESS
    )
    assert weak_folds.reasons == ["walk_forward_pass_rate 0.3333 is not >= 0.6"]
    crashed = apply_gate(
        GOOD, GATE, BEATEN, FILL, walk_forward=FOLDS, stress=replace(STRESS, survived=5)
    )
    assert crashed.reasons == ["stress_scenarios_survived 5 is not >= 6"]


def test_missing_validation_results_fail_the_gate_unless_waived() -> None:
    decision = apply_gate(GOOD, GATE, BEATEN, FILL)
    assert decision.reasons == [
        "no walk-forward results: the gate requires them",
        "no stress-test results: the gate requires them",
    ]
    waived = GATE.model_copy(
        update={"min_walk_forward_pass_rate": 0.0, "require_stress_survival": False}
    )
    assert apply_gate(GOOD, waived, BEATEN, FILL).passed


def test_the_agent_must_beat_the_passive_benchmark_and_the_best_rule() -> None:
    behind_rule = threshold_checks(GOOD, GATE, replace(BEATEN, best_rule_sharpe=1.3), FILL)
    assert behind_rule.reasons == ["sharpe_vs_best_rule_tsmom 1.2 is not >= 1.3"]
    behind_passive = threshold_checks(GOOD, GATE, replace(BEATEN, passive_sharpe=1.25), FILL)
    assert behind_passive.reasons == ["sharpe_vs_passive_buy_and_hold 1.2 is not >= 1.25"]


def test_the_comparisons_can_be_switched_off_by_name() -> None:
    lenient = GATE.model_copy(update={"beat_passive_buy_and_hold": False, "beat_best_rule": False})
    far_behind = Benchmarks(passive_sharpe=3.0, best_rule="macd", best_rule_sharpe=4.0)
    decision = threshold_checks(GOOD, lenient, far_behind, FILL)
    assert decision.passed
    assert {check.metric for check in decision.checks} == {
        "sharpe",
        "max_drawdown",
        "daily_turnover",
        "num_trades",
        "full_capital_fill_cost_bps_BTCUSD",
    }


def test_an_implausible_cost_model_fails_the_gate_by_instrument() -> None:
    fills = {"BTCUSD": 20.0, "EURUSD": 1000.0}  # a book depth of one bar's capital, say
    decision = apply_gate(GOOD, GATE, BEATEN, fills, walk_forward=FOLDS, stress=STRESS)
    assert decision.reasons == ["full_capital_fill_cost_bps_EURUSD 1000 is not <= 100"]


@dataclass(frozen=True)
class Seeds:
    sharpe: float
    max_drawdown: float
    daily_turnover: float
    num_trades: int
    runs: tuple[str, ...]


def test_over_seeds_the_gate_judges_the_conservative_figures() -> None:
    # The registered policy (GOOD) passes; the seeds' lower bound and worst drawdown do not.
    seeds = Seeds(sharpe=0.3, max_drawdown=0.12, daily_turnover=1.0, num_trades=40, runs=("a",) * 5)
    decision = apply_gate(
        GOOD, GATE, BEATEN, FILL, seeds=seeds, required_seeds=5, walk_forward=FOLDS, stress=STRESS
    )
    assert decision.reasons == [
        "sharpe 0.3 is not > 0.5",
        "max_drawdown 0.12 is not <= 0.1",
        "sharpe_vs_passive_buy_and_hold 0.3 is not >= 0.9",
        "sharpe_vs_best_rule_tsmom 0.3 is not >= 1.1",
    ]


def test_missing_or_fewer_seeds_than_required_fail_the_gate() -> None:
    missing_seeds = apply_gate(
        GOOD, GATE, BEATEN, FILL, required_seeds=5, walk_forward=FOLDS, stress=STRESS
    )
    assert missing_seeds.reasons == ["no results over 5 training seeds: the gate requires them"]
    two = Seeds(sharpe=1.2, max_drawdown=0.05, daily_turnover=1.0, num_trades=40, runs=("a", "b"))
    short = apply_gate(
        GOOD, GATE, BEATEN, FILL, seeds=two, required_seeds=5, walk_forward=FOLDS, stress=STRESS
    )
    assert short.reasons == ["seeds 2 is not >= 5"]
