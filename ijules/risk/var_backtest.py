"""VaR backtesting: rolling forecasts, Kupiec, Christoffersen, the Basel traffic light.

An exception is a bar whose loss exceeds the VaR forecast made before it (from the ``window``
returns that precede it). With T forecasts, x exceptions and p = 1 - confidence:

- Kupiec's proportion of failures: LR_pof = -2 ln[(1-p)^(T-x) p^x] + 2 ln[(1-x/T)^(T-x) (x/T)^x],
  chi-square with 1 degree of freedom;
- Christoffersen's independence: with n_ij the transitions from state i to j of the exception
  series and pi_i = n_i1 / (n_i0 + n_i1), pi = (n_01 + n_11) / n,
  LR_ind = -2 ln[(1-pi)^(n_00+n_10) pi^(n_01+n_11)]
           + 2 ln[(1-pi_0)^n_00 pi_0^n_01 (1-pi_1)^n_10 pi_1^n_11], chi-square(1);
  conditional coverage LR_cc = LR_pof + LR_ind, chi-square(2);
- the Basel traffic light on the last 250 forecasts: green while the binomial probability of
  at most x exceptions is below 95%, yellow below 99.99%, red beyond (at 99% over 250 days:
  green 0-4, yellow 5-9, red 10 or more);
- VaR accuracy: the share of rolling 250-forecast windows that sit in the green zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.special import xlogy

from ijules.artifacts import VarBacktest
from ijules.risk.var import Estimator

FloatArray = npt.NDArray[np.float64]
BASEL_WINDOW = 250


@dataclass(frozen=True)
class CoverageTest:
    """A likelihood-ratio statistic and its p-value."""

    statistic: float
    p_value: float


def kupiec(exceptions: int, observations: int, coverage: float) -> CoverageTest:
    """Kupiec's proportion-of-failures test at ``coverage`` (e.g. 0.99)."""
    p = 1.0 - coverage
    x, t = exceptions, observations
    if t <= 0:
        raise ValueError("Kupiec's test needs at least one observation")
    observed = x / t
    null = float(xlogy(t - x, 1 - p) + xlogy(x, p))
    alternative = float(xlogy(t - x, 1 - observed) + xlogy(x, observed))
    statistic = max(-2.0 * (null - alternative), 0.0)
    return CoverageTest(statistic, float(stats.chi2.sf(statistic, 1)))


def christoffersen(
    hits: npt.NDArray[np.bool_], coverage: float
) -> tuple[CoverageTest, CoverageTest]:
    """Christoffersen's independence test and the conditional-coverage test."""
    series = np.asarray(hits, dtype=bool)
    before, after = series[:-1], series[1:]
    n00 = int(np.sum(~before & ~after))
    n01 = int(np.sum(~before & after))
    n10 = int(np.sum(before & ~after))
    n11 = int(np.sum(before & after))
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = float(xlogy(n00 + n10, 1 - pi) + xlogy(n01 + n11, pi))
    alternative = float(
        xlogy(n00, 1 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1 - pi1) + xlogy(n11, pi1)
    )
    independence = max(-2.0 * (null - alternative), 0.0)
    pof = kupiec(int(series.sum()), len(series), coverage).statistic
    conditional = pof + independence
    return (
        CoverageTest(independence, float(stats.chi2.sf(independence, 1))),
        CoverageTest(conditional, float(stats.chi2.sf(conditional, 2))),
    )


def traffic_light(exceptions: int, observations: int = BASEL_WINDOW, coverage: float = 0.99) -> str:
    """The Basel zone of ``exceptions`` in ``observations`` forecasts at ``coverage``."""
    probability = float(stats.binom.cdf(exceptions, observations, 1.0 - coverage))
    if probability < 0.95:
        return "green"
    if probability < 0.9999:
        return "yellow"
    return "red"


def rolling_var(
    returns: FloatArray,
    estimator: Estimator,
    confidence: float,
    *,
    window: int,
    refit_every: int = 1,
) -> FloatArray:
    """VaR forecast for each bar from the ``window`` returns before it (NaN until a window).

    The estimate is refreshed every ``refit_every`` bars and held in between, always from data
    that ends before the first bar it covers.
    """
    values = np.asarray(returns, dtype=np.float64)
    forecasts = np.full(len(values), np.nan)
    current = np.nan
    for t in range(window, len(values)):
        if (t - window) % refit_every == 0:
            current = estimator(values[t - window : t], confidence).var
        forecasts[t] = current
    return forecasts


def backtest(
    method: str, returns: FloatArray, forecasts: FloatArray, confidence: float
) -> VarBacktest:
    """Score ``forecasts`` (positive VaR per bar, NaN where none) against ``returns``."""
    covered = np.isfinite(forecasts) & np.isfinite(returns)
    losses, var = -np.asarray(returns)[covered], np.asarray(forecasts)[covered]
    hits = losses > var
    exceptions = int(hits.sum())
    independence, conditional = christoffersen(hits, confidence)
    # Not len(counts): "valid" convolution of fewer than BASEL_WINDOW hits is not empty.
    windows = max(len(hits) - BASEL_WINDOW + 1, 0)
    counts = np.convolve(hits.astype(int), np.ones(BASEL_WINDOW, dtype=int), mode="valid")
    # Zone each distinct count once (at most BASEL_WINDOW + 1 of them), then map back.
    distinct, position = np.unique(counts, return_inverse=True)
    green_distinct = np.array(
        [traffic_light(int(c), BASEL_WINDOW, confidence) == "green" for c in distinct], dtype=bool
    )
    green = green_distinct[position]
    return VarBacktest(
        method=method,
        confidence=confidence,
        observations=len(hits),
        exceptions=exceptions,
        exception_rate=exceptions / len(hits) if len(hits) else 0.0,
        kupiec_p=kupiec(exceptions, len(hits), confidence).p_value,
        independence_p=independence.p_value,
        conditional_coverage_p=conditional.p_value,
        zone=traffic_light(
            int(hits[-BASEL_WINDOW:].sum()), min(len(hits), BASEL_WINDOW), confidence
        ),
        accuracy=float(np.mean(green)) if windows else float("nan"),
    )
