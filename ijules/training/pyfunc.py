"""The policy as an MLflow pyfunc model: the SB3 zip inside, LSTM and risk state kept between
calls, every action through the risk engine.

Input: one row per bar, in time order, with the observation's entries by name: the raw feature
columns the policy was trained on, ``weight:<instrument>`` (each current position as a fraction
of equity) and the risk features it was trained with (see
``ijules.training.policy.input_columns``); then what the risk engine reads of the bar
(:func:`market_columns`): ``timestamp`` (ISO 8601; naive means UTC), ``equity``,
``sigma:<instrument>`` (trailing volatility of log returns per bar), ``daily_var:<instrument>``
(daily VaR(99%) per unit of weight), ``volatility_ratio`` and the regime flags ``crisis``,
``recovery``, ``high_volatility`` and ``correlation_break``. The model standardises the
features with the statistics saved at training, so callers pass raw features.

Output: ``action`` (one column per instrument with several: ``action:<instrument>``), the
policy's target as a fraction of a unit position; ``target`` (``target:<instrument>``), the
weight the risk engine allows, with the limits and the volatility target of the environment the
policy was trained in; ``risk_reason``, why the action was cut (empty when it was not; with
several instruments ``<instrument>: <reason>``, joined by ``; ``); and ``trading_state``, the
risk engine's state at the bar. Execute ``target``, never ``action``.

State persists across ``predict`` calls, as a live feed needs; pass ``params={"reset": True}`` at
the start of a new session (a fresh LSTM state and a fresh risk engine: ACTIVE, no day seen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ijules.artifacts import PolicySpec, RiskEngineParameters
from ijules.errors import ModelCompatibilityError
from ijules.risk.serving import MarketState, RiskCheck
from ijules.training.policy import RecurrentPolicy, input_columns

ACTION_COLUMN = "action"
TARGET_COLUMN = "target"
REASON_COLUMN = "risk_reason"
STATE_COLUMN = "trading_state"
ZIP_ARTIFACT = "policy_zip"
SPEC_ARTIFACT = "policy_spec"
RISK_ARTIFACT = "risk_engine"
FLAGS = ("crisis", "recovery", "high_volatility", "correlation_break")


def market_columns(spec: PolicySpec) -> list[str]:
    """The input columns the risk engine reads, after the observation's."""
    return [
        "timestamp",
        "equity",
        *(f"sigma:{name}" for name in spec.instruments),
        *(f"daily_var:{name}" for name in spec.instruments),
        "volatility_ratio",
        *FLAGS,
    ]


def output_columns(spec: PolicySpec) -> list[str]:
    """The output columns, in order."""
    if len(spec.instruments) == 1:
        return [ACTION_COLUMN, TARGET_COLUMN, REASON_COLUMN, STATE_COLUMN]
    return [
        *(f"{ACTION_COLUMN}:{name}" for name in spec.instruments),
        *(f"{TARGET_COLUMN}:{name}" for name in spec.instruments),
        REASON_COLUMN,
        STATE_COLUMN,
    ]


class RecurrentPolicyModel(PythonModel):
    """Serve a :class:`RecurrentPolicy` through MLflow, behind the risk engine."""

    def __init__(self) -> None:
        self.policy: RecurrentPolicy | None = None
        self.risk: RiskCheck | None = None

    def load_context(self, context: Any) -> None:
        """Load the policy and its risk engine's parameters from the model's artifacts."""
        artifacts = context.artifacts
        if RISK_ARTIFACT not in artifacts:
            raise ModelCompatibilityError(
                "this model was logged without its risk engine's parameters "
                f"({RISK_ARTIFACT}); no action may leave unchecked: retrain it"
            )
        self.policy = RecurrentPolicy.load_files(
            Path(artifacts[ZIP_ARTIFACT]), Path(artifacts[SPEC_ARTIFACT]), device="cpu"
        )
        parameters = RiskEngineParameters.read(Path(artifacts[RISK_ARTIFACT]))
        self.risk = RiskCheck(parameters.params, len(self.policy.spec.instruments))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Act on each row in order, carrying the LSTM state and the risk engine's state from
        row to row and call to call; every action is checked by the risk engine."""
        if self.policy is None or self.risk is None:
            raise RuntimeError("the policy is not loaded")
        policy, risk = self.policy, self.risk
        if params and params.get("reset"):
            policy.reset()
            risk.reset()
        spec = policy.spec
        if model_input.empty:
            return pd.DataFrame(columns=output_columns(spec), index=model_input.index)
        columns = input_columns(spec)
        missing = [c for c in [*columns, *market_columns(spec)] if c not in model_input]
        if missing:
            raise ValueError(f"model input lacks column(s) {missing}")
        n_features, n_instruments = len(spec.feature_names), len(spec.instruments)
        raw = model_input[columns].to_numpy(dtype=np.float64)
        weights = raw[:, n_features : n_features + n_instruments]
        observations = np.concatenate(
            [
                spec.norm.apply(raw[:, :n_features], spec.clip_zscore),
                np.clip(weights, -1.0, 1.0),
                raw[:, n_features + n_instruments :],
            ],
            axis=1,
        ).astype(np.float32)
        names = spec.instruments
        sigma = model_input[[f"sigma:{n}" for n in names]].to_numpy(dtype=np.float64)
        daily_var = model_input[[f"daily_var:{n}" for n in names]].to_numpy(dtype=np.float64)
        times = pd.to_datetime(model_input["timestamp"], utc=True)
        equity = model_input["equity"].to_numpy(dtype=np.float64)
        ratio = model_input["volatility_ratio"].to_numpy(dtype=np.float64)
        flags = {flag: model_input[flag].to_numpy(dtype=bool) for flag in FLAGS}
        actions, targets, reasons, states = [], [], [], []
        for row, observation in enumerate(observations):
            action = np.asarray(policy.act(observation), dtype=np.float64).reshape(-1)
            market = MarketState(
                sigma=sigma[row],
                daily_var=daily_var[row],
                volatility_ratio=float(ratio[row]),
                **{flag: bool(values[row]) for flag, values in flags.items()},
            )
            checked = risk.check(
                action,
                when=pd.Timestamp(times.iloc[row]),
                equity=float(equity[row]),
                weights=weights[row],
                market=market,
            )
            actions.append(action)
            targets.append(checked.targets)
            cut = [(name, why) for name, why in zip(names, checked.reasons, strict=True) if why]
            reasons.append(
                cut[0][1] if n_instruments == 1 and cut else "; ".join(f"{n}: {w}" for n, w in cut)
            )
            states.append(checked.state)
        values: dict[str, Any] = {}
        if n_instruments == 1:
            values[ACTION_COLUMN] = np.array(actions)[:, 0]
            values[TARGET_COLUMN] = np.array(targets)[:, 0]
        else:
            for i, name in enumerate(names):
                values[f"{ACTION_COLUMN}:{name}"] = np.array(actions)[:, i]
            for i, name in enumerate(names):
                values[f"{TARGET_COLUMN}:{name}"] = np.array(targets)[:, i]
        values[REASON_COLUMN] = reasons
        values[STATE_COLUMN] = states
        return pd.DataFrame(values, index=model_input.index, columns=output_columns(spec))
