"""The benchmark and the rules the agent is judged against: what each one is, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from ijules.evaluation.baselines import (
    best_rule,
    macd_weights,
    passive_buy_and_hold,
    rule_baselines,
    tsmom_weights,
)
from ijules.evaluation.config import MacdConfig, TsmomConfig
from tests.unit.env.conftest import market_of, norm_of

PER_YEAR = 24 * 365.25


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params")))


@pytest.fixture(scope="module")
def market(btc_1h, config):
    return market_of(btc_1h.iloc[:1500].reset_index(drop=True), config)


def test_passive_buy_and_hold_is_one_entry_fill_held_and_an_exit(market, config) -> None:
    backtest = passive_buy_and_hold(config, market, norm_of(market), 5.0)
    traded = np.flatnonzero(np.abs(backtest.traded[:, 0]) > 0)
    assert list(traded) == [0]  # one fill, at the first bar, whatever the risk engine thinks
    units = backtest.units[:, 0]
    assert np.all(units == units[0]) and units[0] > 0
    entry_value = units[0] * backtest.fills[0, 0]
    # The whole capital, less what the entry's own costs take.
    assert 0.95 < entry_value / config.environment.initial_capital <= 1.0
    # It pays its exit at the last mark: equity ends below the marked position by the exit cost.
    exit_cost = sum(backtest.exit_costs.values())
    assert exit_cost > 0
    metrics = backtest.metrics(PER_YEAR)
    assert metrics.num_trades == 1
    assert metrics.total_cost == pytest.approx(float(backtest.costs.sum()))
    notional = entry_value + units[-1] * backtest.close[-1, 0]
    assert metrics.cost_bps == pytest.approx(1e4 * metrics.total_cost / notional)


def test_the_risk_managed_long_is_cut_by_the_risk_engine(market, config) -> None:
    result = rule_baselines(config, market, slice(None), norm_of(market), 5.0)
    managed, passive = result["risk_managed_long"], result["passive_buy_and_hold"]
    assert np.count_nonzero(managed.traded) > 10  # the VaR limit keeps resizing it
    assert len(managed.risk_refusals) > 0
    assert np.abs(managed.weights).mean() < np.abs(passive.weights).mean()
    assert set(result) == {
        "passive_buy_and_hold", "risk_managed_long", "tsmom", "macd", "flat", "random",
    }  # fmt: skip
    assert result["flat"].costs.sum() == 0 and np.all(
        result["flat"].equity == result["flat"].equity[0]
    )


@pytest.mark.parametrize(
    "weights",
    [
        lambda close: tsmom_weights(close, PER_YEAR, TsmomConfig()),
        lambda close: macd_weights(close, PER_YEAR, MacdConfig()),
    ],
    ids=["tsmom", "macd"],
)
def test_a_rules_weight_uses_closes_up_to_its_bar_only(market, weights) -> None:
    close = market.close.copy()
    cut = 600
    moved = close.copy()
    moved[cut + 1 :] *= np.exp(
        np.random.default_rng(3).normal(0, 0.05, size=moved[cut + 1 :].shape)
    )
    before, after = weights(close), weights(moved)
    np.testing.assert_array_equal(before[: cut + 1], after[: cut + 1])
    assert not np.allclose(np.nan_to_num(before[cut + 1 :]), np.nan_to_num(after[cut + 1 :]))


def test_tsmom_follows_the_trailing_return_at_the_volatility_target() -> None:
    rng = np.random.default_rng(0)
    returns = np.concatenate([rng.normal(0.002, 0.01, 500), rng.normal(-0.002, 0.01, 500)])
    close = 100 * np.exp(np.cumsum(returns))[:, None]
    config = TsmomConfig(horizon_bars=100, volatility_target=0.15, volatility_bars=100)
    weights = tsmom_weights(close, PER_YEAR, config)[:, 0]
    assert np.all(np.isnan(weights[:100]))  # no signal before the horizon
    assert np.mean(weights[150:500] > 0) > 0.95 and np.mean(weights[650:] < 0) > 0.95
    sigma = np.std(np.diff(np.log(close[399:500, 0])), ddof=1) * np.sqrt(PER_YEAR)
    assert abs(weights[499]) == pytest.approx(0.15 / sigma, rel=1e-6)


def test_the_best_rule_is_the_highest_sharpe_of_the_rules_only() -> None:
    sharpes = {"risk_managed_long": 0.2, "tsmom": 0.9, "macd": -0.1, "random": 5.0}
    assert best_rule(sharpes) == "tsmom"  # random and the benchmark are never "the best rule"
