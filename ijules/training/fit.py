"""Fit RecurrentPPO on a market: diagnostics, checkpoints and the curriculum around SB3's loop.

Used by the train stage and by every walk-forward fold, so both train the same way. The caller
owns the MLflow run (it must be active); everything here logs into it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from ijules.artifacts import PolicySpec
from ijules.config import Config
from ijules.env.market_data import MarketData
from ijules.env.pooled_env import Member, training_env
from ijules.env.safeguards import NonFiniteError, Safeguards
from ijules.env.vector_env import VectorTradingEnv
from ijules.errors import ConfigError, TrainingError
from ijules.training.checkpoints import Checkpoint, CheckpointEvery
from ijules.training.curriculum import Curriculum, CurriculumCallback, policy_validator
from ijules.training.diagnostics import (
    Diagnostics,
    EpisodeRange,
    MlflowDiagnostics,
    clip_and_watch_gradients,
)
from ijules.training.policy import policy_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """A trained model and what its training reported."""

    model: Any
    spec: PolicySpec  # the first instrument's; a pooled policy has one per instrument in specs
    specs: tuple[PolicySpec, ...]
    device: str
    timesteps: int
    seconds: float
    resumed_from: int
    diagnostics: dict[str, float]
    curriculum: dict[str, Any] | None


def resolve_device(requested: str) -> str:
    """Map ``auto`` to CUDA when a GPU is present, else CPU; refuse CUDA without a GPU."""
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise TrainingError("training.device is 'cuda' but no CUDA device is available")
    if requested == "auto":
        return "cuda" if available else "cpu"
    return requested


def build_model(config: Config, env: Any, device: str, policy: Any = None) -> Any:
    """RecurrentPPO with the configured hyper-parameters and seed; ``policy`` defaults to the
    fused-LSTM MlpLstmPolicy (benchmarks pass sb3-contrib's own ``"MlpLstmPolicy"``)."""
    from sb3_contrib import RecurrentPPO

    from ijules.training.lstm_policy import FusedLstmPolicy

    training = config.training
    return RecurrentPPO(
        FusedLstmPolicy if policy is None else policy,
        env,
        n_steps=training.n_steps,
        batch_size=training.batch_size,
        n_epochs=training.n_epochs,
        learning_rate=training.learning_rate,
        gamma=training.gamma,
        gae_lambda=training.gae_lambda,
        clip_range=training.clip_range,
        ent_coef=training.ent_coef,
        max_grad_norm=training.max_grad_norm,
        policy_kwargs={
            "lstm_hidden_size": training.lstm_hidden_size,
            "net_arch": list(training.net_arch),
        },
        seed=config.seed,
        device=device,
        verbose=0,
    )


def fit(
    config: Config,
    members: Sequence[Member],
    *,
    total_timesteps: int,
    checkpoints: Path | None = None,
    resume: Checkpoint | None = None,
    validation: MarketData | None = None,
    run_id: str = "",
) -> FitResult:
    """Train on the members' markets (one instrument, or several pooled into one policy) for
    ``total_timesteps`` steps, logging to the active MLflow run.

    With ``checkpoints`` (a folder), the model is saved every ``training.checkpoint_every``
    steps; ``resume`` continues from such a checkpoint. ``validation`` is the window the
    curriculum's out-of-sample gates backtest on.
    """
    import mlflow
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.logger import Logger

    training = config.training
    device = resolve_device(training.device)
    torch.set_num_threads(training.torch_threads)
    safeguards = Safeguards(config.safeguards)
    diagnostics = Diagnostics(training.entropy_floor, safeguards)
    if config.curriculum.enabled and len(members) > 1:
        raise ConfigError("curriculum.enabled trains one instrument; it cannot drive a pool")
    try:
        env = training_env(
            members,
            safeguards,
            n_envs=training.n_envs,
            episode_bars=config.environment.episode_bars,
            seed=config.seed,
        )
    except NonFiniteError as error:
        raise diagnostics.nan(f"the training data ({error})", 0) from None
    specs = tuple(
        policy_spec(member.settings, member.market.feature_names, member.market.instruments)
        for member in members
    )
    settings = members[0].settings
    if resume is not None:
        model = RecurrentPPO.load(resume.model, env=env, device=device)
        log.info("resuming from the checkpoint at %d steps", resume.timesteps)
    else:
        model = build_model(config, env, device)
    model.set_logger(Logger(folder=None, output_formats=[MlflowDiagnostics(diagnostics)]))
    clip_and_watch_gradients(model, training.max_grad_norm, diagnostics)
    callbacks: list[BaseCallback] = [EpisodeRange()]
    curriculum = None
    if config.curriculum.enabled:
        assert isinstance(env, VectorTradingEnv)
        env.episode_metrics = True
        validator = (
            policy_validator(config, model, specs[0], validation, settings)
            if validation is not None
            else None
        )
        curriculum = Curriculum(config.curriculum, env.engine, validator)
        if resume is not None and "curriculum" in resume.state:
            curriculum.restore(resume.state["curriculum"])
        callbacks.append(CurriculumCallback(curriculum))
    if checkpoints is not None and training.checkpoint_every > 0:
        callbacks.append(
            CheckpointEvery(
                checkpoints,
                training.checkpoint_every,
                lambda: {
                    "run_id": run_id,
                    **({"curriculum": curriculum.state()} if curriculum else {}),
                },
            )
        )
    done = int(model.num_timesteps) if resume is not None else 0
    started = time.perf_counter()
    try:
        model.learn(
            total_timesteps=max(total_timesteps - done, 0),
            callback=CallbackList(callbacks),
            reset_num_timesteps=resume is None,
            progress_bar=sys.stderr.isatty(),
        )
    except NonFiniteError as error:
        raise diagnostics.nan(f"an environment value ({error})", int(model.num_timesteps)) from None
    model.logger.dump(int(model.num_timesteps))  # the last update's numbers
    seconds = time.perf_counter() - started
    _require_finite_weights(model, diagnostics)
    summary = {
        **diagnostics.summary(),
        "train_seconds": seconds,
        "train_steps_per_second": (model.num_timesteps - done) / max(seconds, 1e-9),
    }
    # The last update's numbers are already in the run's history; log only the totals.
    mlflow.log_metrics({k: v for k, v in summary.items() if k not in diagnostics.last})
    if curriculum is not None:
        mlflow.log_dict(curriculum.summary(), "curriculum/history.json")
        mlflow.log_metric("curriculum_final_stage", curriculum.stage_index)
    return FitResult(
        model=model,
        spec=specs[0],
        specs=specs,
        device=device,
        timesteps=int(model.num_timesteps),
        seconds=seconds,
        resumed_from=done,
        diagnostics=summary,
        curriculum=curriculum.summary() if curriculum else None,
    )


def _require_finite_weights(model: Any, diagnostics: Diagnostics) -> None:
    import torch

    for name, parameter in model.policy.named_parameters():
        if not torch.isfinite(parameter).all():
            raise diagnostics.nan(f"the weights of {name}", int(model.num_timesteps))
