"""The master plan's success criteria per phase, judged on each phase overlay's DVC experiment.

``make phases`` runs every overlay of ``config/`` that loads as a DVC experiment; ``ijules
phases`` reads them (:mod:`ijules.evaluation.experiments`) and sets each phase's figures beside
the thresholds of the plan's "Phase Gate Success Criteria Summary", written here as data. Phase
5's "all metrics elite" is spelled out from the phase's own success table; phase 4's "advancement
gates" are the curriculum's, passed into Mastery (the stage whose Sharpe target is the phase's
1.8). A criterion whose figure the pipeline does not produce is reported as not measured, with
the reason, never guessed; so are the criteria of a phase that is refused or has not run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ijules.artifacts import (
    CriterionResult,
    LeftOutExperiment,
    Outcome,
    PhaseFigures,
    PhaseResult,
    PhasesSummary,
    PhaseStatus,
)
from ijules.config import Config, available_phases, load_config
from ijules.errors import RefusedKeyError
from ijules.evaluation.experiments import ExperimentRun, read_experiments
from ijules.io import write_text

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"

# The PhaseFigures fields a criterion can judge.
Measure = Literal[
    "sharpe",
    "max_drawdown",
    "daily_turnover",
    "win_rate",
    "information_ratio",
    "calmar",
    "episode_reward_mean",
    "curriculum_stage",
]

# Why a run's figure can be absent although the phase ran.
_ABSENT: dict[Measure, str] = {
    "episode_reward_mean": "no training episode ended, so training reported no episode reward",
    "curriculum_stage": "the phase trains without a curriculum",
}


@dataclass(frozen=True)
class Above:
    """Met above ``bound`` (or at it, when ``inclusive``)."""

    bound: float
    inclusive: bool = False

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the threshold."""
        return value >= self.bound if self.inclusive else value > self.bound


@dataclass(frozen=True)
class Below:
    """Met below ``bound`` (or at it, when ``inclusive``)."""

    bound: float
    inclusive: bool = False

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the threshold."""
        return value <= self.bound if self.inclusive else value < self.bound


@dataclass(frozen=True)
class Between:
    """Met from ``low`` to ``high``, both included (the plan's ranges, "8k-25k")."""

    low: float
    high: float

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the threshold."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Reached:
    """Met when the curriculum ended in one of ``stages``."""

    stages: tuple[str, ...]

    def met(self, value: str) -> bool:
        """Whether ``value`` meets the threshold."""
        return value in self.stages


Threshold = Above | Below | Between | Reached


@dataclass(frozen=True)
class Criterion:
    """One success criterion: the plan's words, the figure judged and the threshold; or, where
    the pipeline produces no such figure, why (``measure`` None)."""

    wording: str
    measure: Measure | None
    threshold: Threshold | None = None
    unmeasured: str = ""


@dataclass(frozen=True)
class PhaseCriteria:
    """A phase of the plan: its overlay in config/, its number, goal and criteria."""

    overlay: str
    plan_phase: int
    goal: str
    criteria: tuple[Criterion, ...]


_REGIMES_UNMEASURED = (
    "the pipeline computes no per-regime figures of the agent (reports/equity.csv labels each "
    "bar's regime, but nothing turns that into a Sharpe ratio per regime yet)"
)

# The plan's "Phase Gate Success Criteria Summary", phase by phase (phase 5's "all metrics
# elite": the rows of its own success table that the summary does not repeat).
PLAN: tuple[PhaseCriteria, ...] = (
    PhaseCriteria(
        "base",
        0,
        "Baseline Preservation",
        (
            Criterion(
                "100% reproducibility",
                None,
                unmeasured="a phase experiment does not rerun itself: `ijules baseline "
                "reproduce VERSION` checks a registered version",
            ),
        ),
    ),
    PhaseCriteria(
        "phase1_institutional",
        1,
        "Reality Grounding",
        (Criterion("Episode rewards 8k-25k", "episode_reward_mean", Between(8_000, 25_000)),),
    ),
    PhaseCriteria(
        "phase2_microstructure",
        2,
        "Transaction Cost Realism",
        (Criterion("Turnover 0.8x-2.5x daily", "daily_turnover", Between(0.8, 2.5)),),
    ),
    PhaseCriteria(
        "phase3_risk_framework",
        3,
        "Risk Management",
        (
            Criterion("Max DD <3%", "max_drawdown", Below(0.03)),
            Criterion("Sharpe >1.0", "sharpe", Above(1.0)),
        ),
    ),
    PhaseCriteria(
        "phase4_adaptive_curriculum",
        4,
        "Curriculum Excellence",
        (
            Criterion("Sharpe >1.8", "sharpe", Above(1.8)),
            Criterion(
                "Advancement gates (into Mastery)",
                "curriculum_stage",
                Reached(("mastery", "excellence")),
            ),
        ),
    ),
    PhaseCriteria(
        "phase5_production_optimization",
        5,
        "Production Optimization",
        (
            Criterion("Sharpe >2.5", "sharpe", Above(2.5)),
            Criterion("Information ratio >= 2.0", "information_ratio", Above(2.0, True)),
            Criterion("Maximum drawdown <= 2.0%", "max_drawdown", Below(0.02, True)),
            Criterion("Calmar ratio >= 5.0", "calmar", Above(5.0, True)),
            Criterion("Win rate >= 58%", "win_rate", Above(0.58, True)),
            Criterion("Daily turnover <= 1.5x", "daily_turnover", Below(1.5, True)),
            Criterion(
                "VaR accuracy 95%+",
                None,
                unmeasured="the VaR backtests (reports/risk) test the VaR methods on the daily "
                "index sample, not on the agent's returns",
            ),
            Criterion("Regime stability <5% degradation", None, unmeasured=_REGIMES_UNMEASURED),
        ),
    ),
    PhaseCriteria(
        "phase6_regime_mastery",
        6,
        "Regime Mastery",
        (Criterion("<5% cross-regime degradation", None, unmeasured=_REGIMES_UNMEASURED),),
    ),
)


def run_phases(config: Config, *, params: Path, output: Path) -> PhasesSummary:
    """Judge each phase overlay's experiment on the plan's criteria; write ``output``'s
    summary.json and summary.md."""
    overlays, refused = overlay_status(params)
    found = read_experiments(config, params.parent)
    summary = build_summary(
        overlays,
        found.runs,
        refused,
        baseline_rev=found.baseline_rev,
        left_out=found.left_out,
    )
    summary.write(output / SUMMARY_JSON)
    write_text(output / SUMMARY_MD, markdown(summary))
    return summary


def overlay_status(params: Path) -> tuple[list[str], dict[str, str]]:
    """The overlays beside ``params``, and those refused by name, each with the reason."""
    overlays = available_phases(params.parent / "config")
    refused: dict[str, str] = {}
    for phase in overlays:
        try:
            load_config(params, phase)
        except RefusedKeyError as err:
            refused[phase] = str(err)
    return overlays, refused


def build_summary(
    overlays: Sequence[str],
    runs: Mapping[str, ExperimentRun],
    refused: Mapping[str, str],
    *,
    baseline_rev: str,
    left_out: Sequence[LeftOutExperiment] = (),
) -> PhasesSummary:
    """Each overlay's run beside its criteria: met, not met or not measured."""
    plan = {phase.overlay: phase for phase in PLAN}
    rows = []
    for overlay in overlays:
        spec = plan.get(overlay)
        run = runs.get(overlay)
        status: PhaseStatus
        if overlay in refused:
            status, reason, missing = "refused", refused[overlay], "the phase is refused"
        elif run is None:
            status, missing = "not run", "the phase has not run"
            reason = (
                f"no experiment on {baseline_rev[:12]} ran this phase with the workspace's other "
                "parameters (`make phases` runs it)"
            )
        else:
            status, reason, missing = "run", "", ""
        shown = run if status == "run" else None
        figures = shown.figures if shown is not None else None
        criteria = [
            judge(criterion, figures, missing) for criterion in (spec.criteria if spec else ())
        ]
        rows.append(
            PhaseResult(
                phase=overlay,
                plan_phase=spec.plan_phase if spec else None,
                goal=spec.goal if spec else "not a phase of the master plan",
                status=status,
                reason=reason,
                experiment=shown.name if shown is not None else None,
                rev=shown.rev if shown is not None else None,
                timestamp=shown.timestamp if shown is not None else None,
                figures=figures,
                criteria=criteria,
                gate=_gate(criteria),
            )
        )
    return PhasesSummary(baseline_rev=baseline_rev, phases=rows, left_out=list(left_out))


def judge(criterion: Criterion, figures: PhaseFigures | None, missing: str) -> CriterionResult:
    """One criterion on one run's figures (None: the phase did not run, because ``missing``)."""
    measure, threshold = criterion.measure, criterion.threshold
    text = _threshold_text(measure, threshold)

    def unmeasured(note: str) -> CriterionResult:
        return CriterionResult(
            criterion=criterion.wording,
            measure=measure,
            threshold=text,
            value=None,
            outcome="not measured",
            note=note,
        )

    if measure is None or threshold is None:
        return unmeasured(criterion.unmeasured)
    if figures is None:
        return unmeasured(missing)
    value: float | str | None = getattr(figures, measure)
    if value is None:
        return unmeasured(_ABSENT.get(measure, f"the run reports no {measure}"))
    return CriterionResult(
        criterion=criterion.wording,
        measure=measure,
        threshold=text,
        value=value,
        outcome="met" if _met(threshold, value) else "not met",
        note="",
    )


def _met(threshold: Threshold, value: float | str) -> bool:
    if isinstance(threshold, Reached):
        if not isinstance(value, str):
            raise TypeError(f"a curriculum stage is a name, got {value!r}")
        return threshold.met(value)
    if isinstance(value, str):
        raise TypeError(f"{threshold} judges a number, got {value!r}")
    return threshold.met(value)


def _gate(criteria: Sequence[CriterionResult]) -> Outcome:
    outcomes = {row.outcome for row in criteria}
    if "not met" in outcomes:
        return "not met"
    return "met" if outcomes == {"met"} else "not measured"


def _bound(measure: Measure | None, value: float) -> str:
    if measure in ("max_drawdown", "win_rate"):
        return f"{value * 100:g}%"
    if measure == "daily_turnover":
        return f"{value:g}x"
    if measure == "episode_reward_mean":
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _threshold_text(measure: Measure | None, threshold: Threshold | None) -> str:
    match threshold:
        case Above(bound, inclusive):
            return f"{'>=' if inclusive else '>'} {_bound(measure, bound)}"
        case Below(bound, inclusive):
            return f"{'<=' if inclusive else '<'} {_bound(measure, bound)}"
        case Between(low, high):
            return f"{_bound(measure, low)} to {_bound(measure, high)}"
        case Reached(stages):
            return f"reached {' or '.join(stages)}"
    return "-"  # the plan's words say it; no figure to hold it against


def formatted(measure: str | None, value: float | str | None) -> str:
    """A figure as the report prints it: fractions as percent, turnover as a multiple."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if measure in ("max_drawdown", "win_rate"):
        return f"{value:.2%}"
    if measure == "daily_turnover":
        return f"{value:.2f}x"
    if measure == "episode_reward_mean":
        return f"{value:,.1f}"
    return f"{value:.2f}"


def markdown(summary: PhasesSummary) -> str:
    """The summary as Markdown: the figures side by side, then each criterion judged."""
    lines = [
        "# The master plan's phases, run as DVC experiments",
        "",
        f"Experiments on commit `{summary.baseline_rev[:12]}`, each the workspace's parameters "
        "with one phase overlay (`make phases`). The agent's figures are on the test window, "
        "out of sample and after costs (`reports/metrics.json`); the mean episode reward and the "
        "curriculum stage are the training's (`models/policy.json`). Passive buy-and-hold and "
        "the best rule are on the same bars, costs and risk engine, for scale. Written by "
        "`ijules phases`.",
        "",
        "## Figures",
        "",
        "| Phase | Plan | Experiment | Sharpe | Max DD | Daily turnover | Win rate | Mean "
        "episode reward | Curriculum stage | Buy-and-hold Sharpe | Best rule Sharpe | Gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.phases:
        plan = "-" if row.plan_phase is None else str(row.plan_phase)
        f = row.figures
        if f is None:
            cells = [row.status, *["-"] * 8]
        else:
            cells = [
                f"`{row.experiment}`",
                formatted("sharpe", f.sharpe),
                formatted("max_drawdown", f.max_drawdown),
                formatted("daily_turnover", f.daily_turnover),
                formatted("win_rate", f.win_rate),
                formatted("episode_reward_mean", f.episode_reward_mean),
                formatted("curriculum_stage", f.curriculum_stage),
                formatted("sharpe", f.passive_buy_and_hold_sharpe),
                f"{formatted('sharpe', f.best_rule_sharpe)} ({f.best_rule})",
            ]
        lines.append(f"| {row.phase} | {plan} | " + " | ".join(cells) + f" | {row.gate} |")
    lines += [
        "",
        "## Success criteria (master plan, Phase Gate Success Criteria Summary)",
        "",
        "| Phase | Goal | Criterion | Threshold | Value | Outcome | Note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary.phases:
        for c in row.criteria:
            value = formatted(c.measure, c.value)
            lines.append(
                f"| {row.phase} | {row.goal} | {c.criterion} | {c.threshold} | {value} "
                f"| {c.outcome} | {c.note} |"
            )
    skipped = [row for row in summary.phases if row.status != "run"]
    if skipped:
        lines += ["", "## Phases not run", ""]
        lines += [f"- {row.phase} ({row.status}): {row.reason}" for row in skipped]
    if summary.left_out:
        lines += ["", "## Experiments left out", ""]
        lines += [f"- `{e.name}` ({e.rev[:7]}): {e.reason}" for e in summary.left_out]
    return "\n".join(lines) + "\n"
