from __future__ import annotations

import math
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ijules.analytics.metrics import (
    annualised_return,
    annualised_volatility,
    bar_returns,
    calmar_ratio,
    daily_turnover,
    historical_var_es,
    information_ratio,
    max_drawdown,
    max_drawdown_duration,
    omega_ratio,
    probabilistic_sharpe,
    profit_factor,
    round_trip_pnls,
    sharpe_ratio,
    sortino_ratio,
    sterling_ratio,
    summarise,
    tail_ratio,
    total_return,
)

SAMPLE_PATH = Path(__file__).resolve().parents[3] / "data" / "samples" / "btcusd_1h.csv.gz"


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


# --- Cross-checks against empyrical-reloaded, an independent implementation -----------------

HOURS_PER_YEAR = 8760.0  # passed explicitly to both libraries, so both use the same A


@pytest.fixture(scope="module", params=["btc_hourly", "student_t"])
def sample(request: pytest.FixtureRequest) -> np.ndarray:
    """Per-bar simple returns: real BTC/USD hourly closes, and a seeded fat-tailed series."""
    if request.param == "btc_hourly":
        close = pd.read_csv(SAMPLE_PATH)["close"].to_numpy(dtype=np.float64)[:3001]
        return close[1:] / close[:-1] - 1.0
    rng = np.random.default_rng(20240601)
    return 0.0004 + 0.008 * rng.standard_t(df=3, size=3000)


def _equity(returns: np.ndarray) -> np.ndarray:
    return np.concatenate([[1.0], np.cumprod(1.0 + returns)])


def test_the_samples_are_what_the_comparisons_need(sample: np.ndarray) -> None:
    assert len(sample) == 3000
    assert np.all(np.isfinite(sample))
    assert stats.kurtosis(sample) > 1.0  # fat tails: the cases where conventions bite
    assert np.min(sample) < 0 < np.max(sample)


def test_bar_returns_of_the_btc_closes_match_pandas_pct_change() -> None:
    close = pd.read_csv(SAMPLE_PATH)["close"].to_numpy(dtype=np.float64)[:3001]
    expected = pd.Series(close).pct_change().to_numpy()[1:]
    np.testing.assert_allclose(bar_returns(close), expected, rtol=1e-12)


def test_sharpe_matches_empyrical(sample: np.ndarray) -> None:
    ours = sharpe_ratio(sample, HOURS_PER_YEAR)
    theirs = empyrical.sharpe_ratio(sample, annualization=HOURS_PER_YEAR)
    by_hand = sample.mean() / sample.std(ddof=1) * math.sqrt(HOURS_PER_YEAR)
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert theirs == pytest.approx(by_hand, rel=1e-9)  # empyrical's std is ddof=1 too
    ddof0 = sample.mean() / sample.std(ddof=0) * math.sqrt(HOURS_PER_YEAR)
    assert ours != pytest.approx(ddof0, rel=1e-6)


def test_sortino_and_downside_risk_match_empyrical(sample: np.ndarray) -> None:
    downside = math.sqrt(np.mean(np.minimum(sample, 0.0) ** 2))  # over ALL observations
    assert empyrical.downside_risk(sample, annualization=HOURS_PER_YEAR) == pytest.approx(
        downside * math.sqrt(HOURS_PER_YEAR), rel=1e-9
    )
    ours = sortino_ratio(sample, HOURS_PER_YEAR)
    assert ours == pytest.approx(
        empyrical.sortino_ratio(sample, annualization=HOURS_PER_YEAR), rel=1e-9
    )
    losses_only = math.sqrt(np.mean(sample[sample < 0] ** 2))  # the other common definition
    assert ours != pytest.approx(sample.mean() * math.sqrt(HOURS_PER_YEAR) / losses_only, rel=1e-3)


def test_annualised_volatility_matches_empyrical(sample: np.ndarray) -> None:
    assert annualised_volatility(sample, HOURS_PER_YEAR) == pytest.approx(
        empyrical.annual_volatility(sample, annualization=HOURS_PER_YEAR), rel=1e-9
    )


def test_max_drawdown_matches_empyrical(sample: np.ndarray) -> None:
    ours = max_drawdown(_equity(sample))
    assert ours > 0
    assert ours == pytest.approx(-empyrical.max_drawdown(sample), rel=1e-9)


def test_max_drawdown_counts_a_fall_from_the_starting_equity() -> None:
    returns = np.array([-0.1, -0.1, 0.05])
    assert max_drawdown(_equity(returns)) == pytest.approx(1 - 0.81, rel=1e-9)
    assert max_drawdown(_equity(returns)) == pytest.approx(-empyrical.max_drawdown(returns))


def test_annualised_return_matches_empyrical(sample: np.ndarray) -> None:
    ours = annualised_return(sample, HOURS_PER_YEAR)
    growth = np.prod(1.0 + sample)
    assert ours == pytest.approx(growth ** (HOURS_PER_YEAR / len(sample)) - 1.0, rel=1e-9)
    assert ours == pytest.approx(
        empyrical.annual_return(sample, annualization=HOURS_PER_YEAR), rel=1e-9
    )


def test_annualised_return_is_minus_one_on_ruin_and_zero_without_data() -> None:
    assert annualised_return(np.array([0.5, -1.0, 0.2]), 252) == -1.0
    assert annualised_return(np.zeros(0), 252) == 0.0


def test_calmar_matches_empyrical(sample: np.ndarray) -> None:
    ours = calmar_ratio(sample, _equity(sample), HOURS_PER_YEAR)
    assert ours == pytest.approx(
        empyrical.calmar_ratio(sample, annualization=HOURS_PER_YEAR), rel=1e-9
    )
    assert ours == pytest.approx(
        annualised_return(sample, HOURS_PER_YEAR) / max_drawdown(_equity(sample)), rel=1e-12
    )


def test_omega_matches_empyrical_at_a_zero_threshold(sample: np.ndarray) -> None:
    ours = omega_ratio(sample)
    # With required_return = 0 empyrical's de-annualised threshold is 0 whatever A is.
    for annualization in (1, 252, HOURS_PER_YEAR):
        theirs = empyrical.omega_ratio(sample, annualization=annualization)
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_omega_threshold_is_per_bar() -> None:
    # empyrical de-annualises required_return with A; ours takes a per-bar threshold, so the two
    # coincide only with annualization=1.
    returns = np.array([0.02, -0.01, 0.03, -0.02, 0.0])
    assert omega_ratio(returns) == pytest.approx(0.05 / 0.03, rel=1e-9)
    assert omega_ratio(returns, threshold=0.01) == pytest.approx(0.03 / 0.06, rel=1e-9)
    assert omega_ratio(returns, threshold=0.01) == pytest.approx(
        empyrical.omega_ratio(returns, required_return=0.01, annualization=1), rel=1e-9
    )
    assert omega_ratio(np.array([0.01, 0.02, 0.0])) == 0.0  # no losses: reported as 0


def test_tail_ratio_matches_empyrical(sample: np.ndarray) -> None:
    assert tail_ratio(sample) == pytest.approx(empyrical.tail_ratio(sample), rel=1e-9)


def test_tail_ratio_by_hand() -> None:
    ranked = np.array([-0.05, -0.02] + [0.0] * 17 + [0.06, 0.08])  # 21 values
    returns = np.random.default_rng(3).permutation(ranked)
    # With 21 values the 5th and 95th percentiles fall exactly on the 2nd and 20th order values.
    assert tail_ratio(returns) == pytest.approx(0.06 / 0.02, rel=1e-9)
    eleven = np.array([-0.04, -0.02, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.03])
    # 11 values: the percentiles interpolate halfway between the two extreme order values.
    assert tail_ratio(eleven) == pytest.approx(0.02 / 0.03, rel=1e-9)
    assert tail_ratio(np.zeros(0)) == 0.0


def test_var_and_es_match_empyrical(sample: np.ndarray) -> None:
    var, es = historical_var_es(sample, 0.95)
    assert var == pytest.approx(-empyrical.value_at_risk(sample, cutoff=0.05), rel=1e-9)
    # Ours averages r <= the interpolated 5% quantile; empyrical averages the lowest
    # int((n - 1) * 0.05) + 1 values. Without ties at the cutoff these are the same set.
    assert es == pytest.approx(-empyrical.conditional_value_at_risk(sample, cutoff=0.05), rel=1e-9)
    assert es >= var > 0


def test_es_keeps_every_tie_at_the_cutoff() -> None:
    # Definitional difference with empyrical: with ties at the quantile ours keeps them all.
    returns = np.array([-0.03, -0.02, -0.02, -0.02] + [0.01] * 17)  # 21 values: q5 = 2nd value
    var, es = historical_var_es(returns, 0.95)
    assert var == pytest.approx(0.02, rel=1e-9)
    assert es == pytest.approx((0.03 + 3 * 0.02) / 4, rel=1e-9)
    assert -empyrical.conditional_value_at_risk(returns, cutoff=0.05) == pytest.approx(0.025)


def test_information_ratio_matches_empyrical_excess_sharpe(sample: np.ndarray) -> None:
    benchmark = 0.4 * sample + 0.002 * np.random.default_rng(11).standard_normal(len(sample))
    ours = information_ratio(sample, benchmark, HOURS_PER_YEAR)
    # empyrical's excess_sharpe is per bar, not annualised.
    theirs = empyrical.excess_sharpe(sample, benchmark) * math.sqrt(HOURS_PER_YEAR)
    assert ours == pytest.approx(theirs, rel=1e-9)
    active = sample - benchmark
    assert ours == pytest.approx(
        active.mean() / active.std(ddof=1) * math.sqrt(HOURS_PER_YEAR), rel=1e-9
    )


# --- Hand-computed small cases -----------------------------------------------------------------


def test_sortino_on_a_tiny_array() -> None:
    returns = np.array([0.02, -0.01, 0.03, -0.02])
    downside = math.sqrt((0.01**2 + 0.02**2) / 4)  # the mean runs over all four bars
    assert sortino_ratio(returns, 252) == pytest.approx(0.005 * 252 / (downside * math.sqrt(252)))
    assert sortino_ratio(returns, 252) == pytest.approx(0.005 / downside * math.sqrt(252), rel=1e-9)
    assert sortino_ratio(np.array([0.01, 0.0, 0.02]), 252) == 0.0  # no losses: reported as 0


def test_annualised_volatility_by_hand() -> None:
    returns = np.array([0.01, -0.01, 0.03])
    std = math.sqrt((0.0**2 + 0.02**2 + 0.02**2) / 2)
    assert annualised_volatility(returns, 100) == pytest.approx(std * 10, rel=1e-9)
    assert annualised_volatility(np.array([0.01]), 100) == 0.0


def test_max_drawdown_duration_by_hand() -> None:
    equity = np.array([100.0, 90.0, 95.0, 101.0, 100.0, 99.0, 98.0, 102.0, 100.0])
    assert max_drawdown_duration(equity) == 3  # 100, 99, 98 below the peak of 101
    assert max_drawdown_duration(np.array([1.0, 0.5, 0.6, 0.7])) == 3  # never recovers
    assert max_drawdown_duration(np.array([1.0, 1.0, 2.0, 2.0])) == 0  # at the peak is not under
    assert max_drawdown_duration(np.array([1.0, 0.9, 1.0, 0.9, 0.8, 0.9, 1.0])) == 3


def test_sterling_averages_each_calendar_years_drawdown() -> None:
    timestamps = np.array(
        [
            "2023-01-02",
            "2023-05-01",
            "2023-12-29",
            "2024-01-02",
            "2024-04-01",
            "2024-08-01",
            "2024-12-30",
        ],
        dtype="datetime64[D]",
    ).astype("datetime64[ns]")
    equity = np.array([100.0, 75.0, 120.0, 90.0, 150.0, 120.0, 160.0])
    returns = bar_returns(equity)
    # 2023: 100 -> 75 is 25%; 2024 restarts its peak at 90: 150 -> 120 is 20%. The 120 -> 90 fall
    # across new year belongs to neither year's own path.
    average = (0.25 + 0.20) / 2
    expected = annualised_return(returns, 3.0) / average
    assert expected == pytest.approx((1.6 ** (3.0 / 6) - 1) / 0.225, rel=1e-12)
    assert sterling_ratio(returns, equity, timestamps, 3.0) == pytest.approx(expected, rel=1e-9)
    rising = np.array([100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 160.0])
    assert sterling_ratio(bar_returns(rising), rising, timestamps, 3.0) == 0.0


def test_profit_factor_by_hand() -> None:
    assert profit_factor(np.array([3.0, -1.0, 2.0, -2.0, 0.0])) == pytest.approx(5 / 3, rel=1e-9)
    assert profit_factor(np.array([1.0, 2.0])) == 0.0  # no losing trip: reported as 0
    assert profit_factor(np.zeros(0)) == 0.0


# A tiny hand-made backtest, one instrument, five steps, costs of 0.1% of the traded notional:
# long 2 units at 100 for two bars, flat, short 1 at 120 for one bar (closing at a loss at 125).
_CLOSE = np.array([100.0, 110.0, 105.0, 120.0, 125.0, 125.0])
_UNITS = np.array([2.0, 2.0, 0.0, -1.0, 0.0])
_TRADED = np.array([2.0, 0.0, -2.0, -1.0, 1.0])
_COSTS = 0.001 * np.abs(_TRADED) * _CLOSE[:-1]  # 0.2, 0, 0.21, 0.12, 0.125
_STAMPS = np.array(
    [
        "2024-01-01T00",
        "2024-01-01T12",
        "2024-01-02T00",
        "2024-01-02T12",
        "2024-01-03T00",
        "2024-01-03T12",
    ],
    dtype="datetime64[h]",
).astype("datetime64[ns]")


def _tiny_equity() -> np.ndarray:
    equity = [1000.0]
    for t in range(len(_UNITS)):
        equity.append(equity[-1] - _COSTS[t] + _UNITS[t] * (_CLOSE[t + 1] - _CLOSE[t]))
    return np.array(equity)


def test_summarise_a_tiny_backtest_by_hand() -> None:
    equity = _tiny_equity()
    np.testing.assert_allclose(equity, [1000.0, 1019.8, 1009.8, 1009.59, 1004.47, 1004.345])
    result = summarise(
        equity=equity,
        units=_UNITS[:, None],
        traded=_TRADED[:, None],
        costs=_COSTS[:, None],
        close=_CLOSE[:, None],
        timestamps=_STAMPS,
        bars_per_year=730.0,
    )
    # Round trips: long 2*(110-100) + 2*(105-110) - 0.2 - 0.21 = 9.59 over 2 bars;
    # short -1*(125-120) - 0.12 - 0.125 = -5.245 over 1 bar.
    assert result.num_trades == 4
    assert result.num_round_trips == 2
    assert result.win_rate == pytest.approx(0.5, rel=1e-9)
    assert result.profit_factor == pytest.approx(9.59 / 5.245, rel=1e-9)
    assert result.avg_holding_bars == pytest.approx(1.5, rel=1e-9)
    assert result.total_cost == pytest.approx(0.655, rel=1e-9)
    assert result.traded_notional == pytest.approx(200.0 + 210.0 + 120.0 + 125.0, rel=1e-9)
    turnover = 200.0 / 1000.0 + 210.0 / 1009.8 + 120.0 / 1009.59 + 125.0 / 1004.47
    assert result.daily_turnover == pytest.approx(turnover / 3, rel=1e-9)  # three calendar days
    exposure = (200.0 / 1000.0 + 220.0 / 1019.8 + 0.0 + 120.0 / 1009.59 + 0.0) / 5
    assert result.exposure == pytest.approx(exposure, rel=1e-9)
    assert result.bars == 5
    assert result.total_return == pytest.approx(0.004345, rel=1e-9)
    assert result.max_drawdown == pytest.approx(1 - 1004.345 / 1019.8, rel=1e-9)
    assert result.max_drawdown_bars == 4
    assert result.information_ratio == 0.0
    returns = bar_returns(equity)
    assert result.sharpe == pytest.approx(sharpe_ratio(returns, 730.0), rel=1e-12)
    assert result.skewness == pytest.approx(stats.skew(returns), rel=1e-9)
    assert result.excess_kurtosis == pytest.approx(stats.kurtosis(returns), rel=1e-9)
    assert result.model_dump()["num_round_trips"] == 2


def test_summarise_moments_are_population_skew_and_excess_kurtosis(sample: np.ndarray) -> None:
    equity = _equity(sample)
    steps = len(sample)
    result = summarise(
        equity=equity,
        units=np.zeros((steps, 1)),
        traded=np.zeros((steps, 1)),
        costs=np.zeros((steps, 1)),
        close=np.ones((steps + 1, 1)),
        timestamps=np.arange(steps + 1).astype("datetime64[h]").astype("datetime64[ns]"),
        bars_per_year=HOURS_PER_YEAR,
        benchmark_returns=np.zeros(steps),
    )
    returns = bar_returns(equity)
    centred = returns - returns.mean()
    m2, m3, m4 = (np.mean(centred**k) for k in (2, 3, 4))
    assert result.skewness == pytest.approx(m3 / m2**1.5, rel=1e-9)
    assert result.excess_kurtosis == pytest.approx(m4 / m2**2 - 3.0, rel=1e-9)
    assert result.excess_kurtosis == pytest.approx(stats.kurtosis(returns), rel=1e-9)
    assert result.information_ratio == pytest.approx(result.sharpe, rel=1e-9)
    var, es = historical_var_es(returns)
    assert (result.var_95, result.es_95) == (var, es)
    assert result.num_trades == 0
    assert result.num_round_trips == 0
    assert result.exposure == 0.0
