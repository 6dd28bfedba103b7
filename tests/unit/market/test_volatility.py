"""GARCH and regime-switching fits: the global optimum, a capped persistence, and failed fits
counted and never used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.market.config import RegimesConfig, VolatilityRegimeConfig
from ijules.market.regimes import RegimeSettings, detect_regimes_with_fits
from ijules.market.volatility import (
    GarchParams,
    _likelihood,
    fit_garch,
    garch_forecast,
    high_volatility_probability,
)
from tests.conftest import SAMPLES

CAP = 0.999


def simulate_garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    returns = np.empty(n)
    variance = omega / max(1.0 - alpha - beta, 1e-3)
    for t in range(n):
        returns[t] = np.sqrt(variance) * rng.standard_normal()
        variance = omega + alpha * returns[t] ** 2 + beta * variance
    return returns


@pytest.fixture(scope="module")
def with_dead_stretch() -> np.ndarray:
    """A GARCH series with 350 bars of exact zeros: windows inside them have no variance."""
    returns = simulate_garch(1600, 2e-6, 0.1, 0.85, seed=7)
    returns[700:1050] = 0.0
    return returns


@pytest.fixture(scope="module")
def btc_returns() -> np.ndarray:
    close = pd.read_csv(SAMPLES / "btcusd_1h.csv.gz")["close"]
    return np.asarray(np.log(close).diff().fillna(0.0).to_numpy())


def test_likelihood_gradient_and_hessian_match_finite_differences(btc_returns) -> None:
    window = btc_returns[5000:6000]
    z2 = window**2 / np.mean(window**2)
    step = 1e-6
    for theta in (np.array([0.9, 0.1]), np.array([0.5, 0.7]), np.array([0.99, 0.02])):
        at = _likelihood(theta, z2, hessian=True)
        for i, unit in enumerate(np.eye(2)):
            up = _likelihood(theta + step * unit, z2)
            down = _likelihood(theta - step * unit, z2)
            slope = (up.value - down.value) / (2 * step)
            assert at.gradient[i] == pytest.approx(slope, rel=1e-6, abs=1e-9)
            curvature = (up.gradient - down.gradient) / (2 * step)
            assert at.hessian[i] == pytest.approx(curvature, rel=1e-5, abs=1e-7)


def test_fit_agrees_with_arch_on_a_simulated_garch() -> None:
    from arch import arch_model

    returns = simulate_garch(4000, 3e-6, 0.08, 0.9, seed=1)
    ours = fit_garch(returns, max_persistence=CAP)
    theirs = arch_model(100 * returns, mean="Zero", vol="GARCH", p=1, q=1).fit(disp="off")
    assert ours is not None
    assert ours.params.alpha == pytest.approx(theirs.params["alpha[1]"], abs=0.02)
    assert ours.params.beta == pytest.approx(theirs.params["beta[1]"], abs=0.03)
    assert ours.params.alpha == pytest.approx(0.08, abs=0.03)
    assert ours.params.beta == pytest.approx(0.9, abs=0.04)


def test_fit_finds_the_better_of_two_maxima_whatever_it_starts_from(btc_returns) -> None:
    # This window's likelihood has a persistent maximum (beta ~ 0.86) and a better ARCH-like
    # one (beta = 0): a local optimizer started in the wrong basin stays there.
    window = btc_returns[6250:7250]
    z2 = window**2 / np.mean(window**2)
    grid = [
        np.array([a + b, a / (a + b)])
        for a in np.arange(0.01, 1.0, 0.02)
        for b in np.arange(0.0, 1.0, 0.02)
        if a + b <= CAP
    ]
    best_on_grid = min(_likelihood(point, z2).value for point in grid)
    trap = GarchParams(0.0, 0.034, 0.863)  # the persistent maximum, as a warm start
    cold = fit_garch(window, max_persistence=CAP)
    warm = fit_garch(window, max_persistence=CAP, previous=trap)
    assert cold is not None and warm is not None
    assert cold.params == warm.params
    assert cold.params.beta == 0.0
    found = np.array([cold.params.persistence, cold.params.alpha / cold.params.persistence])
    assert _likelihood(found, z2).value <= best_on_grid


def test_persistence_is_capped_and_counted() -> None:
    returns = simulate_garch(3000, 1e-8, 0.1, 0.9, seed=3)  # integrated: alpha + beta = 1
    forecast = garch_forecast(returns, window=1000, refit_every=500, max_persistence=0.95)
    assert forecast.fits.refits == 4
    assert forecast.fits.at_persistence_bound == 4
    for refit in forecast.refits:
        assert refit.params is not None
        assert refit.params[1] + refit.params[2] == pytest.approx(0.95, abs=1e-12)


def test_a_window_without_variance_fails_and_the_previous_parameters_carry_on(
    with_dead_stretch,
) -> None:
    returns = with_dead_stretch
    forecast = garch_forecast(returns, window=300, refit_every=50, max_persistence=CAP)
    failed = [refit for refit in forecast.refits if not refit.converged]
    assert [refit.bar for refit in failed] == [1000, 1050]
    assert forecast.fits.failed == 2
    kept = next(refit for refit in forecast.refits if refit.bar == 950).params
    assert kept is not None
    assert all(refit.params == kept for refit in failed)
    # The forecasts run on from the kept parameters until the next fit succeeds, at bar 1100.
    omega, alpha, beta = kept
    variance = forecast.values[999] ** 2
    for t in range(1000, 1100):
        variance = omega + alpha * returns[t] ** 2 + beta * variance
        assert forecast.values[t] == pytest.approx(np.sqrt(variance), rel=1e-12)
    after = next(refit for refit in forecast.refits if refit.bar == 1100)
    assert after.converged and after.params != kept
    assert np.all(np.isfinite(forecast.values)) and np.all(forecast.values > 0)


def test_a_failed_regime_switching_fit_keeps_the_previous_parameters(with_dead_stretch) -> None:
    forecast = high_volatility_probability(
        with_dead_stretch, window=300, refit_every=250, max_persistence=CAP
    )
    converged = {refit.bar: refit.converged for refit in forecast.refits}
    assert converged == {300: True, 550: True, 800: False, 1050: False, 1300: False, 1550: True}
    kept = forecast.refits[1].params
    assert all(refit.params == kept for refit in forecast.refits[2:5])
    assert forecast.fits.failed == 3
    probability = forecast.values[300:]
    assert np.all(np.isfinite(probability))
    assert probability.min() >= 0.0 and probability.max() <= 1.0 + 1e-12


def test_detect_regimes_reports_the_failed_fits(with_dead_stretch) -> None:
    close = pd.Series(100.0 * np.exp(np.cumsum(with_dead_stretch)))
    settings = RegimeSettings(
        VolatilityRegimeConfig(),
        RegimesConfig(garch_window_bars=300, garch_refit_bars=50, long_run_window_bars=100),
        8766.0,
    )
    frame, fits = detect_regimes_with_fits(close, settings)
    assert fits.garch.refits == 26 and fits.garch.failed == 2
    assert fits.markov is not None and fits.markov.refits == 6 and fits.markov.failed == 3
    assert frame["garch_sigma"].notna().all()
    off = RegimeSettings(
        settings.thresholds,
        settings.regimes.model_copy(update={"markov_probabilities": False}),
        8766.0,
    )
    assert detect_regimes_with_fits(close, off)[1].markov is None


def test_a_jump_far_beyond_both_states_reads_as_the_high_state_not_nan() -> None:
    """A bar that triples the price has zero likelihood under both fitted states; the filter
    must still say where it is (high volatility), for it and for the bars after it."""
    returns = simulate_garch(900, 2e-6, 0.1, 0.85, seed=11)
    returns[820] = np.log(3.0)
    forecast = high_volatility_probability(
        returns, window=300, refit_every=250, max_persistence=CAP
    )
    probability = forecast.values[300:]
    assert np.all(np.isfinite(probability))
    assert forecast.values[820] > 0.999
