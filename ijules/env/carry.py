"""An environment's state between sessions: what a paper-trading night hands the next one.

A session over bars 1..k that hands its state to a session over bars k..N trades exactly as one
session over 1..N would: the same fills, costs, marks and risk decisions. The state is the
simulator's account (cash, positions and their average costs, the equity peak, the risk engine's
trading state and its day and month) and its last steps' records, which the drawdown-velocity
feature and the step look back on; it is tied to the bars by their times, so a later session
refuses a market whose bars before the one it stood at are not the ones it traded.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import JsonValue

from ijules.artifacts import Record
from ijules.errors import IjulesError
from ijules.sim import layout
from ijules.sim.simulator import Carried

_CLOCK = ("t", "start", "end")  # bar numbers of the market a session ran on


class ContinuationError(IjulesError):
    """A carried state does not fit the market a session would continue it on."""


class CarriedState(Record):
    """An environment's state at the bar it stands at (JSON: every number exact).

    ``standing_at`` is the bar the account was last marked at (its close), where the next
    session's first decision is made; ``history_at`` the bars of the carried steps (each step
    decided at that bar), oldest first, which must come right before it. The account's bar
    clock belongs to the market it ran on, so it is left out (``t``, ``start``, ``end``) or
    counted from the standing bar (``state_since``: 0 when the trading state changed there,
    -5 five bars before).
    """

    standing_at: str
    history_at: tuple[str, ...]
    account: dict[str, JsonValue]
    history: tuple[dict[str, JsonValue], ...]

    @property
    def equity(self) -> float:
        """Equity marked at the standing bar."""
        return float(self.account["mark"])  # type: ignore[arg-type]

    @property
    def units(self) -> npt.NDArray[np.float64]:
        """Units held per instrument."""
        return np.asarray(self.account["units"], dtype=np.float64)

    @property
    def peak(self) -> float:
        """The highest equity marked so far."""
        return float(self.account["peak"])  # type: ignore[arg-type]

    @property
    def terminated(self) -> bool:
        """Whether the account ended in ruin (or past the drawdown limit): it trades no more."""
        return bool(self.account["terminated"])

    def carried(self, n_instruments: int) -> Carried:
        """The simulator's records of this state."""
        account = layout.from_plain(layout.account_dtype(n_instruments), self.account)
        history = np.zeros(len(self.history), dtype=layout.fill_dtype(n_instruments))
        for row, values in enumerate(self.history):
            history[row] = layout.from_plain(history.dtype, values)[0]
        return Carried(account=account, history=history)


def _iso(stamp: np.datetime64) -> str:
    return pd.Timestamp(stamp).tz_localize("UTC").isoformat()


def carried_state(carried: Carried, timestamps: npt.NDArray[np.datetime64]) -> CarriedState:
    """``carried`` with its bars' times (``timestamps``: the market's, every bar)."""
    account = carried.account[0]
    standing = int(account["t"])
    first = standing - len(carried.history)
    terminated = bool(account["terminated"])
    plain = layout.to_plain(account, skip=layout.ACCOUNT_SCRATCH)
    # A step's flags are its own; only the ruin that ends the account outlives the session.
    for name in layout.ACCOUNT_STEP_FLAGS:
        plain.pop(name, None)
    plain["terminated"] = terminated
    for name in _CLOCK:
        del plain[name]
    plain["state_since"] = int(account["state_since"]) - standing
    return CarriedState(
        standing_at=_iso(timestamps[standing]),
        history_at=tuple(_iso(stamp) for stamp in timestamps[first:standing]),
        account=plain,
        history=tuple(layout.to_plain(row) for row in carried.history),
    )


def check_window(state: CarriedState, timestamps: npt.NDArray[np.datetime64]) -> None:
    """Refuse a market that does not start with the carried steps' bars and the standing bar."""
    expected = (*state.history_at, state.standing_at)
    found = tuple(_iso(stamp) for stamp in timestamps[: len(expected)])
    if found != expected:
        raise ContinuationError(
            f"the market's first bars {_span(found)} are not the carried state's "
            f"{_span(expected)}: the bars before the one it stands at changed or are missing"
        )


def _span(times: tuple[str, ...]) -> str:
    if not times:
        return "(none)"
    return times[0] if len(times) == 1 else f"{times[0]}..{times[-1]} ({len(times)} bars)"
