"""Performance metrics of a backtest, after costs. One module; each formula is in its docstring.

Returns r_t are simple per-bar returns of equity E_t. Annualisation uses A bars per year,
measured on the data (so the instrument's calendar, with its closures, counts), never a constant.
Ratios that divide by zero report 0 (a flat record has no risk and no reward to rank).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

from ijules.artifacts import PerformanceMetrics

FloatArray = npt.NDArray[np.float64]
_EPSILON = 1e-15


def bar_returns(equity: FloatArray) -> FloatArray:
    """r_t = E_t / E_{t-1} - 1."""
    return np.asarray(equity[1:] / equity[:-1] - 1.0, dtype=np.float64)


def total_return(equity: FloatArray) -> float:
    """E_T / E_0 - 1."""
    return float(equity[-1] / equity[0] - 1.0)


def annualised_return(returns: FloatArray, bars_per_year: float) -> float:
    """Geometric rate per year: (prod(1 + r_t)) ** (A / n) - 1 (-1 on ruin)."""
    growth = float(np.prod(1.0 + returns))
    if len(returns) == 0:
        return 0.0
    if growth <= 0:
        return -1.0
    return float(growth ** (bars_per_year / len(returns)) - 1.0)


def annualised_volatility(returns: FloatArray, bars_per_year: float) -> float:
    """std(r, ddof=1) * sqrt(A)."""
    return float(np.std(returns, ddof=1) * np.sqrt(bars_per_year)) if len(returns) > 1 else 0.0


def sharpe_ratio(returns: FloatArray, bars_per_year: float) -> float:
    """mean(r) / std(r, ddof=1) * sqrt(A) (risk-free rate 0: intraday cash earns nothing)."""
    if len(returns) < 2:
        return 0.0
    spread = float(np.std(returns, ddof=1))
    if spread <= _EPSILON:
        return 0.0
    return float(np.mean(returns) / spread * np.sqrt(bars_per_year))


def sortino_ratio(returns: FloatArray, bars_per_year: float) -> float:
    """mean(r) * A / (sqrt(mean(min(r, 0)^2)) * sqrt(A)): only losses count as risk."""
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else 0.0
    if downside <= _EPSILON:
        return 0.0
    return float(np.mean(returns) * bars_per_year / (downside * np.sqrt(bars_per_year)))


def drawdowns(equity: FloatArray) -> FloatArray:
    """1 - E_t / max_{s <= t} E_s, per bar."""
    return np.asarray(1.0 - equity / np.maximum.accumulate(equity), dtype=np.float64)


def max_drawdown(equity: FloatArray) -> float:
    """The largest fall from a running peak: max_t (1 - E_t / max_{s <= t} E_s)."""
    return float(np.max(drawdowns(equity)))


def max_drawdown_duration(equity: FloatArray) -> int:
    """The longest stretch of bars spent below a previous peak."""
    under = drawdowns(equity) > _EPSILON
    longest = current = 0
    for flag in under:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def calmar_ratio(returns: FloatArray, equity: FloatArray, bars_per_year: float) -> float:
    """Annualised return / maximum drawdown."""
    worst = max_drawdown(equity)
    return annualised_return(returns, bars_per_year) / worst if worst > _EPSILON else 0.0


def sterling_ratio(
    returns: FloatArray,
    equity: FloatArray,
    timestamps: npt.NDArray[np.datetime64],
    bars_per_year: float,
) -> float:
    """Annualised return / the average of each calendar year's maximum drawdown.

    (Without the historical 10% offset: the offset assumed annual drawdowns of that size.)
    """
    years = timestamps.astype("datetime64[Y]")
    worst = [max_drawdown(equity[years == year]) for year in np.unique(years)]
    average = float(np.mean(worst)) if worst else 0.0
    return annualised_return(returns, bars_per_year) / average if average > _EPSILON else 0.0


def omega_ratio(returns: FloatArray, threshold: float = 0.0) -> float:
    """sum(max(r - t, 0)) / sum(max(t - r, 0)): gains over losses around the threshold."""
    gains = float(np.sum(np.maximum(returns - threshold, 0.0)))
    losses = float(np.sum(np.maximum(threshold - returns, 0.0)))
    return gains / losses if losses > _EPSILON else 0.0


def information_ratio(returns: FloatArray, benchmark: FloatArray, bars_per_year: float) -> float:
    """mean(r - b) / std(r - b, ddof=1) * sqrt(A): the Sharpe ratio of the active return."""
    return sharpe_ratio(np.asarray(returns) - np.asarray(benchmark), bars_per_year)


def tail_ratio(returns: FloatArray) -> float:
    """|95th percentile| / |5th percentile| of returns: the right tail against the left."""
    if len(returns) == 0:
        return 0.0
    left = abs(float(np.percentile(returns, 5)))
    return abs(float(np.percentile(returns, 95))) / left if left > _EPSILON else 0.0


def historical_var_es(returns: FloatArray, confidence: float = 0.95) -> tuple[float, float]:
    """Historical VaR and ES of the bar returns, as positive losses: -q_{1-a}(r), -mean(r <= q)."""
    if len(returns) == 0:
        return 0.0, 0.0
    cutoff = float(np.percentile(returns, 100 * (1 - confidence)))
    return -cutoff, -float(np.mean(returns[returns <= cutoff]))


def probabilistic_sharpe(returns: FloatArray, benchmark_sharpe: float = 0.0) -> float:
    """P(true per-bar Sharpe > SR*): see :mod:`ijules.analytics.significance`."""
    from ijules.analytics.significance import probabilistic_sharpe_ratio

    return probabilistic_sharpe_ratio(returns, benchmark_sharpe)


def cost_bps(total_cost: float, traded_notional: float) -> float:
    """Average cost of a fill in basis points of the notional traded (0 without trades)."""
    return 1e4 * total_cost / traded_notional if traded_notional > 0 else 0.0


def daily_turnover(
    traded_notional: FloatArray, equity_before: FloatArray, timestamps: npt.NDArray[np.datetime64]
) -> float:
    """sum_t |q_t p_t| / E_t over the number of calendar days that have bars."""
    trading_days = len(np.unique(timestamps.astype("datetime64[D]")))
    if trading_days == 0:
        return 0.0
    return float(np.sum(traded_notional / equity_before) / trading_days)


def round_trips(
    units: FloatArray, close: FloatArray, costs: FloatArray, fills: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """P&L after costs, and length in bars, of each holding period (a run of one sign).

    ``units[t]`` is the position traded into at step t, at the price ``fills[t]`` (bar t's close
    when not given), and held to bar t+1's close; until the fill the previous position is held.
    ``costs[t]`` was paid trading into it. A trade that closes or flips a position charges the
    closing trip with the share of its cost that closed units.
    """
    fill = close[:-1] if fills is None else fills
    pnls: list[float] = []
    lengths: list[float] = []
    side = np.sign(units)
    current, length = 0.0, 0
    for t in range(len(units)):
        previous = side[t - 1] if t > 0 else 0.0
        if previous != 0:  # the old position until the fill (nothing with same-bar fills)
            current += units[t - 1] * (fill[t] - close[t])
        if side[t] != previous:
            traded = abs(units[t] - (units[t - 1] if t > 0 else 0.0))
            closed = abs(units[t - 1]) if t > 0 and previous != 0 else 0.0
            closing_cost = costs[t] * (closed / traded) if traded > 0 else 0.0
            if previous != 0:
                pnls.append(current - closing_cost)
                lengths.append(length)
            current, length = -(costs[t] - closing_cost), 0
        else:
            current -= costs[t]
        if side[t] != 0:
            current += units[t] * (close[t + 1] - fill[t])
            length += 1
    if len(units) and side[-1] != 0:
        pnls.append(current)
        lengths.append(length)
    return np.asarray(pnls, dtype=np.float64), np.asarray(lengths, dtype=np.float64)


def round_trip_pnls(
    units: FloatArray, close: FloatArray, costs: FloatArray, fills: FloatArray | None = None
) -> FloatArray:
    """P&L after costs of each holding period (see :func:`round_trips`)."""
    return round_trips(units, close, costs, fills)[0]


def profit_factor(pnls: FloatArray) -> float:
    """Gross profit / gross loss of the round trips."""
    losses = float(-np.sum(pnls[pnls < 0]))
    return float(np.sum(pnls[pnls > 0])) / losses if losses > _EPSILON else 0.0


def summarise(
    *,
    equity: FloatArray,
    units: FloatArray,
    traded: FloatArray,
    costs: FloatArray,
    close: FloatArray,
    timestamps: npt.NDArray[np.datetime64],
    bars_per_year: float,
    benchmark_returns: FloatArray | None = None,
    fills: FloatArray | None = None,
    exit_notional: float = 0.0,
) -> PerformanceMetrics:
    """Compute every metric of a backtest.

    ``equity`` (steps + 1 marks), ``close`` (steps + 1 bars x instruments) and per-step arrays
    (steps x instruments): ``units`` held after each trade, ``traded`` units, ``costs`` paid and
    the ``fills`` prices traded at (each step's close when not given). ``exit_notional`` is the
    value closed at the end when ``costs`` include that exit. The information ratio is measured
    against ``benchmark_returns`` (0 without one).
    """
    prices = close[:-1] if fills is None else fills
    returns = bar_returns(equity)
    before = equity[:-1]
    notional = np.abs(traded) * prices
    trips = [
        round_trips(units[:, i], close[:, i], costs[:, i], prices[:, i])
        for i in range(units.shape[1])
    ]
    pnls = np.concatenate([p for p, _ in trips]) if trips else np.zeros(0)
    lengths = np.concatenate([n for _, n in trips]) if trips else np.zeros(0)
    exposure = np.abs(units * close[:-1]).sum(axis=1) / before
    var_95, es_95 = historical_var_es(returns, 0.95)
    return PerformanceMetrics(
        total_return=total_return(equity),
        annualised_return=annualised_return(returns, bars_per_year),
        annualised_volatility=annualised_volatility(returns, bars_per_year),
        sharpe=sharpe_ratio(returns, bars_per_year),
        sharpe_psr=probabilistic_sharpe(returns),
        sortino=sortino_ratio(returns, bars_per_year),
        calmar=calmar_ratio(returns, equity, bars_per_year),
        sterling=sterling_ratio(returns, equity, timestamps, bars_per_year),
        omega=omega_ratio(returns),
        information_ratio=0.0
        if benchmark_returns is None
        else information_ratio(returns, benchmark_returns, bars_per_year),
        tail_ratio=tail_ratio(returns),
        skewness=float(stats.skew(returns)) if len(returns) > 2 and np.std(returns) > 0 else 0.0,
        excess_kurtosis=float(stats.kurtosis(returns))
        if len(returns) > 3 and np.std(returns) > 0
        else 0.0,
        var_95=var_95,
        es_95=es_95,
        max_drawdown=max_drawdown(equity),
        max_drawdown_bars=max_drawdown_duration(equity),
        win_rate=float(np.mean(pnls > 0)) if len(pnls) else 0.0,
        profit_factor=profit_factor(pnls),
        daily_turnover=daily_turnover(notional.sum(axis=1), before, timestamps[:-1]),
        num_trades=int(np.count_nonzero(traded)),
        num_round_trips=len(pnls),
        avg_holding_bars=float(np.mean(lengths)) if len(lengths) else 0.0,
        total_cost=float(np.sum(costs)),
        traded_notional=float(np.sum(notional)),
        cost_bps=cost_bps(float(np.sum(costs)), float(np.sum(notional)) + exit_notional),
        exposure=float(np.mean(exposure)),
        bars=len(units),
    )
