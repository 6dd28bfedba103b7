"""The observation of an environment's current bar (compiled, after every step and reset).

Layout: the standardised features of bar t, then the current weights (clipped to [-1, 1]), then
the selected risk features, each at its slot (``PARAMS.risk_slot``, in the order of
:data:`ijules.sim.layout.RISK_FEATURES`). They use bars up to t only:

- portfolio_heat_ratio: daily parametric VaR(95%) of the positions, sum |w_i| sigma_i * z *
  sqrt(bars per day), over the daily VaR budget;
- concentration_ratio: sum w_i^2 / (sum |w_i|)^2 (1 for a single position, 0 when flat);
- drawdown_velocity: drawdown now minus drawdown ``velocity_bars`` bars ago (or at the start);
- var_breach_indicator: 1 when the last bar lost more than the VaR of the weights held;
- correlation_breakdown: the market's short- against long-window correlation gap.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ijules.sim import cache  # noqa: F401 - keys numba's cache by this package's sources
from ijules.sim.layout import BREACH, CONCENTRATION, CORRELATION, HEAT, VELOCITY
from ijules.sim.phases import drawdown_at, equity_at

Z_95 = 1.6448536269514722  # one-sided 95% normal quantile


@njit(cache=True, inline="always")
def _emit(out: np.ndarray, at: int, slot: int, value: float) -> int:
    """Write ``value`` at its slot; return 1 if it is not finite."""
    out[at + slot] = value
    return 0 if math.isfinite(value) else 1


@njit(cache=True)
def observe(
    accounts: np.ndarray,
    market: np.ndarray,
    features: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    observations: np.ndarray,
    b: int,
) -> None:
    """Write environment ``b``'s observation; add the non-finite values to its ``nonfinite``."""
    p = params[0]
    account = accounts[b]
    now = account.t
    elapsed = now - account.start
    out = observations[elapsed] if p.observations_by_step else observations[b]
    bar = market[now]
    n_assets = bar.close.shape[0]
    n_features = features.shape[1]
    for j in range(n_features):
        out[j] = features[now, j]
    equity = equity_at(accounts, market, b, now)
    gross = 0.0
    squares = 0.0
    risk = 0.0
    held_risk = 0.0
    nonfinite = 0
    for i in range(n_assets):
        weight = account.units[i] * bar.close[i] / equity if equity > 0.0 else 0.0
        if not math.isfinite(weight):
            nonfinite += 1
        out[n_features + i] = min(1.0, max(-1.0, weight))
        gross += abs(weight)
        squares += weight * weight
        risk += abs(weight) * bar.sigma[i]
        if elapsed > 0:
            held_risk += abs(account.held[i]) * market[now - 1].sigma[i]
    at = n_features + n_assets
    slots = p.risk_slot
    if slots[HEAT] >= 0:
        heat = Z_95 * risk * math.sqrt(p.bars_per_day) / p.var_budget
        nonfinite += _emit(out, at, slots[HEAT], heat)
    if slots[CONCENTRATION] >= 0:
        concentration = squares / (gross * gross) if gross > 0.0 else 0.0
        nonfinite += _emit(out, at, slots[CONCENTRATION], concentration)
    if slots[VELOCITY] >= 0:
        drawdown = 1.0 - equity / account.peak if account.peak > 0.0 else 0.0
        past = drawdown_at(fills, b, max(elapsed - p.velocity_bars, 0))
        nonfinite += _emit(out, at, slots[VELOCITY], drawdown - past)
    if slots[BREACH] >= 0:
        breach = 1.0 if elapsed > 0 and account.last_return < -Z_95 * held_risk else 0.0
        nonfinite += _emit(out, at, slots[BREACH], breach)
    if slots[CORRELATION] >= 0:
        nonfinite += _emit(out, at, slots[CORRELATION], bar.correlation)
    account.nonfinite += nonfinite
