"""A model's paper book: its state between nights, and one night's trading of the new bars.

A book starts flat at the last bar of its model's test window (the bars after it are the first
ones no decision about the model has seen) with its share of the paper capital. Each night it
trades the bars after the bar it stands at, up to the last published one, through the
environment, costs and risk engine the model was tested in: the same engine as backtests, the
model's tested bars per year and bars per day pinned so that no night's window changes them.
It ends standing at the last bar, whose decision fills when the next bar arrives: the next night
decides there. What it carries (cash, positions, equity peak, the risk engine's state, the
LSTM's memory) makes night after night trade as one long session would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ijules.artifacts import Artifact, PaperSlot
from ijules.config import Config
from ijules.env.backtest import Backtest, run_session
from ijules.env.carry import CarriedState
from ijules.env.market_data import MarketData
from ijules.errors import IjulesError
from ijules.evaluation.evaluate import policy_env
from ijules.paper.ledger import LedgerEntry
from ijules.sim import codes
from ijules.sim.layout import COST_COMPONENTS
from ijules.training.policy import RecurrentMemory, RecurrentPolicy


class PaperError(IjulesError):
    """A paper book cannot trade tonight's bars."""


class BookState(Artifact):
    """A model's paper book between nights (``<paper_state>/<slot>.json``).

    ``account`` is None until the book has traded (flat, standing at ``anchor``). ``version``
    is None once its last version left the slot and none took it. ``ledger_rows`` counts the
    ledger's rows this state accounts for (see :mod:`ijules.paper.ledger`).
    """

    written_by = "ijules paper"

    slot: PaperSlot
    version: str | None
    alias: str | None
    status: str | None
    approved: bool
    allocation: float
    capital_usd: float
    weights_sha256: str | None
    anchor: str | None  # the bar the book opened at (the desk's last night, or test window end)
    bars_per_year: float | None  # the version's tested figures, pinned
    bars_per_day: float | None
    ledger_rows: int
    account: CarriedState | None = None
    memory: RecurrentMemory | None = None
    exit_cost_usd: float = 0.0  # what closing its positions at the standing bar would cost

    @property
    def standing_at(self) -> str | None:
        """The bar the book is marked at: where its next decision is made."""
        return self.account.standing_at if self.account is not None else self.anchor

    @property
    def equity_usd(self) -> float:
        """Equity marked at the standing bar."""
        return self.account.equity if self.account is not None else self.capital_usd

    @property
    def units(self) -> tuple[float, ...]:
        """Units held per instrument (none held yet: an empty tuple)."""
        return tuple(self.account.units.tolist()) if self.account is not None else ()

    @property
    def drawdown(self) -> float:
        """How far the book is below its equity peak, now."""
        if self.account is None:
            return 0.0
        return max(0.0, 1.0 - self.account.equity / self.account.peak)


@dataclass(frozen=True)
class Night:
    """What one night did to a book: its ledger rows, its state after, and tonight's session."""

    rows: list[LedgerEntry]
    state: BookState
    session: Backtest | None  # None: no bar to trade
    breaker_events: list[str]


def iso(stamp: np.datetime64 | pd.Timestamp) -> str:
    """A bar's time as the ledger and the state write it (ISO 8601, UTC)."""
    found = pd.Timestamp(stamp)
    return (found.tz_localize("UTC") if found.tzinfo is None else found).isoformat()


def bar_index(market: MarketData, when: str, what: str) -> int:
    """The position of bar ``when`` in ``market``; a clear error when it is not there."""
    stamp = np.datetime64(pd.Timestamp(when).tz_convert("UTC").tz_localize(None), "ns")
    index = int(np.searchsorted(market.timestamps, stamp))
    if index >= len(market) or market.timestamps[index] != stamp:
        raise PaperError(f"{what}: bar {when} is not in the published bars")
    return index


def anchor_at(market: MarketData, test_end: str) -> str:
    """The bar a new book starts at: the last bar at or before ``test_end`` (the later of its
    model's test window's end and the desk's last night)."""
    stamp = np.datetime64(pd.Timestamp(test_end).tz_convert("UTC").tz_localize(None), "ns")
    index = int(np.searchsorted(market.timestamps, stamp, side="right")) - 1
    if index < 0:
        raise PaperError(f"no published bar at or before the test window's end {test_end}")
    return iso(market.timestamps[index])


def trade_night(
    policy: RecurrentPolicy, history: MarketData, state: BookState, config: Config
) -> Night:
    """Trade the bars of ``history`` after the one ``state`` stands at, with ``policy``.

    ``history`` is every published bar (the market state of each computed on the bars before
    it); the night's window is the bar the book stands at, the carried steps' bars before it and
    every bar after. Nothing is traded twice or skipped: a bar once traded is behind the
    standing bar, and every bar after it is in the window.
    """
    if state.version is None or state.anchor is None:
        raise PaperError(f"the {state.slot} book holds no version to trade")
    if state.bars_per_year is None or state.bars_per_day is None:
        raise PaperError(f"the {state.slot} book has no tested bars per year and day")
    what = f"{state.slot} book (v{state.version})"
    standing = bar_index(history, state.standing_at or state.anchor, what)
    if standing == len(history) - 1:
        return Night([], state, None, [])
    depth = 0 if state.account is None else len(state.account.history)
    if standing < depth:
        raise PaperError(f"{what}: the bars it carried before {state.standing_at} are missing")
    window = replace(history.rows(slice(standing - depth, None)), bars_per_year=state.bars_per_year)
    env = policy_env(
        policy, window, config, capital=state.capital_usd, bars_per_day=state.bars_per_day
    )
    if state.account is not None:
        env.engine.continue_from(state.account)
    if state.memory is not None:
        policy.remember(state.memory)
    else:
        policy.reset()
    actions: list[np.ndarray] = []

    def act(observation: np.ndarray) -> np.ndarray:
        action = policy.act(observation)
        actions.append(np.asarray(action, dtype=np.float64).reshape(-1))
        return action

    session = run_session(env, act)
    records = env.engine.sim.log(0)
    rows = _bar_rows(state, session, records, actions, history.instruments)
    events = [
        f"{iso(when)}: {state_name} ({reason})"
        for when, state_name, reason in zip(
            session.risk_events["timestamp"],
            session.risk_events["state"],
            session.risk_events["reason"],
            strict=True,
        )
    ]
    after = state.model_copy(
        update={
            "account": env.engine.carry(),
            "memory": policy.memory(),
            "exit_cost_usd": float(sum(session.exit_costs.values())),
        }
    )
    return Night(rows, after, session, events)


def _bar_rows(
    state: BookState,
    session: Backtest,
    records: np.ndarray,
    actions: list[np.ndarray],
    instruments: tuple[str, ...],
) -> list[LedgerEntry]:
    rows = []
    times = [iso(stamp) for stamp in session.timestamps]
    for step in range(len(session.traded)):
        record = records[step]
        costs = session.costs[step].sum(axis=0)
        equity = float(session.equity[step + 1])
        held = session.units[step]
        refusals = tuple(
            f"{instrument}: {codes.describe(int(code))}"
            for instrument, code in zip(instruments, record["refusal"], strict=True)
            if code
        )
        transition = int(record["transition"])
        rows.append(
            LedgerEntry(
                kind="bar",
                time=times[step],
                marked_at=times[step + 1],
                slot=state.slot,
                version=str(state.version),
                alias=state.alias,
                approved=state.approved,
                action=tuple(float(x) for x in actions[step]),
                units=tuple(float(x) for x in session.traded[step]),
                fill_price=tuple(float(x) for x in session.fills[step]),
                costs_usd=dict(zip(COST_COMPONENTS, map(float, costs), strict=True)),
                cost_usd=float(costs.sum()),
                pnl_usd=equity - float(session.equity[step]),
                equity_usd=equity,
                units_held=tuple(float(x) for x in held),
                weights=tuple(float(x) for x in held * session.close[step + 1] / equity),
                drawdown=float(record["drawdown"]),
                trading_state=codes.STATES[int(record["state"])],
                event=codes.describe(transition) if transition else None,
                refusals=refusals,
            )
        )
    return rows
