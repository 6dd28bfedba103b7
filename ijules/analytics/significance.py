"""Statistical significance of a performance record (Bailey and López de Prado; the plan's tests).

With SR the per-bar Sharpe ratio of T returns, g3 their skewness and g4 their kurtosis (not the
excess: a normal has g4 = 3; some libraries subtract 3 a second time from an already-excess
kurtosis, which understates the estimator's variance):

- probabilistic Sharpe ratio, PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR +
  (g4 - 1) / 4 SR^2));
- deflated Sharpe ratio, DSR = PSR(SR_0), with SR_0 the Sharpe ratio the best of N independent
  trials reaches by luck: SR_0 = sqrt(V) ((1 - e) Z(1 - 1/N) + e Z(1 - 1/(N exp 1))), V the
  variance of the trials' Sharpe ratios and e Euler-Mascheroni's constant (SR_0 = 0 for N = 1);
- minimum track-record length, MinTRL = 1 + (1 - g3 SR + (g4 - 1) / 4 SR^2) (z_a / (SR - SR*))^2
  observations for PSR(SR*) to reach confidence a;
- the master plan's t-test of a sample of values (per fold, per episode) against a target, with
  Cohen's d = (mean - target) / std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from ijules.artifacts import TargetTest

FloatArray = npt.NDArray[np.float64]
EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class SharpeMoments:
    """What the Sharpe tests need from a return series: per-bar SR, T, skewness, kurtosis."""

    sharpe: float
    observations: int
    skewness: float
    kurtosis: float

    @classmethod
    def of(cls, returns: FloatArray) -> SharpeMoments:
        """Moments of ``returns`` (kurtosis not in excess: a normal sample gives about 3)."""
        values = np.asarray(returns, dtype=np.float64)
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        if spread <= 1e-15:
            return cls(0.0, len(values), 0.0, 3.0)
        return cls(
            float(np.mean(values)) / spread,
            len(values),
            float(stats.skew(values)),
            float(stats.kurtosis(values, fisher=False)),
        )

    def variance_factor(self) -> float:
        """1 - g3 SR + (g4 - 1) / 4 SR^2."""
        sr = self.sharpe
        return 1.0 - self.skewness * sr + (self.kurtosis - 1.0) / 4.0 * sr * sr


def psr(moments: SharpeMoments, benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio of ``moments`` against a per-bar benchmark Sharpe SR*."""
    if moments.observations < 3:
        return 0.5
    factor = moments.variance_factor()
    if factor <= 0:
        return 0.5
    z = (moments.sharpe - benchmark) * math.sqrt(moments.observations - 1) / math.sqrt(factor)
    return float(stats.norm.cdf(z))


def probabilistic_sharpe_ratio(returns: FloatArray, benchmark: float = 0.0) -> float:
    """PSR of a return series (0.5 when it does not vary: no evidence either way)."""
    values = np.asarray(returns, dtype=np.float64)
    if len(values) < 3 or float(np.std(values, ddof=1)) <= 1e-15:
        return 0.5
    return psr(SharpeMoments.of(values), benchmark)


def expected_maximum_sharpe(trials: int, variance: float) -> float:
    """SR_0: the expected best per-bar Sharpe of ``trials`` skill-less trials with that variance."""
    if trials <= 1 or variance <= 0:
        return 0.0
    return math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * float(stats.norm.ppf(1.0 - 1.0 / trials))
        + EULER_GAMMA * float(stats.norm.ppf(1.0 - 1.0 / (trials * math.e)))
    )


def deflated_sharpe_ratio(moments: SharpeMoments, trials: int, trial_variance: float) -> float:
    """DSR: the PSR against the Sharpe ratio luck alone reaches over ``trials``."""
    return psr(moments, expected_maximum_sharpe(trials, trial_variance))


def minimum_track_record(
    moments: SharpeMoments, benchmark: float = 0.0, confidence: float = 0.95
) -> float:
    """Observations needed for PSR(SR*) to reach ``confidence``; inf when SR <= SR*."""
    if moments.sharpe <= benchmark:
        return math.inf
    z = float(stats.norm.ppf(confidence))
    return 1.0 + moments.variance_factor() * (z / (moments.sharpe - benchmark)) ** 2


def target_test(values: FloatArray, target: float, alpha: float = 0.05) -> TargetTest:
    """Two-sided t-test of mean(values) = target; d = (mean - target) / std(values, ddof=1)."""
    sample = np.asarray(values, dtype=np.float64)
    if len(sample) < 2 or float(np.std(sample, ddof=1)) <= 1e-15:
        mean = float(np.mean(sample)) if len(sample) else 0.0
        return TargetTest(
            mean=mean,
            target=target,
            t_statistic=0.0,
            p_value=1.0,
            cohens_d=0.0,
            significant=False,
            practically_significant=False,
        )
    result = stats.ttest_1samp(sample, target)
    d = (float(np.mean(sample)) - target) / float(np.std(sample, ddof=1))
    p = float(result.pvalue)
    return TargetTest(
        mean=float(np.mean(sample)),
        target=target,
        t_statistic=float(result.statistic),
        p_value=p,
        cohens_d=d,
        significant=p < alpha,
        practically_significant=abs(d) > 0.5,
    )
