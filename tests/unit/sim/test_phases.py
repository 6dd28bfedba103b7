"""Each phase of the compiled step, alone, on hand-built records of a batch of one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ijules.sim import codes, layout
from ijules.sim.gate import risk_gate
from ijules.sim.observe import Z_95, observe
from ijules.sim.phases import book, choose_trades, settle, size_and_cost, targets

N_BARS = 10


def params(**overrides: Any) -> np.ndarray:
    """A parameter record: no costs, wide limits, the risk engine off, unless overridden."""
    values: dict[str, Any] = {name: 0 for name in layout.PARAMS.names}
    values.update(
        capital=100_000.0,
        max_single=1.0,
        max_gross=1.0,
        bars_per_day=24.0,
        reward_scaling=1.0,
        reward_low=-np.inf,
        reward_high=np.inf,
        risk_slot=[-1] * layout.N_RISK,
        velocity_bars=4,
        var_budget=0.02,
        max_daily_dd=1.0,
        max_monthly_dd=1.0,
        concentration=1.0,
        leverage=1.0,
        var_multiple=1e9,
        emergency=1.0,
        scaling=0.99,
        losing_days=99,
        vol_spike=1e9,
        vol_alert=1e9,
        dd_velocity_alert=1.0,
        crisis_scale=1.0,
        recovery_scale=1.0,
        high_vol_scale=1.0,
        reduce_factor=0.5,
        cooldown=1,
    )
    values.update(overrides)
    return layout.params_record(values)


def market(n_assets: int = 1, close: float = 100.0) -> np.ndarray:
    bars = np.zeros(N_BARS, dtype=layout.market_dtype(n_assets))
    bars["close"] = bars["fill"] = close
    bars["tradable"] = 1
    bars["sigma"] = 0.01
    bars["liquidity"] = 1e9
    bars["day"] = np.arange(N_BARS) // 24
    bars["volatility_ratio"] = 1.0
    return bars


def account(n_assets: int = 1, cash: float = 100_000.0) -> np.ndarray:
    accounts = np.zeros(1, dtype=layout.account_dtype(n_assets))
    accounts["cash"] = accounts["peak"] = accounts["mark"] = cash
    accounts["end"] = N_BARS - 1
    accounts["day"] = accounts["month"] = -1
    return accounts


def fills(n_assets: int = 1) -> np.ndarray:
    return np.zeros((1, N_BARS), dtype=layout.fill_dtype(n_assets))


def test_targets_read_the_action_as_a_clipped_fraction_of_the_single_position_limit() -> None:
    accounts, bars = account(2), market(2)
    accounts[0]["units"] = [300.0, -100.0]  # weights 0.3 and -0.1 of 100,000
    gross = targets(accounts, bars, params(max_single=0.5), np.array([0.4, -3.0]), 0, 0, 1e5)
    assert gross == pytest.approx(0.4)
    assert accounts[0]["weight"].tolist() == pytest.approx([0.3, -0.1])
    assert accounts[0]["wanted"].tolist() == pytest.approx([0.2, -0.5])  # 0.4 x 0.5; clipped
    assert accounts[0]["cap"].tolist() == [0.5, 0.5]


def test_with_a_volatility_target_an_action_of_one_runs_at_that_volatility() -> None:
    accounts, bars = account(2), market(2)
    bars["sigma"][0] = [0.01, 0.04]  # per bar; annualised x sqrt(10,000) = 100% and 400%
    p = params(max_single=0.5, volatility_target=0.2, sqrt_bars_per_year=100.0)
    targets(accounts, bars, p, np.array([1.0, -0.5]), 0, 0, 1e5)
    # 0.2 / 1.0 and -0.5 x 0.2 / 4.0: the calmer instrument gets the larger position.
    assert accounts[0]["wanted"].tolist() == pytest.approx([0.2, -0.025])
    targets(accounts, bars, p, np.array([4.0, 1.0]), 0, 0, 1e5)
    assert accounts[0]["wanted"][0] == pytest.approx(0.5)  # 0.8 clipped to the limit


def test_the_differential_sharpe_reward_is_moody_and_saffells() -> None:
    accounts, bars, log = account(), market(), fills()
    eta = 0.1
    p = params(differential_sharpe=True, sharpe_decay=eta, reward_scaling=2.0)
    accounts[0]["units"] = 1000.0  # fully invested: the bar's return is the price's
    accounts[0]["cash"] = 0.0
    closes = [100.0, 101.0, 99.0, 102.0, 101.5]
    bars["close"][: len(closes), 0] = closes
    mean = square = 0.0
    for t in range(len(closes) - 1):
        before = float(accounts[0]["mark"])
        settle(accounts, bars, p, log, 0, t, t, before)
        r = closes[t + 1] / closes[t] - 1.0
        variance = square - mean**2
        expected = 0.0
        if variance > 0:
            expected = (square * (r - mean) - 0.5 * mean * (r * r - square)) / variance**1.5
        assert accounts[0]["reward"] == pytest.approx(2.0 * expected, rel=1e-9, abs=1e-12)
        mean, square = mean + eta * (r - mean), square + eta * (r * r - square)
    assert accounts[0]["reward"] != 0.0  # the EMAs had variance by the last bar


def test_discrete_actions_are_offset_by_one() -> None:
    accounts = account()
    targets(accounts, market(), params(action_offset=1.0), np.array([2.0]), 0, 0, 1e5)
    assert accounts[0]["wanted"][0] == 1.0


def test_the_gate_caps_a_position_at_its_var_budget_and_records_why() -> None:
    accounts, bars, log = account(), market(), fills()
    bars["daily_var"] = 0.05  # per unit of weight
    accounts[0]["wanted"] = 0.8
    accounts[0]["cap"] = 1.0
    p = params(risk_on=True, var_multiple=1.0, var_budget=0.02)
    risk_gate(accounts, bars, p, log, 0, 0, 0, 1e5)
    assert accounts[0]["wanted"][0] == pytest.approx(0.4)  # 0.02 / 0.05
    assert log[0, 0]["refusal"][0] == codes.VAR_LIMIT
    assert accounts[0]["refusals"] == 1


def test_an_emergency_loss_flattens_everything_and_halts() -> None:
    accounts, bars, log = account(), market(), fills()
    p = params(risk_on=True, breakers=True, emergency=0.05, scaling=0.02)
    risk_gate(accounts, bars, p, log, 0, 0, 0, 1e5)  # opens the day at 100,000
    accounts[0]["weight"] = accounts[0]["wanted"] = 0.5
    accounts[0]["cap"] = 1.0
    risk_gate(accounts, bars, p, log, 0, 1, 1, 94_000.0)  # down 6% since the day's start
    assert accounts[0]["trading_state"] == codes.HALTED
    assert accounts[0]["wanted"][0] == 0.0
    assert log[0, 1]["refusal"][0] == codes.EMERGENCY_FLATTEN
    assert log[0, 1]["transition"] == codes.EMERGENCY_LOSS


def test_a_halt_lets_a_position_shrink_but_never_grow() -> None:
    accounts, bars, log = account(), market(), fills()
    accounts[0]["trading_state"] = codes.HALTED
    accounts[0]["state_since"] = 0
    accounts[0]["weight"] = 0.3
    accounts[0]["wanted"] = 0.9
    accounts[0]["cap"] = 1.0
    p = params(risk_on=True, release_mode=layout.RELEASE_OPERATOR)
    risk_gate(accounts, bars, p, log, 0, 0, 0, 1e5)
    assert accounts[0]["wanted"][0] == pytest.approx(0.3)
    assert log[0, 0]["refusal"][0] == codes.HALTED_NO_NEW_RISK


def test_a_closed_market_does_not_trade_and_small_rebalances_are_skipped() -> None:
    accounts, bars = account(3), market(3)
    bars["tradable"][0] = [0, 1, 1]
    accounts[0]["weight"] = [0.0, 0.2, 0.1]
    accounts[0]["wanted"] = [0.3, 0.21, 0.4]
    accounts[0]["cap"] = 1.0
    choose_trades(accounts, bars, params(band=0.02, max_gross=2.0), 0, 0, 0.3, 2.0)
    assert accounts[0]["moving"].tolist() == [0, 0, 1]
    assert accounts[0]["weight"].tolist() == pytest.approx([0.0, 0.2, 0.4])


def test_the_turnover_cap_limits_each_move_and_gross_scales_only_what_moves() -> None:
    accounts, bars = account(2), market(2)
    accounts[0]["weight"] = [0.5, 0.0]
    accounts[0]["wanted"] = [0.5, 0.9]
    accounts[0]["cap"] = 1.0
    choose_trades(accounts, bars, params(band=0.01, max_trade=0.3, max_gross=0.7), 0, 0, 0.5, 0.7)
    # instrument 1 may move 0.3 at most; then gross 0.8 > 0.7 scales the mover to 0.2
    assert accounts[0]["weight"].tolist() == pytest.approx([0.5, 0.2])


def test_sizing_lands_the_position_on_its_goal_after_costs() -> None:
    accounts, bars = account(), market()
    accounts[0]["weight"] = 0.5
    accounts[0]["moving"] = 1
    p = params(proportional=0.001, fixed=1.0)
    spent = size_and_cost(accounts, bars, p, 0, 0, 1e5)
    trade = accounts[0]["trade"][0]
    assert spent == pytest.approx(1.0 + 0.001 * trade * 100.0)
    assert accounts[0]["cost_work"][0].sum() == pytest.approx(spent)
    assert trade * 100.0 / (1e5 - spent) == pytest.approx(0.5, rel=1e-9)


def test_booking_a_reversal_realises_pnl_against_the_average_cost() -> None:
    accounts, bars, log = account(), market(close=110.0), fills()
    accounts[0]["units"] = 100.0
    accounts[0]["avg_cost"] = 100.0
    accounts[0]["cash"] = 90_000.0
    accounts[0]["trade"] = -150.0  # sell 100, go 50 short
    accounts[0]["cost_work"][0, layout.COST_COMPONENTS.index("fixed")] = 2.0
    book(accounts, bars, log, 0, 0, 0, 101_000.0, 2.0)
    assert accounts[0]["realised"] == pytest.approx(100 * 10.0)
    assert accounts[0]["units"][0] == -50.0 and accounts[0]["avg_cost"][0] == 110.0
    assert accounts[0]["cash"] == pytest.approx(90_000.0 + 150 * 110.0 - 2.0)
    assert log[0, 0]["units"][0] == -150.0 and log[0, 0]["costs"][0].sum() == 2.0
    assert accounts[0]["costs"].sum() == 2.0


def test_a_fill_at_another_price_books_at_that_price_and_marks_at_the_close() -> None:
    """Next-bar fills: the trade decided at bar t's close trades at the fill price."""
    accounts, bars, log = account(), market(close=100.0), fills()
    bars["fill"][0] = 102.0  # the next bar opened higher
    accounts[0]["weight"] = 0.5
    accounts[0]["moving"] = 1
    spent = size_and_cost(accounts, bars, params(), 0, 0, 1e5)
    book(accounts, bars, log, 0, 0, 0, 1e5, spent)
    units = accounts[0]["units"][0]
    assert units * 102.0 == pytest.approx(0.5 * 1e5)  # sized at the fill price
    assert accounts[0]["avg_cost"][0] == 102.0
    assert accounts[0]["cash"] == pytest.approx(1e5 - units * 102.0)
    assert accounts[0]["held"][0] == pytest.approx(units * 100.0 / 1e5)  # valued at the close


def test_settling_marks_the_next_bar_and_pays_the_drawdown_penalty() -> None:
    accounts, bars, log = account(), market(), fills()
    bars["close"][1] = 90.0
    accounts[0]["units"] = 500.0
    accounts[0]["cash"] = 50_000.0
    p = params(penalty_lambda=0.1, reward_scaling=0.001, dd_limit=0.04)
    settle(accounts, bars, p, log, 0, 0, 0, 100_000.0)
    after = 50_000.0 + 500 * 90.0
    drawdown = 1 - after / 100_000.0
    assert accounts[0]["mark"] == after and log[0, 0]["drawdown"] == pytest.approx(drawdown)
    expected = (after - 100_000.0 - 0.1 * drawdown * 100_000.0) * 0.001
    assert accounts[0]["reward"] == pytest.approx(expected)
    assert accounts[0]["terminated"]  # a 5% drawdown passes the 4% limit


@pytest.mark.parametrize("feature", layout.RISK_FEATURES)
def test_each_risk_feature_lands_at_its_slot_after_the_weights(feature) -> None:
    accounts, bars, log = account(), market(), fills()
    accounts[0]["units"] = 400.0  # weight 0.4
    accounts[0]["cash"] = 60_000.0
    slots = [-1] * layout.N_RISK
    slots[layout.RISK_FEATURES.index(feature)] = 0
    features = np.full((N_BARS, 2), 7.0)
    observations = np.zeros((1, 2 + 1 + 1), dtype=np.float32)
    bars["correlation"] = 0.25
    observe(accounts, bars, features, params(risk_slot=slots), log, observations, 0)
    expected = {
        "portfolio_heat_ratio": Z_95 * 0.4 * 0.01 * math.sqrt(24) / 0.02,
        "concentration_ratio": 1.0,
        "drawdown_velocity": 0.0,
        "var_breach_indicator": 0.0,
        "correlation_breakdown": 0.25,
    }[feature]
    assert observations[0].tolist() == pytest.approx([7.0, 7.0, 0.4, expected], rel=1e-6)
