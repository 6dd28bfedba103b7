"""GARCH(1,1) volatility forecasts and regime-switching probabilities, with no look-ahead.

Both models are refitted on a schedule, each time on a trailing window of returns that ends
before the bars it will be applied to; between refits the fitted parameters filter the new
returns recursively. The forecast at bar t is for bar t+1 and uses returns up to and including
bar t, known at t's close.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_SCALE = 100.0  # arch fits best on returns in percent


def garch_forecast(returns: FloatArray, *, window: int, refit_every: int) -> FloatArray:
    """One-step-ahead GARCH(1,1) volatility per bar (same units as ``returns``).

    ``returns[t]`` is the return of bar t (NaN for the first). The value at t forecasts the
    volatility of bar t+1. Before a full window of history exists, the sample standard deviation
    of the returns so far stands in for the forecast.
    """
    from arch import arch_model

    r = np.nan_to_num(np.asarray(returns, dtype=np.float64)) * _SCALE
    n = len(r)
    sigma = np.empty(n)
    running = np.sqrt(np.cumsum(r**2) / np.maximum(np.arange(1, n + 1), 1))
    sigma[:] = running
    start = min(window, n)
    variance = float(np.var(r[:start])) if start > 1 else 0.0
    omega = alpha = beta = 0.0
    fitted = False
    for t in range(start, n):
        if (t - start) % refit_every == 0:
            sample = r[t - window : t] if t >= window else r[:t]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = arch_model(sample, vol="GARCH", p=1, q=1, mean="Zero", dist="normal").fit(
                    disp="off", show_warning=False
                )
            omega, alpha, beta = (float(v) for v in result.params[["omega", "alpha[1]", "beta[1]"]])
            if not fitted:
                # sigma^2_t from the fit's last in-sample variance (bar t-1) and return r_{t-1}.
                last = float(result.conditional_volatility[-1]) ** 2
                variance = omega + alpha * r[t - 1] ** 2 + beta * last
                fitted = True
        # sigma^2_{t+1} = omega + alpha r_t^2 + beta sigma^2_t: uses bar t, known at its close.
        variance = omega + alpha * r[t] ** 2 + beta * variance
        sigma[t] = np.sqrt(variance)
    return np.asarray(sigma / _SCALE)


def high_volatility_probability(
    returns: FloatArray, *, window: int, refit_every: int
) -> FloatArray:
    """Filtered probability of the high-variance state of a 2-state Markov-switching model.

    Each segment of ``refit_every`` bars is filtered with parameters fitted on the ``window``
    bars before it (the filter runs over that window first, to settle). Filtered, not
    smoothed: the probability at t uses returns up to t only. NaN before the first fit.
    """
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    r = np.nan_to_num(np.asarray(returns, dtype=np.float64)) * _SCALE
    n = len(r)
    out = np.full(n, np.nan)
    for start in range(window, n, refit_every):
        stop = min(start + refit_every, n)
        history = r[start - window : start]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fitted = MarkovRegression(
                    history, k_regimes=2, trend="n", switching_variance=True
                ).fit(disp=False)
                span = r[start - window : stop]
                filtered = MarkovRegression(
                    span, k_regimes=2, trend="n", switching_variance=True
                ).filter(fitted.params)
            except (ValueError, np.linalg.LinAlgError) as err:
                log.warning("regime-switching fit failed at bar %d (%s); left NaN", start, err)
                continue
        variances = np.asarray(fitted.params[-2:])
        high = int(np.argmax(variances))
        probabilities = np.asarray(filtered.filtered_marginal_probabilities)
        out[start:stop] = probabilities[window:, high]
    return out
