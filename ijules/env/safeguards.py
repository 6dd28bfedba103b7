"""Safeguards (master plan, phase 1): zero tolerance for NaN and inf, reward bounds, compatibility.

A non-finite observation or reward is an incident: it is counted and stops the run with an error
that says where. A reward outside the configured bounds is an alert: counted and logged, the run
goes on. A policy whose spaces do not match the environment's is refused before it acts. With
``observation_consistency_check``, every observation an evaluation handed its policy must lie in
the observation space the policy was trained on (shape, dtype and bounds), or the evaluation
stops as an incident: a policy fed what it never saw in training is not being evaluated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from ijules.env.config import SafeguardsConfig
from ijules.errors import IjulesError, ModelCompatibilityError

log = logging.getLogger(__name__)


class NonFiniteError(IjulesError):
    """A NaN or inf reached an observation or a reward."""


class ObservationError(IjulesError):
    """An observation left the space the policy was trained on."""


@dataclass
class Safeguards:
    """Checks every step's output; keeps the incident and alert counts."""

    config: SafeguardsConfig
    incidents: int = 0
    reward_alerts: int = 0
    _alert_logged: bool = field(default=False, repr=False)

    def reward_window(self) -> tuple[float, float]:
        """The rewards that raise no alert: the configured bounds, or any with the check off."""
        if not self.config.reward_bounds_check:
            return -np.inf, np.inf
        return self.config.reward_bounds

    def check_step(
        self,
        rewards: npt.NDArray[np.float64],
        nonfinite_rewards: int,
        nonfinite_observations: int,
        rewards_out_of_bounds: int,
        where: str,
    ) -> None:
        """Raise on anything non-finite; count (and log once) rewards out of bounds."""
        if nonfinite_rewards or nonfinite_observations:
            self.incidents += 1
            raise NonFiniteError(
                f"non-finite values at {where}: {nonfinite_rewards} reward(s), "
                f"{nonfinite_observations} observation value(s) (incident {self.incidents})"
            )
        if rewards_out_of_bounds:
            self.reward_alerts += rewards_out_of_bounds
            if not self._alert_logged:
                low, high = self.config.reward_bounds
                outside = rewards[(rewards < low) | (rewards > high)][:3].tolist()
                log.warning(
                    "reward outside bounds [%g, %g] at %s: %s (further alerts are only counted)",
                    low,
                    high,
                    where,
                    outside,
                )
                self._alert_logged = True

    def check_observations(
        self, observations: npt.NDArray[np.float32], space: spaces.Box, names: list[str]
    ) -> None:
        """Refuse observations (one per row) outside ``space`` (``observation_consistency_check``).

        ``names`` label the entries, for the message.
        """
        if not self.config.observation_consistency_check:
            return
        if observations.shape[1:] != space.shape or observations.dtype != space.dtype:
            self.incidents += 1
            raise ObservationError(
                f"observations are {observations.dtype}{list(observations.shape[1:])}, the "
                f"policy's space is {space.dtype}{list(space.shape)} (incident {self.incidents})"
            )
        outside = ~((observations >= space.low) & (observations <= space.high))
        if outside.any():
            self.incidents += 1
            row, column = (int(k) for k in np.argwhere(outside)[0])
            raise ObservationError(
                f"{int(outside.sum())} observation value(s) outside the policy's space, first "
                f"{names[column]} = {observations[row, column]:g} at step {row} (bounds "
                f"[{space.low[column]:g}, {space.high[column]:g}]; incident {self.incidents})"
            )


def check_compatible(
    policy_observation: tuple[int, ...],
    policy_action: tuple[int, ...],
    env_observation: tuple[int, ...],
    env_action: tuple[int, ...],
) -> None:
    """Refuse a policy whose observation or action space differs from the environment's."""
    if policy_observation != env_observation:
        raise ModelCompatibilityError(
            f"observation space mismatch: policy expects {policy_observation}, "
            f"environment produces {env_observation}"
        )
    if policy_action != env_action:
        raise ModelCompatibilityError(
            f"action space mismatch: policy outputs {policy_action}, "
            f"environment expects {env_action}"
        )
