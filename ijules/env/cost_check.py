"""Is the cost model believable? What one fill of the whole capital would cost.

An impossible cost model (FX data without volume and a book depth of one bar's capital, say)
makes every figure after it meaningless; this number, beside the gate's ceiling
(``gate.max_full_capital_fill_cost_bps``), says so before anyone trusts them.
"""

from __future__ import annotations

import numpy as np

from ijules.config import Config
from ijules.env.market_data import MarketData
from ijules.execution.costs import CostModel


def full_capital_fill_bps(market: MarketData, config: Config) -> dict[str, float]:
    """Per instrument: the cost, in bps, of one fill of the initial capital on the window's
    median bar (median price, volatility and liquidity over its tradable bars), every cost
    component but the portfolio-wide capacity charge."""
    model = CostModel.from_config(config.microstructure)
    capital = config.environment.initial_capital
    costs = {}
    for i, name in enumerate(market.instruments):
        tradable = market.tradable[:, i]

        def median(values: np.ndarray, rows: np.ndarray = tradable) -> float:
            finite = values[rows & np.isfinite(values)]
            return float(np.median(finite)) if len(finite) else 0.0

        costs[name] = model.fill_cost_bps(
            capital,
            median(market.close[:, i]),
            sigma=median(market.sigma[:, i]),
            liquidity=median(market.liquidity[:, i]),
            tick=float(market.tick[i]),
        )
    return costs
