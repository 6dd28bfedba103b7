"""The simulation kernel: execution, costs, accounting, reward, risk features and observations.

One compiled step serves a single environment (a batch of one) and the vectorised environment
(a batch of N copies), so the economics exist once. numba compiles it on first use and caches the
machine code beside this file. The arrays are packed so that a step is one call with a handful of
arguments: a Python step then costs about a microsecond on top of the arithmetic.

Conventions: ``b`` indexes environments in the batch, ``i`` instruments, ``t`` bars. Prices are
marks at the bar's close; a fill at bar t trades at bar t's close (the mid), pays its costs in
cash, and the position is marked at bar t+1's close.

Packed layouts (offsets are computed by :class:`Layout`, in Python, and passed in ``params``):

``market[t, :]``  close (N) | tradable (N) | stale (N) | sigma (N) | liquidity (N) |
                  capacity | correlation | standardised features (F)
``state[b, :]``   the S_* scalars | units (N) | average cost (N) | weights held (N) |
                  costs paid by component (C) | drawdown ring (L) | work space
``params``        the P_* scalars | the dims block (D_* sizes and offsets) | tick per instrument
``fills[b, s, i, :]``  units traded | cost by component (C), at episode step s
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Cost components, in the order they are recorded on every fill.
COST_COMPONENTS = (
    "fixed",
    "proportional",
    "tick",
    "temporary_impact",
    "permanent_impact",
    "capacity",
)
FIXED, PROPORTIONAL, TICK, TEMPORARY, PERMANENT, CAPACITY = range(6)
N_COSTS = len(COST_COMPONENTS)

# Risk features, in the order the observation may include them.
RISK_FEATURES = (
    "portfolio_heat_ratio",
    "concentration_ratio",
    "drawdown_velocity",
    "var_breach_indicator",
    "correlation_breakdown",
)
N_RISK = len(RISK_FEATURES)

# Scalars of ``state[b]``.
S_T, S_START, S_END, S_CASH, S_REALISED, S_PEAK, S_LAST_RETURN, S_MARK = range(8)
S_REWARD, S_TERMINATED, S_TRUNCATED = 8, 9, 10
S_NONFINITE, S_OUT_OF_BOUNDS, S_AFTER_END = 11, 12, 13
N_SCALARS = 14

# ``dims``: sizes and offsets.
D_ASSETS, D_FEATURES, D_RING = 0, 1, 2
D_UNITS, D_AVG, D_HELD, D_COSTS, D_DRAWDOWNS = 3, 4, 5, 6, 7
D_RISK_MASK = 8  # N_RISK flags follow
N_DIMS = D_RISK_MASK + N_RISK

# ``params``: the flat parameter vector; per-instrument tick sizes follow P_TICKS.
P_CAPITAL = 0
P_MAX_SINGLE = 1
P_MAX_GROSS = 2
P_BAND = 3
P_FIXED = 4
P_PROPORTIONAL = 5
P_IMPACT_ON = 6
P_ETA = 7
P_GAMMA = 8
P_CAPACITY_ON = 9
P_ADVERSE = 10
P_TICK_ON = 11
P_REWARD_SCALING = 12
P_LAMBDA = 13
P_PENALTY_VARIANCE = 14
P_DD_LIMIT = 15
P_VAR_BUDGET = 16
P_BARS_PER_DAY = 17
P_REWARD_LOW = 18
P_REWARD_HIGH = 19
P_ACTION_OFFSET = 20  # target = (action - offset) x max_single: 0 continuous, 1 discrete
P_OBS_BY_STEP = 21  # 1: observations[s] holds episode step s (a batch of one); 0: observations[b]
P_DIMS = 22  # the dims block (sizes and offsets, as floats) follows
P_TICKS = P_DIMS + N_DIMS  # then one tick size per instrument

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
) -> float:
    """Write the costs of trading ``units`` at ``price`` into ``out``; return their sum.

    fixed: a flat fee per fill; proportional: bps of the traded value; tick: the distance to
    the next tick against the trader; temporary impact: eta * sigma * sqrt(q / V) * |value|;
    permanent impact: gamma * (q / V) * |value|, with q the units traded and V the units the
    bar's liquidity offers. The capacity charge is portfolio-wide (see ``capacity_charge``).
    Every component is >= 0 and non-decreasing in |units|.
    """
    for k in range(N_COSTS):
        out[k] = 0.0
    quantity = abs(units)
    if quantity == 0.0:
        return 0.0
    value = quantity * price
    out[FIXED] = params[P_FIXED]
    out[PROPORTIONAL] = params[P_PROPORTIONAL] * value
    if params[P_TICK_ON] > 0.0 and tick > 0.0:
        if units > 0.0:
            out[TICK] = max((math.ceil(price / tick - 1e-9) * tick - price) * quantity, 0.0)
        else:
            out[TICK] = max((price - math.floor(price / tick + 1e-9) * tick) * quantity, 0.0)
    if params[P_IMPACT_ON] > 0.0:
        participation = quantity / liquidity
        out[TEMPORARY] = params[P_ETA] * sigma * math.sqrt(participation) * value
        out[PERMANENT] = params[P_GAMMA] * participation * value
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


def work_size(n_assets: int) -> int:
    """Columns of work space ``step_batch`` needs at the end of each state row."""
    return N_COSTS * (1 + n_assets) + 3 * n_assets


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

    Return how many environments flagged something for the safeguards (a non-finite value, a
    reward out of bounds, a step after the episode's end; 0 on a clean step), then the first
    environment's reward, terminated and truncated flags, equity and episode step (what a
    single environment hands back, without reading the state again).

    ``actions`` (any shape holding batch x instruments values) become targets
    (action - offset) x max_single. Whatever they ask, no position ends past max_single and the
    gross exposure never past max_gross; an instrument whose market is closed (or, with
    adverse-selection protection, whose bar printed no volume) does not trade. Then the
    observation of the new bar is written to ``observations``.
    """
    n_envs = state.shape[0]
    dims = params[P_DIMS : P_DIMS + N_DIMS]
    n_assets = int(dims[D_ASSETS])
    asked_for = actions.reshape(n_envs, n_assets)
    flagged = 0
    units_at, avg_at, held_at = int(dims[D_UNITS]), int(dims[D_AVG]), int(dims[D_HELD])
    costs_at, ring_at, ring = int(dims[D_COSTS]), int(dims[D_DRAWDOWNS]), int(dims[D_RING])
    work_at = ring_at + ring
    tradable_at, stale_at, sigma_at, liquidity_at = (
        n_assets,
        2 * n_assets,
        3 * n_assets,
        4 * n_assets,
    )
    capacity_at = 5 * n_assets
    max_single = params[P_MAX_SINGLE]
    max_gross = params[P_MAX_GROSS]
    for b in range(n_envs):
        row = state[b]
        # Work arrays live at the end of the row: no allocation on the hot path.
        work = row[work_at:]
        breakdown = work[:N_COSTS]
        trade = work[N_COSTS : N_COSTS + n_assets]
        goal = work[N_COSTS + n_assets : N_COSTS + 2 * n_assets]
        moving = work[N_COSTS + 2 * n_assets : N_COSTS + 3 * n_assets]
        costs = work[N_COSTS + 3 * n_assets : N_COSTS * (1 + n_assets) + 3 * n_assets].reshape(
            (n_assets, N_COSTS)
        )
        now = int(row[S_T])
        row[S_NONFINITE] = 0.0
        row[S_OUT_OF_BOUNDS] = 0.0
        if now >= int(row[S_END]):
            row[S_AFTER_END] = 1.0
            flagged += 1
            continue
        bar = market[now]
        equity = row[S_CASH]
        for i in range(n_assets):
            equity += row[units_at + i] * bar[i]

        # Which instruments trade, towards which weight.
        gross_now = 0.0
        for i in range(n_assets):
            goal[i] = row[units_at + i] * bar[i] / equity
            gross_now += abs(goal[i])
        over_gross = gross_now > max_gross + _TOLERANCE
        gross_goal = 0.0
        for i in range(n_assets):
            weight = goal[i]
            moving[i] = 0.0
            closed = bar[tradable_at + i] == 0.0
            if not closed and not (params[P_ADVERSE] > 0.0 and bar[stale_at + i] > 0.0):
                asked = (asked_for[b, i] - params[P_ACTION_OFFSET]) * max_single
                wanted = min(max_single, max(-max_single, asked))
                over_limit = abs(weight) > max_single + _TOLERANCE
                if abs(wanted - weight) >= params[P_BAND] or over_limit or over_gross:
                    goal[i] = wanted
                    moving[i] = 1.0
            gross_goal += abs(goal[i])
        if gross_goal > max_gross:
            # Scale down what moves so the gross exposure fits (what cannot move stays).
            fixed_gross = 0.0
            moving_gross = 0.0
            for i in range(n_assets):
                if moving[i] > 0.0:
                    moving_gross += abs(goal[i])
                else:
                    fixed_gross += abs(goal[i])
            room = max(max_gross - fixed_gross, 0.0)
            for i in range(n_assets):
                if moving[i] > 0.0 and moving_gross > 0.0:
                    goal[i] *= room / moving_gross

        # Size the trades so that, after paying their costs, positions sit at their goals.
        spent = 0.0
        for _ in range(_SIZING_PASSES):
            net = equity - spent
            traded_value = 0.0
            for i in range(n_assets):
                trade[i] = goal[i] * net / bar[i] - row[units_at + i] if moving[i] > 0.0 else 0.0
                traded_value += abs(trade[i]) * bar[i]
            spent = 0.0
            weighted_sigma = 0.0
            for i in range(n_assets):
                sigma = bar[sigma_at + i]
                spent += fill_costs(
                    trade[i],
                    bar[i],
                    params[P_TICKS + i],
                    sigma,
                    bar[liquidity_at + i],
                    params,
                    breakdown,
                )
                for k in range(N_COSTS):
                    costs[i, k] = breakdown[k]
                weighted_sigma += abs(trade[i]) * bar[i] * sigma
            if params[P_CAPACITY_ON] > 0.0 and traded_value > 0.0:
                charge = capacity_charge(
                    traded_value,
                    equity,
                    bar[capacity_at],
                    weighted_sigma / traded_value,
                    params[P_ETA],
                )
                for i in range(n_assets):
                    costs[i, CAPACITY] = charge * abs(trade[i]) * bar[i] / traded_value
                spent += charge

        # Book the fills: cash at the mid, costs on top; average cost and realised P&L.
        step = now - int(row[S_START])
        for i in range(n_assets):
            quantity = trade[i]
            fills[b, step, i, 0] = quantity
            for k in range(N_COSTS):
                fills[b, step, i, 1 + k] = costs[i, k]
                row[costs_at + k] += costs[i, k]
            if quantity == 0.0:
                continue
            price = bar[i]
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
            row[held_at + i] = row[units_at + i] * bar[i] / (equity - spent)

        # Mark at the next bar; reward, drawdown and the end of the episode.
        following = market[now + 1]
        row[S_T] = now + 1
        after = row[S_CASH]
        for i in range(n_assets):
            after += row[units_at + i] * following[i]
        row[S_MARK] = after
        row[S_PEAK] = max(row[S_PEAK], after)
        drawdown = 1.0 - after / row[S_PEAK] if row[S_PEAK] > 0.0 else 1.0
        row[ring_at + (now + 1 - int(row[S_START])) % ring] = drawdown
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
        _observe(b, state, market, params, observations)
        if row[S_NONFINITE] > 0.0 or row[S_OUT_OF_BOUNDS] > 0.0:
            flagged += 1
    first = state[0]
    return (
        flagged,
        first[S_REWARD],
        first[S_TERMINATED] > 0.0,
        first[S_TRUNCATED] > 0.0,
        first[S_MARK],
        int(first[S_T] - first[S_START]),
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
        _observe(b, state, market, params, observations)


@njit(cache=True)
def _observe(
    b: int,
    state: np.ndarray,
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
    row = state[b]
    now = int(row[S_T])
    elapsed = now - int(row[S_START])
    out = observations[elapsed] if params[P_OBS_BY_STEP] > 0.0 else observations[b]
    dims = params[P_DIMS : P_DIMS + N_DIMS]
    n_assets, n_features, ring = int(dims[D_ASSETS]), int(dims[D_FEATURES]), int(dims[D_RING])
    units_at, held_at, ring_at = int(dims[D_UNITS]), int(dims[D_HELD]), int(dims[D_DRAWDOWNS])
    sigma_at, features_at = 3 * n_assets, 5 * n_assets + 2
    bar = market[now]
    for j in range(n_features):
        out[j] = bar[features_at + j]
    equity = row[S_CASH]
    for i in range(n_assets):
        equity += row[units_at + i] * bar[i]
    gross = 0.0
    squares = 0.0
    risk = 0.0
    held_risk = 0.0
    nonfinite = 0.0
    for i in range(n_assets):
        weight = row[units_at + i] * bar[i] / equity if equity > 0.0 else 0.0
        if not math.isfinite(weight):
            nonfinite += 1.0
        out[n_features + i] = min(1.0, max(-1.0, weight))
        gross += abs(weight)
        squares += weight * weight
        risk += abs(weight) * bar[sigma_at + i]
        if elapsed > 0:
            held_risk += abs(row[held_at + i]) * market[now - 1, sigma_at + i]
    drawdown = 1.0 - equity / row[S_PEAK] if row[S_PEAK] > 0.0 else 0.0
    # The ring keeps the last ``ring`` drawdowns; ring - 1 bars back is the oldest it holds.
    past = row[ring_at + max(elapsed - (ring - 1), 0) % ring]
    position = n_features + n_assets
    for k in range(N_RISK):
        if dims[D_RISK_MASK + k] == 0.0:
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
            value = bar[5 * n_assets + 1]
        if not math.isfinite(value):
            nonfinite += 1.0
        out[position] = value
        position += 1
    row[S_NONFINITE] += nonfinite
