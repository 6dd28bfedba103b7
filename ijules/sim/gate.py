"""The risk gate: every target weight passes here before it can trade (compiled, in the step).

Per bar and environment, in order:

1. the calendar: at a new UTC day the day's P&L counts a losing day (below -losing_day; or
   resets the streak) and the day's start equity and peak restart; likewise the month's peak.
   On that first bar the closed day's loss and drawdown still count for the triggers, so daily
   bars (where every bar is a new day) see each day's loss;
2. release: a HALTED state lifts by time (``cooldown`` bars) or by an operator, per the rule
   in ``release_mode``; a condition-released halt lifts in step 4;
3. triggers, most severe first: emergency loss since the day's start (halt and close everything),
   daily drawdown, monthly drawdown, consecutive losing days, a volatility spike, a correlation
   breakdown (halt); loss since the day's start past the scaling threshold (REDUCING);
4. the transition the triggers call for, or the way back: HALTED -> ACTIVE when the condition
   clears after ``cooldown`` bars (condition mode), REDUCING -> ACTIVE at the next day;
5. limits on the targets: concentration, the regime's limit scale, daily VaR, leverage; then
   the state: REDUCING scales the limits down and lets no position grow; HALTED lets none
   grow; an emergency closes every position.

Every refusal and every change of state is recorded with its reason code (:mod:`ijules.sim.codes`)
on the step's fill records; the Python side turns them into sentences and log lines.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ijules.sim import cache  # noqa: F401 - keys numba's cache by this package's sources
from ijules.sim.codes import (
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
from ijules.sim.layout import RELEASE_CONDITION, RELEASE_OPERATOR, RELEASE_TIME

_TOLERANCE = 1e-9


@njit(cache=True, inline="always")
def _transition(accounts: np.ndarray, b: int, now: int, state: int, reason: int) -> None:
    account = accounts[b]
    account.trading_state = state
    account.state_reason = reason
    account.state_since = now
    account.transitions += 1
    account.changed = reason


@njit(cache=True, inline="always")
def risk_gate(
    accounts: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    b: int,
    now: int,
    step: int,
    equity: float,
) -> float:
    """Bring environment ``b``'s wanted weights within the engine's limits; return the gross cap.

    Reads each instrument's current ``weight`` and ``wanted``, tightens its ``cap`` and cuts its
    ``wanted``; records the refusals, the state and any transition on ``fills[b, step]``.
    """
    p = params[0]
    account = accounts[b]
    bar = market[now]
    fill = fills[b, step]
    account.changed = NO_CHANGE

    # 1. The calendar.
    day, month = bar.day, bar.month
    new_day = day != account.day
    closed_day_loss = 0.0
    closed_day_drawdown = 0.0
    if new_day:
        if account.day >= 0:
            # The day just closed: its loss still counts now (with daily bars it is all we see).
            closed_day_loss = 1.0 - equity / account.day_start
            closed_day_drawdown = 1.0 - equity / max(account.day_peak, equity)
            losing = closed_day_loss > p.losing_day
            account.losing_days = account.losing_days + 1 if losing else 0
        account.day = day
        account.day_start = equity
        account.day_peak = equity
    if month != account.month:
        account.month = month
        account.month_peak = equity
    account.day_peak = max(account.day_peak, equity)
    account.month_peak = max(account.month_peak, equity)
    day_loss = max(1.0 - equity / account.day_start, closed_day_loss)
    daily_drawdown = max(1.0 - equity / account.day_peak, closed_day_drawdown)
    monthly_drawdown = 1.0 - equity / account.month_peak
    volatility_ratio = bar.volatility_ratio
    spiking = volatility_ratio >= p.vol_alert
    if spiking and not account.spiking:
        account.alerts += 1  # a soft alert, counted once per stretch of elevated volatility
    account.spiking = spiking

    # 2. Release by time or by an operator.
    state = account.trading_state
    since = now - account.state_since
    mode = p.release_mode
    if state == HALTED:
        if mode == RELEASE_TIME and since >= p.cooldown:
            _transition(accounts, b, now, ACTIVE, RELEASED_TIME)
            state = ACTIVE
        elif mode == RELEASE_OPERATOR and account.release:
            account.release = False
            _transition(accounts, b, now, ACTIVE, RELEASED_OPERATOR)
            state = ACTIVE

    # 3. Triggers, most severe first.
    trigger = NO_CHANGE
    severity = 0
    breakers = p.breakers
    if breakers and day_loss >= p.emergency:
        trigger, severity = EMERGENCY_LOSS, 3
    elif daily_drawdown >= p.max_daily_dd:
        trigger, severity = DAILY_DRAWDOWN, 2
    elif monthly_drawdown >= p.max_monthly_dd:
        trigger, severity = MONTHLY_DRAWDOWN, 2
    elif breakers and account.losing_days >= p.losing_days:
        trigger, severity = CONSECUTIVE_LOSSES, 2
    elif breakers and volatility_ratio >= p.vol_spike:
        trigger, severity = VOLATILITY_SPIKE, 2
    elif breakers and p.correlation_halt and bar.correlation_break:
        trigger, severity = CORRELATION_BREAKDOWN, 2
    elif breakers and day_loss >= p.scaling:
        trigger, severity = LOSS_SCALING, 1

    # 4. Transitions.
    if severity >= 2:
        if state != HALTED:
            _transition(accounts, b, now, HALTED, trigger)
            state = HALTED
    elif state == HALTED:
        if mode == RELEASE_CONDITION and since >= p.cooldown:
            target = REDUCING if severity == 1 else ACTIVE
            _transition(accounts, b, now, target, RELEASED_CONDITION)
            state = target
    elif severity == 1 and state == ACTIVE:
        _transition(accounts, b, now, REDUCING, LOSS_SCALING)
        state = REDUCING
    elif severity == 0 and state == REDUCING and new_day:
        # Scaled down for the rest of the day: a new day starts with a clean slate.
        _transition(accounts, b, now, ACTIVE, RECOVERED)
        state = ACTIVE

    # 5. Limits, then the state's restrictions.
    scale = 1.0
    limit_reason = CONCENTRATION_LIMIT
    if bar.crisis:
        scale = p.crisis_scale
    elif bar.recovery:
        scale = p.recovery_scale
    elif bar.high_volatility:
        scale = p.high_vol_scale
    if scale < 1.0:
        limit_reason = REGIME_LIMIT
    if state == REDUCING:
        scale *= p.reduce_factor
    budget = p.var_multiple * p.var_budget
    gross = 0.0
    caps, wanted_weights = account.cap, account.wanted
    n_assets = caps.shape[0]
    for i in range(n_assets):
        reason = 0
        limit = min(caps[i], p.concentration) * scale
        daily_var = bar.daily_var[i]
        if daily_var > 0.0 and budget / daily_var < limit:
            limit = budget / daily_var
            reason = VAR_LIMIT
        elif limit < caps[i]:
            reason = limit_reason
        caps[i] = limit
        wanted = wanted_weights[i]
        asked = wanted
        if abs(asked) > limit + _TOLERANCE:
            asked = limit if asked > 0.0 else -limit
        else:
            reason = 0
        current = account.weight[i]
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
            account.refusals += 1
            fill.refusal[i] = reason
        wanted_weights[i] = asked
        gross += abs(asked)
    fill.state = state
    fill.transition = account.changed
    gross_cap = p.leverage
    if gross > gross_cap + _TOLERANCE:
        for i in range(n_assets):
            wanted_weights[i] *= gross_cap / gross
            if fill.refusal[i] == 0:
                fill.refusal[i] = LEVERAGE_LIMIT
        account.refusals += 1
    return float(gross_cap)
