"""The risk engine's trading states and the reason behind every refusal and every change."""

from __future__ import annotations

ACTIVE, REDUCING, HALTED = 0, 1, 2
STATES = ("ACTIVE", "REDUCING", "HALTED")

# Refusals: an action asked for more than the engine allowed.
NO_REFUSAL = 0
CONCENTRATION_LIMIT = 1
LEVERAGE_LIMIT = 2
VAR_LIMIT = 3
REGIME_LIMIT = 4
REDUCING_NO_GROWTH = 5
HALTED_NO_NEW_RISK = 6
EMERGENCY_FLATTEN = 7

# Changes of trading state.
NO_CHANGE = 0
LOSS_SCALING = 10
EMERGENCY_LOSS = 11
DAILY_DRAWDOWN = 12
MONTHLY_DRAWDOWN = 13
CONSECUTIVE_LOSSES = 14
VOLATILITY_SPIKE = 15
CORRELATION_BREAKDOWN = 16
RELEASED_TIME = 20
RELEASED_CONDITION = 21
RELEASED_OPERATOR = 22
RECOVERED = 23

REASONS: dict[int, str] = {
    CONCENTRATION_LIMIT: "position above the single-position concentration limit",
    LEVERAGE_LIMIT: "gross exposure above the leverage limit",
    VAR_LIMIT: "position above max_var_multiple x the daily VaR budget",
    REGIME_LIMIT: "position above the limit of the current market regime",
    REDUCING_NO_GROWTH: "REDUCING: positions may only shrink",
    HALTED_NO_NEW_RISK: "HALTED: no new risk",
    EMERGENCY_FLATTEN: "emergency risk reduction: every position closed",
    LOSS_SCALING: "loss since the start of the day reached position_scaling_threshold",
    EMERGENCY_LOSS: "loss since the start of the day reached emergency_liquidation_threshold",
    DAILY_DRAWDOWN: "drawdown within the day reached max_daily_drawdown_pct",
    MONTHLY_DRAWDOWN: "drawdown within the month reached max_monthly_drawdown_pct",
    CONSECUTIVE_LOSSES: "consecutive losing days reached the halt condition",
    VOLATILITY_SPIKE: "volatility reached the spike multiple of its normal level",
    CORRELATION_BREAKDOWN: "correlations broke down from their long-run level",
    RELEASED_TIME: "halt lifted: cooldown elapsed",
    RELEASED_CONDITION: "halt lifted: its condition cleared after the cooldown",
    RELEASED_OPERATOR: "halt lifted by an operator",
    RECOVERED: "a new trading day: positions may grow again",
}


def describe(code: int) -> str:
    """The sentence for a reason code."""
    return REASONS.get(int(code), f"unknown reason {int(code)}")
