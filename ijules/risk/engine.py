"""The risk engine's Python side: configuration in, reasons out, and the operator's release.

The decisions happen in the compiled gate (:mod:`ijules.risk.gate`) on every step of every
environment, backtest and replay; this module sets its parameters, turns its records into
sentences and log lines, and lets an operator lift a halt when the release rule says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.config import RiskManagementConfig
from ijules.env import layout
from ijules.risk import codes

if TYPE_CHECKING:
    from ijules.env.engine import Engine

log = logging.getLogger(__name__)

_RELEASE_MODES = {"time": 0.0, "condition": 1.0, "operator": 2.0}
_REDUCE_FACTOR = 0.5  # REDUCING halves every limit


@dataclass(frozen=True)
class RiskSettings:
    """The risk engine's parameters (master plan, phase 3)."""

    config: RiskManagementConfig
    daily_var_budget: float

    def write_params(self, params: npt.NDArray[np.float64]) -> None:
        """Fill the risk entries of the kernel's parameter vector."""
        config = self.config
        limits, breakers = config.limits, config.circuit_breakers
        halt = breakers.trading_halt_conditions
        params[layout.P_RISK_ON] = float(config.enabled)
        params[layout.P_MAX_DAILY_DD] = limits.max_daily_drawdown_pct
        params[layout.P_MAX_MONTHLY_DD] = limits.max_monthly_drawdown_pct
        params[layout.P_CONCENTRATION] = limits.max_position_concentration_pct
        params[layout.P_LEVERAGE] = limits.max_leverage_ratio
        params[layout.P_VAR_MULTIPLE] = limits.max_var_multiple
        params[layout.P_VAR_BUDGET] = self.daily_var_budget
        params[layout.P_BREAKERS_ON] = float(breakers.enabled)
        params[layout.P_EMERGENCY] = breakers.emergency_liquidation_threshold
        params[layout.P_SCALING] = breakers.position_scaling_threshold
        params[layout.P_LOSING_DAYS] = halt.consecutive_losses
        params[layout.P_LOSING_DAY] = halt.losing_day_pct
        params[layout.P_VOL_SPIKE] = halt.volatility_spike
        params[layout.P_CORR_HALT] = float(halt.correlation_breakdown)
        params[layout.P_RELEASE_MODE] = _RELEASE_MODES[config.halt_release.mode]
        params[layout.P_COOLDOWN] = config.halt_release.cooldown_bars
        params[layout.P_CRISIS_SCALE] = config.regime_limits.crisis_mode
        params[layout.P_RECOVERY_SCALE] = config.regime_limits.recovery_mode
        params[layout.P_HIGH_VOL_SCALE] = config.regime_limits.high_volatility
        params[layout.P_VOL_ALERT] = config.monitoring.volatility_spike_threshold
        params[layout.P_DD_VELOCITY_ALERT] = config.monitoring.drawdown_velocity_threshold
        params[layout.P_REDUCE_FACTOR] = _REDUCE_FACTOR


def trading_state(engine: Engine, b: int = 0) -> str:
    """The current trading state of environment ``b``."""
    return codes.STATES[int(engine.state[b, layout.S_TRADING_STATE])]


def release(engine: Engine, b: int, *, operator: str, note: str) -> None:
    """An operator lifts environment ``b``'s halt; it takes effect on the next step.

    Only meaningful under ``halt_release.mode: operator``; the release is logged with who and why.
    """
    if trading_state(engine, b) != "HALTED":
        raise ValueError(f"environment {b} is {trading_state(engine, b)}, not HALTED")
    engine.state[b, layout.S_RELEASE] = 1.0
    log.warning("risk engine: halt release requested by %s: %s", operator, note)


def log_changes(engine: Engine, level: int) -> None:
    """Log the changes of trading state the last step made (the kernel flags them).

    Every change is recorded on the fill log whatever the level; training engines log them at
    DEBUG, where thousands of exploratory episodes would drown a risk officer's log.
    """
    if not log.isEnabledFor(level):
        return
    for b in np.flatnonzero(engine.state[:, layout.S_CHANGED] > 0.0):
        reason = int(engine.state[b, layout.S_CHANGED])
        log.log(
            level,
            "risk engine: %s at %s (%s)",
            trading_state(engine, int(b)),
            engine.where(int(b), previous=True),
            codes.describe(reason),
        )


def events(engine: Engine, b: int = 0) -> pd.DataFrame:
    """The episode's changes of trading state, with their reasons."""
    log_rows = _record(engine, b)
    steps = np.flatnonzero(log_rows[:, 0, layout.F_TRANSITION] > 0)
    start = int(engine.state[b, layout.S_START])
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(engine.market.timestamps[start + steps]),
            "state": [codes.STATES[int(log_rows[s, 0, layout.F_STATE])] for s in steps],
            "reason": [codes.describe(int(log_rows[s, 0, layout.F_TRANSITION])) for s in steps],
            "code": log_rows[steps, 0, layout.F_TRANSITION].astype(int),
        }
    )


def refusals(engine: Engine, b: int = 0) -> dict[str, int]:
    """How many targets the engine cut this episode, by reason."""
    found = _record(engine, b)[:, :, layout.F_REFUSAL].astype(int).ravel()
    counts = np.bincount(found[found > 0], minlength=8)
    return {codes.describe(code): int(n) for code, n in enumerate(counts) if n}


def states(engine: Engine, b: int = 0) -> npt.NDArray[np.int64]:
    """The trading state at each step of the episode so far."""
    return np.asarray(_record(engine, b)[:, 0, layout.F_STATE], dtype=np.int64)


def _record(engine: Engine, b: int) -> npt.NDArray[np.float64]:
    steps = int(engine.state[b, layout.S_T] - engine.state[b, layout.S_START])
    return np.asarray(engine.fills[b, :steps, :, 1 + layout.N_COSTS :])
