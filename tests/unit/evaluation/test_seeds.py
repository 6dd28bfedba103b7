"""The agent over training seeds: the spread, its lower bound, and what the gate reads."""

from __future__ import annotations

import numpy as np
import pytest

from ijules.artifacts import ModelRef, SeedRun
from ijules.evaluation.seeds import spread, summarise_seeds


def seed_run(seed: int, sharpe: float, drawdown: float = 0.05, trades: int = 40) -> SeedRun:
    return SeedRun(
        seed=seed,
        run_id=f"r{seed}",
        sharpe=sharpe,
        total_return=0.01 * sharpe,
        max_drawdown=drawdown,
        daily_turnover=1.0 + seed / 100,
        num_trades=trades,
        cost_bps=12.0,
    )


def test_the_lower_bound_is_students_t_over_seeds() -> None:
    runs = [seed_run(7 + k, s) for k, s in enumerate([0.4, -0.2, 1.1, 0.3, 0.0])]
    mean, std, lower = spread(runs, 0.95)
    sharpes = np.array([0.4, -0.2, 1.1, 0.3, 0.0])
    assert mean == pytest.approx(sharpes.mean())
    assert std == pytest.approx(sharpes.std(ddof=1))
    # t(0.95, 4) = 2.1318: the bound sits 2.13 standard errors under the mean.
    assert lower == pytest.approx(sharpes.mean() - 2.131847 * sharpes.std(ddof=1) / np.sqrt(5))
    assert lower < min(mean, np.median(sharpes))


def test_one_seed_has_no_spread_and_its_own_figure() -> None:
    mean, std, lower = spread([seed_run(7, 0.8)], 0.95)
    assert (mean, std, lower) == (0.8, None, 0.8)


def test_the_gate_reads_the_conservative_end_not_the_luckiest_seed() -> None:
    runs = [
        seed_run(7, 0.9, drawdown=0.04, trades=50),  # the registered one
        seed_run(8, 2.5, drawdown=0.03, trades=60),  # the luckiest
        seed_run(9, 0.1, drawdown=0.09, trades=12),
    ]
    result = summarise_seeds(ModelRef(run_id="r7"), "test", runs, 0.95)
    assert result.sharpe == result.sharpe_lower_bound < 0.1  # wide: three seeds disagree
    assert (result.max_drawdown, result.num_trades) == (0.09, 12)
    assert result.daily_turnover == max(run.daily_turnover for run in runs)


def test_the_registered_policy_caps_the_figure_when_it_is_the_weakest() -> None:
    sharpes = [0.50, 0.60, 0.61, 0.62, 0.60]  # tight, and the registered policy the lowest
    runs = [seed_run(7 + k, s) for k, s in enumerate(sharpes)]
    result = summarise_seeds(ModelRef(run_id="r7"), "test", runs, 0.95)
    assert result.sharpe_lower_bound > 0.50
    assert result.sharpe == 0.50
