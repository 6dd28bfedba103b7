"""Where everything sits in the packed arrays the compiled kernel reads and writes.

``market[t, :]``  per instrument (N each): close | tradable | stale | sigma | liquidity |
                  daily VaR(99%) per unit of weight; then the M_* market scalars; then the
                  standardised features (F)
``state[b, :]``   the S_* scalars | units (N) | average cost (N) | weights held (N) |
                  costs paid by component (C) | drawdown ring (L) | work space
``params``        the P_* scalars | the dims block (D_* sizes and offsets) | tick per instrument
``fills[b, s, i, :]``  units traded | cost by component (C) | the F_* risk-engine record,
                  at episode step s
"""

from __future__ import annotations

# Cost components, in the order they are recorded on every fill.
COST_COMPONENTS = (
    "fixed",
    "proportional",
    "tick",
    "temporary_impact",
    "permanent_impact",
    "capacity",
)
FIXED, PROPORTIONAL, TICK, TEMPORARY, PERMANENT, CAPACITY = range(6)
N_COSTS = len(COST_COMPONENTS)

# Risk features, in the order the observation may include them.
RISK_FEATURES = (
    "portfolio_heat_ratio",
    "concentration_ratio",
    "drawdown_velocity",
    "var_breach_indicator",
    "correlation_breakdown",
)
N_RISK = len(RISK_FEATURES)

# Per-instrument blocks of ``market`` (block k spans columns k*N .. k*N + N - 1).
B_CLOSE, B_TRADABLE, B_STALE, B_SIGMA, B_LIQUIDITY, B_DAILY_VAR = range(6)
N_BLOCKS = 6
# Market scalars, after the blocks.
M_CAPACITY, M_CORRELATION, M_VOL_RATIO, M_CRISIS, M_RECOVERY = 0, 1, 2, 3, 4
M_HIGH_VOL, M_CORR_BREAK, M_DAY, M_MONTH = 5, 6, 7, 8
N_MARKET_SCALARS = 9

# Scalars of ``state[b]``.
S_T, S_START, S_END, S_CASH, S_REALISED, S_PEAK, S_LAST_RETURN, S_MARK = range(8)
S_REWARD, S_TERMINATED, S_TRUNCATED = 8, 9, 10
S_NONFINITE, S_OUT_OF_BOUNDS, S_AFTER_END = 11, 12, 13
# The risk engine's state.
S_TRADING_STATE, S_STATE_REASON, S_STATE_SINCE = 14, 15, 16
S_DAY, S_DAY_START, S_DAY_PEAK, S_MONTH, S_MONTH_PEAK, S_LOSING_DAYS = 17, 18, 19, 20, 21, 22
S_REFUSALS, S_TRANSITIONS, S_RELEASE, S_CHANGED, S_ALERTS, S_SPIKING = 23, 24, 25, 26, 27, 28
N_SCALARS = 29

# ``dims``: sizes and offsets.
D_ASSETS, D_FEATURES, D_RING = 0, 1, 2
D_UNITS, D_AVG, D_HELD, D_COSTS, D_DRAWDOWNS = 3, 4, 5, 6, 7
D_RISK_MASK = 8  # N_RISK flags follow
N_DIMS = D_RISK_MASK + N_RISK

# ``params``: the flat parameter vector.
P_CAPITAL = 0
P_MAX_SINGLE = 1
P_MAX_GROSS = 2
P_BAND = 3
P_FIXED = 4
P_PROPORTIONAL = 5
P_IMPACT_ON = 6
P_ETA = 7
P_GAMMA = 8
P_CAPACITY_ON = 9
P_ADVERSE = 10
P_TICK_ON = 11
P_REWARD_SCALING = 12
P_LAMBDA = 13
P_PENALTY_VARIANCE = 14
P_DD_LIMIT = 15
P_VAR_BUDGET = 16
P_BARS_PER_DAY = 17
P_REWARD_LOW = 18
P_REWARD_HIGH = 19
P_ACTION_OFFSET = 20  # target = (action - offset) x max_single: 0 continuous, 1 discrete
P_OBS_BY_STEP = 21  # 1: observations[s] holds episode step s (a batch of one); 0: observations[b]
# The risk engine's parameters.
P_RISK_ON = 22
P_MAX_DAILY_DD = 23
P_MAX_MONTHLY_DD = 24
P_CONCENTRATION = 25
P_LEVERAGE = 26
P_VAR_MULTIPLE = 27
P_BREAKERS_ON = 28
P_EMERGENCY = 29
P_SCALING = 30
P_LOSING_DAYS = 31
P_VOL_SPIKE = 32
P_CORR_HALT = 33
P_RELEASE_MODE = 34  # 0 time, 1 condition, 2 operator
P_COOLDOWN = 35
P_CRISIS_SCALE = 36
P_RECOVERY_SCALE = 37
P_HIGH_VOL_SCALE = 38
P_VOL_ALERT = 39
P_DD_VELOCITY_ALERT = 40
P_REDUCE_FACTOR = 41
P_LOSING_DAY = 42
P_MAX_TRADE = 43  # largest change of weight per bar (0: none), a curriculum constraint
P_DIMS = 44  # the dims block (sizes and offsets, as floats) follows
P_TICKS = P_DIMS + N_DIMS  # then one tick size per instrument

# The risk engine's record on each fill row, after units and costs; then the equity marked
# at the next bar (the episode's equity curve).
F_REFUSAL, F_STATE, F_TRANSITION, F_EQUITY = 0, 1, 2, 3
N_RECORD = 4
FILL_WIDTH = 1 + N_COSTS + N_RECORD
