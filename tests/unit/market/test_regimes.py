"""Regimes use no future data, and label the real crises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.market.config import RegimesConfig, VolatilityRegimeConfig
from ijules.market.regimes import RegimeSettings, detect_regimes, regime_labels
from ijules.market.volatility import garch_forecast
from tests.conftest import SAMPLES

DAILY = RegimeSettings(
    VolatilityRegimeConfig(),
    RegimesConfig(
        garch_window_bars=500,
        garch_refit_bars=50,
        long_run_window_bars=252,
        recovery_bars=20,
        trend_window_bars=20,
        markov_probabilities=True,
    ),
    252.0,
)


@pytest.fixture(scope="module")
def index() -> pd.Series:
    frame = pd.read_csv(SAMPLES / "sp500_daily_close.csv.gz")
    return pd.Series(frame["SP500"].to_numpy(), index=pd.to_datetime(frame["date"]))


def test_changing_the_future_moves_no_earlier_regime(index) -> None:
    history = index.iloc[:2000]
    cut = 1400
    shocked = history.copy()
    shocked.iloc[cut + 1 :] *= np.linspace(1.0, 0.4, len(history) - cut - 1)
    before = detect_regimes(history, DAILY).iloc[: cut + 1]
    after = detect_regimes(shocked, DAILY).iloc[: cut + 1]
    pd.testing.assert_frame_equal(before, after)
    assert (
        not detect_regimes(shocked, DAILY)
        .iloc[cut + 1 :]
        .equals(detect_regimes(history, DAILY).iloc[cut + 1 :])
    )


def test_garch_forecast_tracks_a_volatility_jump() -> None:
    rng = np.random.default_rng(0)
    returns = np.concatenate([rng.normal(0, 0.01, 1500), rng.normal(0, 0.04, 300)])
    sigma = garch_forecast(returns, window=1000, refit_every=100, max_persistence=0.999).values
    assert np.median(sigma[1100:1500]) == pytest.approx(0.01, rel=0.2)
    assert np.median(sigma[1650:]) == pytest.approx(0.04, rel=0.3)


def test_2008_and_2020_are_crises_and_2017_is_calm(index) -> None:
    frame = detect_regimes(index, DAILY)
    labels = pd.Series(regime_labels(frame), index=index.index)
    assert (labels["2008-10"] == "crisis_mode").any()
    assert (labels["2020-03"] == "crisis_mode").any()
    assert not (labels["2017"] == "crisis_mode").any()
    assert labels["2017"].str.startswith("low_volatility").mean() > 0.8
    probability = frame["p_high_volatility"]
    assert probability["2008-10-01":"2008-12-31"].mean() > probability["2017"].mean() + 0.5
