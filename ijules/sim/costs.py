"""What a fill costs, by component, and the portfolio-wide turnover charge (compiled).

Every component is >= 0 and non-decreasing in the traded quantity. The model's parameters come
from :mod:`ijules.execution.costs`; the arithmetic is here, shared by every environment.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ijules.sim import cache  # noqa: F401 - keys numba's cache by this package's sources
from ijules.sim.layout import FIXED, N_COSTS, PERMANENT, PROPORTIONAL, TEMPORARY, TICK


@njit(cache=True)
def fill_costs(
    units: float,
    price: float,
    tick: float,
    sigma: float,
    liquidity: float,
    params: np.ndarray,
    out: np.ndarray,
) -> float:
    """Write the costs of trading ``units`` at ``price`` into ``out`` (by component); sum them.

    fixed: a flat fee per fill; proportional: a fraction of the traded value; tick: the distance
    to the next tick against the trader; temporary impact: eta * sigma * sqrt(q / V) * |value|;
    permanent impact: gamma * (q / V) * |value|, with q the units traded and V the units the
    bar's liquidity offers. The capacity charge is portfolio-wide (see ``capacity_charge``).
    """
    p = params[0]
    for k in range(N_COSTS):
        out[k] = 0.0
    quantity = abs(units)
    if quantity == 0.0:
        return 0.0
    value = quantity * price
    out[FIXED] = p.fixed
    out[PROPORTIONAL] = p.proportional * value
    if p.tick_aware and tick > 0.0:
        if units > 0.0:
            out[TICK] = max((math.ceil(price / tick - 1e-9) * tick - price) * quantity, 0.0)
        else:
            out[TICK] = max((price - math.floor(price / tick + 1e-9) * tick) * quantity, 0.0)
    if p.impact:
        participation = quantity / liquidity
        out[TEMPORARY] = p.eta * sigma * math.sqrt(participation) * value
        out[PERMANENT] = p.gamma * participation * value
    total = 0.0
    for k in range(N_COSTS):
        total += out[k]
    return total


@njit(cache=True)
def capacity_charge(
    traded_value: float, equity: float, capacity: float, sigma: float, eta: float
) -> float:
    """Charge turnover beyond the free ``capacity`` (a fraction of equity per bar).

    With x the excess turnover as a fraction of equity, the charge follows the Almgren-Chriss
    temporary-impact shape: eta * sigma * sqrt(x) * x * equity. Zero within capacity.
    """
    if equity <= 0.0:
        return 0.0
    excess = traded_value / equity - capacity
    if excess <= 0.0:
        return 0.0
    return eta * sigma * math.sqrt(excess) * excess * equity
