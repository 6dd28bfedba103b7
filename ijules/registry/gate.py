"""The promotion gate: what a model must show out of sample to be promoted. A pure function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ijules.artifacts import GateDecision
from ijules.evaluation.config import GateConfig
from ijules.evaluation.thresholds import (
    Benchmarks,
    WindowMetrics,
    at_least,
    missing,
    threshold_checks,
)


class WalkForwardOutcome(Protocol):
    """What the gate reads from the walk-forward summary."""

    @property
    def pass_rate(self) -> float: ...


class SeedsOutcome(WindowMetrics, Protocol):
    """The conservative figures over training seeds, and the seeds they come from."""

    @property
    def runs(self) -> Sequence[object]: ...


class StressOutcome(Protocol):
    """What the gate reads from the stress results."""

    @property
    def survived(self) -> int: ...

    @property
    def scenarios_run(self) -> int: ...


def apply_gate(
    agent: WindowMetrics,
    gate: GateConfig,
    benchmarks: Benchmarks,
    full_capital_fill_bps: Mapping[str, float],
    *,
    seeds: SeedsOutcome | None = None,
    required_seeds: int = 1,
    walk_forward: WalkForwardOutcome | None = None,
    stress: StressOutcome | None = None,
    required_scenarios: int = 1,
) -> GateDecision:
    """Check out-of-sample metrics against the gate's thresholds.

    ``agent`` holds one window's metrics (the test window, or one walk-forward fold), compared
    with ``benchmarks`` on the same bars, with the cost of one fill of the whole capital on them.
    With ``seeds`` (the conservative figures over training seeds: see
    :mod:`ijules.evaluation.seeds`) the thresholds judge those instead of the one policy's; they
    are required when ``required_seeds`` > 1. With ``walk_forward`` (the summary), the share of
    folds that passed must reach ``min_walk_forward_pass_rate``; with ``stress`` and
    ``require_stress_survival``, every one of the ``required_scenarios`` configured scenarios
    (at least one) must have been run and survived: 0 of 0 is no evidence. Results that are
    required but absent fail the gate.
    """
    judged = seeds if seeds is not None else agent
    checks = list(threshold_checks(judged, gate, benchmarks, full_capital_fill_bps).checks)
    if seeds is None and required_seeds > 1:
        checks.append(missing("seeds", f"no results over {required_seeds} training seeds"))
    elif seeds is not None:
        checks.append(at_least("seeds", float(len(seeds.runs)), float(required_seeds)))
    if walk_forward is None and gate.min_walk_forward_pass_rate > 0:
        checks.append(missing("walk_forward_pass_rate", "no walk-forward results"))
    elif walk_forward is not None:
        checks.append(
            at_least(
                "walk_forward_pass_rate",
                float(walk_forward.pass_rate),
                gate.min_walk_forward_pass_rate,
            )
        )
    if stress is None and gate.require_stress_survival:
        checks.append(missing("stress_scenarios_survived", "no stress-test results"))
    elif stress is not None and gate.require_stress_survival:
        checks.append(
            at_least(
                "stress_scenarios_survived",
                float(stress.survived),
                float(max(stress.scenarios_run, required_scenarios, 1)),
            )
        )
    return GateDecision.of(checks)
