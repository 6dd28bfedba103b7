"""The health components: each compares the live record with the version's own evidence."""

from __future__ import annotations

import numpy as np
import pytest

from ijules.artifacts import DriftSpan, DriftSummary, HealthComponent
from ijules.health import components
from ijules.health.components import LiveRecord, ReviewWindow
from ijules.health.config import HealthConfig

SETTINGS = HealthConfig(min_live_bars=40, min_regime_bars=20)
HOURLY = 24 * 365.0


def live(returns: np.ndarray, positions: np.ndarray | None = None, regimes=None) -> LiveRecord:
    count = len(returns)
    return LiveRecord(
        returns=returns,
        positions=np.zeros(count) if positions is None else positions,
        regimes=np.array(["normal"] * count if regimes is None else regimes),
        bars_per_year=HOURLY,
    )


def on_test_window(returns: np.ndarray, positions: np.ndarray, regimes=None) -> ReviewWindow:
    return ReviewWindow(
        returns=returns,
        positions=positions,
        regimes=np.array(["normal"] * len(returns) if regimes is None else regimes),
    )


def test_live_sharpe_far_below_the_worst_fold_breaches_and_scores_low() -> None:
    rng = np.random.default_rng(1)
    losing = rng.normal(-0.002, 0.004, 400)  # about -0.5 per bar: far below any fold
    part, breached = components.performance(live(losing), [0.5, 1.2, 2.0], SETTINGS)
    assert breached and part.score is not None and part.score < 0.1
    assert "0.50 to 2.00" in part.detail


def test_live_sharpe_within_the_folds_is_healthy() -> None:
    rng = np.random.default_rng(2)
    fine = rng.normal(0.0002, 0.004, 400)
    part, breached = components.performance(live(fine), [-5.0, 0.0, 3.0], SETTINGS)
    assert not breached and part.score == 1.0


def test_too_few_live_bars_or_no_folds_is_not_measured_not_healthy() -> None:
    short = live(np.full(10, -0.01))
    part, breached = components.performance(short, [1.0], SETTINGS)
    assert (part.score, breached) == (None, False) and "10 live bar(s)" in part.detail
    part, _ = components.performance(live(np.zeros(100)), None, SETTINGS)
    assert part.score is None and "walk-forward" in part.detail


def test_positions_unlike_the_test_windows_are_action_drift() -> None:
    rng = np.random.default_rng(3)
    reference = on_test_window(np.zeros(500), rng.uniform(-1, 1, 500))
    same = live(np.zeros(200), rng.uniform(-1, 1, 200))
    part, drifted = components.action_drift(same, reference, SETTINGS)
    assert not drifted and part.score is not None and part.score > 0.8
    always_long = live(np.zeros(200), np.full(200, 1.0))
    part, drifted = components.action_drift(always_long, reference, SETTINGS)
    assert drifted and part.score is not None and part.score < 0.1


def test_a_regime_whose_live_returns_fall_below_the_test_windows_is_named() -> None:
    rng = np.random.default_rng(4)
    labels = ["normal"] * 100 + ["high_volatility"] * 100
    reference = on_test_window(rng.normal(0.001, 0.002, 200), np.zeros(200), labels)
    returns = np.concatenate([rng.normal(0.001, 0.002, 100), rng.normal(-0.004, 0.002, 100)])
    part, weak = components.regime(live(returns, regimes=labels), reference, SETTINGS)
    assert weak == ["high_volatility"]
    assert part.score == pytest.approx(0.5)


def test_risk_scores_a_stopped_book_zero_and_breaker_events_half() -> None:
    from tests.unit.monitoring.test_report_mail import book

    assert components.risk(book(outcome="stopped"), 0.08).score == 0.0
    assert components.risk(book(drawdown=0.09, breaker_events=[]), 0.08).score == 0.0
    assert components.risk(book(), 0.08).score == 0.5  # a HALTED event tonight
    assert components.risk(book(breaker_events=[]), 0.08).score == 1.0
    assert components.risk(None, 0.08).score is None


def test_the_score_is_the_weighted_mean_of_what_was_measured() -> None:
    parts = {
        "data_drift": HealthComponent(score=0.5, detail=""),
        "action_drift": HealthComponent(score=None, detail="not measured"),
        "performance": HealthComponent(score=1.0, detail=""),
        "regime": HealthComponent(score=0.0, detail=""),
        "risk": HealthComponent(score=0.0, detail=""),
    }
    weights = {"data_drift": 1.0, "action_drift": 5.0, "performance": 3.0, "regime": 0.0,
               "risk": 0.0}  # fmt: skip
    assert components.score(parts, weights) == pytest.approx((0.5 + 3.0) / 4.0)
    assert components.score(parts, dict.fromkeys(weights, 0.0)) is None


def test_data_drift_says_what_it_was_measured_against() -> None:
    summary = DriftSummary(
        drift_share=0.25, drifted_features=1, features=4, dataset_drift=False, threshold=0.5,
        per_feature={}, reference=DriftSpan(start="a", end="b", bars=10),
        current=DriftSpan(start="c", end="d", bars=5),
        reference_source="v3 (champion)'s training window",
    )  # fmt: skip
    part = components.data_drift(summary)
    assert part.score == 0.75 and "v3 (champion)'s training window (a to b)" in part.detail
