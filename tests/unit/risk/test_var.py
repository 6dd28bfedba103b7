"""VaR and ES, each method against an independent computation and known distributions."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from scipy import integrate, stats

from ijules.risk import var
from ijules.risk.var_backtest import rolling_var


def test_historical_matches_a_sorted_sample_by_hand(sp500_returns) -> None:
    window = sp500_returns[-1000:]
    result = var.historical(window, 0.99)
    losses = np.sort(-window)
    position = 0.99 * (len(losses) - 1)  # linear interpolation between order statistics
    low, high = int(np.floor(position)), int(np.ceil(position))
    expected = losses[low] + (position - low) * (losses[high] - losses[low])
    assert result.var == pytest.approx(expected)
    assert result.es == pytest.approx(losses[losses >= expected].mean())
    assert result.es >= result.var > 0


def test_parametric_normal_matches_the_standard_library(sp500_returns) -> None:
    window = sp500_returns[-500:]
    fitted = statistics.NormalDist(statistics.fmean(window), statistics.stdev(window))
    result = var.parametric_normal(window, 0.95)
    assert result.var == pytest.approx(-fitted.inv_cdf(0.05), rel=1e-9)
    # ES of a normal: mu + sigma pdf(z) / (1 - a), in losses; here by numerical integration.
    tail, _ = integrate.quad(lambda x: -x * fitted.pdf(x), -1.0, fitted.inv_cdf(0.05))
    assert result.es == pytest.approx(tail / 0.05, rel=1e-6)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_student_t_recovers_a_known_distribution(confidence) -> None:
    rng = np.random.default_rng(1)
    sample = 0.01 * rng.standard_t(4, size=200_000)
    result = var.parametric_student_t(sample, confidence)
    true_var = 0.01 * stats.t.ppf(confidence, 4)
    assert result.var == pytest.approx(true_var, rel=0.02)
    true_es, _ = integrate.quad(lambda x: x * stats.t.pdf(x, 4), stats.t.ppf(confidence, 4), np.inf)
    assert result.es == pytest.approx(0.01 * true_es / (1 - confidence), rel=0.03)


def test_monte_carlo_is_seeded_and_agrees_with_the_closed_form(sp500_returns) -> None:
    window = sp500_returns[-750:]
    first = var.monte_carlo(window, 0.99, paths=200_000, seed=3)
    assert first == var.monte_carlo(window, 0.99, paths=200_000, seed=3)
    closed = var.parametric_student_t(window, 0.99)
    assert first.var == pytest.approx(closed.var, rel=0.03)
    assert first.es == pytest.approx(closed.es, rel=0.05)


def test_extreme_value_finds_a_pareto_tail() -> None:
    rng = np.random.default_rng(2)
    # Losses with an exact Pareto tail above their 90% quantile: VaR 99% is known in closed form.
    sample = -(stats.pareto.rvs(3.0, size=100_000, random_state=rng) - 1.0)
    result = var.extreme_value(sample, 0.99, threshold_quantile=0.90)
    assert result.var == pytest.approx(stats.pareto.ppf(0.99, 3.0) - 1.0, rel=0.05)
    true_es = (stats.pareto.ppf(0.99, 3.0) * 3.0 / 2.0) - 1.0  # E[X | X > q] = q a / (a - 1)
    assert result.es == pytest.approx(true_es, rel=0.08)


def test_every_method_orders_es_beyond_var_on_real_returns(sp500_returns) -> None:
    window = sp500_returns[-1000:]
    for name, estimate in var.estimators(paths=20_000, seed=0).items():
        for confidence in (0.95, 0.99):
            result = estimate(window, confidence)
            assert result.es > result.var > 0, name
            assert result.method == name
    # Fat tails: at 99% the t, EVT and history see more loss than the normal does.
    normal = var.parametric_normal(window, 0.99).var
    assert var.historical(window, 0.99).var > normal
    assert var.extreme_value(window, 0.99, threshold_quantile=0.9).var > normal


def test_rolling_forecasts_use_only_the_past(sp500_returns) -> None:
    returns = sp500_returns[:1500].copy()
    before = rolling_var(returns, var.historical, 0.99, window=250)
    shocked = returns.copy()
    shocked[1000:] *= 5.0
    after = rolling_var(shocked, var.historical, 0.99, window=250)
    np.testing.assert_array_equal(before[:1001], after[:1001])  # the forecast for bar 1000 too
    assert not np.array_equal(before[1001:], after[1001:])


def test_too_few_returns_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 20 returns"):
        var.historical(np.zeros(5), 0.99)
