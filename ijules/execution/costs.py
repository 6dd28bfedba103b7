"""The transaction-cost model: its parameters, the volatility-regime capacity, and tick sizes.

The arithmetic lives in :mod:`ijules.sim.costs` (compiled, shared by every environment); this
module turns configuration into the step's parameters and exposes a readable breakdown of what a
single fill costs, which the tests check against hand-computed cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ijules.execution.config import AssetClass, LiquidityModelConfig, MicrostructureConfig
from ijules.sim import layout
from ijules.sim.costs import capacity_charge, fill_costs

FloatArray = npt.NDArray[np.float64]

# Typical USD traded per day in a liquid instrument of each class, for data without volume:
# orders of magnitude on the cautious side (BTC/USD on one major spot venue; a major currency
# pair at one liquidity pool; a large-cap stock; a front-month index future). A thinner instrument
# needs its own ``microstructure.liquidity_model.daily_volume_usd`` entry.
DAILY_VOLUME_USD: dict[AssetClass, float] = {
    "crypto": 5e8,
    "fx": 1e10,
    "equity": 2e8,
    "futures": 5e9,
}


def fallback_depth_usd(
    liquidity: LiquidityModelConfig, instrument: str, bars_per_day: float, share: float
) -> float:
    """USD an instrument's bar can absorb when the data has no volume (see
    :class:`~ijules.execution.config.LiquidityModelConfig`); ``share`` is the liquidity decay
    factor that measured volume takes too."""
    if instrument in liquidity.daily_volume_usd:
        return share * liquidity.daily_volume_usd[instrument] / bars_per_day
    if liquidity.book_depth_estimate is not None:
        return liquidity.book_depth_estimate
    return share * DAILY_VOLUME_USD[liquidity.asset_class] / bars_per_day


@dataclass(frozen=True)
class CostModel:
    """Cost parameters of every fill (master plan, phase 2)."""

    fixed_per_trade: float
    proportional_bps: float
    impact: bool
    temporary_coeff: float
    permanent_coeff: float
    liquidity_factor: float
    capacity: bool
    base_capacity: float
    capacity_scaling: float
    volatility_low: float
    volatility_high: float
    liquidity_window_bars: int
    adverse_selection_protection: bool
    tick_size_aware: bool
    tick_size: float | None
    scale: float = 1.0  # every cost coefficient x this (the curriculum's difficulty)

    @classmethod
    def from_config(cls, config: MicrostructureConfig) -> CostModel:
        """Read the model from ``microstructure``; disabled, only proportional costs remain."""
        costs = config.transaction_costs
        impact, penalty = costs.market_impact, costs.turnover_penalty
        liquidity = config.liquidity_model
        on = config.enabled
        return cls(
            fixed_per_trade=costs.fixed_cost_per_trade if on else 0.0,
            proportional_bps=costs.proportional_cost_bps,
            impact=on and impact.enabled,
            temporary_coeff=impact.temporary_impact_coeff,
            permanent_coeff=impact.permanent_impact_coeff,
            liquidity_factor=impact.liquidity_decay_factor,
            capacity=on and penalty.enabled,
            base_capacity=penalty.base_capacity_pct,
            capacity_scaling=penalty.capacity_scaling_factor,
            volatility_low=config.regime_detection.volatility_threshold_low,
            volatility_high=config.regime_detection.volatility_threshold_high,
            liquidity_window_bars=liquidity.liquidity_window_bars,
            adverse_selection_protection=on and liquidity.adverse_selection_protection,
            tick_size_aware=on and liquidity.tick_size_aware,
            tick_size=liquidity.tick_size,
        )

    def sim_params(self) -> dict[str, object]:
        """The step's cost parameters."""
        return {
            "fixed": self.fixed_per_trade * self.scale,
            "proportional": self.proportional_bps / 10_000.0 * self.scale,
            "impact": self.impact,
            "eta": self.temporary_coeff * self.scale,
            "gamma": self.permanent_coeff * self.scale,
            "capacity_charge": self.capacity,
            "adverse_selection": self.adverse_selection_protection,
            "tick_aware": self.tick_size_aware,
        }

    def breakdown(
        self, units: float, price: float, *, sigma: float, liquidity: float, tick: float = 0.0
    ) -> dict[str, float]:
        """Costs of one fill by component (the capacity charge is portfolio-wide: see below)."""
        params = np.zeros(1, dtype=layout.PARAMS)
        for name, value in self.sim_params().items():
            params[name] = value
        values = np.zeros(layout.N_COSTS)
        fill_costs(units, price, tick, sigma, liquidity, params, values)
        return dict(zip(layout.COST_COMPONENTS, map(float, values), strict=True))

    def fill_cost_bps(
        self, notional: float, price: float, *, sigma: float, liquidity: float, tick: float = 0.0
    ) -> float:
        """What one fill of ``notional`` USD costs, in bps of it (capacity charge aside)."""
        costs = self.breakdown(notional / price, price, sigma=sigma, liquidity=liquidity, tick=tick)
        return 1e4 * sum(costs.values()) / notional

    def capacity_charge(
        self, traded_value: float, equity: float, *, sigma_per_bar: float, bars_per_year: float
    ) -> float:
        """The turnover charge of one bar, at the capacity the volatility regime allows."""
        capacity = self.capacity_fraction(np.array([sigma_per_bar]), bars_per_year)[0]
        return float(
            capacity_charge(
                traded_value, equity, capacity, sigma_per_bar, self.temporary_coeff * self.scale
            )
        )

    def capacity_fraction(self, sigma_per_bar: FloatArray, bars_per_year: float) -> FloatArray:
        """Free turnover per bar by volatility regime: x scaling when high, / scaling when low."""
        annualised = sigma_per_bar * np.sqrt(bars_per_year)
        factor = np.where(
            annualised > self.volatility_high,
            self.capacity_scaling,
            np.where(annualised < self.volatility_low, 1.0 / self.capacity_scaling, 1.0),
        )
        return np.asarray(self.base_capacity * factor, dtype=np.float64)


def infer_tick_size(prices: FloatArray) -> float:
    """The price grid the data was quoted on: 10^-d for the fewest decimals d that fit every price.

    Prices stored as binary floats are not exact, so a price fits the grid when it is within a
    millionth of a tick of it. Falls back to 1e-8.
    """
    finite = prices[np.isfinite(prices)]
    for decimals in range(9):
        tick = 10.0**-decimals
        scaled = finite / tick
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return tick
    return 1e-8
