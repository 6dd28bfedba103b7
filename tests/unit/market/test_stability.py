"""Noise in the last bits of the returns (another BLAS kernel, another machine) moves no regime.

The returns are perturbed by 1e-12 relative noise, r (1 + 1e-12 z), over whole samples with the
settings the pipeline uses; the volatility forecasts must move by less than 1e-6 relative, the
regime-switching probability by less than 1e-6, and no label may flip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ijules.config import load_config
from ijules.data.features import bars_per_year
from ijules.market.regimes import RegimeSettings, detect_regimes_with_fits
from tests.conftest import REPO, SAMPLES

LABELS = ["volatility_regime", "crisis", "recovery", "trending"]
TRADING_DAYS = 252.0  # what the risk report annualises its daily series with


def perturbed(close: pd.Series, seed: int) -> pd.Series:
    """``close`` whose log returns r became r (1 + 1e-12 z), z standard normal."""
    returns = np.log(close).diff().fillna(0.0).to_numpy()
    z = np.random.default_rng(seed).standard_normal(len(close))
    return close * np.exp(np.cumsum(1e-12 * z * returns))


def assert_stable(close: pd.Series, settings: RegimeSettings) -> None:
    frame, fits = detect_regimes_with_fits(close, settings)
    noisy, noisy_fits = detect_regimes_with_fits(perturbed(close, seed=2026), settings)
    assert noisy_fits == fits
    assert fits.garch.failed == 0
    moved = np.abs(noisy["garch_sigma"] / frame["garch_sigma"] - 1.0)
    assert moved.max() < 1e-6
    for label in LABELS:
        flipped = frame.index[noisy[label] != frame[label]]
        assert flipped.empty, f"{label} flipped at {list(flipped[:5])}"
    probability, noisy_probability = frame["p_high_volatility"], noisy["p_high_volatility"]
    pd.testing.assert_series_equal(probability.isna(), noisy_probability.isna())
    assert (noisy_probability - probability).abs().fillna(0.0).max() < 1e-6


def test_noise_moves_no_regime_of_the_btc_hourly_sample(btc_1h: pd.DataFrame) -> None:
    config = load_config(REPO / "params.yaml")
    settings = RegimeSettings(
        config.microstructure.regime_detection, config.regimes, bars_per_year(btc_1h["timestamp"])
    )
    assert settings.regimes.markov_probabilities
    assert_stable(btc_1h["close"].astype("float64"), settings)


def test_noise_moves_no_regime_of_the_daily_sp500_series() -> None:
    config = load_config(REPO / "params.yaml")
    frame = pd.read_csv(SAMPLES / "sp500_daily_close.csv.gz")
    close = pd.Series(
        frame["SP500"].to_numpy(dtype=np.float64), index=pd.to_datetime(frame["date"])
    )
    settings = RegimeSettings(
        config.microstructure.regime_detection, config.risk_report.regimes, TRADING_DAYS
    )
    assert (settings.regimes.garch_window_bars, settings.regimes.garch_refit_bars) == (500, 20)
    assert_stable(close, settings)
