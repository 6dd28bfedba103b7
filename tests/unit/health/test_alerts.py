"""Alerts fire once per condition, and only new ones start a retraining or a rollback."""

from __future__ import annotations

from ijules.health.alerts import RETRAIN, ROLLBACK, Condition, actions, fire

DRIFT = Condition("data_drift", "medium", "champion", "3", "drifted", RETRAIN)
BREACH = Condition("health_breach", "high", "champion", "3", "score 0.2", ROLLBACK)
HALT = Condition("risk_halt", "high", "challenger", "4", "halted", "review")


def test_a_condition_is_new_the_first_night_and_ongoing_after() -> None:
    first = fire([DRIFT], set())
    assert [(a.key, a.new) for a in first] == [("data_drift:champion:v3", True)]
    second = fire([DRIFT], {a.key for a in first})
    assert [a.new for a in second] == [False]


def test_a_cleared_condition_fires_again_when_it_returns() -> None:
    assert fire([DRIFT], set())[0].new  # after a night without it, it is new again


def test_a_condition_of_another_version_is_another_alert() -> None:
    other = Condition("data_drift", "medium", "champion", "4", "drifted", RETRAIN)
    assert fire([other], {DRIFT.key})[0].new


def test_only_new_alerts_start_actions() -> None:
    assert actions(fire([DRIFT, BREACH], {DRIFT.key, BREACH.key})) == actions([])
    started = actions(fire([DRIFT, HALT], set()))
    assert (started.retrain, started.rollback) == (True, False)
    assert started.reasons == ["data_drift:champion:v3: drifted"]


def test_a_new_breach_of_the_champion_rolls_back_and_retrains() -> None:
    started = actions(fire([BREACH], set()))
    assert (started.retrain, started.rollback) == (True, True)
    assert started.reasons == ["health_breach:champion:v3: score 0.2"]
