"""The simulator: the records of a batch of environments over one market, and the compiled step.

It owns every array the step reads and writes and hands them out by name only: the market's
bars and features, the accounts (with their positions), the fill records of the episode, the
observations and the parameter record (layouts: :mod:`ijules.sim.layout`). Everything above it
(the environment, the risk engine's reports, the curriculum) goes through the methods here.

The compiled step is called through its entry points for the exact array types, which skips
numba's per-call type dispatch (structured arrays take its slow path: microseconds, where the
step itself takes one). That is safe because this class allocates every array it passes but
the actions, and for those numba's unboxing checks the dtype (float32 or float64, any strides)
while :meth:`step` makes them one-dimensional and the step checks their length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from ijules.sim import layout
from ijules.sim.costs import capacity_charge, fill_costs
from ijules.sim.step import observe_batch, start_episode, step_batch

FloatArray = npt.NDArray[np.float64]
Record = npt.NDArray[np.void]


# What one step reports: how many environments flagged something for the Python side (0: a quiet
# step), then the first environment's reward, terminated and truncated flags, equity and episode
# steps so far. A plain tuple: this is the hot path.
StepResult = tuple[int, float, bool, bool, float, int]


@dataclass(frozen=True)
class Market:
    """The market in the step's layouts: ``bars`` (one :func:`ijules.sim.layout.market_dtype`
    record per bar) and the standardised ``features`` (bars x features)."""

    bars: Record
    features: FloatArray
    n_instruments: int

    @classmethod
    def empty(cls, n_bars: int, n_instruments: int, n_features: int) -> Market:
        """Zeroed records to fill by name."""
        bars = np.zeros(n_bars, dtype=layout.market_dtype(n_instruments))
        return cls(bars, np.zeros((n_bars, n_features)), n_instruments)

    def __len__(self) -> int:
        return len(self.bars)


@dataclass(frozen=True)
class Carried:
    """An environment's state at the bar it stands at, to continue from in a later session.

    ``account`` is its account record (one ``account_dtype`` record); ``history`` the fill
    records of its last steps, oldest first: as many as the observation and the step look back
    (the drawdown velocity's span, and one more for the drawdown before it), fewer when the
    environment has not taken that many.
    """

    account: Record
    history: Record


_ENTRY_POINTS: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _entry_point(dispatcher: Any, args: tuple[Any, ...]) -> Callable[..., Any]:
    """The compiled function for exactly these argument types (compiled or loaded once)."""
    types = tuple(numba.typeof(arg) for arg in args)  # type: ignore[no-untyped-call]
    key = (dispatcher, *types)
    found = _ENTRY_POINTS.get(key)
    if found is None:
        dispatcher.compile(types)
        found = dispatcher.overloads[types].entry_point
        _ENTRY_POINTS[key] = found
    return found


class Simulator:
    """``n_envs`` environments over one market, each with its own account, positions and log.

    Parameters
    ----------
    market
        Bars and standardised features.
    params
        Every field of ``PARAMS`` by name (see :meth:`set_params`).
    n_envs
        Batch size.
    episode_steps
        The longest episode: rows of the fill records.
    observation_width
        Entries of one observation.
    observations_by_step
        A batch of one only: observation s of an episode goes to row s of a buffer allocated per
        episode, so later steps never overwrite an observation handed out.
    """

    def __init__(
        self,
        market: Market,
        params: Mapping[str, object],
        *,
        n_envs: int,
        episode_steps: int,
        observation_width: int,
        observations_by_step: bool = False,
    ) -> None:
        if observations_by_step and n_envs != 1:
            raise ValueError("observations by step are for a batch of one")
        self.market = market
        self.n_envs = n_envs
        self.episode_steps = episode_steps
        self.observations_by_step = observations_by_step
        n_assets = market.n_instruments
        self.accounts: Record = np.zeros(n_envs, dtype=layout.account_dtype(n_assets))
        self.fills: Record = np.zeros((n_envs, episode_steps), dtype=layout.fill_dtype(n_assets))
        self.params: Record = np.zeros(1, dtype=layout.PARAMS)
        # Fill records a continued session starts with (see :meth:`resume`): the compiled step
        # counts an episode's steps from ``start``, so they sit at the head of its records.
        self.carried_steps = np.zeros(n_envs, dtype=np.int64)
        self.opening_marks = np.zeros(n_envs)  # equity when each session began
        self.width = observation_width
        self.observations = self._observation_buffer()
        self.set_params(params)
        self._arrays = (self.accounts, market.bars, market.features, self.params, self.fills)
        # Actions arrive as float32 (policies) or float64, contiguous or not.
        self._steps = {
            np.dtype(dtype).char: _entry_point(
                step_batch, (*self._arrays, self.observations, np.zeros(2, dtype)[::2])
            )
            for dtype in (np.float32, np.float64)
        }
        self._observe = _entry_point(observe_batch, (*self._arrays, self.observations))
        self._start = _entry_point(start_episode, (self.accounts, self.fills, 0, 0, 0, 0.0))
        self._bind()

    def _bind(self) -> None:
        """Bind every array to the compiled step: a step then passes only its actions."""
        arrays = (*self._arrays, self.observations)
        self._bound = {char: partial(step, *arrays) for char, step in self._steps.items()}
        # The hot path of a policy's one-dimensional float32 actions; any other dtype raises
        # TypeError (numba's unboxing checks it), a 2-D array must be flattened first.
        self.step_float32: Callable[[npt.NDArray[np.float32]], StepResult] = self._bound["f"]

    def _observation_buffer(self) -> npt.NDArray[np.float32]:
        rows = self.episode_steps + 1 if self.observations_by_step else self.n_envs
        return np.zeros((rows, self.width), dtype=np.float32)

    def set_params(self, params: Mapping[str, object]) -> None:
        """Replace every parameter (all of ``PARAMS``, by name) in place."""
        self.params[:] = layout.params_record(
            {**params, "observations_by_step": self.observations_by_step}
        )

    def param(self, name: str) -> Any:
        """One parameter's current value."""
        return self.params[0][name]

    # Episodes and steps ----------------------------------------------------------------------

    def start(self, b: int, begin: int, end: int, capital: float) -> None:
        """Start environment ``b``'s episode at bar ``begin`` (last ``end``) with ``capital``."""
        self._start(self.accounts, self.fills, b, begin, end, float(capital))
        self.carried_steps[b] = 0
        self.opening_marks[b] = float(capital)

    def history_depth(self) -> int:
        """How many past steps' records a step and an observation read: the drawdown velocity's
        span and the drawdown before it."""
        return int(self.param("velocity_bars")) + 1

    def carry(self, b: int) -> Carried:
        """Environment ``b``'s state now, for :meth:`resume` in a later session."""
        taken = int(self.accounts[b]["t"] - self.accounts[b]["start"])
        kept = min(taken, self.history_depth())
        return Carried(
            account=self.accounts[b : b + 1].copy(),
            history=self.fills[b, taken - kept : taken].copy(),
        )

    def resume(self, b: int, carried: Carried, end: int) -> None:
        """Continue environment ``b`` from ``carried``: at bar ``len(carried.history)`` of this
        market, which must be the bar it stood at, with the carried steps' bars before it.

        Every step from here is the one the environment would have taken had its first session
        gone on: the account (cash, positions, peak, the risk engine's state and calendar) is
        restored, its bar clock moved to this market's numbering, and the carried steps' records
        put where the step and the observation look back for them.
        """
        history = carried.history
        begin = len(history)
        if carried.account.dtype != self.accounts.dtype or history.dtype != self.fills.dtype:
            raise ValueError("the carried state has another number of instruments")
        if not begin < end <= self.episode_steps:
            # The records hold the carried steps and this session's from the market's first bar.
            raise ValueError(
                f"cannot continue at bar {begin} up to bar {end}: the records hold "
                f"{self.episode_steps} steps"
            )
        self._start(self.accounts, self.fills, b, begin, end, 0.0)
        self.accounts[b : b + 1] = carried.account
        account = self.accounts[b : b + 1]
        shift = begin - int(account["t"][0])
        account["state_since"] += shift  # how long a state has held counts across sessions
        account["t"] = begin
        account["start"] = 0
        account["end"] = end
        for name in layout.ACCOUNT_STEP_FLAGS:
            account[name] = 0
        self.fills[b, :begin] = history
        self.carried_steps[b] = begin
        self.opening_marks[b] = float(account["mark"][0])

    def new_observation_buffer(self) -> None:
        """A fresh buffer for a new episode's observations (by step only)."""
        if self.observations_by_step:
            self.observations = self._observation_buffer()
            self._bind()

    def observe(self) -> npt.NDArray[np.float32]:
        """Write every environment's observation of its current bar; return the buffer."""
        self._observe(*self._arrays, self.observations)
        return self.observations

    def step(self, actions: Any) -> StepResult:
        """Advance every environment one bar towards its action's target weights.

        ``actions``: environments x instruments (or flat), float32 or float64; anything else
        (a list, integers) is converted first.
        """
        try:
            step = self._bound[actions.dtype.char]
            flat = actions if actions.ndim == 1 else actions.reshape(-1)
        except (AttributeError, KeyError):  # not a float array: convert it
            step = self._bound["d"]
            flat = np.asarray(actions, dtype=np.float64).reshape(-1)
        result: StepResult = step(flat)
        return result

    # Reading the records ---------------------------------------------------------------------

    def bars(self) -> npt.NDArray[np.int64]:
        """The current bar of each environment."""
        return np.asarray(self.accounts["t"], dtype=np.int64)

    def steps_taken(self, b: int) -> int:
        """Steps of environment ``b``'s episode (this session's) so far."""
        account = self.accounts[b]
        return int(account["t"] - account["start"] - self.carried_steps[b])

    def first_bar(self, b: int) -> int:
        """The first bar of environment ``b``'s episode (the bar this session began at)."""
        return int(self.accounts[b]["start"] + self.carried_steps[b])

    def observation_row(self, b: int = 0) -> int:
        """The row of the by-step observation buffer that holds the current observation."""
        account = self.accounts[b]
        return int(account["t"] - account["start"])

    def account(self, name: str) -> npt.NDArray[Any]:
        """One field of every environment's account (``account_dtype``), e.g. ``"cash"``, or
        ``"units"`` (environments x instruments)."""
        return np.asarray(self.accounts[name])

    def log(self, b: int) -> Record:
        """Environment ``b``'s fill records of this session so far (one per step,
        ``fill_dtype``); carried steps are not this session's."""
        first = int(self.carried_steps[b])
        return self.fills[b, first : first + self.steps_taken(b)]

    def request_release(self, b: int) -> None:
        """Ask the risk engine to lift environment ``b``'s halt at its next step."""
        self.accounts[b : b + 1]["release"] = True

    def exit_costs(self, b: int) -> FloatArray:
        """What closing every position of environment ``b`` at its current bar would cost,
        by component (``COST_COMPONENTS``)."""
        bar = int(self.accounts[b]["t"])
        market = self.market.bars[bar]
        units = self.accounts[b]["units"]
        prices = market["close"]
        equity = float(self.accounts[b]["cash"] + (units * prices).sum())
        total = np.zeros(layout.N_COSTS)
        breakdown = np.zeros(layout.N_COSTS)
        for i in range(self.market.n_instruments):
            fill_costs(
                -units[i],
                prices[i],
                market["tick"][i],
                market["sigma"][i],
                market["liquidity"][i],
                self.params,
                breakdown,
            )
            total += breakdown
        traded = float(np.abs(units * prices).sum())
        if self.param("capacity_charge") and traded > 0.0:
            sigma = float((np.abs(units * prices) * market["sigma"]).sum() / traded)
            total[layout.CAPACITY] = capacity_charge(
                traded, equity, market["capacity"], sigma, self.param("eta")
            )
        return total
