"""Value at risk and expected shortfall, five ways.

Losses are negated returns, L = -r. At confidence a, VaR is the a-quantile of L (reported as a
positive fraction) and ES = E[L | L >= VaR]. The methods:

- historical simulation: the empirical quantile of the window's losses; ES their mean beyond it;
- parametric normal: VaR = -mu + sigma z_a, ES = -mu + sigma phi(z_a) / (1 - a);
- parametric Student-t (fitted by maximum likelihood): with q = t_nu^-1(a),
  VaR = -m + s q, ES = -m + s f_nu(q) / (1 - a) (nu + q^2) / (nu - 1);
- Monte Carlo: draws from the fitted Student-t, vectorised and seeded; empirical VaR and ES;
- extreme value theory (peaks over threshold): a generalised Pareto fit (scipy) to the losses
  above the ``threshold_quantile`` u, with N_u of n exceedances and shape xi, scale beta:
  VaR = u + beta / xi ((n / N_u (1 - a))^-xi - 1), ES = VaR / (1 - xi) + (beta - xi u) / (1 - xi).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TailRisk:
    """One method's VaR and expected shortfall at one confidence level (positive losses)."""

    method: str
    confidence: float
    var: float
    es: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _clean(returns: FloatArray) -> FloatArray:
    values = np.asarray(returns, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 20:
        raise ValueError(f"VaR needs at least 20 returns, got {len(values)}")
    return values


def historical(returns: FloatArray, confidence: float) -> TailRisk:
    """Empirical quantile of the losses (linear interpolation) and the mean loss beyond it."""
    losses = -_clean(returns)
    var = float(np.quantile(losses, confidence))
    return TailRisk("historical_simulation", confidence, var, float(losses[losses >= var].mean()))


def parametric_normal(returns: FloatArray, confidence: float) -> TailRisk:
    """Normal VaR and ES from the sample mean and standard deviation."""
    values = _clean(returns)
    mu, sigma = float(values.mean()), float(values.std(ddof=1))
    z = float(stats.norm.ppf(confidence))
    es = -mu + sigma * float(stats.norm.pdf(z)) / (1.0 - confidence)
    return TailRisk("parametric_normal", confidence, -mu + sigma * z, es)


def fit_student_t(returns: FloatArray) -> tuple[float, float, float]:
    """Maximum-likelihood Student-t (degrees of freedom > 2, so the variance exists)."""
    nu, loc, scale = stats.t.fit(_clean(returns))
    return max(float(nu), 2.01), float(loc), float(scale)


def parametric_student_t(returns: FloatArray, confidence: float) -> TailRisk:
    """Student-t VaR and ES with the closed form of the t's expected shortfall."""
    nu, loc, scale = fit_student_t(returns)
    q = float(stats.t.ppf(confidence, nu))
    tail = float(stats.t.pdf(q, nu)) / (1.0 - confidence) * (nu + q * q) / (nu - 1.0)
    return TailRisk("parametric_student_t", confidence, -loc + scale * q, -loc + scale * tail)


def monte_carlo(returns: FloatArray, confidence: float, *, paths: int, seed: int) -> TailRisk:
    """Simulate ``paths`` returns from the fitted Student-t; empirical VaR and ES of the draws."""
    nu, loc, scale = fit_student_t(returns)
    draws = loc + scale * np.random.default_rng(seed).standard_t(nu, size=paths)
    losses = -draws
    var = float(np.quantile(losses, confidence))
    return TailRisk("monte_carlo", confidence, var, float(losses[losses >= var].mean()))


def extreme_value(returns: FloatArray, confidence: float, *, threshold_quantile: float) -> TailRisk:
    """Peaks over threshold: a generalised Pareto tail above the losses' threshold quantile."""
    if confidence <= threshold_quantile:
        raise ValueError(
            f"EVT needs a confidence above its threshold quantile ({threshold_quantile})"
        )
    losses = -_clean(returns)
    threshold = float(np.quantile(losses, threshold_quantile))
    excess = losses[losses > threshold] - threshold
    xi, _, beta = stats.genpareto.fit(excess, floc=0.0)
    xi, beta = float(xi), float(beta)
    ratio = len(losses) / len(excess) * (1.0 - confidence)
    if abs(xi) < 1e-6:
        var = threshold - beta * np.log(ratio)
    else:
        var = threshold + beta / xi * (ratio**-xi - 1.0)
    if xi >= 1.0:
        raise ValueError(f"the loss tail is too heavy for an expected shortfall (xi = {xi:.2f})")
    es = var / (1.0 - xi) + (beta - xi * threshold) / (1.0 - xi)
    return TailRisk("extreme_value_theory", confidence, float(var), float(es))


Estimator = Callable[[FloatArray, float], TailRisk]


def estimators(
    *, paths: int = 20_000, seed: int = 0, threshold_quantile: float = 0.90
) -> dict[str, Estimator]:
    """Every method by its configuration name."""
    return {
        "historical_simulation": historical,
        "parametric_normal": parametric_normal,
        "parametric_student_t": parametric_student_t,
        "monte_carlo": lambda r, a: monte_carlo(r, a, paths=paths, seed=seed),
        "extreme_value_theory": lambda r, a: extreme_value(
            r, a, threshold_quantile=threshold_quantile
        ),
    }
