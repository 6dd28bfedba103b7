"""Performance metrics of an equity curve and its trades, after costs.

Returns are simple per-bar returns of equity. Annualisation uses bars per year measured on the
data (so market closures count), never a constant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PerformanceMetrics:
    """Headline metrics of one backtest. Fractions, not percent."""

    total_return: float
    annualised_return: float
    annualised_volatility: float
    sharpe: float
    sharpe_psr: float
    max_drawdown: float
    daily_turnover: float
    win_rate: float
    num_trades: int
    num_round_trips: int
    total_cost: float
    exposure: float
    bars: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def bar_returns(equity: FloatArray) -> FloatArray:
    """Simple returns between consecutive equity marks: r_t = E_t / E_{t-1} - 1."""
    return np.asarray(equity[1:] / equity[:-1] - 1.0, dtype=np.float64)


def total_return(equity: FloatArray) -> float:
    """E_T / E_0 - 1."""
    return float(equity[-1] / equity[0] - 1.0)


def annualised_return(equity: FloatArray, bars_per_year: float) -> float:
    """(E_T / E_0) ** (bars_per_year / bars) - 1, the geometric rate per year."""
    periods = len(equity) - 1
    growth = equity[-1] / equity[0]
    if periods <= 0 or growth <= 0:
        return -1.0 if growth <= 0 else 0.0
    return float(growth ** (bars_per_year / periods) - 1.0)


def sharpe_ratio(returns: FloatArray, bars_per_year: float) -> float:
    """mean(r) / std(r, ddof=1) * sqrt(bars_per_year); 0 when returns do not vary."""
    if len(returns) < 2:
        return 0.0
    spread = float(np.std(returns, ddof=1))
    if spread <= 1e-15:
        return 0.0
    return float(np.mean(returns) / spread * np.sqrt(bars_per_year))


def probabilistic_sharpe(returns: FloatArray, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true per-bar Sharpe beats ``benchmark_sharpe`` (Bailey, López de Prado).

    PSR = Phi( (SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) ), with SR the
    per-bar (not annualised) Sharpe, g3 the skewness and g4 the (non-excess) kurtosis of returns.
    Returns 0.5 when returns do not vary (no evidence either way).
    """
    n = len(returns)
    if n < 3:
        return 0.5
    spread = float(np.std(returns, ddof=1))
    if spread <= 1e-15:
        return 0.5
    sr = float(np.mean(returns)) / spread
    skew = float(stats.skew(returns))
    kurt = float(stats.kurtosis(returns, fisher=False))
    denominator = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if denominator <= 0:
        return 0.5
    return float(stats.norm.cdf((sr - benchmark_sharpe) * np.sqrt(n - 1) / np.sqrt(denominator)))


def max_drawdown(equity: FloatArray) -> float:
    """Largest fall from a running peak, as a fraction of it: max(1 - E_t / max_{s<=t} E_s)."""
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def daily_turnover(
    traded_notional: FloatArray, equity_before: FloatArray, days: npt.NDArray[np.datetime64]
) -> float:
    """Traded notional over equity, summed, per trading day: sum(|q p| / E) / #days with bars."""
    trading_days = len(np.unique(days.astype("datetime64[D]")))
    if trading_days == 0:
        return 0.0
    return float(np.sum(traded_notional / equity_before) / trading_days)


def round_trip_pnls(units: FloatArray, close: FloatArray, costs: FloatArray) -> FloatArray:
    """P&L after costs of each holding period: a run of bars holding a position of one sign.

    ``units[t]`` is the position held from bar t's close to bar t+1's; ``costs[t]`` was paid
    trading into it. A trade that closes or flips a position charges the closing trip with the
    share of its cost that closed units.
    """
    pnls: list[float] = []
    side = np.sign(units)
    current = 0.0
    for t in range(len(units)):
        previous = side[t - 1] if t > 0 else 0.0
        if side[t] != previous:
            traded = abs(units[t] - (units[t - 1] if t > 0 else 0.0))
            closed = abs(units[t - 1]) if t > 0 and previous != 0 else 0.0
            closing_cost = costs[t] * (closed / traded) if traded > 0 else 0.0
            if previous != 0:
                pnls.append(current - closing_cost)
            current = -(costs[t] - closing_cost)
        else:
            current -= costs[t]
        if side[t] != 0:
            current += units[t] * (close[t + 1] - close[t])
    if len(units) and side[-1] != 0:
        pnls.append(current)
    return np.asarray(pnls, dtype=np.float64)


def summarise(
    *,
    equity: FloatArray,
    units: FloatArray,
    traded: FloatArray,
    costs: FloatArray,
    close: FloatArray,
    timestamps: npt.NDArray[np.datetime64],
    bars_per_year: float,
) -> PerformanceMetrics:
    """Compute every headline metric of a backtest.

    ``equity`` (steps + 1 marks), ``close`` (steps + 1 bars x instruments) and per-step arrays
    (steps x instruments): ``units`` held after each trade, ``traded`` units and ``costs`` paid.
    """
    returns = bar_returns(equity)
    before = equity[:-1]
    notional = np.abs(traded) * close[:-1]
    trips = np.concatenate(
        [round_trip_pnls(units[:, i], close[:, i], costs[:, i]) for i in range(units.shape[1])]
    )
    exposure = np.abs(units * close[:-1]).sum(axis=1) / before
    return PerformanceMetrics(
        total_return=total_return(equity),
        annualised_return=annualised_return(equity, bars_per_year),
        annualised_volatility=float(np.std(returns, ddof=1) * np.sqrt(bars_per_year))
        if len(returns) > 1
        else 0.0,
        sharpe=sharpe_ratio(returns, bars_per_year),
        sharpe_psr=probabilistic_sharpe(returns),
        max_drawdown=max_drawdown(equity),
        daily_turnover=daily_turnover(notional.sum(axis=1), before, timestamps[:-1]),
        win_rate=float(np.mean(trips > 0)) if len(trips) else 0.0,
        num_trades=int(np.count_nonzero(traded)),
        num_round_trips=len(trips),
        total_cost=float(np.sum(costs)),
        exposure=float(np.mean(exposure)),
        bars=len(units),
    )
