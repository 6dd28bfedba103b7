"""Risk attribution of a backtest: systematic against idiosyncratic, timing against sizing.

- systematic / idiosyncratic: regress the strategy's bar returns on the benchmark's,
  s = alpha + beta b + e; systematic variance beta^2 var(b), idiosyncratic var(e), each as a
  share of their sum;
- timing / sizing: the P&L of holding weights w_t through asset returns r_t splits into
  timing, sum sign(w_t) |w|_mean r_t (being on the right side at a constant size), and sizing,
  sum (|w_t| - |w|_mean) sign(w_t) r_t (how far varying the size helped); reported as
  fractions of equity and as shares of the total.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ijules.artifacts import Attribution
from ijules.risk.config import AttributionComponent

FloatArray = npt.NDArray[np.float64]


# What each component reports.
_REPORTS: dict[AttributionComponent, tuple[str, ...]] = {
    "systematic_risk": ("beta", "systematic_risk_share"),
    "idiosyncratic_risk": ("idiosyncratic_risk_share",),
    "timing_risk": ("timing_pnl", "timing_share"),
    "sizing_risk": ("sizing_pnl", "sizing_share"),
}


def risk_attribution(
    strategy_returns: FloatArray,
    benchmark_returns: FloatArray,
    weights: FloatArray,
    asset_returns: FloatArray,
    components: tuple[AttributionComponent, ...] = tuple(_REPORTS),
) -> Attribution:
    """Attribute a single-instrument strategy's risk and P&L (see the module docstring); report
    the ``components`` asked for."""
    s = np.asarray(strategy_returns, dtype=np.float64)
    b = np.asarray(benchmark_returns, dtype=np.float64)
    variance_b = float(np.var(b, ddof=1))
    beta = float(np.cov(s, b, ddof=1)[0, 1] / variance_b) if variance_b > 0 else 0.0
    residual = s - beta * b
    systematic = beta**2 * variance_b
    idiosyncratic = float(np.var(residual, ddof=1))
    total = systematic + idiosyncratic

    w = np.asarray(weights, dtype=np.float64)
    r = np.asarray(asset_returns, dtype=np.float64)
    exposed = np.abs(w) > 0
    mean_size = float(np.abs(w[exposed]).mean()) if exposed.any() else 0.0
    timing = float(np.sum(np.sign(w) * mean_size * r))
    sizing = float(np.sum((np.abs(w) - mean_size) * np.sign(w) * r))
    pnl = timing + sizing
    full = {
        "beta": beta,
        "systematic_risk_share": systematic / total if total > 0 else 0.0,
        "idiosyncratic_risk_share": idiosyncratic / total if total > 0 else 0.0,
        "timing_pnl": timing,
        "sizing_pnl": sizing,
        "timing_share": timing / pnl if pnl else 0.0,
        "sizing_share": sizing / pnl if pnl else 0.0,
    }
    wanted = {key for component in components for key in _REPORTS[component]}
    return Attribution(**{key: value for key, value in full.items() if key in wanted})
