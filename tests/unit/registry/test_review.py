"""The automatic review's own rows: integrity, significance, VaR zone, the champion challenge."""

from __future__ import annotations

import numpy as np
import pytest

from ijules.artifacts import GateCheck, MetricsReport, PerformanceMetrics, PolicyRecord
from ijules.registry.review import (
    RECOMPUTE_TOLERANCE,
    Recomputed,
    challenge,
    challenge_summary,
    integrity_checks,
    sha256_of,
    significance_checks,
    table_markdown,
    var_zone_check,
)
from tests.conftest import REPO
from tests.unit.test_artifacts import built


def rows_by_name(rows: list[GateCheck]) -> dict[str, GateCheck]:
    return {row.metric: row for row in rows}


@pytest.fixture
def metrics_report() -> MetricsReport:
    return MetricsReport.read(REPO / "reports" / "metrics.json")


@pytest.fixture
def policy_record() -> PolicyRecord:
    record = built()["policy, logged"]
    assert isinstance(record, PolicyRecord)
    return record


def recomputed_from(agent, returns: np.ndarray, **changes: float) -> Recomputed:
    """The agent's reported figures as if recomputed, with ``changes``."""
    fields = agent.model_dump(include=set(PerformanceMetrics.model_fields))
    return Recomputed(PerformanceMetrics.model_validate(fields | changes), returns, 8760.0)


def test_integrity_rows_pass_only_for_the_trained_weights_and_the_reported_figures(
    metrics_report, policy_record
) -> None:
    agent = metrics_report.agent
    returns = np.zeros(10)
    clean = rows_by_name(
        integrity_checks(
            trained_sha256="a" * 64,
            served_sha256="a" * 64,
            recomputed=recomputed_from(agent, returns),
            reported=agent,
            policy=policy_record,
        )
    )
    assert all(row.passed for row in clean.values()), clean
    assert set(clean) == {"weights_sha256", "compatibility", "metrics_recomputed", "nan_incidents"}

    edited = rows_by_name(
        integrity_checks(
            trained_sha256="a" * 64,
            served_sha256="b" * 64,  # the artifact was swapped after training
            recomputed=recomputed_from(agent, returns, sharpe=agent.sharpe + 1e-6),
            reported=agent,
            policy=policy_record,
        )
    )
    assert not edited["weights_sha256"].passed
    assert not edited["metrics_recomputed"].passed  # a report edited by even 1e-6
    assert "sharpe" in edited["metrics_recomputed"].note
    assert edited["metrics_recomputed"].value > RECOMPUTE_TOLERANCE


def test_a_nan_incident_or_a_missing_count_fails_the_review(metrics_report, policy_record) -> None:
    agent = metrics_report.agent
    for diagnostics, passed in (({"nan_incidents": 1.0}, False), ({}, False)):
        record = policy_record.model_copy(
            update={
                "training": policy_record.training.model_copy(update={"diagnostics": diagnostics})
            }
        )
        rows = rows_by_name(
            integrity_checks(
                trained_sha256="a" * 64,
                served_sha256="a" * 64,
                recomputed=recomputed_from(agent, np.zeros(3)),
                reported=agent,
                policy=record,
            )
        )
        assert rows["nan_incidents"].passed is passed


def test_a_model_that_cannot_run_fails_compatibility_and_has_no_recomputed_metrics(
    metrics_report, policy_record
) -> None:
    broken = GateCheck(
        metric="compatibility", value=0.0, threshold=1.0, rule="runs", passed=False, note="x"
    )
    rows = rows_by_name(
        integrity_checks(
            trained_sha256="a" * 64,
            served_sha256="a" * 64,
            recomputed=broken,
            reported=metrics_report.agent,
            policy=policy_record,
        )
    )
    assert not rows["compatibility"].passed and not rows["metrics_recomputed"].passed


def test_psr_and_dsr_floors() -> None:
    rng = np.random.default_rng(0)
    strong = rng.normal(0.002, 0.01, 2000)  # per-bar Sharpe 0.2: unmistakable over 2,000 bars
    weak = rng.normal(0.0, 0.01, 2000)
    passed = rows_by_name(
        significance_checks(
            strong, min_psr=0.95, min_dsr=0.95, sharpe_benchmark_per_bar=0.05, trials=10
        )
    )
    assert passed["psr"].passed and passed["dsr"].passed
    deflated = rows_by_name(
        significance_checks(
            strong, min_psr=0.95, min_dsr=0.95, sharpe_benchmark_per_bar=0.3, trials=10_000
        )
    )
    assert deflated["psr"].passed and not deflated["dsr"].passed  # luck of many trials
    noise = rows_by_name(
        significance_checks(
            weak, min_psr=0.95, min_dsr=0.0, sharpe_benchmark_per_bar=None, trials=None
        )
    )
    assert not noise["psr"].passed
    assert noise["dsr"].passed and "not computed" in noise["dsr"].note  # not required at 0
    required = rows_by_name(
        significance_checks(
            weak, min_psr=0.0, min_dsr=0.5, sharpe_benchmark_per_bar=None, trials=None
        )
    )
    assert not required["dsr"].passed and required["dsr"].rule == "present"


def test_var_zone_of_the_agents_own_returns() -> None:
    rng = np.random.default_rng(1)
    calm = rng.normal(0.0, 0.01, 800)
    assert var_zone_check(calm, confidence=0.99, window=250, max_zone="yellow").passed
    # A VaR fitted on calm bars, then 60 bars of losses ten times larger: the Basel red zone.
    blown = np.concatenate([calm[:700], rng.normal(-0.02, 0.1, 60)])
    red = var_zone_check(blown, confidence=0.99, window=250, max_zone="yellow")
    assert not red.passed and red.note.startswith("red zone")
    short = var_zone_check(calm[:100], confidence=0.99, window=250, max_zone="yellow")
    assert not short.passed and short.rule == "present"


def test_the_champion_is_replaced_only_beyond_the_margin_and_the_paired_test(
    metrics_report,
) -> None:
    agent = metrics_report.agent
    rng = np.random.default_rng(2)
    champion = rng.normal(0.0, 0.01, 1500)

    def versus(
        candidate: np.ndarray,
        candidate_sharpe: float,
        champion_sharpe: float,
        folds: tuple[list[float] | None, list[float] | None] = ([1.5, 2.5], [0.5, 0.5]),
    ):
        return challenge(
            "1",
            recomputed_from(agent, candidate, sharpe=candidate_sharpe),
            champion,
            champion_sharpe,
            margin=0.25,
            max_p_value=0.10,
            candidate_folds=folds[0],
            champion_folds=folds[1],
        )

    clearly = versus(champion + 0.001, 2.0, 0.5)
    assert clearly.better and clearly.p_value < 0.01
    assert (clearly.candidate_walk_forward_sharpe, clearly.champion_walk_forward_sharpe) == (
        2.0,
        0.5,
    )
    within_margin = versus(champion + 0.001, 0.7, 0.5)  # higher, but by less than the margin
    assert not within_margin.better and not within_margin.test_window_better
    noisy = versus(champion + rng.normal(0.0, 0.05, 1500), 2.0, 0.5)  # Sharpe up, paired test no
    assert noisy.p_value > 0.10 and not noisy.better
    same = versus(champion.copy(), 0.5, 0.5)
    assert (same.t_statistic, same.p_value, same.better) == (0.0, 1.0, False)


def test_the_test_window_alone_does_not_replace_the_champion(metrics_report) -> None:
    """Clearly better on the test window, but not on the walk-forward folds, or with no
    walk-forward record to compare: proposed as challenger."""
    rng = np.random.default_rng(3)
    champion = rng.normal(0.0, 0.01, 1500)
    better_here = recomputed_from(metrics_report.agent, champion + 0.001, sharpe=2.0)

    def versus(candidate_folds, champion_folds):
        return challenge(
            "1",
            better_here,
            champion,
            0.5,
            margin=0.25,
            max_p_value=0.10,
            candidate_folds=candidate_folds,
            champion_folds=champion_folds,
        )

    worse_in_folds = versus([0.4, 0.8], [0.5, 0.6])  # 0.6 < 0.55 + 0.25
    assert worse_in_folds.test_window_better and not worse_in_folds.walk_forward_better
    assert not worse_in_folds.better
    for missing_record in (versus(None, [0.5]), versus([2.0], None), versus([], [0.1])):
        assert missing_record.test_window_better and not missing_record.better
    assert "no record" in challenge_summary(versus([2.0], None))
    assert versus([0.9, 0.7], [0.5, 0.6]).better  # 0.8 >= 0.55 + 0.25


def test_table_has_a_row_per_check_and_marks_failures() -> None:
    rows = [
        GateCheck(metric="psr", value=0.4, threshold=0.95, rule=">=", passed=False),
        GateCheck(metric="var_zone", value=0.0, threshold=1.0, rule="<=", passed=True, note="g"),
    ]
    table = table_markdown(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert "| psr | >= | 0.95 | 0.4 | **no** |" in table
    assert "| var_zone | <= | 1 | 0 (g) | yes |" in table


def test_sha256_of_a_file(tmp_path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    assert sha256_of(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
