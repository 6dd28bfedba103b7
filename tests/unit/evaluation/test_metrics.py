from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ijules.evaluation.metrics import (
    annualised_return,
    bar_returns,
    daily_turnover,
    max_drawdown,
    probabilistic_sharpe,
    round_trip_pnls,
    sharpe_ratio,
    total_return,
)


def test_returns_and_total_return_by_hand() -> None:
    equity = np.array([100.0, 110.0, 99.0, 108.9])
    np.testing.assert_allclose(bar_returns(equity), [0.10, -0.10, 0.10])
    assert total_return(equity) == pytest.approx(0.089)


def test_sharpe_by_hand() -> None:
    returns = np.array([0.01, -0.02, 0.03, 0.00])
    mean, std = 0.005, math.sqrt((0.005**2 + 0.025**2 + 0.025**2 + 0.005**2) / 3)
    assert sharpe_ratio(returns, 252) == pytest.approx(mean / std * math.sqrt(252))
    assert sharpe_ratio(np.zeros(10), 252) == 0.0


def test_max_drawdown_by_hand() -> None:
    equity = np.array([100.0, 120.0, 90.0, 130.0, 104.0, 140.0])
    assert max_drawdown(equity) == pytest.approx(0.25)  # 120 -> 90
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0


def test_annualised_return_compounds() -> None:
    equity = np.array([100.0, 110.0, 121.0])  # +10% per bar
    assert annualised_return(bar_returns(equity), bars_per_year=4) == pytest.approx(1.1**4 - 1)


def test_daily_turnover_divides_by_days_with_bars() -> None:
    days = np.array(
        ["2024-01-01T00", "2024-01-01T12", "2024-01-02T00", "2024-01-04T00"], dtype="datetime64[h]"
    )
    notional = np.array([50.0, 0.0, 100.0, 0.0])
    equity = np.array([100.0, 100.0, 100.0, 100.0])
    assert daily_turnover(notional, equity, days.astype("datetime64[ns]")) == pytest.approx(1.5 / 3)


def test_round_trips_by_hand() -> None:
    # long 2 units for two bars, flat, then short 1 unit for one bar.
    units = np.array([2.0, 2.0, 0.0, -1.0, -1.0])
    close = np.array([10.0, 11.0, 12.0, 12.0, 11.0, 13.0])
    costs = np.array([0.2, 0.0, 0.3, 0.1, 0.0])
    pnls = round_trip_pnls(units, close, costs)
    # long: 2*(11-10) + 2*(12-11) - 0.2 - 0.3 = 3.5 ; short: -1*(11-12) + -1*(13-11) - 0.1 = -1.1
    np.testing.assert_allclose(pnls, [3.5, -1.1])


def test_a_flip_charges_each_trip_its_share_of_the_cost() -> None:
    units = np.array([1.0, -3.0])  # flip: closes 1, opens 3 for a 4-unit trade costing 0.4
    close = np.array([10.0, 10.0, 10.0])
    costs = np.array([0.1, 0.4])
    np.testing.assert_allclose(round_trip_pnls(units, close, costs), [-0.2, -0.3])


def test_psr_matches_the_paper_formula_for_a_symmetric_sample() -> None:
    base = np.array([0.01, -0.005, 0.02, -0.01, 0.003, 0.0])
    returns = np.concatenate([0.001 + base, 0.001 - base])  # skewness exactly 0
    n = len(returns)
    sr = returns.mean() / returns.std(ddof=1)
    kurt = stats.kurtosis(returns, fisher=False)
    expected = stats.norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + (kurt - 1) / 4 * sr**2))
    assert probabilistic_sharpe(returns) == pytest.approx(expected)
    assert 0.5 < expected < 1.0
    assert probabilistic_sharpe(np.zeros(20)) == 0.5
