"""The promotion gate: out-of-sample thresholds a model must meet. A pure function."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ijules.config import GateConfig


@dataclass(frozen=True)
class GateCheck:
    """One threshold and how the model fared against it."""

    metric: str
    value: float
    threshold: float
    rule: str
    passed: bool


@dataclass(frozen=True)
class GateDecision:
    """Whether a model may become challenger, and why not if it may not."""

    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """One sentence per failed check."""
        return [
            f"{c.metric} {c.value:.4g} is not {c.rule} {c.threshold:.4g}"
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


def apply_gate(agent: dict[str, Any], gate: GateConfig) -> GateDecision:
    """Check the agent's out-of-sample metrics against the gate's thresholds."""
    checks = [
        _at_least("sharpe", float(agent["sharpe"]), gate.min_sharpe),
        _at_most("max_drawdown", float(agent["max_drawdown"]), gate.max_drawdown),
        _at_most("daily_turnover", float(agent["daily_turnover"]), gate.max_daily_turnover),
        _at_least("num_trades", float(agent["num_trades"]), float(gate.min_trades)),
    ]
    return GateDecision(all(c.passed for c in checks), checks)


def _at_least(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(metric, value, threshold, ">=", value >= threshold)


def _at_most(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(metric, value, threshold, "<=", value <= threshold)
