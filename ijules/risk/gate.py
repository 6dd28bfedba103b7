"""The risk gate: every target weight passes here before it can trade (compiled, in the kernel).

Per bar and environment, in order:

1. the calendar: at a new UTC day the day's P&L counts a losing day (below -losing_day_pct; or
   resets the streak) and the day's start equity and peak restart; likewise the month's peak.
   On that first bar the closed day's loss and drawdown still count for the triggers, so daily
   bars (where every bar is a new day) see each day's loss;
2. release: a HALTED state lifts by time (``cooldown`` bars) or by an operator, per the rule
   in ``halt_release``; a condition-released halt lifts in step 4;
3. triggers, most severe first: emergency loss since the day's start (halt and close everything),
   daily drawdown, monthly drawdown, consecutive losing days, a volatility spike, a correlation
   breakdown (halt); loss since the day's start past the scaling threshold (REDUCING);
4. the transition the triggers call for, or the way back: HALTED -> ACTIVE when the condition
   clears after ``cooldown`` bars (condition mode), REDUCING -> ACTIVE at the next day;
5. limits on the targets: concentration, the regime's limit scale, daily VaR, leverage; then
   the state: REDUCING halves the limits and lets no position grow; HALTED lets none grow; an
   emergency closes every position.

Every refusal and every change of state is recorded with its reason code (``ijules.risk.codes``)
on the step's fill rows; the Python side turns them into sentences and log lines.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ijules.env import compiled  # noqa: F401 - keys numba's cache by this kernel's sources
from ijules.env.layout import (
    B_DAILY_VAR,
    F_REFUSAL,
    F_STATE,
    F_TRANSITION,
    M_CORR_BREAK,
    M_CRISIS,
    M_DAY,
    M_HIGH_VOL,
    M_MONTH,
    M_RECOVERY,
    M_VOL_RATIO,
    N_BLOCKS,
    N_COSTS,
    P_BREAKERS_ON,
    P_CONCENTRATION,
    P_COOLDOWN,
    P_CORR_HALT,
    P_CRISIS_SCALE,
    P_EMERGENCY,
    P_HIGH_VOL_SCALE,
    P_LEVERAGE,
    P_LOSING_DAY,
    P_LOSING_DAYS,
    P_MAX_DAILY_DD,
    P_MAX_MONTHLY_DD,
    P_RECOVERY_SCALE,
    P_REDUCE_FACTOR,
    P_RELEASE_MODE,
    P_SCALING,
    P_VAR_BUDGET,
    P_VAR_MULTIPLE,
    P_VOL_ALERT,
    P_VOL_SPIKE,
    S_ALERTS,
    S_CHANGED,
    S_DAY,
    S_DAY_PEAK,
    S_DAY_START,
    S_LOSING_DAYS,
    S_MONTH,
    S_MONTH_PEAK,
    S_REFUSALS,
    S_RELEASE,
    S_SPIKING,
    S_STATE_REASON,
    S_STATE_SINCE,
    S_TRADING_STATE,
    S_TRANSITIONS,
)
from ijules.risk.codes import (
    ACTIVE,
    CONCENTRATION_LIMIT,
    CONSECUTIVE_LOSSES,
    CORRELATION_BREAKDOWN,
    DAILY_DRAWDOWN,
    EMERGENCY_FLATTEN,
    EMERGENCY_LOSS,
    HALTED,
    HALTED_NO_NEW_RISK,
    LEVERAGE_LIMIT,
    LOSS_SCALING,
    MONTHLY_DRAWDOWN,
    NO_CHANGE,
    RECOVERED,
    REDUCING,
    REDUCING_NO_GROWTH,
    REGIME_LIMIT,
    RELEASED_CONDITION,
    RELEASED_OPERATOR,
    RELEASED_TIME,
    VAR_LIMIT,
    VOLATILITY_SPIKE,
)

_RELEASE_TIME, _RELEASE_CONDITION, _RELEASE_OPERATOR = 0, 1, 2
_TOLERANCE = 1e-9


@njit(cache=True, inline="always")
def _transition(row: np.ndarray, now: int, state: int, reason: int) -> None:
    row[S_TRADING_STATE] = state
    row[S_STATE_REASON] = reason
    row[S_STATE_SINCE] = now
    row[S_TRANSITIONS] += 1.0
    row[S_CHANGED] = reason


@njit(cache=True, inline="always")
def risk_gate(
    row: np.ndarray,
    now: int,
    equity: float,
    weights_at: int,
    wanted_at: int,
    cap_at: int,
    n_assets: int,
    market: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    b: int,
    step: int,
) -> float:
    """Bring the wanted weights within the risk engine's limits and state; return the gross cap.

    ``row`` is the environment's state row: its current weights, wanted weights and caps sit at
    the given offsets (the caps are tightened here). The refusal, state and transition are
    written on the step's fill rows, ``fills[b, step, i]``.
    """
    scalars = N_BLOCKS * n_assets
    record_at = 1 + N_COSTS
    row[S_CHANGED] = NO_CHANGE

    # 1. The calendar.
    day, month = market[now, scalars + M_DAY], market[now, scalars + M_MONTH]
    new_day = day != row[S_DAY]
    closed_day_loss = 0.0
    closed_day_drawdown = 0.0
    if new_day:
        if row[S_DAY] >= 0.0:
            # The day just closed: its loss still counts now (with daily bars it is all we see).
            closed_day_loss = 1.0 - equity / row[S_DAY_START]
            closed_day_drawdown = 1.0 - equity / max(row[S_DAY_PEAK], equity)
            losing = closed_day_loss > params[P_LOSING_DAY]
            row[S_LOSING_DAYS] = row[S_LOSING_DAYS] + 1.0 if losing else 0.0
        row[S_DAY] = day
        row[S_DAY_START] = equity
        row[S_DAY_PEAK] = equity
    if month != row[S_MONTH]:
        row[S_MONTH] = month
        row[S_MONTH_PEAK] = equity
    row[S_DAY_PEAK] = max(row[S_DAY_PEAK], equity)
    row[S_MONTH_PEAK] = max(row[S_MONTH_PEAK], equity)
    day_loss = max(1.0 - equity / row[S_DAY_START], closed_day_loss)
    daily_drawdown = max(1.0 - equity / row[S_DAY_PEAK], closed_day_drawdown)
    monthly_drawdown = 1.0 - equity / row[S_MONTH_PEAK]
    volatility_ratio = market[now, scalars + M_VOL_RATIO]
    spiking = volatility_ratio >= params[P_VOL_ALERT]
    if spiking and row[S_SPIKING] == 0.0:
        row[S_ALERTS] += 1.0  # a soft alert, counted once per stretch of elevated volatility
    row[S_SPIKING] = 1.0 if spiking else 0.0

    # 2. Release by time or by an operator.
    state = int(row[S_TRADING_STATE])
    since = now - row[S_STATE_SINCE]
    mode = int(params[P_RELEASE_MODE])
    if state == HALTED:
        if mode == _RELEASE_TIME and since >= params[P_COOLDOWN]:
            _transition(row, now, ACTIVE, RELEASED_TIME)
            state = ACTIVE
        elif mode == _RELEASE_OPERATOR and row[S_RELEASE] > 0.0:
            row[S_RELEASE] = 0.0
            _transition(row, now, ACTIVE, RELEASED_OPERATOR)
            state = ACTIVE

    # 3. Triggers, most severe first.
    trigger = NO_CHANGE
    severity = 0
    breakers = params[P_BREAKERS_ON] > 0.0
    if breakers and day_loss >= params[P_EMERGENCY]:
        trigger, severity = EMERGENCY_LOSS, 3
    elif daily_drawdown >= params[P_MAX_DAILY_DD]:
        trigger, severity = DAILY_DRAWDOWN, 2
    elif monthly_drawdown >= params[P_MAX_MONTHLY_DD]:
        trigger, severity = MONTHLY_DRAWDOWN, 2
    elif breakers and row[S_LOSING_DAYS] >= params[P_LOSING_DAYS]:
        trigger, severity = CONSECUTIVE_LOSSES, 2
    elif breakers and volatility_ratio >= params[P_VOL_SPIKE]:
        trigger, severity = VOLATILITY_SPIKE, 2
    elif breakers and params[P_CORR_HALT] > 0.0 and market[now, scalars + M_CORR_BREAK] > 0.0:
        trigger, severity = CORRELATION_BREAKDOWN, 2
    elif breakers and day_loss >= params[P_SCALING]:
        trigger, severity = LOSS_SCALING, 1

    # 4. Transitions.
    if severity >= 2:
        if state != HALTED:
            _transition(row, now, HALTED, trigger)
            state = HALTED
    elif state == HALTED:
        if mode == _RELEASE_CONDITION and since >= params[P_COOLDOWN]:
            target = REDUCING if severity == 1 else ACTIVE
            _transition(row, now, target, RELEASED_CONDITION)
            state = target
    elif severity == 1 and state == ACTIVE:
        _transition(row, now, REDUCING, LOSS_SCALING)
        state = REDUCING
    elif severity == 0 and state == REDUCING and new_day:
        # Scaled down for the rest of the day: a new day starts with a clean slate.
        _transition(row, now, ACTIVE, RECOVERED)
        state = ACTIVE

    # 5. Limits, then the state's restrictions.
    scale = 1.0
    limit_reason = CONCENTRATION_LIMIT
    if market[now, scalars + M_CRISIS] > 0.0:
        scale = params[P_CRISIS_SCALE]
    elif market[now, scalars + M_RECOVERY] > 0.0:
        scale = params[P_RECOVERY_SCALE]
    elif market[now, scalars + M_HIGH_VOL] > 0.0:
        scale = params[P_HIGH_VOL_SCALE]
    if scale < 1.0:
        limit_reason = REGIME_LIMIT
    if state == REDUCING:
        scale *= params[P_REDUCE_FACTOR]
    budget = params[P_VAR_MULTIPLE] * params[P_VAR_BUDGET]
    gross = 0.0
    for i in range(n_assets):
        reason = 0
        limit = min(row[cap_at + i], params[P_CONCENTRATION]) * scale
        daily_var = market[now, B_DAILY_VAR * n_assets + i]
        if daily_var > 0.0 and budget / daily_var < limit:
            limit = budget / daily_var
            reason = VAR_LIMIT
        elif limit < row[cap_at + i]:
            reason = limit_reason
        row[cap_at + i] = limit
        wanted = row[wanted_at + i]
        asked = wanted
        if abs(asked) > limit + _TOLERANCE:
            asked = limit if asked > 0.0 else -limit
        else:
            reason = 0
        current = row[weights_at + i]
        if severity == 3:
            asked, reason = 0.0, EMERGENCY_FLATTEN
        elif state != ACTIVE:
            same_side = (asked > 0.0 and current > 0.0) or (asked < 0.0 and current < 0.0)
            allowed = min(abs(asked), abs(current)) if same_side else 0.0
            if state == REDUCING:
                allowed = min(allowed, limit)
            shrunk = allowed if asked >= 0.0 else -allowed
            if abs(shrunk - asked) > _TOLERANCE:
                asked = shrunk
                reason = REDUCING_NO_GROWTH if state == REDUCING else HALTED_NO_NEW_RISK
        if reason != 0 and abs(asked - wanted) > _TOLERANCE:
            row[S_REFUSALS] += 1.0
            fills[b, step, i, record_at + F_REFUSAL] = reason
        row[wanted_at + i] = asked
        gross += abs(asked)
        fills[b, step, i, record_at + F_STATE] = state
        fills[b, step, i, record_at + F_TRANSITION] = row[S_CHANGED]
    gross_cap = params[P_LEVERAGE]
    if gross > gross_cap + _TOLERANCE:
        for i in range(n_assets):
            row[wanted_at + i] *= gross_cap / gross
            if fills[b, step, i, record_at + F_REFUSAL] == 0.0:
                fills[b, step, i, record_at + F_REFUSAL] = LEVERAGE_LIMIT
        row[S_REFUSALS] += 1.0
    return float(gross_cap)
