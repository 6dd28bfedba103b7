"""What training reports at every update, and what stops it.

Every PPO update sends SB3's own numbers (entropy, explained variance, approx. KL, clip
fraction, losses) and ours (the gradient norm before clipping, the episode reward range, the
safeguard counters) to the active MLflow run. A non-finite loss or gradient is a NaN incident:
it is logged, then training stops with :class:`~ijules.errors.TrainingError`, so the run ends
FAILED and nothing after it (saving, registering) happens. An entropy below
``training.entropy_floor`` is an entropy-collapse warning, logged and counted.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from ijules.env.safeguards import Safeguards
from ijules.errors import TrainingError

log = logging.getLogger(__name__)

GRAD_NORM = "train/grad_norm"
_WATCHED = ("train/loss", "train/value_loss", "train/policy_gradient_loss", "train/entropy_loss")


@dataclass
class Diagnostics:
    """Counters shared by the callback, the gradient hook and the MLflow writer."""

    entropy_floor: float
    safeguards: Safeguards
    nan_incidents: int = 0
    entropy_warnings: int = 0
    updates: int = 0
    last: dict[str, float] = field(default_factory=dict)

    def nan(self, what: str, step: int) -> TrainingError:
        """Count a NaN incident, log it to MLflow, and return the error that aborts training."""
        import mlflow

        self.nan_incidents += 1
        mlflow.log_metric("nan_incidents", self.nan_incidents, step=step)
        return TrainingError(f"training aborted at step {step}: {what} is not finite")

    def summary(self) -> dict[str, float]:
        """Counters and the last update's numbers, for the run's final record."""
        last = {k: v for k, v in self.last.items() if k.startswith(("train_", "rollout_"))}
        return {
            **last,
            "nan_incidents": float(self.nan_incidents),
            "entropy_collapse_warnings": float(self.entropy_warnings),
            "updates": float(self.updates),
            "safeguard_incidents": float(self.safeguards.incidents),
            "reward_bound_alerts": float(self.safeguards.reward_alerts),
        }


def clip_and_watch_gradients(model: Any, max_grad_norm: float, diagnostics: Diagnostics) -> None:
    """Clip gradients ourselves, before each optimiser step, to see their norm first.

    SB3 clips inside ``train`` and discards the norm; with its own threshold set to infinity its
    clipping is a no-op, and this wrapper does the real clipping and records the norm.
    """
    import torch

    model.max_grad_norm = math.inf
    optimizer = model.policy.optimizer
    original = optimizer.step
    parameters = [p for p in model.policy.parameters() if p.requires_grad]

    def step(*args: Any, **kwargs: Any) -> Any:
        norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm))
        if not math.isfinite(norm):
            raise diagnostics.nan("the gradient norm", int(model.num_timesteps))
        model.logger.record_mean(GRAD_NORM, norm)
        return original(*args, **kwargs)

    optimizer.step = step


class MlflowDiagnostics(KVWriter):
    """SB3 logger output: checks each update's numbers, then logs them to the MLflow run."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0
    ) -> None:
        import mlflow

        diagnostics = self.diagnostics
        numbers = {
            key: float(value)
            for key, value in key_values.items()
            if isinstance(value, int | float | np.floating)
        }
        for key in _WATCHED:
            if key in numbers and not math.isfinite(numbers[key]):
                raise diagnostics.nan(key, step)
        if "train/entropy_loss" in numbers:
            diagnostics.updates += 1
            entropy = -numbers["train/entropy_loss"]
            numbers["train/entropy"] = entropy
            if entropy < diagnostics.entropy_floor:
                diagnostics.entropy_warnings += 1
                log.warning(
                    "entropy collapse: policy entropy %.3f is below the floor %.3f (step %d)",
                    entropy,
                    diagnostics.entropy_floor,
                    step,
                )
            numbers["train/entropy_collapse_warnings"] = float(diagnostics.entropy_warnings)
        numbers["safeguard_incidents"] = float(diagnostics.safeguards.incidents)
        numbers["reward_bound_alerts"] = float(diagnostics.safeguards.reward_alerts)
        finite = {k.replace("/", "_"): v for k, v in numbers.items() if math.isfinite(v)}
        diagnostics.last.update(finite)
        if finite:
            mlflow.log_metrics(finite, step=step)

    def close(self) -> None:
        """Nothing to release."""


class EpisodeRange(BaseCallback):
    """Records the range of the episode rewards SB3's ``rollout/ep_rew_mean`` averages (its
    buffer of the last finished episodes, across rollouts), and how many episodes this rollout
    finished."""

    def __init__(self) -> None:
        super().__init__()
        self._finished = 0

    def _on_step(self) -> bool:
        self._finished += sum(
            info.get("episode") is not None for info in self.locals.get("infos", ())
        )
        return True

    def _on_rollout_end(self) -> None:
        rewards = [float(episode["r"]) for episode in self.model.ep_info_buffer or ()]
        if rewards:
            self.logger.record("rollout/ep_rew_min", min(rewards))
            self.logger.record("rollout/ep_rew_max", max(rewards))
        if self._finished:
            self.logger.record("rollout/episodes", self._finished)
        self._finished = 0
