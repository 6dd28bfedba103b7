"""The risk engine for a policy served on its own: each bar's action checked before it leaves.

In the environment the risk engine sits inside the step. A policy served through MLflow acts
for a caller whose orders execute elsewhere, so the same compiled gate
(:func:`ijules.sim.step.gate_batch`) runs here on the bar the caller describes: its positions
(as weights of its equity), its equity, the market's state (volatility, VaR per unit of weight,
the regime flags) and the time. Between bars it keeps what the engine carries in a session:
the trading state and how long it has held, the day's and the month's start and peaks, the run
of losing days. What comes back is the targets the engine allows and, per instrument, why an
action was cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.sim import codes, layout
from ijules.sim.step import gate_batch

FloatArray = npt.NDArray[np.float64]

# The step's parameters that only the environment's own loop reads.
_NOT_SERVED = {"reward_low": 0.0, "reward_high": 0.0, "observations_by_step": False}


@dataclass(frozen=True)
class MarketState:
    """What the risk engine reads of the market at one bar, per instrument where it varies."""

    sigma: Sequence[float]  # trailing volatility of log returns, per bar
    daily_var: Sequence[float]  # daily VaR(99%) per unit of weight
    volatility_ratio: float = 1.0  # volatility against its normal level
    crisis: bool = False
    recovery: bool = False
    high_volatility: bool = False
    correlation_break: bool = False


@dataclass(frozen=True)
class Checked:
    """One bar's action after the risk engine."""

    targets: FloatArray  # the weights it allows, per instrument
    reasons: tuple[str, ...]  # why each instrument's target was cut ("" where it was not)
    state: str  # the trading state the bar traded in
    event: str  # the change of state at this bar ("" when none)


class RiskCheck:
    """The risk engine alone, bar after bar, with the parameters of the environment a policy
    was trained in (:meth:`ijules.env.engine.EngineSettings.sim_params`)."""

    def __init__(self, params: Mapping[str, object], n_instruments: int) -> None:
        self.n_instruments = n_instruments
        self._params = layout.params_record({**params, **_NOT_SERVED})
        self._market = np.zeros(1, dtype=layout.market_dtype(n_instruments))
        self._fills = np.zeros((1, 1), dtype=layout.fill_dtype(n_instruments))
        self._accounts = np.zeros(1, dtype=layout.account_dtype(n_instruments))
        self._bars = 0  # bars checked since the session began
        self._since = 0  # the bar the trading state last changed at
        self.reset()

    def reset(self) -> None:
        """Start a new session: ACTIVE, no day or month seen yet."""
        self._accounts[:] = 0
        self._accounts["day"] = -1
        self._accounts["month"] = -1
        self._bars = 0
        self._since = 0

    @property
    def state(self) -> str:
        """The trading state now."""
        return codes.STATES[int(self._accounts["trading_state"][0])]

    def check(
        self,
        actions: Sequence[float] | FloatArray,
        *,
        when: pd.Timestamp,
        equity: float,
        weights: Sequence[float] | FloatArray,
        market: MarketState,
    ) -> Checked:
        """Pass one bar's ``actions`` (the policy's, per instrument) through the risk engine,
        with the positions held (``weights`` of ``equity``) and the market at bar ``when``."""
        n = self.n_instruments
        bar = self._market[0:1]
        bar["close"] = np.ones(n)  # positions come as weights: units at a unit price
        bar["sigma"] = np.asarray(market.sigma, dtype=np.float64)
        bar["daily_var"] = np.asarray(market.daily_var, dtype=np.float64)
        bar["volatility_ratio"] = market.volatility_ratio
        bar["crisis"] = market.crisis
        bar["recovery"] = market.recovery
        bar["high_volatility"] = market.high_volatility
        bar["correlation_break"] = market.correlation_break
        stamp = when.tz_convert("UTC") if when.tzinfo else when.tz_localize("UTC")
        # The UTC calendar day and month, numbered as the market numbers them.
        bar["day"] = (stamp - pd.Timestamp(0, tz="UTC")).days
        bar["month"] = stamp.year * 12 + stamp.month
        account = self._accounts[0:1]
        held = np.asarray(weights, dtype=np.float64) * equity
        account["units"] = held
        account["cash"] = equity - held.sum()
        # The gate counts a state's age in bars from ``state_since``; this market is one bar.
        account["state_since"] = self._since - self._bars
        self._fills[:] = 0
        gate_batch(
            self._accounts,
            self._market,
            self._params,
            self._fills,
            np.asarray(actions, dtype=np.float64).reshape(-1),
            0,
            0,
        )
        fill = self._fills[0, 0]
        if int(account["changed"][0]):
            self._since = self._bars
        self._bars += 1
        transition = int(fill["transition"])
        return Checked(
            targets=np.array(account["wanted"][0], dtype=np.float64),
            reasons=tuple(codes.describe(int(c)) if c else "" for c in fill["refusal"]),
            state=codes.STATES[int(fill["state"])],
            event=codes.describe(transition) if transition else "",
        )
