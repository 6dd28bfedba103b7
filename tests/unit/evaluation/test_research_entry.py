"""The research report's figures: seed policies side by side are one strategy with the capital
split, not an average of Sharpe ratios, and a cost share only exists for a positive gross P&L."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ijules.env.backtest import Backtest
from ijules.evaluation.research import entry
from ijules.sim.layout import COST_COMPONENTS

BARS_PER_YEAR = 24 * 365.25


def backtest(equity: list[float], cost: float = 0.0) -> Backtest:
    """A backtest of one instrument that held nothing, with ``cost`` paid at the first step."""
    steps = len(equity) - 1
    close = np.full((steps + 1, 1), 100.0)
    costs = np.zeros((steps, 1, len(COST_COMPONENTS)))
    costs[0, 0, 0] = cost
    return Backtest(
        timestamps=pd.date_range("2024-01-01", periods=steps + 1, freq="h").to_numpy(),
        close=close,
        equity=np.asarray(equity, dtype=np.float64),
        units=np.zeros((steps, 1)),
        traded=np.zeros((steps, 1)),
        fills=close[1:].copy(),
        costs=costs,
        exit_costs=dict.fromkeys(COST_COMPONENTS, 0.0),
        risk_events=pd.DataFrame(),
        risk_refusals={},
    )


def test_seeds_side_by_side_are_the_mean_equity_curve() -> None:
    a = backtest([100.0, 110.0, 99.0, 120.0], cost=2.0)
    b = backtest([100.0, 95.0, 104.0, 100.0], cost=4.0)
    both = entry([a, b], BARS_PER_YEAR)
    equity = np.array([100.0, 102.5, 101.5, 110.0])
    returns = equity[1:] / equity[:-1] - 1.0
    assert both.total_return == pytest.approx(0.10)
    expected = np.mean(returns) / np.std(returns, ddof=1) * np.sqrt(BARS_PER_YEAR)
    assert both.sharpe == pytest.approx(expected)
    # Not the mean of the two Sharpe ratios: a plausible shortcut that overstates a split book.
    assert both.sharpe != pytest.approx(
        np.mean([entry(a, BARS_PER_YEAR).sharpe, entry(b, BARS_PER_YEAR).sharpe])
    )
    assert both.costs == pytest.approx(3.0)
    assert both.cost_share == pytest.approx(3.0 / (10.0 + 3.0))  # of the gross P&L
    assert both.max_drawdown == pytest.approx(1.0 / 102.5)
    assert both.dsr is None  # only the study's agent is deflated


def test_no_cost_share_without_a_gross_profit() -> None:
    losing = entry(backtest([100.0, 97.0, 95.0], cost=1.0), BARS_PER_YEAR)
    assert losing.cost_share is None
    assert losing.total_return == pytest.approx(-0.05)
