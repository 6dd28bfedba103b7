"""One compiled step for a batch of environments: the phases in order, then the observation.

A single environment is a batch of one; the vectorised environment steps N copies in one call,
so the economics exist once. numba compiles the step on first use and caches the machine code
(:mod:`ijules.sim.cache`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ijules.sim import cache  # noqa: F401 - keys numba's cache by this package's sources
from ijules.sim.gate import risk_gate
from ijules.sim.observe import observe
from ijules.sim.phases import book, choose_trades, equity_at, settle, size_and_cost, targets


@njit(cache=True)
def step_batch(
    accounts: np.ndarray,
    market: np.ndarray,
    features: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    observations: np.ndarray,
    actions: np.ndarray,
) -> tuple[int, float, bool, bool, float, int]:
    """Advance every environment in the batch by one bar towards the weights its action asks.

    ``accounts`` (environments), ``market`` (bars), ``params`` (one record) and ``fills``
    (environments x episode steps) have the layouts of :mod:`ijules.sim.layout`; ``actions`` is
    flat (environment-major, then instruments). Return how many environments flagged something
    for the Python side (a non-finite value, a reward out of bounds, a step after the episode's
    end, a change of trading state; 0 on a quiet step), then the first environment's reward,
    terminated and truncated flags, equity and episode step (what a single environment hands
    back without reading the records again).
    """
    n_envs = accounts.shape[0]
    n_assets = market[0].close.shape[0]
    p = params[0]
    if actions.shape[0] != n_envs * n_assets:
        raise ValueError("one action per environment and instrument is needed")
    flagged = 0
    for b in range(accounts.shape[0]):
        account = accounts[b]
        now = account.t
        account.nonfinite = 0
        account.out_of_bounds = False
        if now >= account.end:
            account.after_end = True
            flagged += 1
            continue
        step = now - account.start
        equity = equity_at(accounts, market, b, now)
        gross_now = targets(accounts, market, params, actions, b, now, equity)
        max_gross = p.max_gross
        if p.risk_on:
            gross_cap = risk_gate(accounts, market, params, fills, b, now, step, equity)
            max_gross = min(max_gross, gross_cap)
            if account.changed > 0:
                flagged += 1
        choose_trades(accounts, market, params, b, now, gross_now, max_gross)
        spent = size_and_cost(accounts, market, params, b, now, equity)
        book(accounts, market, fills, b, now, step, equity, spent)
        settle(accounts, market, params, fills, b, now, step, equity)
        observe(accounts, market, features, params, fills, observations, b)
        if account.nonfinite > 0 or account.out_of_bounds:
            flagged += 1
    first = accounts[0]
    return (
        flagged,
        first.reward,
        first.terminated,
        first.truncated,
        first.mark,
        first.t - first.start,
    )


@njit(cache=True)
def observe_batch(
    accounts: np.ndarray,
    market: np.ndarray,
    features: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    observations: np.ndarray,
) -> None:
    """Write every environment's observation of its current bar (after a reset)."""
    for b in range(accounts.shape[0]):
        accounts[b].nonfinite = 0
        observe(accounts, market, features, params, fills, observations, b)


@njit(cache=True)
def start_episode(
    accounts: np.ndarray, fills: np.ndarray, b: int, begin: int, end: int, capital: float
) -> None:
    """Clear environment ``b``'s records and start its episode at bar ``begin`` with ``capital``."""
    accounts[b : b + 1].view(np.uint8)[:] = 0
    fills[b].view(np.uint8)[:] = 0
    account = accounts[b]
    account.t = begin
    account.start = begin
    account.state_since = begin
    account.end = end
    account.cash = capital
    account.peak = capital
    account.mark = capital
    account.day = -1  # the first bar starts a day and a month
    account.month = -1


@njit(cache=True)
def gate_batch(
    accounts: np.ndarray,
    market: np.ndarray,
    params: np.ndarray,
    fills: np.ndarray,
    actions: np.ndarray,
    now: int,
    step: int,
) -> None:
    """Read every environment's action as targets and pass them through the risk gate at bar
    ``now``, without trading: each account's ``wanted`` then holds the weights the engine
    allows, ``fills[b, step]`` its refusals, trading state and change of state (a served policy
    whose orders execute elsewhere)."""
    n_assets = market[0].close.shape[0]
    p = params[0]
    if actions.shape[0] != accounts.shape[0] * n_assets:
        raise ValueError("one action per environment and instrument is needed")
    for b in range(accounts.shape[0]):
        equity = equity_at(accounts, market, b, now)
        targets(accounts, market, params, actions, b, now, equity)
        if p.risk_on:
            risk_gate(accounts, market, params, fills, b, now, step, equity)
