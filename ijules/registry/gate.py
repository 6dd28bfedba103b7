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
        _at_least("sharpe", float(agent["sharpe"]), gate.min_sharpe),
        _at_most("max_drawdown", float(agent["max_drawdown"]), gate.max_drawdown),
        _at_most("daily_turnover", float(agent["daily_turnover"]), gate.max_daily_turnover),
        _at_least("num_trades", float(agent["num_trades"]), float(gate.min_trades)),
    ]
    return GateDecision(all(c.passed for c in checks), checks)


def apply_gate(
    agent: dict[str, Any],
    gate: GateConfig,
    *,
    walk_forward: dict[str, Any] | None = None,
    stress: dict[str, Any] | None = None,
) -> GateDecision:
    """Check out-of-sample metrics against the gate's thresholds.

    ``agent`` holds one window's metrics (the test window, or one walk-forward fold). With
    ``walk_forward`` (the summary), the share of folds that passed must reach
    ``min_walk_forward_pass_rate``; with ``stress`` and ``require_stress_survival``, every
    scenario must have been survived. Results that are required but absent fail the gate.
    """
    checks = list(threshold_checks(agent, gate).checks)
    if walk_forward is None and gate.min_walk_forward_pass_rate > 0:
        checks.append(_missing("walk_forward_pass_rate", "no walk-forward results"))
    elif walk_forward is not None:
        checks.append(
            _at_least(
                "walk_forward_pass_rate",
                float(walk_forward["pass_rate"]),
                gate.min_walk_forward_pass_rate,
            )
        )
    if stress is None and gate.require_stress_survival:
        checks.append(_missing("stress_scenarios_survived", "no stress-test results"))
    elif stress is not None and gate.require_stress_survival:
        checks.append(
            _at_least(
                "stress_scenarios_survived",
                float(stress["survived"]),
                float(stress["scenarios_run"]),
            )
        )
    return GateDecision(all(c.passed for c in checks), checks)


def _at_least(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(metric, value, threshold, ">=", value >= threshold)


def _at_most(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(metric, value, threshold, "<=", value <= threshold)


def _missing(metric: str, what: str) -> GateCheck:
    return GateCheck(metric, 0.0, 1.0, "present", False, f"{what}: the gate requires them")
