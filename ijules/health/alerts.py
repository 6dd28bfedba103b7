"""Alerts that fire once: a condition is new the first night it holds, then stays quiet until it
clears; and what new alerts start (an early retraining, a rollback of the champion)."""

from __future__ import annotations

from dataclasses import dataclass

from ijules.artifacts import HealthActions, HealthAlert, PaperSlot, Severity

RETRAIN = "retrain early on the newest data (the weekly retraining, through the same gate)"
ROLLBACK = "roll back the champion to the version it replaced"
# Drift measured with no model registered: no training window to drift from, nothing to adapt.
FIRST_TRAINING = "none early: no model is registered; the weekly retraining trains the first"


@dataclass(frozen=True)
class Condition:
    """A condition that holds tonight; it becomes an alert (new or ongoing)."""

    kind: str
    severity: Severity
    slot: PaperSlot | None
    version: str | None
    message: str
    recommended_action: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.slot or '-'}:v{self.version or '-'}"


def fire(conditions: list[Condition], active_before: set[str]) -> list[HealthAlert]:
    """Tonight's alerts: ``new`` for a condition that did not hold on the previous night."""
    return [
        HealthAlert(
            key=condition.key,
            kind=condition.kind,
            severity=condition.severity,
            slot=condition.slot,
            version=condition.version,
            message=condition.message,
            recommended_action=condition.recommended_action,
            new=condition.key not in active_before,
        )
        for condition in conditions
    ]


def actions(alerts: list[HealthAlert]) -> HealthActions:
    """What the new alerts start: a retraining for one that recommends it, a rollback for a new
    breach of the champion's health. An ongoing alert starts nothing again."""
    fresh = [alert for alert in alerts if alert.new]
    retrain = [alert for alert in fresh if alert.recommended_action == RETRAIN]
    rollback = [alert for alert in fresh if alert.recommended_action == ROLLBACK]
    return HealthActions(
        retrain=bool(retrain) or bool(rollback),  # a rolled-back champion needs a successor
        rollback=bool(rollback),
        reasons=[f"{alert.key}: {alert.message}" for alert in retrain + rollback],
    )
