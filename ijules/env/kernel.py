"""The simulation kernel: risk gate, execution, costs, accounting, reward and observations.

One compiled step serves a single environment (a batch of one) and the vectorised environment
(a batch of N copies), so the economics exist once. numba compiles it on first use and caches the
machine code beside this file. The arrays are packed (:mod:`ijules.env.layout`) so that a step is
one call with a handful of arguments: a Python step costs about a microsecond on top.

Conventions: ``b`` indexes environments in the batch, ``i`` instruments, ``t`` bars. Prices are
marks at the bar's close; a fill at bar t trades at bar t's close (the mid), pays its costs in
cash, and the position is marked at bar t+1's close. Every target passes the risk gate
(:mod:`ijules.risk.gate`) before it can trade.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ijules.env import compiled  # noqa: F401 - keys numba's cache by this kernel's sources
from ijules.env.layout import (
    B_LIQUIDITY,
    B_SIGMA,
    B_STALE,
    B_TRADABLE,
    CAPACITY,
    COST_COMPONENTS,
    D_ASSETS,
    D_AVG,
    D_COSTS,
    D_DRAWDOWNS,
    D_FEATURES,
    D_HELD,
    D_RING,
    D_RISK_MASK,
    D_UNITS,
    F_EQUITY,
    FIXED,
    M_CAPACITY,
    M_CORRELATION,
    N_BLOCKS,
    N_COSTS,
    N_MARKET_SCALARS,
    N_RISK,
    N_SCALARS,
    P_ACTION_OFFSET,
    P_ADVERSE,
    P_BAND,
    P_BARS_PER_DAY,
    P_CAPACITY_ON,
    P_CAPITAL,
    P_DD_LIMIT,
    P_DD_VELOCITY_ALERT,
    P_DIMS,
    P_ETA,
    P_FIXED,
    P_GAMMA,
    P_IMPACT_ON,
    P_LAMBDA,
    P_MAX_GROSS,
    P_MAX_SINGLE,
    P_MAX_TRADE,
    P_OBS_BY_STEP,
    P_PENALTY_VARIANCE,
    P_PROPORTIONAL,
    P_REWARD_HIGH,
    P_REWARD_LOW,
    P_REWARD_SCALING,
    P_RISK_ON,
    P_TICK_ON,
    P_TICKS,
    P_VAR_BUDGET,
    PERMANENT,
    PROPORTIONAL,
    RISK_FEATURES,
    S_AFTER_END,
    S_ALERTS,
    S_CASH,
    S_CHANGED,
    S_END,
    S_LAST_RETURN,
    S_MARK,
    S_NONFINITE,
    S_OUT_OF_BOUNDS,
    S_PEAK,
    S_REALISED,
    S_REWARD,
    S_START,
    S_T,
    S_TERMINATED,
    S_TRUNCATED,
    TEMPORARY,
    TICK,
)
from ijules.risk.gate import risk_gate

__all__ = [
    "COST_COMPONENTS",
    "N_COSTS",
    "N_SCALARS",
    "RISK_FEATURES",
    "capacity_charge",
    "fill_costs",
    "observe_batch",
    "step_batch",
    "work_size",
]

Z_95 = 1.6448536269514722  # one-sided 95% normal quantile
_TOLERANCE = 1e-7  # float noise in units x price / equity is not a limit breach
_SIZING_PASSES = 3  # fixed-point passes so the post-cost position meets its target


@njit(cache=True)
def fill_costs(
    units: float,
    price: float,
    tick: float,
    sigma: float,
    liquidity: float,
    params: np.ndarray,
    out: np.ndarray,
    at: int = 0,
) -> float:
    """Write the costs of trading ``units`` at ``price`` into ``out[at:at + C]``; return the sum.

    fixed: a flat fee per fill; proportional: bps of the traded value; tick: the distance to
    the next tick against the trader; temporary impact: eta * sigma * sqrt(q / V) * |value|;
    permanent impact: gamma * (q / V) * |value|, with q the units traded and V the units the
    bar's liquidity offers. The capacity charge is portfolio-wide (see ``capacity_charge``).
    Every component is >= 0 and non-decreasing in |units|.
    """
    for k in range(N_COSTS):
        out[at + k] = 0.0
    quantity = abs(units)
    if quantity == 0.0:
        return 0.0
    value = quantity * price
    out[at + FIXED] = params[P_FIXED]
    out[at + PROPORTIONAL] = params[P_PROPORTIONAL] * value
    if params[P_TICK_ON] > 0.0 and tick > 0.0:
        if units > 0.0:
            out[at + TICK] = max((math.ceil(price / tick - 1e-9) * tick - price) * quantity, 0.0)
        else:
            out[at + TICK] = max((price - math.floor(price / tick + 1e-9) * tick) * quantity, 0.0)
    if params[P_IMPACT_ON] > 0.0:
        participation = quantity / liquidity
        out[at + TEMPORARY] = params[P_ETA] * sigma * math.sqrt(participation) * value
        out[at + PERMANENT] = params[P_GAMMA] * participation * value
    total = 0.0
    for k in range(N_COSTS):
        total += out[at + k]
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


def work_size(n_assets: int) -> int:
    """Columns of work space ``step_batch`` needs at the end of each state row."""
    return N_COSTS * (1 + n_assets) + 5 * n_assets


@njit(cache=True)
def step_batch(
    state: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    actions: np.ndarray,
    fills: np.ndarray,
    observations: np.ndarray,
) -> tuple[int, float, bool, bool, float, int]:
    """Advance every environment in the batch by one bar towards the weights its action asks.

    Return how many environments flagged something for the Python side (a non-finite value, a
    reward out of bounds, a step after the episode's end, a change of trading state; 0 on a
    quiet step), then the first environment's reward, terminated and truncated flags, equity and
    episode step (what a single environment hands back, without reading the state again).

    ``actions`` (flat: environment-major, then instruments) become targets
    (action - offset) x max_single. They pass the risk gate; then, whatever they ask, no position
    ends past its limit and the gross exposure never past its cap; an instrument whose market is
    closed (or, with adverse-selection protection, whose bar printed no volume) does not trade.
    Then the observation of the new bar is written to ``observations``.

    The hot path indexes into the packed arrays rather than slicing them: every array view costs
    a reference count, and a step is only a microsecond or so of arithmetic.
    """
    n_envs = state.shape[0]
    n_assets = int(params[P_DIMS + D_ASSETS])
    flagged = 0
    units_at = int(params[P_DIMS + D_UNITS])
    avg_at = int(params[P_DIMS + D_AVG])
    held_at = int(params[P_DIMS + D_HELD])
    costs_at = int(params[P_DIMS + D_COSTS])
    ring_at = int(params[P_DIMS + D_DRAWDOWNS])
    ring = int(params[P_DIMS + D_RING])
    # Work space at the end of each state row: no allocation on the hot path.
    breakdown_at = ring_at + ring
    trade_at = breakdown_at + N_COSTS
    goal_at = trade_at + n_assets
    moving_at = goal_at + n_assets
    wanted_at = moving_at + n_assets
    cap_at = wanted_at + n_assets
    costs_work_at = cap_at + n_assets
    tradable_at, stale_at = B_TRADABLE * n_assets, B_STALE * n_assets
    sigma_at, liquidity_at = B_SIGMA * n_assets, B_LIQUIDITY * n_assets
    capacity_at = N_BLOCKS * n_assets + M_CAPACITY
    max_single = params[P_MAX_SINGLE]
    risk_on = params[P_RISK_ON] > 0.0
    for b in range(n_envs):
        row = state[b]
        now = int(row[S_T])
        row[S_NONFINITE] = 0.0
        row[S_OUT_OF_BOUNDS] = 0.0
        if now >= int(row[S_END]):
            row[S_AFTER_END] = 1.0
            flagged += 1
            continue
        step = now - int(row[S_START])
        equity = row[S_CASH]
        for i in range(n_assets):
            equity += row[units_at + i] * market[now, i]

        # The targets asked for, then the risk gate.
        gross_now = 0.0
        for i in range(n_assets):
            weight = row[units_at + i] * market[now, i] / equity
            row[goal_at + i] = weight
            gross_now += abs(weight)
            asked = (actions[b * n_assets + i] - params[P_ACTION_OFFSET]) * max_single
            row[wanted_at + i] = min(max_single, max(-max_single, asked))
            row[cap_at + i] = max_single
        max_gross = params[P_MAX_GROSS]
        if risk_on:
            gross_cap = risk_gate(
                row,
                now,
                equity,
                goal_at,
                wanted_at,
                cap_at,
                n_assets,
                market,
                params,
                fills,
                b,
                step,
            )
            max_gross = min(max_gross, gross_cap)
            if row[S_CHANGED] > 0.0:
                flagged += 1

        # Which instruments trade, towards which weight.
        over_gross = gross_now > max_gross + _TOLERANCE
        gross_goal = 0.0
        max_trade = params[P_MAX_TRADE]
        band = min(params[P_BAND], max_trade) if max_trade > 0.0 else params[P_BAND]
        for i in range(n_assets):
            weight = row[goal_at + i]
            row[moving_at + i] = 0.0
            closed = market[now, tradable_at + i] == 0.0
            stale = params[P_ADVERSE] > 0.0 and market[now, stale_at + i] > 0.0
            if not closed and not stale:
                wanted = row[wanted_at + i]
                over_limit = abs(weight) > row[cap_at + i] + _TOLERANCE
                if max_trade > 0.0 and not over_limit:
                    wanted = min(weight + max_trade, max(weight - max_trade, wanted))
                if abs(wanted - weight) >= band or over_limit or over_gross:
                    row[goal_at + i] = wanted
                    row[moving_at + i] = 1.0
            gross_goal += abs(row[goal_at + i])
        if gross_goal > max_gross:
            # Scale down what moves so the gross exposure fits (what cannot move stays).
            fixed_gross = 0.0
            moving_gross = 0.0
            for i in range(n_assets):
                if row[moving_at + i] > 0.0:
                    moving_gross += abs(row[goal_at + i])
                else:
                    fixed_gross += abs(row[goal_at + i])
            room = max(max_gross - fixed_gross, 0.0)
            for i in range(n_assets):
                if row[moving_at + i] > 0.0 and moving_gross > 0.0:
                    row[goal_at + i] *= room / moving_gross

        # Size the trades so that, after paying their costs, positions sit at their goals.
        spent = 0.0
        for _ in range(_SIZING_PASSES):
            net = equity - spent
            traded_value = 0.0
            for i in range(n_assets):
                price = market[now, i]
                if row[moving_at + i] > 0.0:
                    row[trade_at + i] = row[goal_at + i] * net / price - row[units_at + i]
                else:
                    row[trade_at + i] = 0.0
                traded_value += abs(row[trade_at + i]) * price
            spent = 0.0
            weighted_sigma = 0.0
            for i in range(n_assets):
                sigma = market[now, sigma_at + i]
                at = costs_work_at + i * N_COSTS
                spent += fill_costs(
                    row[trade_at + i],
                    market[now, i],
                    params[P_TICKS + i],
                    sigma,
                    market[now, liquidity_at + i],
                    params,
                    row,
                    at,
                )
                weighted_sigma += abs(row[trade_at + i]) * market[now, i] * sigma
            if params[P_CAPACITY_ON] > 0.0 and traded_value > 0.0:
                charge = capacity_charge(
                    traded_value,
                    equity,
                    market[now, capacity_at],
                    weighted_sigma / traded_value,
                    params[P_ETA],
                )
                for i in range(n_assets):
                    share = abs(row[trade_at + i]) * market[now, i] / traded_value
                    row[costs_work_at + i * N_COSTS + CAPACITY] = charge * share
                spent += charge

        # Book the fills: cash at the mid, costs on top; average cost and realised P&L.
        for i in range(n_assets):
            quantity = row[trade_at + i]
            fills[b, step, i, 0] = quantity
            for k in range(N_COSTS):
                cost = row[costs_work_at + i * N_COSTS + k]
                fills[b, step, i, 1 + k] = cost
                row[costs_at + k] += cost
            if quantity == 0.0:
                continue
            price = market[now, i]
            before = row[units_at + i]
            row[S_CASH] -= quantity * price
            if before == 0.0 or (before > 0.0) == (quantity > 0.0):
                row[avg_at + i] = (abs(before) * row[avg_at + i] + abs(quantity) * price) / (
                    abs(before) + abs(quantity)
                )
            else:
                closed_units = min(abs(quantity), abs(before))
                direction = 1.0 if before > 0.0 else -1.0
                row[S_REALISED] += closed_units * (price - row[avg_at + i]) * direction
                if abs(quantity) > abs(before):
                    row[avg_at + i] = price
                elif abs(quantity) == abs(before):
                    row[avg_at + i] = 0.0
            row[units_at + i] = before + quantity
        row[S_CASH] -= spent
        for i in range(n_assets):
            row[held_at + i] = row[units_at + i] * market[now, i] / (equity - spent)

        # Mark at the next bar; reward, drawdown and the end of the episode.
        row[S_T] = now + 1
        after = row[S_CASH]
        for i in range(n_assets):
            after += row[units_at + i] * market[now + 1, i]
        row[S_MARK] = after
        for i in range(n_assets):
            fills[b, step, i, 1 + N_COSTS + F_EQUITY] = after
        row[S_PEAK] = max(row[S_PEAK], after)
        drawdown = 1.0 - after / row[S_PEAK] if row[S_PEAK] > 0.0 else 1.0
        previous = row[ring_at + step % ring]
        row[ring_at + (step + 1) % ring] = drawdown
        if drawdown - previous > params[P_DD_VELOCITY_ALERT]:
            row[S_ALERTS] += 1.0  # a soft alert: the drawdown deepened fast this bar
        bar_return = after / equity - 1.0
        row[S_LAST_RETURN] = bar_return
        if params[P_PENALTY_VARIANCE] > 0.0:
            penalty = params[P_LAMBDA] * bar_return * bar_return * params[P_CAPITAL]
        else:
            penalty = params[P_LAMBDA] * drawdown * params[P_CAPITAL]
        reward = (after - equity - penalty) * params[P_REWARD_SCALING]
        row[S_REWARD] = reward
        if not math.isfinite(reward):
            row[S_NONFINITE] += 1.0
        elif reward < params[P_REWARD_LOW] or reward > params[P_REWARD_HIGH]:
            row[S_OUT_OF_BOUNDS] = 1.0
        limit = params[P_DD_LIMIT]
        terminated = after <= 0.0 or (limit > 0.0 and drawdown > limit)
        row[S_TERMINATED] = 1.0 if terminated else 0.0
        row[S_TRUNCATED] = 1.0 if (now + 1 >= int(row[S_END]) and not terminated) else 0.0
        _observe(b, row, market, params, observations)
        if row[S_NONFINITE] > 0.0 or row[S_OUT_OF_BOUNDS] > 0.0:
            flagged += 1
    return (
        flagged,
        state[0, S_REWARD],
        state[0, S_TERMINATED] > 0.0,
        state[0, S_TRUNCATED] > 0.0,
        state[0, S_MARK],
        int(state[0, S_T] - state[0, S_START]),
    )


@njit(cache=True)
def observe_batch(
    state: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    observations: np.ndarray,
) -> None:
    """Write every environment's observation of its current bar (after a reset)."""
    for b in range(state.shape[0]):
        state[b, S_NONFINITE] = 0.0
        _observe(b, state[b], market, params, observations)


@njit(cache=True)
def _observe(
    b: int,
    row: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    observations: np.ndarray,
) -> None:
    """Write environment ``b``'s observation; count non-finite values in state[b, S_NONFINITE].

    Layout: standardised features of bar t, then current weights (clipped to [-1, 1]), then the
    selected risk features, which use bars up to t only:

    - portfolio_heat_ratio: daily parametric VaR(95%) of the positions, sum |w_i| sigma_i * z *
      sqrt(bars per day), over the daily VaR budget;
    - concentration_ratio: sum w_i^2 / (sum |w_i|)^2 (1 for a single position, 0 when flat);
    - drawdown_velocity: drawdown now minus drawdown ring - 1 bars ago (or at the start);
    - var_breach_indicator: 1 when the last bar lost more than the VaR of the weights held;
    - correlation_breakdown: the market's short- against long-window correlation gap.
    """
    now = int(row[S_T])
    elapsed = now - int(row[S_START])
    out = observations[elapsed] if params[P_OBS_BY_STEP] > 0.0 else observations[b]
    n_assets = int(params[P_DIMS + D_ASSETS])
    n_features = int(params[P_DIMS + D_FEATURES])
    ring = int(params[P_DIMS + D_RING])
    units_at = int(params[P_DIMS + D_UNITS])
    held_at = int(params[P_DIMS + D_HELD])
    ring_at = int(params[P_DIMS + D_DRAWDOWNS])
    sigma_at = B_SIGMA * n_assets
    scalars = N_BLOCKS * n_assets
    features_at = scalars + N_MARKET_SCALARS
    for j in range(n_features):
        out[j] = market[now, features_at + j]
    equity = row[S_CASH]
    for i in range(n_assets):
        equity += row[units_at + i] * market[now, i]
    gross = 0.0
    squares = 0.0
    risk = 0.0
    held_risk = 0.0
    nonfinite = 0.0
    for i in range(n_assets):
        weight = row[units_at + i] * market[now, i] / equity if equity > 0.0 else 0.0
        if not math.isfinite(weight):
            nonfinite += 1.0
        out[n_features + i] = min(1.0, max(-1.0, weight))
        gross += abs(weight)
        squares += weight * weight
        risk += abs(weight) * market[now, sigma_at + i]
        if elapsed > 0:
            held_risk += abs(row[held_at + i]) * market[now - 1, sigma_at + i]
    drawdown = 1.0 - equity / row[S_PEAK] if row[S_PEAK] > 0.0 else 0.0
    # The ring keeps the last ``ring`` drawdowns; ring - 1 bars back is the oldest it holds.
    past = row[ring_at + max(elapsed - (ring - 1), 0) % ring]
    position = n_features + n_assets
    for k in range(N_RISK):
        if params[P_DIMS + D_RISK_MASK + k] == 0.0:
            continue
        if k == 0:
            value = Z_95 * risk * math.sqrt(params[P_BARS_PER_DAY]) / params[P_VAR_BUDGET]
        elif k == 1:
            value = squares / (gross * gross) if gross > 0.0 else 0.0
        elif k == 2:
            value = drawdown - past
        elif k == 3:
            value = 1.0 if elapsed > 0 and row[S_LAST_RETURN] < -Z_95 * held_risk else 0.0
        else:
            value = market[now, scalars + M_CORRELATION]
        if not math.isfinite(value):
            nonfinite += 1.0
        out[position] = value
        position += 1
    row[S_NONFINITE] += nonfinite
