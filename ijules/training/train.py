"""Train: RecurrentPPO on the train window, logged to MLflow with its lineage.

A run that produces non-finite weights is marked failed in MLflow and leaves the previous model
files in place; the model files are only replaced once the run has been logged.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.logger import KVWriter

from ijules.config import Config
from ijules.data.features import FeatureSet
from ijules.env.engine import EngineSettings
from ijules.env.market_data import load_window
from ijules.env.safeguards import Safeguards
from ijules.env.vector_env import VectorTradingEnv
from ijules.errors import TrainingError
from ijules.io import atomic_path, write_json
from ijules.registry.tracking import configure, lineage_tags, tracking_uri
from ijules.training.policy import POLICY_SPEC, POLICY_ZIP, PolicySpec

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "policy"
_SERVING_PACKAGES = (
    "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "pandas", "pydantic",
    "PyYAML", "mlflow",
)  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    """Where the trained policy went."""

    run_id: str
    model_uri: str
    device: str
    timesteps: int
    seconds: float


def resolve_device(requested: str) -> str:
    """Map ``auto`` to CUDA when a GPU is present, else CPU; refuse CUDA without a GPU."""
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise TrainingError("training.device is 'cuda' but no CUDA device is available")
    if requested == "auto":
        return "cuda" if available else "cpu"
    return requested


def run_train(config: Config, *, features: Path, meta: Path, model_dir: Path) -> TrainResult:
    """Train on the train window and write ``policy.zip`` and ``policy.json`` to ``model_dir``."""
    import mlflow
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.logger import Logger

    feature_set = FeatureSet.load(meta)
    market = load_window(features, feature_set, "train", config)
    training = config.training
    device = resolve_device(training.device)
    torch.set_num_threads(training.torch_threads)
    settings = EngineSettings.from_config(
        config, feature_set.norm, feature_set.clip_zscore, market.n_instruments
    )
    safeguards = Safeguards(config.safeguards)
    vec_env = VectorTradingEnv(
        market,
        settings,
        safeguards,
        n_envs=training.n_envs,
        episode_bars=config.environment.episode_bars,
        seed=config.seed,
    )
    model = RecurrentPPO(
        "MlpLstmPolicy",
        vec_env,
        n_steps=training.n_steps,
        batch_size=training.batch_size,
        n_epochs=training.n_epochs,
        learning_rate=training.learning_rate,
        gamma=training.gamma,
        gae_lambda=training.gae_lambda,
        clip_range=training.clip_range,
        ent_coef=training.ent_coef,
        policy_kwargs={
            "lstm_hidden_size": training.lstm_hidden_size,
            "net_arch": list(training.net_arch),
        },
        seed=config.seed,
        device=device,
        verbose=0,
    )
    spec = PolicySpec.of(settings, feature_set.feature_names, market.instruments)
    experiment_id = configure(config.registry.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{config.phase}") as run:
        mlflow.log_params(_flatten(config.model_dump(mode="json", exclude={"paths"})))
        mlflow.set_tags(lineage_tags(config, {"features": features, "feature_meta": meta}))
        mlflow.set_tags({"ijules.stage": "train", "ijules.device": device})
        model.set_logger(Logger(folder=None, output_formats=[_MlflowWriter()]))
        started = time.perf_counter()
        model.learn(total_timesteps=training.total_timesteps, progress_bar=sys.stderr.isatty())
        seconds = time.perf_counter() - started
        _require_finite_weights(model)
        mlflow.log_metrics(
            {
                "train_seconds": seconds,
                "train_steps_per_second": model.num_timesteps / seconds,
                "safeguard_incidents": safeguards.incidents,
                "reward_bound_alerts": safeguards.reward_alerts,
            }
        )
        with tempfile.TemporaryDirectory() as scratch:
            zip_path, spec_path = Path(scratch) / POLICY_ZIP, Path(scratch) / POLICY_SPEC
            model.save(zip_path)
            record = {
                "spec": spec.to_dict(),
                "mlflow": {"run_id": run.info.run_id, "tracking_uri": tracking_uri()},
                "training": {"device": device, "timesteps": int(model.num_timesteps)},
            }
            write_json(spec_path, record)
            info = _log_policy(zip_path, spec_path, spec)
            record["mlflow"]["model_uri"] = info.model_uri
            write_json(spec_path, record)
            _publish(zip_path, model_dir / POLICY_ZIP)
            _publish(spec_path, model_dir / POLICY_SPEC)
    log.info(
        "trained %d steps on %s in %.0f s (run %s)",
        model.num_timesteps,
        device,
        seconds,
        run.info.run_id,
    )
    return TrainResult(run.info.run_id, info.model_uri, device, int(model.num_timesteps), seconds)


def _log_policy(zip_path: Path, spec_path: Path, spec: PolicySpec) -> Any:
    import mlflow
    from mlflow.models import infer_signature

    import ijules
    from ijules.registry import pyfunc
    from ijules.registry.pyfunc import ACTION_COLUMN, SPEC_ARTIFACT, ZIP_ARTIFACT

    columns = spec.input_columns
    example = pd.DataFrame(np.zeros((1, len(columns))), columns=columns)
    outputs = (
        [ACTION_COLUMN]
        if len(spec.instruments) == 1
        else [f"{ACTION_COLUMN}:{name}" for name in spec.instruments]
    )
    signature = infer_signature(
        example, pd.DataFrame(np.zeros((1, len(outputs))), columns=outputs), params={"reset": False}
    )
    with warnings.catch_warnings():
        # The signature is given explicitly; an input example would only re-run the model here.
        warnings.filterwarnings("ignore", ".*input example was not provided", UserWarning)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(Path(pyfunc.__file__).with_name("pyfunc_model.py")),
            artifacts={ZIP_ARTIFACT: str(zip_path), SPEC_ARTIFACT: str(spec_path)},
            code_paths=[str(Path(ijules.__file__).parent)],
            pip_requirements=[f"{name}=={version(name)}" for name in _SERVING_PACKAGES],
            signature=signature,
        )


def _publish(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(source.read_bytes())


def _require_finite_weights(model: Any) -> None:
    import torch

    for name, parameter in model.policy.named_parameters():
        if not torch.isfinite(parameter).all():
            raise TrainingError(f"training diverged: non-finite weights in {name}")


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _MlflowWriter(KVWriter):
    """SB3 logger output that sends each update's numbers to the active MLflow run."""

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0
    ) -> None:
        import mlflow

        numbers = {
            key.replace("/", "_"): float(value)
            for key, value in key_values.items()
            if isinstance(value, int | float | np.floating) and np.isfinite(value)
        }
        if numbers:
            mlflow.log_metrics(numbers, step=step)

    def close(self) -> None:
        """Nothing to release."""
