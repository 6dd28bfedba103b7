"""Market regimes: low / medium / high volatility x trending / ranging, crisis and recovery.

- volatility: the GARCH one-step forecast, annualised, against
  ``microstructure.regime_detection``'s thresholds;
- trend: the efficiency ratio against ``trend_strength_threshold``;
- crisis: volatility at least ``crisis_volatility_ratio`` times its long-run level (the trailing
  median forecast) while the price is at least ``crisis_drawdown`` below its trailing high;
- recovery: no crisis now, but one within the last ``recovery_bars``.

Labels follow the master plan's classes: ``crisis_mode``, ``recovery_mode``, else
``{low,medium,high}_volatility_{trending,ranging}``. Everything at bar t uses bars up to t.

Stability of the labels: the volatility forecast is a smooth function of the returns (see
``ijules.market.volatility``), so last-bit noise (another BLAS kernel, a 1e-12 perturbation)
moves it by ~1e-11 relative; a volatility or crisis label flips only where the forecast, or its
ratio to the long-run level, lies that close to a threshold. The forecast has a continuous
distribution, so that is vanishingly unlikely: on the BTC 1h and S&P 500 daily samples the
nearest bar is 6e-5 relative from a threshold. Rounding the forecast before the comparison, or a
hysteresis band, would not lower those odds (they move the boundary, they do not remove it), so
neither is used. The efficiency ratio and the drawdown are different: they are ratios of prices
on a tick grid, which can equal a threshold exactly (3 ticks of 5 is 0.6) and then sit on it to
the last bit, so they are compared rounded to ``_TIE_DECIMALS`` decimals and such a tie resolves
the same way on every machine.

:func:`detect_regimes_with_fits` also reports how the model fits went (:class:`RegimeFits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.market.config import RegimesConfig, VolatilityRegimeConfig
from ijules.market.trend import efficiency_ratio
from ijules.market.volatility import FitDiagnostics, garch_forecast, high_volatility_probability

LOW, MEDIUM, HIGH = 0, 1, 2
VOLATILITY_NAMES = ("low", "medium", "high")
CRISIS, RECOVERY = "crisis_mode", "recovery_mode"
REGIME_COLUMNS = (
    "garch_sigma",
    "volatility_ratio",
    "volatility_regime",
    "efficiency_ratio",
    "trending",
    "crisis",
    "recovery",
    "p_high_volatility",
)
_TIE_DECIMALS = 9  # price ratios on a tick grid tie with a threshold exactly, or not within 1e-9


@dataclass(frozen=True)
class RegimeSettings:
    """Everything regime detection reads from the configuration."""

    thresholds: VolatilityRegimeConfig
    regimes: RegimesConfig
    bars_per_year: float


@dataclass(frozen=True)
class RegimeFits:
    """How the regime models' refits went, for the caller to log or record.

    ``markov`` is None when the Markov-switching probabilities are off.
    """

    garch: FitDiagnostics
    markov: FitDiagnostics | None


def detect_regimes(close: pd.Series, settings: RegimeSettings) -> pd.DataFrame:
    """Regime columns for one instrument's closes (index preserved); see the module docstring."""
    return detect_regimes_with_fits(close, settings)[0]


def detect_regimes_with_fits(
    close: pd.Series, settings: RegimeSettings
) -> tuple[pd.DataFrame, RegimeFits]:
    """:func:`detect_regimes`, and the counts of its model refits (failed ones, ones on the cap)."""
    regimes, thresholds = settings.regimes, settings.thresholds
    returns = np.log(close).diff().to_numpy(dtype=np.float64)
    garch = garch_forecast(
        returns,
        window=regimes.garch_window_bars,
        refit_every=regimes.garch_refit_bars,
        max_persistence=regimes.garch_max_persistence,
    )
    sigma = garch.values
    annualised = sigma * np.sqrt(settings.bars_per_year)
    volatility_regime = np.where(
        annualised > thresholds.volatility_threshold_high,
        HIGH,
        np.where(annualised < thresholds.volatility_threshold_low, LOW, MEDIUM),
    )
    normal = (
        pd.Series(sigma).rolling(regimes.long_run_window_bars, min_periods=1).median().to_numpy()
    )
    ratio = np.divide(sigma, normal, out=np.ones_like(sigma), where=normal > 0)
    trend = efficiency_ratio(close.reset_index(drop=True), regimes.trend_window_bars)
    trending = np.round(np.nan_to_num(trend), _TIE_DECIMALS) > thresholds.trend_strength_threshold
    high_water = close.rolling(regimes.long_run_window_bars, min_periods=1).max().to_numpy()
    drawdown = 1.0 - close.to_numpy() / high_water
    crisis = (ratio >= regimes.crisis_volatility_ratio) & (
        np.round(drawdown, _TIE_DECIMALS) >= regimes.crisis_drawdown
    )
    last_crisis = pd.Series(np.where(crisis, np.arange(len(crisis)), np.nan)).ffill().to_numpy()
    bars_since = np.arange(len(crisis)) - last_crisis
    recovery = ~crisis & np.isfinite(bars_since) & (bars_since <= regimes.recovery_bars)
    markov = (
        high_volatility_probability(
            returns,
            window=regimes.garch_window_bars,
            refit_every=max(regimes.garch_refit_bars, 250),
            max_persistence=regimes.garch_max_persistence,
        )
        if regimes.markov_probabilities
        else None
    )
    probability = np.full(len(close), np.nan) if markov is None else markov.values
    frame = pd.DataFrame(
        {
            "garch_sigma": sigma,
            "volatility_ratio": ratio,
            "volatility_regime": volatility_regime.astype(np.int64),
            "efficiency_ratio": trend,
            "trending": trending,
            "crisis": crisis,
            "recovery": recovery,
            "p_high_volatility": probability,
        },
        index=close.index,
    )
    return frame, RegimeFits(garch.fits, None if markov is None else markov.fits)


def regime_labels(frame: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The master plan's class of each bar."""
    names = np.array(VOLATILITY_NAMES)[frame["volatility_regime"].to_numpy()]
    trend = np.where(frame["trending"].to_numpy(), "trending", "ranging")
    labels = np.char.add(np.char.add(names.astype(str), "_volatility_"), trend)
    labels = np.where(frame["recovery"].to_numpy(), RECOVERY, labels)
    return np.asarray(np.where(frame["crisis"].to_numpy(), CRISIS, labels))
