"""The policy as an MLflow pyfunc model: the SB3 zip inside, LSTM state kept between calls.

Input: one row per bar, in time order, with the raw feature columns the policy was trained on and
``position_weight`` (the current position as a fraction of equity). The model standardises the
features with the statistics saved at training, so callers pass raw features. Output: ``action``
in [-1, 1], the target position as a fraction of the position limit.

State persists across ``predict`` calls, as a live feed needs; pass ``params={"reset": True}`` at
the start of a new session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ijules.training.policy import RecurrentPolicy

POSITION_COLUMN = "position_weight"
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
        missing = [c for c in (*spec.feature_names, POSITION_COLUMN) if c not in model_input]
        if missing:
            raise ValueError(f"model input lacks column(s) {missing}")
        raw = model_input[list(spec.feature_names)].to_numpy(dtype=np.float64)
        scaled = spec.norm.apply(raw, spec.clip_zscore)
        positions = model_input[POSITION_COLUMN].to_numpy(dtype=np.float32).clip(-1.0, 1.0)
        actions = [
            float(policy.act(np.append(row, np.float32(position)))[0])
            for row, position in zip(scaled, positions, strict=True)
        ]
        return pd.DataFrame({ACTION_COLUMN: actions}, index=model_input.index)
