"""The plan's success criteria per phase, judged on each phase's figures."""

from __future__ import annotations

import pytest

from ijules.artifacts import PhaseFigures, PhaseResult, PhasesSummary
from ijules.config import available_phases
from ijules.evaluation.experiments import ExperimentRun
from ijules.evaluation.phases import PLAN, build_summary, markdown, overlay_status
from tests.conftest import REPO

OVERLAYS = available_phases(REPO / "config")
REV = "0123456789abcdef" * 2 + "01234567"


def figures(**changes: object) -> PhaseFigures:
    values: dict[str, object] = {
        "sharpe": 1.2,
        "max_drawdown": 0.02,
        "daily_turnover": 1.0,
        "win_rate": 0.5,
        "information_ratio": 0.3,
        "calmar": 2.0,
        "episode_reward_mean": 12_000.0,
        "curriculum_stage": None,
        "passive_buy_and_hold_sharpe": 0.9,
        "best_rule": "tsmom",
        "best_rule_sharpe": 0.4,
    }
    return PhaseFigures.model_validate(values | changes)


def run(name: str, **changes: object) -> ExperimentRun:
    when = "2026-01-01T00:00:00"
    return ExperimentRun(name=name, rev=REV, timestamp=when, figures=figures(**changes))


def summary(runs: dict[str, ExperimentRun], refused: dict[str, str] | None = None) -> PhasesSummary:
    return build_summary(OVERLAYS, runs, refused or {}, baseline_rev=REV)


def phase(result: PhasesSummary, name: str) -> PhaseResult:
    return next(row for row in result.phases if row.phase == name)


def outcomes(row: PhaseResult) -> dict[str, str]:
    return {c.criterion: c.outcome for c in row.criteria}


def test_every_overlay_in_config_is_a_phase_of_the_plan() -> None:
    assert [spec.overlay for spec in PLAN] == OVERLAYS
    assert [spec.plan_phase for spec in PLAN] == list(range(7))


def test_thresholds_read_as_the_plan_writes_them() -> None:
    result = summary({})
    thresholds = {
        (row.phase, c.criterion): c.threshold for row in result.phases for c in row.criteria
    }
    assert thresholds[("phase1_institutional", "Episode rewards 8k-25k")] == "8,000 to 25,000"
    assert thresholds[("phase2_microstructure", "Turnover 0.8x-2.5x daily")] == "0.8x to 2.5x"
    assert thresholds[("phase3_risk_framework", "Max DD <3%")] == "< 3%"
    assert thresholds[("phase3_risk_framework", "Sharpe >1.0")] == "> 1.0"
    assert thresholds[("phase4_adaptive_curriculum", "Sharpe >1.8")] == "> 1.8"
    assert (
        thresholds[("phase4_adaptive_curriculum", "Advancement gates (into Mastery)")]
        == "reached mastery or excellence"
    )
    assert thresholds[("phase5_production_optimization", "Sharpe >2.5")] == "> 2.5"
    assert thresholds[("phase5_production_optimization", "Win rate >= 58%")] == ">= 58%"


def test_risk_phase_meets_its_gate_only_strictly_below_3_percent_and_above_sharpe_1() -> None:
    met = phase(summary({"phase3_risk_framework": run("p3")}), "phase3_risk_framework")
    assert outcomes(met) == {"Max DD <3%": "met", "Sharpe >1.0": "met"}
    assert met.gate == "met"
    assert met.status == "run"
    assert met.experiment == "p3"

    edge = run("p3", max_drawdown=0.03, sharpe=1.0)
    missed = phase(summary({"phase3_risk_framework": edge}), "phase3_risk_framework")
    assert outcomes(missed) == {"Max DD <3%": "not met", "Sharpe >1.0": "not met"}
    assert missed.gate == "not met"
    assert [c.value for c in missed.criteria] == [0.03, 1.0]


@pytest.mark.parametrize(
    ("reward", "outcome"),
    [(8_000.0, "met"), (25_000.0, "met"), (7_999.0, "not met"), (-1.3, "not met")],
)
def test_episode_reward_range_includes_its_ends(reward: float, outcome: str) -> None:
    row = phase(
        summary({"phase1_institutional": run("p1", episode_reward_mean=reward)}),
        "phase1_institutional",
    )
    assert outcomes(row) == {"Episode rewards 8k-25k": outcome}
    assert row.gate == outcome


def test_turnover_range_includes_its_ends() -> None:
    def judged(turnover: float) -> str:
        runs = {"phase2_microstructure": run("p2", daily_turnover=turnover)}
        return phase(summary(runs), "phase2_microstructure").criteria[0].outcome

    assert [judged(t) for t in (0.8, 2.5, 0.79, 2.6, 0.1)] == [
        "met",
        "met",
        "not met",
        "not met",
        "not met",
    ]


def test_a_figure_the_run_lacks_is_not_measured_with_the_reason() -> None:
    row = phase(
        summary({"phase1_institutional": run("p1", episode_reward_mean=None)}),
        "phase1_institutional",
    )
    (criterion,) = row.criteria
    assert criterion.outcome == "not measured"
    assert criterion.value is None
    assert "no training episode ended" in criterion.note
    assert row.gate == "not measured"


def test_curriculum_gate_needs_mastery_or_beyond() -> None:
    def gate(stage: str | None) -> str:
        runs = {"phase4_adaptive_curriculum": run("p4", sharpe=2.0, curriculum_stage=stage)}
        row = phase(summary(runs), "phase4_adaptive_curriculum")
        return outcomes(row)["Advancement gates (into Mastery)"]

    assert gate("proficiency") == "not met"
    assert gate("mastery") == "met"
    assert gate("excellence") == "met"
    assert gate(None) == "not measured"


def test_refused_and_unrun_phases_are_listed_with_every_criterion_not_measured() -> None:
    refusal = "config/phase6_regime_mastery.yaml: 'regime_mastery' is not implemented yet"
    result = summary({}, {"phase6_regime_mastery": refusal, "phase5_production_optimization": "x"})
    refused = phase(result, "phase6_regime_mastery")
    assert (refused.status, refused.reason, refused.figures) == ("refused", refusal, None)
    assert [c.outcome for c in refused.criteria] == ["not measured"]
    unrun = phase(result, "phase2_microstructure")
    assert unrun.status == "not run"
    assert "make phases" in unrun.reason
    assert unrun.criteria[0].note == "the phase has not run"
    assert all(row.gate == "not measured" for row in result.phases)


def test_criteria_without_a_figure_are_not_measured_even_when_the_phase_ran() -> None:
    row = phase(summary({"base": run("b")}), "base")
    assert row.status == "run"
    assert row.figures is not None
    (criterion,) = row.criteria
    assert criterion.outcome == "not measured"
    assert "ijules baseline reproduce" in criterion.note


def test_an_overlay_the_plan_does_not_name_shows_its_figures_without_criteria() -> None:
    result = build_summary(["quick"], {"quick": run("q")}, {}, baseline_rev=REV)
    (row,) = result.phases
    assert (row.plan_phase, row.criteria, row.gate) == (None, [], "not measured")
    assert row.figures == figures()


def test_the_summary_reads_back_and_renders_every_phase(tmp_path) -> None:
    result = summary(
        {"phase3_risk_framework": run("phase-phase3_risk_framework", sharpe=-1.15)},
        {"phase5_production_optimization": "refused for a reason"},
    )
    result.write(tmp_path / "summary.json")
    assert PhasesSummary.read(tmp_path / "summary.json") == result
    text = markdown(result)
    assert "| phase3_risk_framework | 3 | `phase-phase3_risk_framework` | -1.15 | 2.00% |" in text
    judged = "| phase3_risk_framework | Risk Management | Sharpe >1.0 | > 1.0 | -1.15 | not met |"
    assert judged in text
    assert "- phase5_production_optimization (refused): refused for a reason" in text


def test_phases_5_and_6_are_refused_by_name_and_the_others_load() -> None:
    overlays, refused = overlay_status(REPO / "params.yaml")
    assert overlays == OVERLAYS
    assert sorted(refused) == ["phase5_production_optimization", "phase6_regime_mastery"]
    assert (
        "'portfolio_optimization' is not implemented yet"
        in refused["phase5_production_optimization"]
    )
