from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ijules.analytics.significance import (
    EULER_GAMMA,
    SharpeMoments,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    minimum_track_record,
    probabilistic_sharpe_ratio,
    psr,
    target_test,
)
from ijules.evaluation.evaluate import significance

# Bailey and López de Prado, "The Deflated Sharpe Ratio" (2014), worked example: an annualised
# SR of 2.5 on T = 1250 daily observations, skewness -3, kurtosis 10 (not excess), the best of
# N = 100 independent trials whose annualised Sharpe ratios have variance V = 0.5.
DAYS = 250
PAPER = SharpeMoments(sharpe=2.5 / math.sqrt(DAYS), observations=1250, skewness=-3.0, kurtosis=10.0)
PAPER_TRIALS = 100
PAPER_VARIANCE = 0.5 / DAYS  # per-bar variance of the trials' Sharpe ratios


def _psr_by_hand(sr: float, t: int, skew: float, kurt: float, benchmark: float = 0.0) -> float:
    factor = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    return float(stats.norm.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(factor)))


def test_expected_maximum_sharpe_matches_the_paper() -> None:
    sr0 = expected_maximum_sharpe(PAPER_TRIALS, PAPER_VARIANCE)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    by_hand = math.sqrt(PAPER_VARIANCE) * (
        (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / PAPER_TRIALS)
        + EULER_GAMMA * stats.norm.ppf(1 - 1 / (PAPER_TRIALS * math.e))
    )
    assert sr0 == pytest.approx(by_hand, rel=1e-12)
    assert pytest.approx(np.euler_gamma, rel=1e-15) == EULER_GAMMA


def test_deflated_sharpe_matches_the_paper() -> None:
    dsr = deflated_sharpe_ratio(PAPER, PAPER_TRIALS, PAPER_VARIANCE)
    assert dsr == pytest.approx(0.9004, abs=3e-3)
    sr0 = expected_maximum_sharpe(PAPER_TRIALS, PAPER_VARIANCE)
    assert dsr == pytest.approx(_psr_by_hand(PAPER.sharpe, 1250, -3.0, 10.0, sr0), rel=1e-12)
    assert dsr == pytest.approx(psr(PAPER, sr0), rel=1e-15)


def test_deflation_lowers_the_psr_and_a_single_trial_does_not_deflate() -> None:
    assert deflated_sharpe_ratio(PAPER, PAPER_TRIALS, PAPER_VARIANCE) < psr(PAPER) - 0.09
    assert deflated_sharpe_ratio(PAPER, 1, PAPER_VARIANCE) == pytest.approx(psr(PAPER), rel=1e-15)


def test_psr_matches_the_formula_by_hand() -> None:
    moments = SharpeMoments(sharpe=0.12, observations=200, skewness=-0.8, kurtosis=6.5)
    assert psr(moments) == pytest.approx(_psr_by_hand(0.12, 200, -0.8, 6.5), rel=1e-12)
    assert psr(moments, 0.05) == pytest.approx(_psr_by_hand(0.12, 200, -0.8, 6.5, 0.05), rel=1e-12)
    assert moments.variance_factor() == pytest.approx(1 + 0.8 * 0.12 + 5.5 / 4 * 0.0144, rel=1e-12)


def test_psr_is_one_half_when_the_sharpe_equals_the_benchmark() -> None:
    moments = SharpeMoments(sharpe=0.1, observations=500, skewness=-1.0, kurtosis=8.0)
    assert psr(moments, 0.1) == pytest.approx(0.5, abs=1e-15)
    assert psr(SharpeMoments(0.0, 500, 0.0, 3.0)) == pytest.approx(0.5, abs=1e-15)


def test_psr_grows_with_the_track_record() -> None:
    values = [psr(SharpeMoments(0.05, t, -0.5, 5.0)) for t in (20, 100, 500, 2000)]
    assert values == sorted(values)
    assert len(set(values)) == 4
    assert values[0] > 0.5
    assert values[-1] > 0.98
    # And against a benchmark above the Sharpe ratio, a longer record makes it less likely.
    below = [psr(SharpeMoments(0.05, t, 0.0, 3.0), 0.08) for t in (20, 100, 500)]
    assert below == sorted(below, reverse=True)


def test_negative_skew_and_fat_tails_lower_a_positive_psr() -> None:
    normal = SharpeMoments(sharpe=0.1, observations=300, skewness=0.0, kurtosis=3.0)
    negative_skew = SharpeMoments(sharpe=0.1, observations=300, skewness=-2.0, kurtosis=3.0)
    positive_skew = SharpeMoments(sharpe=0.1, observations=300, skewness=2.0, kurtosis=3.0)
    fat = SharpeMoments(sharpe=0.1, observations=300, skewness=0.0, kurtosis=12.0)
    assert psr(negative_skew) < psr(normal) < psr(positive_skew)
    assert psr(fat) < psr(normal)


def test_kurtosis_is_not_excess_a_normal_has_kurtosis_three() -> None:
    sr = 0.2
    normal = SharpeMoments(sharpe=sr, observations=100, skewness=0.0, kurtosis=3.0)
    assert normal.variance_factor() == pytest.approx(1 + sr**2 / 2, rel=1e-15)
    assert psr(normal) == pytest.approx(
        stats.norm.cdf(sr * math.sqrt(99) / math.sqrt(1 + sr**2 / 2)), rel=1e-12
    )


def test_excess_kurtosis_in_place_of_kurtosis_gives_a_different_wrong_psr() -> None:
    # Regression for the quantstats bug: feeding excess kurtosis (kurtosis - 3) where the
    # formula wants kurtosis understates the estimator's variance and overstates the PSR.
    sr, t, skew, kurt = 0.3, 40, -1.0, 10.0
    right = psr(SharpeMoments(sr, t, skew, kurt))
    wrong = psr(SharpeMoments(sr, t, skew, kurt - 3.0))
    assert right == pytest.approx(_psr_by_hand(sr, t, skew, kurt), rel=1e-12)
    assert wrong > right + 1e-3
    assert wrong == pytest.approx(_psr_by_hand(sr, t, skew, kurt - 3.0), rel=1e-12)
    # And in the paper's example the deflated ratio moves with it.
    paper_wrong = SharpeMoments(PAPER.sharpe, PAPER.observations, PAPER.skewness, 7.0)
    assert deflated_sharpe_ratio(paper_wrong, PAPER_TRIALS, PAPER_VARIANCE) != pytest.approx(
        deflated_sharpe_ratio(PAPER, PAPER_TRIALS, PAPER_VARIANCE), abs=1e-4
    )


def test_psr_is_one_half_without_evidence() -> None:
    assert psr(SharpeMoments(0.5, 2, 0.0, 3.0)) == 0.5  # too few observations
    # A variance factor <= 0 (here 1 - 5 * 0.5 + 0.5 * 0.25 < 0) has no defined PSR.
    assert SharpeMoments(0.5, 100, 5.0, 3.0).variance_factor() < 0
    assert psr(SharpeMoments(0.5, 100, 5.0, 3.0)) == 0.5


def test_probabilistic_sharpe_ratio_of_returns_uses_the_sample_moments() -> None:
    returns = 0.001 + 0.01 * np.random.default_rng(5).standard_t(df=4, size=800)
    assert probabilistic_sharpe_ratio(returns) == pytest.approx(
        psr(SharpeMoments.of(returns)), rel=1e-15
    )
    sr = returns.mean() / returns.std(ddof=1)
    expected = _psr_by_hand(
        sr, 800, stats.skew(returns), stats.kurtosis(returns, fisher=False), 0.02
    )
    assert probabilistic_sharpe_ratio(returns, 0.02) == pytest.approx(expected, rel=1e-12)
    assert probabilistic_sharpe_ratio(np.full(50, 0.001)) == 0.5
    assert probabilistic_sharpe_ratio(np.array([0.01, 0.02])) == 0.5


@pytest.mark.parametrize(
    ("sharpe", "skew", "kurt", "benchmark", "confidence"),
    [(0.1, 0.0, 3.0, 0.0, 0.95), (0.05, -1.5, 9.0, 0.01, 0.95), (0.2, 0.5, 4.0, 0.05, 0.99)],
)
def test_minimum_track_record_is_where_the_psr_reaches_the_confidence(
    sharpe: float, skew: float, kurt: float, benchmark: float, confidence: float
) -> None:
    needed = minimum_track_record(SharpeMoments(sharpe, 0, skew, kurt), benchmark, confidence)
    assert math.isfinite(needed) and needed > 3
    enough = SharpeMoments(sharpe, math.ceil(needed), skew, kurt)
    short = SharpeMoments(sharpe, math.floor(needed) - 1, skew, kurt)
    assert psr(enough, benchmark) >= confidence
    assert psr(short, benchmark) < confidence
    # At exactly MinTRL observations the PSR is the confidence (the formula inverted).
    z = (sharpe - benchmark) * math.sqrt(needed - 1) / math.sqrt(enough.variance_factor())
    assert stats.norm.cdf(z) == pytest.approx(confidence, rel=1e-12)


def test_minimum_track_record_by_hand_and_infinite_without_an_edge() -> None:
    moments = SharpeMoments(sharpe=0.1, observations=10, skewness=-1.0, kurtosis=5.0)
    factor = 1 + 0.1 + 4 / 4 * 0.01
    expected = 1 + factor * (stats.norm.ppf(0.95) / 0.1) ** 2
    assert minimum_track_record(moments) == pytest.approx(expected, rel=1e-12)
    assert minimum_track_record(moments, benchmark=0.1) == math.inf
    assert minimum_track_record(moments, benchmark=0.2) == math.inf
    assert minimum_track_record(SharpeMoments(-0.1, 10, 0.0, 3.0)) == math.inf


def test_expected_maximum_sharpe_grows_with_the_trials() -> None:
    assert expected_maximum_sharpe(1, 0.01) == 0.0
    assert expected_maximum_sharpe(10, 0.0) == 0.0
    values = [expected_maximum_sharpe(n, 0.01) for n in (2, 5, 10, 100, 1000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    # It scales with the standard deviation of the trials' Sharpe ratios.
    assert expected_maximum_sharpe(100, 0.04) == pytest.approx(
        2 * expected_maximum_sharpe(100, 0.01), rel=1e-12
    )


def test_expected_maximum_sharpe_approximates_the_simulated_maximum() -> None:
    # The best of N standard normals, simulated: the closed form is a close approximation.
    draws = np.random.default_rng(17).standard_normal((20000, 100))
    simulated = float(np.mean(draws.max(axis=1)))
    assert expected_maximum_sharpe(100, 1.0) == pytest.approx(simulated, abs=0.03)


def test_target_test_matches_scipy_and_cohens_d_by_hand() -> None:
    values = np.array([1.2, 0.8, 1.5, 1.1, 0.9, 1.4, 1.3, 1.0])
    result = target_test(values, target=0.8)
    expected = stats.ttest_1samp(values, 0.8)
    assert result.t_statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    mean, std = values.mean(), values.std(ddof=1)
    t_by_hand = (mean - 0.8) / (std / math.sqrt(len(values)))
    assert result.t_statistic == pytest.approx(t_by_hand, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t_by_hand), 7), rel=1e-9)
    assert result.cohens_d == pytest.approx((mean - 0.8) / std, rel=1e-12)
    assert result.mean == pytest.approx(mean, rel=1e-15)
    assert result.target == 0.8
    assert result.significant is (result.p_value < 0.05)
    assert result.significant
    assert result.practically_significant  # d is about 1.7
    assert result.model_dump()["cohens_d"] == result.cohens_d


def test_target_test_is_two_sided_and_respects_alpha() -> None:
    values = np.array([0.1, -0.2, 0.3, 0.0, 0.2, -0.1, 0.25, 0.15])
    above = target_test(values, target=-0.05)
    below = target_test(-values, target=0.05)
    assert above.p_value == pytest.approx(below.p_value, rel=1e-12)
    assert above.t_statistic == pytest.approx(-below.t_statistic, rel=1e-12)
    assert above.cohens_d == pytest.approx(-below.cohens_d, rel=1e-12)
    p = above.p_value
    assert 0.001 < p < 0.5
    assert target_test(values, -0.05, alpha=p * 1.01).significant
    assert not target_test(values, -0.05, alpha=p * 0.99).significant


def test_a_small_effect_is_not_practically_significant() -> None:
    values = 0.1 * np.random.default_rng(9).standard_normal(5000) + 0.02  # d about 0.2
    result = target_test(values, target=0.0)
    assert result.significant
    assert abs(result.cohens_d) < 0.5
    assert not result.practically_significant


def test_target_test_of_a_constant_sample_is_not_significant() -> None:
    result = target_test(np.full(10, 1.5), target=1.0)
    assert result.p_value == 1.0
    assert result.t_statistic == 0.0
    assert result.cohens_d == 0.0
    assert not result.significant
    assert not result.practically_significant
    assert result.mean == 1.5
    single = target_test(np.array([3.0]), target=0.0)
    assert (single.p_value, single.significant, single.mean) == (1.0, False, 3.0)


def test_sharpe_moments_of_a_normal_sample_has_kurtosis_three() -> None:
    returns = np.random.default_rng(42).normal(0.001, 0.01, size=200_000)
    moments = SharpeMoments.of(returns)
    assert moments.kurtosis == pytest.approx(3.0, abs=0.05)  # not 0: kurtosis, not excess
    assert moments.skewness == pytest.approx(0.0, abs=0.02)
    assert moments.observations == 200_000
    assert moments.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1), rel=1e-12)
    assert moments.kurtosis == pytest.approx(stats.kurtosis(returns, fisher=False), rel=1e-12)
    assert moments.skewness == pytest.approx(stats.skew(returns), rel=1e-12)


def test_sharpe_moments_of_a_fat_tailed_sample_and_of_a_constant() -> None:
    returns = np.random.default_rng(8).standard_t(df=5, size=200_000)
    assert SharpeMoments.of(returns).kurtosis == pytest.approx(9.0, abs=1.5)  # t(5): 3 + 6
    flat = SharpeMoments.of(np.full(30, 0.002))
    assert flat == SharpeMoments(0.0, 30, 0.0, 3.0)
    assert flat.variance_factor() == 1.0


def test_evaluation_reports_no_track_record_for_a_losing_series() -> None:
    rng = np.random.default_rng(7)
    winning = significance(rng.normal(0.002, 0.01, 500))
    losing = significance(rng.normal(-0.002, 0.01, 500))
    track = winning.min_track_record_bars
    assert track is not None and 1 < track < 2000
    assert winning.psr is not None and winning.psr > 0.5
    # A negative Sharpe ratio never becomes significant: no sentinel that reads as a length.
    assert losing.min_track_record_bars is None
    assert losing.psr is not None and losing.psr < 0.5
