"""The risk report: VaR backtests and circuit-breaker replays on a daily index series.

- VaR: every configured method at every confidence level forecasts each day's loss from the
  ``tail_expectation_window`` days before it; the forecasts are scored with Kupiec,
  Christoffersen and the Basel traffic light (:mod:`ijules.risk.var_backtest`).
- Breakers: the index is replayed as bars through the trading environment, fully invested,
  and every change of trading state the risk engine makes inside each window is counted by
  reason; the calm window is the control, where nothing should fire. The index has no volume,
  so the replay pays proportional costs only (no impact model without liquidity data).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ijules.analytics.metrics import max_drawdown
from ijules.artifacts import (
    BreakerEvent,
    BreakerReplay,
    BreakersReport,
    NormStats,
    VarBacktest,
    VarBacktestReport,
)
from ijules.config import Config
from ijules.data.features import fit_counts
from ijules.env.backtest import baseline_env, constant, run_backtest
from ijules.env.market_data import MarketData, build_market
from ijules.errors import IngestError
from ijules.market.regimes import RegimeFits, RegimeSettings, detect_regimes_with_fits
from ijules.risk.var import estimators
from ijules.risk.var_backtest import backtest, rolling_var
from ijules.sim import codes

log = logging.getLogger(__name__)

# Cheap methods are re-estimated every day; the fitted ones every ``refit_every`` days.
_DAILY = {"historical_simulation", "parametric_normal"}
TRADING_DAYS = 252.0


def load_daily(config: Config, source: Path) -> pd.Series:
    """The daily closes of the report's column, indexed by UTC date."""
    if not source.is_file():
        raise IngestError(f"daily series not found: {source}")
    report = config.risk_report
    frame = pd.read_csv(source)
    for column in (report.date_column, report.column):
        if column not in frame:
            raise IngestError(f"{source}: missing column {column!r}")
    index = pd.DatetimeIndex(pd.to_datetime(frame[report.date_column], utc=True))
    return pd.Series(frame[report.column].to_numpy(dtype=np.float64), index=index).dropna()


class RiskReport(NamedTuple):
    """The two files of the risk report."""

    var: VarBacktestReport
    breakers: BreakersReport


def var_backtests(config: Config, closes: pd.Series) -> list[VarBacktest]:
    """Backtest every VaR method at every confidence level on the series' daily returns."""
    models = config.risk_models
    window = models.expected_shortfall.tail_expectation_window
    start = config.risk_report.var_start
    if start is not None:
        # Keep one estimation window of history before the first day scored.
        first = int(closes.index.searchsorted(pd.Timestamp(start, tz="UTC")))
        closes = closes.iloc[max(first - window - 1, 0) :]
    returns = np.log(closes).diff().to_numpy()[1:]
    methods = estimators(
        paths=models.monte_carlo_paths,
        seed=config.seed,
        threshold_quantile=models.evt_threshold_quantile,
    )
    results = []
    for name in models.var_models:
        for confidence in models.expected_shortfall.confidence_levels:
            refit = 1 if name in _DAILY else models.refit_every
            forecasts = rolling_var(
                returns, methods[name], confidence, window=window, refit_every=refit
            )
            scored = backtest(name, returns, forecasts, confidence)
            results.append(scored)
            log.info(
                "VaR %s %.0f%%: %d exceptions in %d (%.2f%%), Kupiec p %.3f, zone %s",
                name,
                100 * confidence,
                scored.exceptions,
                scored.observations,
                100 * scored.exception_rate,
                scored.kupiec_p,
                scored.zone,
            )
    return results


def daily_regimes(config: Config, closes: pd.Series) -> tuple[pd.DataFrame, RegimeFits]:
    """The daily series' regimes (``risk_report.regimes``: daily windows) and their refits."""
    settings = RegimeSettings(
        config.microstructure.regime_detection, config.risk_report.regimes, TRADING_DAYS
    )
    return detect_regimes_with_fits(closes, settings)


def daily_market(
    config: Config, closes: pd.Series, regimes: pd.DataFrame | None = None
) -> MarketData:
    """The daily series as one instrument's bars, with its regimes (computed if not given)."""
    frame = pd.DataFrame({config.risk_report.column: closes})
    returns = np.log(closes).diff().fillna(0.0)
    features = pd.DataFrame({"ret_1": returns, "ret_5": np.log(closes).diff(5).fillna(0.0)})
    if regimes is None:
        regimes = daily_regimes(config, closes)[0]
    return build_market(
        frame,
        pd.DataFrame(np.nan, index=frame.index, columns=frame.columns),
        features,
        config=config,
        bars_per_year=TRADING_DAYS,
        regimes={config.risk_report.column: regimes},
    )


def replay_breakers(
    config: Config, closes: pd.Series, regimes: pd.DataFrame | None = None
) -> dict[str, BreakerReplay]:
    """Replay each window fully invested; count every breaker that fired, by reason."""
    release = config.risk_management.halt_release.model_copy(
        update={"cooldown_bars": config.risk_report.cooldown_bars}
    )
    risk = config.risk_management.model_copy(update={"halt_release": release})
    # The index has no volume: only proportional costs, so the replay follows the index's path.
    costs = config.microstructure.model_copy(update={"enabled": False})
    replay_config = config.model_copy(update={"risk_management": risk, "microstructure": costs})
    market = daily_market(replay_config, closes, regimes)
    values = market.features
    norm = NormStats(mean=tuple(values.mean(axis=0)), std=tuple(values.std(axis=0) + 1e-12))
    stamps = pd.DatetimeIndex(market.timestamps).tz_localize("UTC")
    results: dict[str, BreakerReplay] = {}
    for name, (first, last) in config.risk_report.windows.items():
        inside = (stamps >= pd.Timestamp(first, tz="UTC")) & (
            stamps <= pd.Timestamp(last, tz="UTC")
        )
        if inside.sum() < 2:
            raise IngestError(f"window {name} ({first} to {last}) holds fewer than 2 days")
        window = market.rows(inside)
        env = baseline_env(replay_config, window, norm, 5.0)
        result = run_backtest(env, constant(1.0, window.n_instruments))
        changes = result.risk_events
        # Releases (codes from RELEASED_TIME up) lift a breaker; they are not breakers firing.
        fired = Counter(changes["reason"][changes["code"] < codes.RELEASED_TIME])
        index_return = float(window.close[-1, 0] / window.close[0, 0] - 1.0)
        replay = BreakerReplay(
            start=str(first),
            end=str(last),
            days=int(inside.sum()),
            index_return=index_return,
            replay_return=float(result.equity[-1] / result.equity[0] - 1.0),
            replay_max_drawdown=max_drawdown(result.equity),
            breakers_fired=int(sum(fired.values())),
            by_reason=dict(fired),
            refusals=result.risk_refusals,
            events=[
                BreakerEvent(date=ts.date().isoformat(), state=state, reason=reason)
                for ts, state, reason in zip(
                    changes["timestamp"], changes["state"], changes["reason"], strict=True
                )
            ],
        )
        results[name] = replay
        log.info(
            "replay %s: index %.1f%%, replay %.1f%%, %d breaker(s) fired",
            name,
            100 * index_return,
            100 * replay.replay_return,
            replay.breakers_fired,
        )
    return results


def run_risk_report(
    config: Config, *, source: Path, var_output: Path, breakers_output: Path
) -> RiskReport:
    """Write the VaR backtests and the breaker replays."""
    closes = load_daily(config, source)
    var = VarBacktestReport(
        series=config.risk_report.column, backtests=var_backtests(config, closes)
    )
    var.write(var_output)
    regimes, fits = daily_regimes(config, closes)
    breakers = BreakersReport(
        series=config.risk_report.column,
        windows=replay_breakers(config, closes, regimes),
        regime_fits=fit_counts(fits),
    )
    breakers.write(breakers_output)
    return RiskReport(var, breakers)
