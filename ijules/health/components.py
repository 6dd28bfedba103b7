"""The health score's components, each a score in [0, 1] with what it measured.

Every component compares the model's live paper record with its own evidence from review time
(its test window, its walk-forward folds), never with figures computed on today's data. A
component without enough live bars, or without the evidence it needs, is not measured (score
None) and says why: it is left out of the score rather than counted as healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from ijules.artifacts import DriftSummary, HealthComponent, HealthComponentName, PaperModelNight
from ijules.health.config import HealthConfig

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LiveRecord:
    """The judged book's traded bars since its version started: per-bar return after costs,
    signed gross position after the bar, and the market regime at the decision bar."""

    returns: FloatArray
    positions: FloatArray
    regimes: npt.NDArray[np.str_]
    bars_per_year: float


@dataclass(frozen=True)
class ReviewWindow:
    """The same figures on the version's test window, as its evaluation logged them."""

    returns: FloatArray
    positions: FloatArray
    regimes: npt.NDArray[np.str_]


def not_measured(why: str) -> HealthComponent:
    return HealthComponent(score=None, detail=f"not measured: {why}")


def data_drift(drift: DriftSummary | None) -> HealthComponent:
    """One minus the share of features that drifted against the reference window."""
    if drift is None:
        return not_measured("no drift report tonight")
    return HealthComponent(
        score=1.0 - drift.drift_share,
        detail=(
            f"{drift.drifted_features} of {drift.features} features drifted in the newest "
            f"{drift.current.bars} bars against {drift.reference_source} "
            f"({drift.reference.start} to {drift.reference.end})"
        ),
    )


def action_drift(
    live: LiveRecord | None, test: ReviewWindow | None, config: HealthConfig
) -> tuple[HealthComponent, bool]:
    """One minus the Kolmogorov-Smirnov distance between live and test-window positions; the
    flag says the distance passed ``action_drift_max``."""
    missing = _missing(live, test, config)
    if missing is not None:
        return not_measured(missing), False
    assert live is not None and test is not None
    distance = float(stats.ks_2samp(live.positions, test.positions).statistic)
    drifted = distance > config.action_drift_max
    return (
        HealthComponent(
            score=1.0 - distance,
            detail=(
                f"positions over {len(live.positions)} live bars against {len(test.positions)} "
                f"test-window bars: Kolmogorov-Smirnov distance {distance:.2f} "
                f"(drift above {config.action_drift_max:.2f})"
            ),
        ),
        drifted,
    )


def performance(
    live: LiveRecord | None, fold_sharpes: list[float] | None, config: HealthConfig
) -> tuple[HealthComponent, bool]:
    """The live Sharpe ratio against the worst walk-forward fold's.

    The score is twice the one-sided p-value that the live Sharpe is as good as the worst fold's
    (Lo's standard error for i.i.d. returns), capped at 1: 1 at or above the worst fold, 0.1 at
    ``performance_alpha`` = 0.05. The flag says the test rejects at ``performance_alpha``.
    """
    if not fold_sharpes:
        return not_measured("the version's review logged no walk-forward folds"), False
    if live is None or len(live.returns) < config.min_live_bars:
        bars = 0 if live is None else len(live.returns)
        return not_measured(f"{bars} live bar(s), fewer than {config.min_live_bars}"), False
    returns = live.returns
    spread = float(np.std(returns, ddof=1))
    per_bar = float(np.mean(returns)) / spread if spread > 0 else 0.0
    scale = float(np.sqrt(live.bars_per_year))
    sharpe = per_bar * scale
    error = float(np.sqrt((1.0 + 0.5 * per_bar**2) / len(returns))) * scale
    worst, best = min(fold_sharpes), max(fold_sharpes)
    p_value = float(stats.norm.cdf((sharpe - worst) / error))
    breached = p_value < config.performance_alpha
    return (
        HealthComponent(
            score=min(1.0, 2.0 * p_value),
            detail=(
                f"live Sharpe {sharpe:.2f} (standard error {error:.2f}) over {len(returns)} bars "
                f"against the walk-forward folds' {worst:.2f} to {best:.2f}: p = {p_value:.3f} "
                f"that it is as good as the worst fold"
            ),
        ),
        breached,
    )


def regime(
    live: LiveRecord | None, test: ReviewWindow | None, config: HealthConfig
) -> tuple[HealthComponent, list[str]]:
    """One minus the share of regimes where live per-bar returns fall below the test window's
    (one-sided Welch t-test at ``regime_alpha``); the regimes that do."""
    missing = _missing(live, test, config)
    if missing is not None:
        return not_measured(missing), []
    assert live is not None and test is not None
    tested: list[str] = []
    under: list[str] = []
    notes: list[str] = []
    for name in sorted(set(live.regimes.tolist())):
        here, there = live.returns[live.regimes == name], test.returns[test.regimes == name]
        if len(here) < config.min_regime_bars or len(there) < config.min_regime_bars:
            continue
        tested.append(name)
        p_value = float(stats.ttest_ind(here, there, equal_var=False, alternative="less").pvalue)
        if p_value < config.regime_alpha:
            under.append(name)
        notes.append(f"{name}: {len(here)} bars, p = {p_value:.3f}")
    if not tested:
        return not_measured(f"no regime has {config.min_regime_bars} live and test-window bars"), []
    return (
        HealthComponent(
            score=1.0 - len(under) / len(tested),
            detail=f"{len(under)} of {len(tested)} regime(s) below the test window "
            f"({'; '.join(notes)})",
        ),
        under,
    )


def risk(book: PaperModelNight | None, max_drawdown: float) -> HealthComponent:
    """0 when the book stopped or its drawdown passed the risk limit, 0.5 when a circuit
    breaker acted tonight, else 1."""
    if book is None:
        return not_measured("the model did not trade tonight")
    if book.outcome == "stopped":
        return HealthComponent(score=0.0, detail="the book stopped: the risk engine halted it")
    if book.drawdown > max_drawdown:
        return HealthComponent(
            score=0.0,
            detail=f"drawdown {book.drawdown:.2%} past the {max_drawdown:.0%} monthly limit",
        )
    if book.breaker_events:
        return HealthComponent(
            score=0.5, detail="circuit breakers acted tonight: " + "; ".join(book.breaker_events)
        )
    return HealthComponent(
        score=1.0, detail=f"no breaker event tonight; drawdown {book.drawdown:.2%}"
    )


def score(
    components: Mapping[HealthComponentName, HealthComponent],
    weights: Mapping[HealthComponentName, float],
) -> float | None:
    """The weighted mean of the measured components (None when none is measured)."""
    measured = [
        (weights[name], part.score)
        for name, part in components.items()
        if part.score is not None and weights[name] > 0
    ]
    total = sum(weight for weight, _ in measured)
    if total <= 0:
        return None
    return float(sum(weight * value for weight, value in measured) / total)


def _missing(
    live: LiveRecord | None, test: ReviewWindow | None, config: HealthConfig
) -> str | None:
    if test is None:
        return "the version's evaluation logged no test-window curve"
    if live is None or len(live.returns) < config.min_live_bars:
        bars = 0 if live is None else len(live.returns)
        return f"{bars} live bar(s), fewer than {config.min_live_bars}"
    return None
