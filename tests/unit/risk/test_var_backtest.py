"""Kupiec, Christoffersen and the Basel traffic light against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ijules.risk.var_backtest import backtest, christoffersen, kupiec, traffic_light


def test_kupiec_by_hand() -> None:
    # 10 exceptions in 250 days at 99%: the expected count is 2.5.
    null = 240 * math.log(0.99) + 10 * math.log(0.01)
    alternative = 240 * math.log(0.96) + 10 * math.log(0.04)
    result = kupiec(10, 250, 0.99)
    assert result.statistic == pytest.approx(-2 * (null - alternative))
    assert result.statistic == pytest.approx(12.955, abs=1e-3)
    assert result.p_value == pytest.approx(stats.chi2.sf(12.955, 1), rel=1e-3)
    assert kupiec(0, 250, 0.99).statistic == pytest.approx(-2 * 250 * math.log(0.99))


def test_christoffersen_by_hand() -> None:
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    # Transitions: n00 = 4, n01 = 2, n10 = 2, n11 = 1.
    pi0, pi1, pi = 2 / 6, 1 / 3, 3 / 9
    null = 6 * math.log(1 - pi) + 3 * math.log(pi)
    alternative = 4 * math.log(1 - pi0) + 2 * math.log(pi0) + 2 * math.log(1 - pi1) + math.log(pi1)
    independence, conditional = christoffersen(hits, 0.95)
    assert independence.statistic == pytest.approx(-2 * (null - alternative), abs=1e-12)
    assert conditional.statistic == pytest.approx(
        independence.statistic + kupiec(3, 10, 0.95).statistic
    )
    assert conditional.p_value == pytest.approx(stats.chi2.sf(conditional.statistic, 2))


def test_clustered_exceptions_fail_independence() -> None:
    clustered = np.zeros(500, dtype=bool)
    clustered[100:110] = True  # ten in a row
    spread = np.zeros(500, dtype=bool)
    spread[::50] = True  # ten far apart
    assert christoffersen(clustered, 0.98)[0].p_value < 0.01
    assert christoffersen(spread, 0.98)[0].p_value > 0.05


@pytest.mark.parametrize(
    ("exceptions", "zone"),
    [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red"), (15, "red")],
)
def test_basel_traffic_light_boundaries(exceptions, zone) -> None:
    assert traffic_light(exceptions, 250, 0.99) == zone


def test_backtest_counts_exceptions_against_prior_forecasts() -> None:
    returns = np.array([np.nan] * 3 + [-0.01, -0.03, 0.02, -0.05, 0.0] * 60)
    forecasts = np.where(np.isnan(returns), np.nan, 0.02)
    result = backtest("fixed", returns, forecasts, 0.99)
    assert result.observations == 300
    assert result.exceptions == 120  # the -3% and -5% days
    assert result.zone == "red" and result.kupiec_p < 1e-6
