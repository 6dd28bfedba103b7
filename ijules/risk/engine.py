"""The risk engine's Python side: configuration in, reasons out, and the operator's release.

The decisions happen in the compiled gate (:mod:`ijules.sim.gate`) on every step of every
environment, backtest and replay; this module sets its parameters, turns its records into
sentences and log lines, and lets an operator lift a halt when the release rule says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ijules.risk.config import RiskManagementConfig
from ijules.sim import codes
from ijules.sim.layout import RELEASE_MODES
from ijules.sim.simulator import Simulator

log = logging.getLogger(__name__)

_REDUCE_FACTOR = 0.5  # REDUCING halves every limit


@dataclass(frozen=True)
class RiskSettings:
    """The risk engine's parameters (master plan, phase 3)."""

    config: RiskManagementConfig
    daily_var_budget: float  # the configured budget, unless the curriculum adapts it

    @classmethod
    def from_config(cls, config: RiskManagementConfig) -> RiskSettings:
        """The engine ``risk_management`` describes."""
        return cls(config, config.limits.daily_var_budget)

    def sim_params(self) -> dict[str, object]:
        """The step's risk-engine parameters."""
        config = self.config
        limits, breakers = config.limits, config.circuit_breakers
        halt = breakers.trading_halt_conditions
        return {
            "risk_on": config.enabled,
            "max_daily_dd": limits.max_daily_drawdown_pct,
            "max_monthly_dd": limits.max_monthly_drawdown_pct,
            "concentration": limits.max_position_concentration_pct,
            "leverage": limits.max_leverage_ratio,
            "var_multiple": limits.max_var_multiple,
            "var_budget": self.daily_var_budget,
            "breakers": breakers.enabled,
            "emergency": breakers.emergency_liquidation_threshold,
            "scaling": breakers.position_scaling_threshold,
            "losing_days": halt.consecutive_losses,
            "losing_day": halt.losing_day_pct,
            "vol_spike": halt.volatility_spike,
            "correlation_halt": halt.correlation_breakdown,
            "release_mode": RELEASE_MODES.index(config.halt_release.mode),
            "cooldown": config.halt_release.cooldown_bars,
            "crisis_scale": config.regime_limits.crisis_mode,
            "recovery_scale": config.regime_limits.recovery_mode,
            "high_vol_scale": config.regime_limits.high_volatility,
            "vol_alert": config.monitoring.volatility_spike_threshold,
            "dd_velocity_alert": config.monitoring.drawdown_velocity_threshold,
            "reduce_factor": _REDUCE_FACTOR,
        }

    def switched(self, *, enabled: bool) -> RiskSettings:
        """The same settings with the engine switched on or off."""
        return RiskSettings(
            self.config.model_copy(update={"enabled": enabled}), self.daily_var_budget
        )


def trading_state(sim: Simulator, b: int = 0) -> str:
    """The current trading state of environment ``b``."""
    return codes.STATES[int(sim.account("trading_state")[b])]


def release(sim: Simulator, b: int, *, operator: str, note: str) -> None:
    """An operator lifts environment ``b``'s halt; it takes effect on the next step.

    Only meaningful under ``halt_release.mode: operator``; the release is logged with who and why.
    """
    if trading_state(sim, b) != "HALTED":
        raise ValueError(f"environment {b} is {trading_state(sim, b)}, not HALTED")
    sim.request_release(b)
    log.warning("risk engine: halt release requested by %s: %s", operator, note)


def log_changes(sim: Simulator, where: Callable[[int], str], level: int) -> None:
    """Log the changes of trading state the last step made (the step flags them); ``where(b)``
    names the bar environment ``b`` just traded at.

    Every change is recorded on the fill log whatever the level; training engines log them at
    DEBUG, where thousands of exploratory episodes would drown a risk officer's log.
    """
    if not log.isEnabledFor(level):
        return
    changed = sim.account("changed")
    for b in np.flatnonzero(changed > 0):
        log.log(
            level,
            "risk engine: %s at %s (%s)",
            trading_state(sim, int(b)),
            where(int(b)),
            codes.describe(int(changed[b])),
        )


def events(sim: Simulator, timestamps: npt.NDArray[np.datetime64], b: int = 0) -> pd.DataFrame:
    """The episode's changes of trading state, with their reasons (``timestamps``: every bar's)."""
    record = sim.log(b)
    steps = np.flatnonzero(record["transition"] > 0)
    transitions = record["transition"][steps]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(timestamps[sim.first_bar(b) + steps]),
            "state": [codes.STATES[int(s)] for s in record["state"][steps]],
            "reason": [codes.describe(int(code)) for code in transitions],
            "code": transitions.astype(int),
        }
    )


def refusals(sim: Simulator, b: int = 0) -> dict[str, int]:
    """How many targets the engine cut this episode, by reason."""
    found = np.asarray(sim.log(b)["refusal"], dtype=np.int64).ravel()
    counts = np.bincount(found[found > 0], minlength=8)
    return {codes.describe(code): int(n) for code, n in enumerate(counts) if n}


def states(sim: Simulator, b: int = 0) -> npt.NDArray[np.int64]:
    """The trading state at each step of the episode so far."""
    return np.asarray(sim.log(b)["state"], dtype=np.int64)
