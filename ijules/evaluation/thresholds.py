"""Thresholds on one window's out-of-sample metrics, each check with its number and rule.

A walk-forward fold passes when the agent meets them on its test stretch; the promotion gate
(:mod:`ijules.registry.gate`) adds the walk-forward pass rate and stress survival. The Sharpe
ratio must be above ``min_sharpe``, not merely reach it: an agent that never trades has a Sharpe
ratio of exactly 0, and a floor of 0 must not let it through. The other thresholds are
inclusive. Beside the absolute thresholds, the agent's Sharpe ratio must reach passive
buy-and-hold's and the best simple rule's on the same bars (``beat_passive_buy_and_hold``,
``beat_best_rule``), and one fill of the whole capital must cost less than
``max_full_capital_fill_cost_bps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Benchmarks:
    """The Sharpe ratios the agent is compared with on the same bars."""

    passive_sharpe: float
    best_rule: str
    best_rule_sharpe: float


def threshold_checks(
    agent: WindowMetrics,
    gate: GateConfig,
    benchmarks: Benchmarks,
    full_capital_fill_bps: Mapping[str, float],
) -> GateDecision:
    """The thresholds on one window's metrics (what a walk-forward fold must meet), and the
    cost model's sanity on that window (what one fill of the whole capital costs)."""
    checks = [
        above("sharpe", float(agent.sharpe), gate.min_sharpe),
        at_most("max_drawdown", float(agent.max_drawdown), gate.max_drawdown),
        at_most("daily_turnover", float(agent.daily_turnover), gate.max_daily_turnover),
        at_least("num_trades", float(agent.num_trades), float(gate.min_trades)),
    ]
    if gate.beat_passive_buy_and_hold:
        checks.append(
            at_least(
                "sharpe_vs_passive_buy_and_hold", float(agent.sharpe), benchmarks.passive_sharpe
            )
        )
    if gate.beat_best_rule:
        checks.append(
            at_least(
                f"sharpe_vs_best_rule_{benchmarks.best_rule}",
                float(agent.sharpe),
                benchmarks.best_rule_sharpe,
            )
        )
    checks += [
        at_most(f"full_capital_fill_cost_bps_{name}", value, gate.max_full_capital_fill_cost_bps)
        for name, value in full_capital_fill_bps.items()
    ]
    return GateDecision.of(checks)


def above(metric: str, value: float, threshold: float) -> GateCheck:
    return GateCheck(
        metric=metric, value=value, threshold=threshold, rule=">", passed=value > threshold
    )


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
