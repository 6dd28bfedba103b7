"""The named, typed layouts of the arrays the compiled step reads and writes.

Each layout is a numpy structured dtype; numba compiles field access to a fixed offset, so a
name costs nothing at run time. Per-instrument fields are sub-arrays of one entry per
instrument, so the step is compiled once per number of instruments (and cached).

``market_dtype(n)``   per bar: each instrument's mark, whether it trades, volatility, liquidity,
                      VaR and tick; the market-wide regime flags, capacity and calendar
``account_dtype(n)``  per environment: the clock, cash, P&L, reward, flags, the risk engine's
                      state, and each instrument's position with the step's work space
``fill_dtype(n)``     per environment and episode step: each instrument's units traded, costs
                      by component and refusal; the trading state and any transition; the equity
                      and drawdown marked after the step
``PARAMS``            one record: limits, costs, reward, observation and risk-engine parameters

Features (bars x features, standardised) and observations are plain float arrays. Each array
handed to the compiled step costs about 40 ns to unbox where the step's arithmetic is about
200 ns, hence few arrays holding whole records.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal, get_args

import numpy as np

from ijules.artifacts import CostComponent as CostComponent
from ijules.artifacts import RiskFeature as RiskFeature

# Cost components, in the order every fill records them (the names are ijules.artifacts', which
# the reports that list costs by component share).
COST_COMPONENTS: tuple[CostComponent, ...] = get_args(CostComponent)
N_COSTS = len(COST_COMPONENTS)
FIXED, PROPORTIONAL, TICK, TEMPORARY, PERMANENT, CAPACITY = (
    COST_COMPONENTS.index(name)
    for name in (
        "fixed",
        "proportional",
        "tick",
        "temporary_impact",
        "permanent_impact",
        "capacity",
    )
)

# Risk features an observation may include, in the order they appear in it (named in
# ijules.artifacts, since a policy's spec records the ones it was trained with).
RISK_FEATURES: tuple[RiskFeature, ...] = get_args(RiskFeature)
N_RISK = len(RISK_FEATURES)
HEAT, CONCENTRATION, VELOCITY, BREACH, CORRELATION = (
    RISK_FEATURES.index(name)
    for name in (
        "portfolio_heat_ratio",
        "concentration_ratio",
        "drawdown_velocity",
        "var_breach_indicator",
        "correlation_breakdown",
    )
)

# How a halt is lifted (``PARAMS.release_mode``).
ReleaseMode = Literal["time", "condition", "operator"]
RELEASE_MODES: tuple[ReleaseMode, ...] = get_args(ReleaseMode)
RELEASE_TIME, RELEASE_CONDITION, RELEASE_OPERATOR = range(len(RELEASE_MODES))


@functools.cache
def market_dtype(n_assets: int) -> np.dtype:
    """One bar of the market: each instrument's fields (``n_assets`` each), then the clock's."""
    return np.dtype(
        [
            ("close", np.float64, (n_assets,)),  # the mark: the last close, carried while shut
            ("fill", np.float64, (n_assets,)),  # the price a trade decided at this bar fills at
            ("tradable", np.int8, (n_assets,)),  # 1: a trade decided now can fill
            ("stale", np.int8, (n_assets,)),  # 1: the bar it would fill in printed no volume
            ("sigma", np.float64, (n_assets,)),  # trailing volatility of log returns, per bar
            ("liquidity", np.float64, (n_assets,)),  # units the bar offers (V of the impact model)
            ("daily_var", np.float64, (n_assets,)),  # daily VaR(99%) per unit of weight
            ("tick", np.float64, (n_assets,)),  # the price grid
            ("capacity", np.float64),  # free turnover per bar, fraction of equity
            ("correlation", np.float64),  # short- against long-window correlation gap
            ("volatility_ratio", np.float64),  # volatility against its normal level
            ("crisis", np.bool_),
            ("recovery", np.bool_),
            ("high_volatility", np.bool_),
            ("correlation_break", np.bool_),
            ("day", np.int64),  # UTC calendar day number
            ("month", np.int64),  # year x 12 + month
        ],
        align=True,
    )


@functools.cache
def account_dtype(n_assets: int) -> np.dtype:
    """One environment: its clock, cash, P&L, reward and flags, the risk engine's state, and
    each instrument's position (``n_assets`` each) with the step's work space."""
    return np.dtype(
        [
            ("t", np.int64),  # the bar the environment stands at
            ("start", np.int64),  # the episode's first bar
            ("end", np.int64),  # the episode's last bar
            ("cash", np.float64),
            ("realised", np.float64),  # P&L of closed units against their average cost
            ("peak", np.float64),  # highest equity of the episode
            ("last_return", np.float64),  # the last step's portfolio return
            ("return_mean", np.float64),  # differential Sharpe: EMA of the returns...
            ("return_square", np.float64),  # ...and of their squares
            ("mark", np.float64),  # equity marked at bar t
            ("reward", np.float64),
            ("terminated", np.bool_),
            ("truncated", np.bool_),
            ("nonfinite", np.int64),  # non-finite values met this step
            ("out_of_bounds", np.bool_),  # the reward left its bounds this step
            ("after_end", np.bool_),  # stepped after the episode's end
            ("costs", np.float64, (N_COSTS,)),  # costs paid this episode, by component
            # The risk engine.
            ("trading_state", np.int64),
            ("state_reason", np.int64),
            ("state_since", np.int64),
            ("day", np.int64),
            ("day_start", np.float64),
            ("day_peak", np.float64),
            ("month", np.int64),
            ("month_peak", np.float64),
            ("losing_days", np.int64),
            ("refusals", np.int64),
            ("transitions", np.int64),
            ("release", np.bool_),  # an operator asked to lift the halt
            ("changed", np.int64),  # the reason of this step's change of state (0: none)
            ("alerts", np.int64),  # soft alerts: fast drawdowns, volatility spikes
            ("spiking", np.bool_),
            # Positions.
            ("units", np.float64, (n_assets,)),
            ("avg_cost", np.float64, (n_assets,)),
            ("held", np.float64, (n_assets,)),  # weight held over the last bar
            # Work space of one step: no allocation on the hot path.
            ("weight", np.float64, (n_assets,)),  # the weight now, then the trade's goal
            ("wanted", np.float64, (n_assets,)),  # the action's target, then what the gate allows
            ("cap", np.float64, (n_assets,)),  # the limit on |weight|
            ("moving", np.int8, (n_assets,)),  # 1: trades this step
            ("trade", np.float64, (n_assets,)),  # units to trade
            ("cost_work", np.float64, (n_assets, N_COSTS)),
        ],
        align=True,
    )


# The account's work space: rewritten by every step before it is read, so nothing carries it.
ACCOUNT_SCRATCH = ("weight", "wanted", "cap", "moving", "trade", "cost_work")
# What one step reports and the next overwrites: a session continued later starts them clear.
ACCOUNT_STEP_FLAGS = (
    "reward",
    "terminated",
    "truncated",
    "nonfinite",
    "out_of_bounds",
    "after_end",
    "changed",
)


@functools.cache
def fill_dtype(n_assets: int) -> np.dtype:
    """One step of an episode: each instrument's fill (``n_assets`` each), the risk engine's
    record, and the equity and drawdown marked at the next bar."""
    return np.dtype(
        [
            ("units", np.float64, (n_assets,)),  # units traded
            ("costs", np.float64, (n_assets, N_COSTS)),
            (
                "refusal",
                np.int64,
                (n_assets,),
            ),  # why the risk engine cut the target (0: it did not)
            ("state", np.int64),  # the trading state the step traded in
            ("transition", np.int64),  # the change of state this step (0: none)
            ("equity", np.float64),  # equity marked at the next bar
            ("drawdown", np.float64),  # drawdown from the episode's peak, at the next bar
        ],
        align=True,
    )


PARAMS = np.dtype(
    [
        # Portfolio and actions.
        ("capital", np.float64),
        ("max_single", np.float64),  # largest |weight| of one position
        ("max_gross", np.float64),  # largest gross exposure
        ("band", np.float64),  # rebalances smaller than this weight are skipped
        ("max_trade", np.float64),  # largest change of weight per bar (0: none)
        ("action_offset", np.float64),  # target = (action - offset) x max_single
        ("volatility_target", np.float64),  # annualised: target = (action - offset) x this / sigma
        ("sqrt_bars_per_year", np.float64),  # annualises a bar's sigma
        ("observations_by_step", np.bool_),  # observations[s] holds episode step s
        ("bars_per_day", np.float64),
        # Costs.
        ("fixed", np.float64),  # per fill
        ("proportional", np.float64),  # fraction of the traded value
        ("tick_aware", np.bool_),
        ("impact", np.bool_),
        ("eta", np.float64),  # temporary impact
        ("gamma", np.float64),  # permanent impact
        ("capacity_charge", np.bool_),
        ("adverse_selection", np.bool_),  # no fills on bars that printed no volume
        # Reward and episode.
        ("reward_scaling", np.float64),
        ("penalty_lambda", np.float64),
        ("variance_penalty", np.bool_),  # penalise r^2, else the drawdown
        ("differential_sharpe", np.bool_),  # reward the differential Sharpe ratio, not the P&L
        ("sharpe_decay", np.float64),  # its EMAs' rate (Moody & Saffell's eta)
        ("dd_limit", np.float64),  # end the episode past this drawdown (0: never)
        ("reward_low", np.float64),
        ("reward_high", np.float64),
        # Observation.
        ("risk_slot", np.int64, (N_RISK,)),  # each risk feature's place after the weights; -1
        ("velocity_bars", np.int64),  # drawdown velocity: drawdown now minus this many bars ago
        # The risk engine.
        ("risk_on", np.bool_),
        ("var_budget", np.float64),  # daily VaR budget, fraction of equity
        ("max_daily_dd", np.float64),
        ("max_monthly_dd", np.float64),
        ("concentration", np.float64),
        ("leverage", np.float64),
        ("var_multiple", np.float64),
        ("breakers", np.bool_),
        ("emergency", np.float64),
        ("scaling", np.float64),
        ("losing_days", np.int64),
        ("losing_day", np.float64),
        ("vol_spike", np.float64),
        ("correlation_halt", np.bool_),
        ("release_mode", np.int64),
        ("cooldown", np.int64),
        ("crisis_scale", np.float64),
        ("recovery_scale", np.float64),
        ("high_vol_scale", np.float64),
        ("vol_alert", np.float64),
        ("dd_velocity_alert", np.float64),
        ("reduce_factor", np.float64),
    ],
    align=True,
)


def params_record(values: Mapping[str, object]) -> np.ndarray:
    """Pack named parameter values into a ``PARAMS`` record; every field exactly once.

    The parts that own a group of fields (limits, costs, reward, observation, risk engine)
    each hand over theirs; a field nobody set, or a name the layout does not have, is refused.
    """
    names = PARAMS.names or ()
    missing = [name for name in names if name not in values]
    unknown = sorted(set(values) - set(names))
    if missing or unknown:
        raise ValueError(f"simulation parameters: missing {missing}, unknown {unknown}")
    record = np.zeros(1, dtype=PARAMS)
    for name, value in values.items():
        record[name] = value
    return record


def to_plain(record: np.void, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """One record's fields by name, as Python numbers and lists (exact: a float64 survives JSON's
    shortest round-trip representation), less the fields in ``skip``."""
    names = record.dtype.names or ()
    return {name: record[name].tolist() for name in names if name not in skip}


def from_plain(dtype: np.dtype, values: Mapping[str, Any]) -> np.ndarray:
    """A one-element array of ``dtype`` filled from :func:`to_plain`'s output; fields it left out
    stay zero. A name the layout does not have, or a value of the wrong shape, is refused."""
    names = dtype.names or ()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"record fields {unknown} are not in the layout")
    record = np.zeros(1, dtype=dtype)
    for name, value in values.items():
        shape = dtype[name].shape
        array = np.asarray(value)
        if array.shape != shape:
            raise ValueError(f"record field {name!r}: shape {array.shape}, the layout's {shape}")
        record[name] = value
    return record
