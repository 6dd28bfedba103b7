"""The policy as an MLflow pyfunc model: the SB3 zip inside, LSTM state kept between calls.

Input: one row per bar, in time order, with the observation's entries by name: the raw feature
columns the policy was trained on, ``weight:<instrument>`` (each current position as a fraction
of equity) and the risk features it was trained with (see
``ijules.training.policy.input_columns``). The model standardises the features with the statistics
saved at training, so callers pass raw features.
Output: ``action`` (one column per instrument with several), the target as a fraction of the
single-position limit.

State persists across ``predict`` calls, as a live feed needs; pass ``params={"reset": True}`` at
the start of a new session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ijules.training.policy import RecurrentPolicy, input_columns

ACTION_COLUMN = "action"
ZIP_ARTIFACT = "policy_zip"
SPEC_ARTIFACT = "policy_spec"


class RecurrentPolicyModel(PythonModel):
    """Serve a :class:`RecurrentPolicy` through MLflow."""

    def __init__(self) -> None:
        self.policy: RecurrentPolicy | None = None

    def load_context(self, context: Any) -> None:
        """Load the policy from the model's artifacts."""
        self.policy = RecurrentPolicy.load_files(
            Path(context.artifacts[ZIP_ARTIFACT]),
            Path(context.artifacts[SPEC_ARTIFACT]),
            device="cpu",
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Act on each row in order, carrying the LSTM state from row to row and call to call."""
        if self.policy is None:
            raise RuntimeError("the policy is not loaded")
        policy = self.policy
        if params and params.get("reset"):
            policy.reset()
        spec = policy.spec
        columns = input_columns(spec)
        missing = [c for c in columns if c not in model_input]
        if missing:
            raise ValueError(f"model input lacks column(s) {missing}")
        n_features = len(spec.feature_names)
        raw = model_input[columns].to_numpy(dtype=np.float64)
        observations = np.concatenate(
            [
                spec.norm.apply(raw[:, :n_features], spec.clip_zscore),
                np.clip(raw[:, n_features : n_features + len(spec.instruments)], -1.0, 1.0),
                raw[:, n_features + len(spec.instruments) :],
            ],
            axis=1,
        ).astype(np.float32)
        actions = np.array([policy.act(row).reshape(-1) for row in observations], dtype=np.float64)
        if actions.shape[1] == 1:
            return pd.DataFrame({ACTION_COLUMN: actions[:, 0]}, index=model_input.index)
        names = [f"{ACTION_COLUMN}:{name}" for name in spec.instruments]
        return pd.DataFrame(actions, columns=names, index=model_input.index)
