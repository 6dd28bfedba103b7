"""A paper book's nights: a recurrent policy's book, carried night to night, trades as one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.paper.book import BookState, PaperError, anchor_at, iso, trade_night
from ijules.training.policy import RecurrentPolicy, policy_spec
from tests.unit.env.conftest import market_of, norm_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ANCHOR = 300  # the model's test window ends at this bar
TRADES = {"environment": {"min_trade_weight": 0.0}}  # rebalance on any change: it trades


@dataclass(frozen=True)
class Model:
    """An untrained recurrent policy: weights fixed by its seed, an LSTM state of its own."""

    model: Any
    spec: Any

    def policy(self) -> RecurrentPolicy:
        """A new policy object: anything it remembers comes from the book's state."""
        return RecurrentPolicy(self.model, self.spec)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params"), TRADES))


@pytest.fixture(scope="module")
def market(btc_1h, config) -> MarketData:
    return market_of(btc_1h.iloc[:1000].reset_index(drop=True), config)


@pytest.fixture(scope="module")
def model(market, config) -> Model:
    from sb3_contrib import RecurrentPPO

    settings = EngineSettings.from_config(config, norm_of(market), 5.0, 1)
    network = RecurrentPPO(
        "MlpLstmPolicy",
        TradingEnv(market, settings, Safeguards(config.safeguards)),
        policy_kwargs={"lstm_hidden_size": 8, "net_arch": [16]},
        seed=5,
        device="cpu",
    )
    return Model(network, policy_spec(settings, market.feature_names, market.instruments))


def fresh(market: MarketData) -> BookState:
    return BookState(
        slot="champion",
        version="1",
        alias="champion",
        status="champion",
        approved=True,
        allocation=0.9,
        capital_usd=90_000.0,
        weights_sha256="ab" * 32,
        anchor=iso(market.timestamps[ANCHOR]),
        bars_per_year=market.bars_per_year,
        bars_per_day=24.0,
        ledger_rows=1,
    )


def test_two_nights_trade_as_one_night_over_their_bars(market, model, config) -> None:
    one = trade_night(model.policy(), market, fresh(market), config)
    first = trade_night(model.policy(), market.rows(slice(0, 501)), fresh(market), config)
    # Through JSON, as the state file hands it over.
    carried = BookState.model_validate_json(first.state.model_dump_json())
    second = trade_night(model.policy(), market, carried, config)
    split = [*first.rows, *second.rows]
    assert len(split) == len(one.rows) == len(market) - 1 - ANCHOR
    assert sum(1 for row in one.rows if row.units and row.units[0] != 0.0) > 30
    assert first.rows[-1].time == iso(market.timestamps[499])  # its last decision...
    assert second.rows[0].time == iso(market.timestamps[500])  # ...and the next night's first
    for a, b in zip(split, one.rows, strict=True):
        assert (a.time, a.marked_at, a.trading_state, a.event) == (
            b.time,
            b.marked_at,
            b.trading_state,
            b.event,
        )
        for field in ("action", "units", "fill_price", "units_held", "weights"):
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-12)
        for field in ("pnl_usd", "cost_usd", "equity_usd", "drawdown"):
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-9)
    assert second.state.memory == one.state.memory
    assert second.state.account is not None and one.state.account is not None
    assert second.state.account == one.state.account  # cash, positions, risk engine: exactly


def test_a_night_forgetting_the_lstm_state_trades_otherwise(market, model, config) -> None:
    """The LSTM's memory is part of the book: a night started without it acts differently."""
    one = trade_night(model.policy(), market, fresh(market), config)
    first = trade_night(model.policy(), market.rows(slice(0, 501)), fresh(market), config)
    forgetful = first.state.model_copy(update={"memory": None})
    second = trade_night(model.policy(), market, forgetful, config)
    later = one.rows[len(first.rows) :]
    assert [row.action for row in second.rows] != [row.action for row in later]


def test_a_night_without_new_bars_trades_nothing(market, model, config) -> None:
    first = trade_night(model.policy(), market.rows(slice(0, 501)), fresh(market), config)
    again = trade_night(model.policy(), market.rows(slice(0, 501)), first.state, config)
    assert again.rows == [] and again.session is None and again.state == first.state


def test_a_book_whose_standing_bar_is_not_published_is_refused(market, model, config) -> None:
    first = trade_night(model.policy(), market.rows(slice(0, 501)), fresh(market), config)
    gapped = market.rows(np.arange(len(market)) != 500)  # the bar it stands at went missing
    with pytest.raises(PaperError, match=r"bar 2017-.* is not in the published bars"):
        trade_night(model.policy(), gapped, first.state, config)


def test_a_new_book_starts_at_the_last_bar_of_its_test_window(market) -> None:
    assert anchor_at(market, iso(market.timestamps[ANCHOR])) == iso(market.timestamps[ANCHOR])
    halfway = market.timestamps[ANCHOR] + np.timedelta64(30, "m")
    assert anchor_at(market, iso(halfway)) == iso(market.timestamps[ANCHOR])
    with pytest.raises(PaperError, match="no published bar at or before"):
        anchor_at(market, "2001-01-01T00:00:00+00:00")
