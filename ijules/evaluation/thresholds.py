"""Thresholds on one window's out-of-sample metrics, each check with its number and rule.

A walk-forward fold passes when the agent meets them on its test stretch; the promotion gate
(:mod:`ijules.registry.gate`) adds the walk-forward pass rate and stress survival.
"""

from __future__ import annotations

from typing import Protocol

from ijules.artifacts import GateCheck, GateDecision
from ijules.evaluation.config import GateConfig


class WindowMetrics(Protocol):
    """What the thresholds read from one window's metrics (a test window or a fold's)."""

    @property
    def sharpe(self) -> float: ...

    @property
    def max_drawdown(self) -> float: ...

    @property
    def daily_turnover(self) -> float: ...

    @property
    def num_trades(self) -> int: ...


def threshold_checks(agent: WindowMetrics, gate: GateConfig) -> GateDecision:
    """The thresholds on one window's metrics alone (what a walk-forward fold must meet)."""
    checks = [
        at_least("sharpe", float(agent.sharpe), gate.min_sharpe),
        at_most("max_drawdown", float(agent.max_drawdown), gate.max_drawdown),
        at_most("daily_turnover", float(agent.daily_turnover), gate.max_daily_turnover),
        at_least("num_trades", float(agent.num_trades), float(gate.min_trades)),
    ]
    return GateDecision.of(checks)


def at_least(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(
        metric=metric, value=value, threshold=threshold, rule=">=", passed=value >= threshold
    )


def at_most(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(
        metric=metric, value=value, threshold=threshold, rule="<=", passed=value <= threshold
    )


def missing(metric: str, what: str) -> GateCheck:
    return GateCheck(
        metric=metric,
        value=0.0,
        threshold=1.0,
        rule="present",
        passed=False,
        note=f"{what}: the gate requires them",
    )
