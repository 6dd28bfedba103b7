"""Configuration of the cost engine (master plan, phase 2): every cost a fill pays."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ijules.frozen import Frozen, PositiveFloat
from ijules.market.config import VolatilityRegimeConfig


class MarketImpactConfig(Frozen):
    """Almgren-Chriss impact: temporary eta sigma sqrt(q/V) |value|, permanent gamma q/V |value|."""

    enabled: bool = True
    temporary_impact_coeff: Annotated[float, Field(ge=0)] = 0.314159
    permanent_impact_coeff: Annotated[float, Field(ge=0)] = 0.1
    liquidity_decay_factor: Annotated[float, Field(gt=0, le=1)] = 0.5


class TurnoverPenaltyConfig(Frozen):
    """Turnover beyond a free capacity that scales with the volatility regime pays extra."""

    enabled: bool = True
    base_capacity_pct: Annotated[float, Field(gt=0, le=1)] = 0.02
    capacity_scaling_factor: Annotated[float, Field(ge=1)] = 1.5


class TransactionCostsConfig(Frozen):
    """Every cost a fill pays, by component."""

    fixed_cost_per_trade: Annotated[float, Field(ge=0)] = 0.0
    proportional_cost_bps: Annotated[float, Field(ge=0)] = 5.0
    market_impact: MarketImpactConfig = MarketImpactConfig()
    turnover_penalty: TurnoverPenaltyConfig = TurnoverPenaltyConfig()


AssetClass = Literal["crypto", "fx", "equity", "futures"]


class LiquidityModelConfig(Frozen):
    """Where liquidity comes from when the data has no volume, and execution protections.

    Without volume (none in the source, or none over the trailing window) an instrument's
    liquidity is, first found: its ``daily_volume_usd`` entry, ``book_depth_estimate`` (USD per
    bar, every instrument), or the typical daily volume of its ``asset_class``
    (:data:`ijules.execution.costs.DAILY_VOLUME_USD`). Daily volumes are spread over the bars of
    a trading day and take ``liquidity_decay_factor`` like measured volume.

    ``contract_multiplier`` says how many units of the price one unit of an instrument's volume
    is (a futures contract: ES 50): positions are in price units, so measured volume in
    contracts is converted before it is compared with an order.
    """

    asset_class: AssetClass = "crypto"
    daily_volume_usd: dict[str, PositiveFloat] = Field(default_factory=dict)
    contract_multiplier: dict[str, PositiveFloat] = Field(default_factory=dict)
    book_depth_estimate: PositiveFloat | None = None
    liquidity_window_bars: Annotated[int, Field(ge=1)] = 24
    adverse_selection_protection: bool = False
    tick_size_aware: bool = False
    tick_size: PositiveFloat | None = None


class MicrostructureConfig(Frozen):
    """The cost engine (master plan, phase 2); disabled, only proportional costs apply."""

    enabled: bool = True
    transaction_costs: TransactionCostsConfig = TransactionCostsConfig()
    regime_detection: VolatilityRegimeConfig = VolatilityRegimeConfig()
    liquidity_model: LiquidityModelConfig = LiquidityModelConfig()
