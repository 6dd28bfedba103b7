"""Thresholds on one window's out-of-sample metrics, each check with its number and rule.

A walk-forward fold passes when the agent meets them on its test stretch; the promotion gate
(:mod:`ijules.registry.gate`) adds the walk-forward pass rate and stress survival.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ijules.evaluation.config import GateConfig


@dataclass(frozen=True)
class GateCheck:
    """One threshold and how the model fared against it."""

    metric: str
    value: float
    threshold: float
    rule: str
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class GateDecision:
    """Whether a model may become challenger, and why not if it may not."""

    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """One sentence per failed check."""
        return [
            c.note or f"{c.metric} {c.value:.4g} is not {c.rule} {c.threshold:.4g}"
            for c in self.checks
            if not c.passed
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": [asdict(c) for c in self.checks],
        }


def threshold_checks(agent: dict[str, Any], gate: GateConfig) -> GateDecision:
    """The thresholds on one window's metrics alone (what a walk-forward fold must meet)."""
    checks = [
        at_least("sharpe", float(agent["sharpe"]), gate.min_sharpe),
        at_most("max_drawdown", float(agent["max_drawdown"]), gate.max_drawdown),
        at_most("daily_turnover", float(agent["daily_turnover"]), gate.max_daily_turnover),
        at_least("num_trades", float(agent["num_trades"]), float(gate.min_trades)),
    ]
    return GateDecision(all(c.passed for c in checks), checks)


def at_least(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(metric, value, threshold, ">=", value >= threshold)


def at_most(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(metric, value, threshold, "<=", value <= threshold)


def missing(metric: str, what: str) -> GateCheck:
    return GateCheck(metric, 0.0, 1.0, "present", False, f"{what}: the gate requires them")
