"""The phases of one step of one environment, in the order the step runs them (compiled).

targets -> (risk gate, :mod:`ijules.sim.gate`) -> trades -> costs -> book -> settle; then the
observation (:mod:`ijules.sim.observe`). Each phase reads and writes the named fields of the
environment's account record (:func:`ijules.sim.layout.account_dtype`); the step inlines them,
and each can be called alone on a batch of one.

Conventions: ``b`` is the environment, ``i`` the instrument, ``now`` the bar. Weights and
targets are valued at bar t's close; a trade decided there fills at the bar's ``fill`` price
(bar t's close, or the next bar's open: the market's fill timing) and pays its costs in cash; the
portfolio is marked at bar t+1's close.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ijules.sim import cache  # noqa: F401 - keys numba's cache by this package's sources
from ijules.sim.costs import capacity_charge, fill_costs
from ijules.sim.layout import CAPACITY, N_COSTS

TOLERANCE = 1e-7  # float noise in units x price / equity is not a limit breach
SIZING_PASSES = 3  # fixed-point passes so the post-cost position meets its target


@njit(cache=True, inline="always")
def equity_at(accounts: np.ndarray, market: np.ndarray, b: int, t: int) -> float:
    """Cash plus every position marked at bar ``t``'s close."""
    account = accounts[b]
    close = market[t].close
    equity = account.cash
    for i in range(close.shape[0]):
        equity += account.units[i] * close[i]
    return float(equity)


@njit(cache=True, inline="always")
def targets(
    accounts: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    actions: np.ndarray,
    b: int,
    now: int,
    equity: float,
) -> float:
    """Read the action as target weights; note the weights held now. Return gross exposure.

    The target of instrument i is (action - offset) x max_single or, with a volatility target,
    (action - offset) x target / sigma_i (annualised: the action is a multiple of the position
    that runs at the target volatility), clipped to the single-position limit; ``cap`` starts
    at that limit.
    """
    p = params[0]
    account = accounts[b]
    bar = market[now]
    close = bar.close
    n_assets = close.shape[0]
    max_single = p.max_single
    gross_now = 0.0
    for i in range(n_assets):
        weight = account.units[i] * close[i] / equity
        account.weight[i] = weight
        gross_now += abs(weight)
        unit = max_single
        if p.volatility_target > 0.0:
            sigma = bar.sigma[i] * p.sqrt_bars_per_year
            unit = p.volatility_target / sigma if sigma > 0.0 else max_single
        asked = (actions[b * n_assets + i] - p.action_offset) * unit
        account.wanted[i] = min(max_single, max(-max_single, asked))
        account.cap[i] = max_single
    return gross_now


@njit(cache=True, inline="always")
def choose_trades(
    accounts: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    b: int,
    now: int,
    gross_now: float,
    max_gross: float,
) -> None:
    """Decide which instruments trade, towards which weight (``moving``, ``weight``).

    Whatever the targets ask, no position ends past its ``cap`` and the gross exposure never past
    ``max_gross``; an instrument whose market is closed (or, with adverse-selection protection,
    whose bar printed no volume) does not trade; a rebalance smaller than the band is skipped,
    and with a per-bar turnover cap no weight moves further than ``max_trade``.
    """
    p = params[0]
    account = accounts[b]
    bar = market[now]
    n_assets = bar.close.shape[0]
    weights, moving = account.weight, account.moving
    over_gross = gross_now > max_gross + TOLERANCE
    gross_goal = 0.0
    max_trade = p.max_trade
    band = min(p.band, max_trade) if max_trade > 0.0 else p.band
    for i in range(n_assets):
        weight = weights[i]
        moving[i] = 0
        closed = bar.tradable[i] == 0
        stale = p.adverse_selection and bar.stale[i] != 0
        if not closed and not stale:
            wanted = account.wanted[i]
            over_limit = abs(weight) > account.cap[i] + TOLERANCE
            if max_trade > 0.0 and not over_limit:
                wanted = min(weight + max_trade, max(weight - max_trade, wanted))
            if abs(wanted - weight) >= band or over_limit or over_gross:
                weights[i] = wanted
                moving[i] = 1
        gross_goal += abs(weights[i])
    if gross_goal > max_gross:
        # Scale down what moves so the gross exposure fits (what cannot move stays).
        fixed_gross = 0.0
        moving_gross = 0.0
        for i in range(n_assets):
            if moving[i]:
                moving_gross += abs(weights[i])
            else:
                fixed_gross += abs(weights[i])
        room = max(max_gross - fixed_gross, 0.0)
        for i in range(n_assets):
            if moving[i] and moving_gross > 0.0:
                weights[i] *= room / moving_gross


@njit(cache=True, inline="always")
def size_and_cost(
    accounts: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    b: int,
    now: int,
    equity: float,
) -> float:
    """Size the trades so that, after their costs, positions sit at their goals; return the costs.

    Each instrument's ``trade`` and its ``cost_work`` (by component) are set; the capacity
    charge is shared between the trades by their traded value.
    """
    p = params[0]
    account = accounts[b]
    bar = market[now]
    price = bar.fill
    trade = account.trade
    n_assets = price.shape[0]
    spent = 0.0
    for _ in range(SIZING_PASSES):
        net = equity - spent
        traded_value = 0.0
        for i in range(n_assets):
            if account.moving[i]:
                trade[i] = account.weight[i] * net / price[i] - account.units[i]
            else:
                trade[i] = 0.0
            traded_value += abs(trade[i]) * price[i]
        spent = 0.0
        weighted_sigma = 0.0
        for i in range(n_assets):
            spent += fill_costs(
                trade[i],
                price[i],
                bar.tick[i],
                bar.sigma[i],
                bar.liquidity[i],
                params,
                account.cost_work[i],
            )
            weighted_sigma += abs(trade[i]) * price[i] * bar.sigma[i]
        if p.capacity_charge and traded_value > 0.0:
            charge = capacity_charge(
                traded_value, equity, bar.capacity, weighted_sigma / traded_value, p.eta
            )
            for i in range(n_assets):
                share = abs(trade[i]) * price[i] / traded_value
                account.cost_work[i, CAPACITY] = charge * share
            spent += charge
    return spent


@njit(cache=True, inline="always")
def book(
    accounts: np.ndarray,
    market: np.ndarray,
    fills: np.ndarray,
    b: int,
    now: int,
    step: int,
    equity: float,
    spent: float,
) -> None:
    """Book the fills at their price with the costs on top: cash, units, average cost, realised P&L.

    Records each fill (units and costs by component) at ``fills[b, step]`` and the weights now
    held (``held``).
    """
    account = accounts[b]
    fill = fills[b, step]
    close, prices = market[now].close, market[now].fill
    units, avg_cost = account.units, account.avg_cost
    n_assets = close.shape[0]
    for i in range(n_assets):
        quantity = account.trade[i]
        fill.units[i] = quantity
        for k in range(N_COSTS):
            cost = account.cost_work[i, k]
            fill.costs[i, k] = cost
            account.costs[k] += cost
        if quantity == 0.0:
            continue
        price = prices[i]
        before = units[i]
        account.cash -= quantity * price
        if before == 0.0 or (before > 0.0) == (quantity > 0.0):
            avg_cost[i] = (abs(before) * avg_cost[i] + abs(quantity) * price) / (
                abs(before) + abs(quantity)
            )
        else:
            closed_units = min(abs(quantity), abs(before))
            direction = 1.0 if before > 0.0 else -1.0
            account.realised += closed_units * (price - avg_cost[i]) * direction
            if abs(quantity) > abs(before):
                avg_cost[i] = price
            elif abs(quantity) == abs(before):
                avg_cost[i] = 0.0
        units[i] = before + quantity
    account.cash -= spent
    for i in range(n_assets):
        account.held[i] = units[i] * close[i] / (equity - spent)


@njit(cache=True, inline="always")
def drawdown_at(fills: np.ndarray, b: int, elapsed: int) -> float:
    """The drawdown after ``elapsed`` steps of the episode (0 at its start)."""
    return 0.0 if elapsed <= 0 else float(fills[b, elapsed - 1].drawdown)


@njit(cache=True, inline="always")
def differential_sharpe(accounts: np.ndarray, b: int, r: float, eta: float) -> float:
    """Moody & Saffell's differential Sharpe ratio of return ``r``; updates the EMAs.

    D = (B dA - A dB / 2) / (B - A^2)^(3/2) with A, B the EMAs of the returns and of their
    squares before this bar and dA = r - A, dB = r^2 - B: the first-order change of an
    exponentially weighted Sharpe ratio that ``r`` makes. 0 while the EMAs have no variance.
    """
    account = accounts[b]
    mean, square = account.return_mean, account.return_square
    change, change_square = r - mean, r * r - square
    variance = square - mean * mean
    value = 0.0
    if variance > 1e-14:
        value = (square * change - 0.5 * mean * change_square) / variance**1.5
    account.return_mean = mean + eta * change
    account.return_square = square + eta * change_square
    return value


@njit(cache=True, inline="always")
def settle(
    accounts: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    b: int,
    now: int,
    step: int,
    equity: float,
) -> None:
    """Move to the next bar and mark there: equity, peak, drawdown, the reward, the episode's end.

    reward = (P&L after costs - penalty) x scaling, the penalty lambda x drawdown x capital or
    lambda x r^2 x capital; or the differential Sharpe ratio of the return x scaling. A drawdown
    that deepened by more than ``dd_velocity_alert`` this bar
    counts a soft alert. The episode ends early on ruin or past ``dd_limit`` (when set).
    """
    p = params[0]
    account = accounts[b]
    account.t = now + 1
    after = equity_at(accounts, market, b, now + 1)
    account.mark = after
    account.peak = max(account.peak, after)
    drawdown = 1.0 - after / account.peak if account.peak > 0.0 else 1.0
    fills[b, step].equity = after
    fills[b, step].drawdown = drawdown
    if drawdown - drawdown_at(fills, b, step) > p.dd_velocity_alert:
        account.alerts += 1  # a soft alert: the drawdown deepened fast this bar
    bar_return = after / equity - 1.0
    account.last_return = bar_return
    if p.variance_penalty:
        penalty = p.penalty_lambda * bar_return * bar_return * p.capital
    else:
        penalty = p.penalty_lambda * drawdown * p.capital
    if p.differential_sharpe:
        reward = differential_sharpe(accounts, b, bar_return, p.sharpe_decay) * p.reward_scaling
    else:
        reward = (after - equity - penalty) * p.reward_scaling
    account.reward = reward
    if not math.isfinite(reward):
        account.nonfinite += 1
    elif reward < p.reward_low or reward > p.reward_high:
        account.out_of_bounds = True
    limit = p.dd_limit
    terminated = after <= 0.0 or (limit > 0.0 and drawdown > limit)
    account.terminated = terminated
    account.truncated = now + 1 >= account.end and not terminated
