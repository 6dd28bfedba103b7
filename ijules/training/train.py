"""Train: RecurrentPPO on the train window, logged to MLflow with its lineage.

A run that meets a NaN (in the environment, the losses, the gradients or the weights) is marked
failed in MLflow, registers nothing and leaves the previous model files in place: the model
files are only replaced once the run has been logged.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ijules.artifacts import (
    POLICY_SPEC,
    POLICY_ZIP,
    FeatureSet,
    MlflowRecord,
    PolicyRecord,
    PolicySpec,
    RiskEngineParameters,
    TrainingRecord,
)
from ijules.config import Config
from ijules.env.engine import EngineSettings
from ijules.env.market_data import bars_per_day, load_window, load_windows
from ijules.env.pooled_env import Member
from ijules.io import atomic_path, md5_file
from ijules.tracking import (
    PARAMS_ARTIFACT,
    configure,
    lineage_tags,
    run_exists,
    source_tags,
    tracking_uri,
)
from ijules.training.checkpoints import checkpoint_folder, discard, latest
from ijules.training.fit import fit
from ijules.training.policy import input_columns

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "policy"
RISK_ENGINE_FILE = "risk_engine.json"
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


def run_train(
    config: Config,
    *,
    features: Path,
    meta: Path,
    model_dir: Path,
    checkpoints: Path | None = None,
    params: Path | None = None,
) -> TrainResult:
    """Train on the train window and write ``policy.zip`` and ``policy.json`` to ``model_dir``.

    An interrupted run resumes from its last checkpoint in ``checkpoints`` (default
    ``paths.checkpoints``; same parameters, same data) and continues the same MLflow run.
    ``params``, the parameter file ``config`` was read from, is logged with the run, beside the
    commit the code came from: what `ijules baseline reproduce` reruns it from.
    """
    import mlflow

    feature_set = FeatureSet.read(meta)
    if config.curriculum.enabled:  # its advancement gates test on the validation window
        market, validation = load_windows(features, feature_set, ("train", "validation"), config)
    else:
        market, validation = load_window(features, feature_set, "train", config), None
    settings = EngineSettings.from_config(
        config, feature_set.norm, feature_set.clip_zscore, market.n_instruments
    )
    root = checkpoints if checkpoints is not None else Path(config.paths.checkpoints)
    folder = checkpoint_folder(root, "train", config.policy_digest(), md5_file(features))
    resume = latest(folder)
    experiment_id = configure(config.registry.experiment)
    run_id = resume.state.get("run_id") if resume is not None else None
    if run_id is not None and not run_exists(run_id):
        run_id = None
    with mlflow.start_run(
        run_id=run_id, experiment_id=experiment_id, run_name=f"train-{config.phase}"
    ) as run:
        if run_id is None:
            mlflow.log_params(flatten(config.model_dump(mode="json", exclude={"paths"})))
            mlflow.set_tags(lineage_tags(config, {"features": features, "feature_meta": meta}))
            mlflow.set_tags(source_tags(config, params))
            mlflow.set_tags({"ijules.stage": "train"})
            if params is not None:
                mlflow.log_artifact(str(params), PARAMS_ARTIFACT)
        result = fit(
            config,
            [Member(market, settings)],
            total_timesteps=config.training.total_timesteps,
            checkpoints=folder,
            resume=resume,
            validation=validation,
            run_id=run.info.run_id,
        )
        mlflow.set_tag("ijules.device", result.device)
        with tempfile.TemporaryDirectory() as scratch:
            zip_path, spec_path = Path(scratch) / POLICY_ZIP, Path(scratch) / POLICY_SPEC
            result.model.save(zip_path)
            lineage = MlflowRecord(run_id=run.info.run_id, tracking_uri=tracking_uri())
            training = TrainingRecord(
                device=result.device,
                timesteps=result.timesteps,
                resumed_from=result.resumed_from,
                diagnostics=result.diagnostics,
                curriculum_stage=(result.curriculum or {}).get("final_stage"),
            )
            # The model logged to MLflow carries the record without its own URI.
            PolicyRecord(spec=result.spec, mlflow=lineage, training=training).write(spec_path)
            risk_path = Path(scratch) / RISK_ENGINE_FILE
            # The served model checks every action with the limits and the risk engine of
            # the environment it was trained in.
            risk = settings.sim_params(bars_per_day(market.timestamps), market.bars_per_year)
            RiskEngineParameters(params=_plain(risk)).write(risk_path)
            info = _log_policy(zip_path, spec_path, risk_path, result.spec)
            logged = MlflowRecord(
                run_id=lineage.run_id, tracking_uri=lineage.tracking_uri, model_uri=info.model_uri
            )
            PolicyRecord(spec=result.spec, mlflow=logged, training=training).write(spec_path)
            _publish(zip_path, model_dir / POLICY_ZIP)
            _publish(spec_path, model_dir / POLICY_SPEC)
    discard(folder)
    log.info(
        "trained %d steps on %s in %.0f s (run %s)",
        result.timesteps,
        result.device,
        result.seconds,
        run.info.run_id,
    )
    return TrainResult(
        run.info.run_id, info.model_uri, result.device, result.timesteps, result.seconds
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values (numpy numbers and arrays as Python's)."""
    return {
        name: value.tolist() if isinstance(value, np.ndarray | np.generic) else value
        for name, value in params.items()
    }


def _log_policy(zip_path: Path, spec_path: Path, risk_path: Path, spec: PolicySpec) -> Any:
    import mlflow
    from mlflow.models import infer_signature

    import ijules
    from ijules.training import pyfunc
    from ijules.training.pyfunc import (
        FLAGS,
        REASON_COLUMN,
        RISK_ARTIFACT,
        SPEC_ARTIFACT,
        STATE_COLUMN,
        ZIP_ARTIFACT,
        market_columns,
        output_columns,
    )

    columns = input_columns(spec)
    example = pd.DataFrame(np.zeros((1, len(columns))), columns=columns)
    for column in market_columns(spec):
        example[column] = 0.0
    example["timestamp"] = "2026-01-01T00:00:00Z"
    for flag in FLAGS:
        example[flag] = False
    outputs = pd.DataFrame(
        {column: [0.0] for column in output_columns(spec)}, columns=output_columns(spec)
    )
    outputs[REASON_COLUMN] = [""]
    outputs[STATE_COLUMN] = ["ACTIVE"]
    signature = infer_signature(example, outputs, params={"reset": False})
    with warnings.catch_warnings():
        # The signature is given explicitly; an input example would only re-run the model here.
        warnings.filterwarnings("ignore", ".*input example was not provided", UserWarning)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(Path(pyfunc.__file__).with_name("pyfunc_model.py")),
            artifacts={
                ZIP_ARTIFACT: str(zip_path),
                SPEC_ARTIFACT: str(spec_path),
                RISK_ARTIFACT: str(risk_path),
            },
            code_paths=[str(Path(ijules.__file__).parent)],
            pip_requirements=[f"{name}=={version(name)}" for name in _SERVING_PACKAGES],
            signature=signature,
        )


def _publish(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(source.read_bytes())


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted keys, for MLflow."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
