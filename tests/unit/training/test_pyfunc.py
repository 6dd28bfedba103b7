"""The served model passes every action through the risk engine the environment runs.

A policy is stepped through the environment; the served model, given the same bars as a caller
would describe them, must allow the targets the environment's risk engine allowed, name the same
reasons when it cut one, and be in the same trading state, bar after bar and call after call.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch as th

from ijules.artifacts import MlflowRecord, PolicyRecord, RiskEngineParameters, TrainingRecord
from ijules.env.engine import EngineSettings
from ijules.env.market_data import MarketData, bars_per_day
from ijules.env.safeguards import Safeguards
from ijules.env.trading_env import TradingEnv
from ijules.sim import codes
from ijules.training.policy import RecurrentPolicy, input_columns, policy_spec
from ijules.training.pyfunc import (
    REASON_COLUMN,
    RISK_ARTIFACT,
    SPEC_ARTIFACT,
    STATE_COLUMN,
    TARGET_COLUMN,
    ZIP_ARTIFACT,
    RecurrentPolicyModel,
    market_columns,
)
from tests.unit.env.conftest import market_of, norm_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# A tight VaR budget and jumpy breakers, so that the engine cuts actions and changes state.
TIGHT = {
    "environment": {"min_trade_weight": 0.0, "volatility_target": None},
    "risk_management": {
        "limits": {"daily_var_budget": 0.001, "max_daily_drawdown_pct": 0.004},
        "circuit_breakers": {
            "position_scaling_threshold": 0.001,
            "emergency_liquidation_threshold": 0.006,
        },
        "halt_release": {"mode": "condition", "cooldown_bars": 6},
    },
}
BARS = 300


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from ijules.config import load_config
    from tests.conftest import write_params

    return load_config(write_params(tmp_path_factory.mktemp("params"), TIGHT))


@pytest.fixture(scope="module")
def market(btc_1h, config) -> MarketData:
    return market_of(btc_1h.iloc[:800].reset_index(drop=True), config)


@pytest.fixture(scope="module")
def served(market, config, tmp_path_factory) -> tuple[RecurrentPolicyModel, RecurrentPolicy]:
    """The pyfunc model, loaded from its artifacts as MLflow hands them over, and the policy."""
    from sb3_contrib import RecurrentPPO

    folder: Path = tmp_path_factory.mktemp("model")
    settings = EngineSettings.from_config(config, norm_of(market), 5.0, 1)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        TradingEnv(market, settings, Safeguards(config.safeguards)),
        policy_kwargs={"lstm_hidden_size": 8, "net_arch": [16]},
        seed=11,
        device="cpu",
    )
    # An untrained policy asks for almost nothing: make it bold, so that the engine has to cut.
    with th.no_grad():
        model.policy.action_net.weight.mul_(300.0)
    spec = policy_spec(settings, market.feature_names, market.instruments)
    model.save(folder / "policy.zip")
    PolicyRecord(
        spec=spec,
        mlflow=MlflowRecord(run_id="unit", tracking_uri="none"),
        training=TrainingRecord(
            device="cpu", timesteps=0, resumed_from=0, diagnostics={}, curriculum_stage=None
        ),
    ).write(folder / "policy.json")
    risk = settings.sim_params(bars_per_day(market.timestamps), market.bars_per_year)
    RiskEngineParameters(params={k: np.asarray(v).tolist() for k, v in risk.items()}).write(
        folder / "risk_engine.json"
    )
    served = RecurrentPolicyModel()
    served.load_context(
        SimpleNamespace(
            artifacts={
                ZIP_ARTIFACT: str(folder / "policy.zip"),
                SPEC_ARTIFACT: str(folder / "policy.json"),
                RISK_ARTIFACT: str(folder / "risk_engine.json"),
            }
        )
    )
    return served, RecurrentPolicy(model, spec)


def stepped(policy: RecurrentPolicy, market: MarketData, config) -> tuple[pd.DataFrame, dict]:
    """The environment's run: each bar as a caller describes it, and what its engine did."""
    settings = EngineSettings.from_config(config, policy.spec.norm, 5.0, 1)
    env = TradingEnv(market, settings, Safeguards(config.safeguards))
    observation, _ = env.reset()
    policy.reset()
    rows, allowed, reasons, states = [], [], [], []
    engine = env.engine
    n_features = len(market.feature_names)
    for t in range(BARS):
        rows.append(
            [
                *market.features[t],
                *engine.weights()[0],
                *observation[n_features + 1 :],
                pd.Timestamp(market.timestamps[t]).isoformat(),
                engine.equity()[0],
                market.sigma[t, 0],
                market.daily_var[t, 0],
                market.volatility_ratio[t],
                market.crisis[t],
                market.recovery[t],
                market.high_volatility[t],
                market.correlation_break[t],
            ]
        )
        observation, *_ = env.step(policy.act(observation))
        record = engine.sim.log(0)[-1]
        allowed.append(float(engine.sim.account("wanted")[0, 0]))
        reasons.append(codes.describe(int(record["refusal"][0])) if record["refusal"][0] else "")
        states.append(codes.STATES[int(record["state"])])
    columns = [*input_columns(policy.spec), *market_columns(policy.spec)]
    return pd.DataFrame(rows, columns=columns), {
        TARGET_COLUMN: allowed,
        REASON_COLUMN: reasons,
        STATE_COLUMN: states,
    }


def test_served_targets_are_the_risk_engines_with_its_reasons(served, market, config) -> None:
    model, policy = served
    rows, engine = stepped(policy, market, config)
    out = model.predict(None, rows, params={"reset": True})
    np.testing.assert_allclose(out[TARGET_COLUMN], engine[TARGET_COLUMN], rtol=1e-12, atol=1e-15)
    assert list(out[REASON_COLUMN]) == engine[REASON_COLUMN]
    assert list(out[STATE_COLUMN]) == engine[STATE_COLUMN]
    # The engine did cut actions, for more than one reason, and changed state.
    cut = {reason for reason in out[REASON_COLUMN] if reason}
    assert len(cut) >= 2 and "position above max_var_multiple x the daily VaR budget" in cut
    assert len(set(out[STATE_COLUMN])) >= 2
    # Without a volatility target an action is a weight: the engine only ever shrinks it.
    assert (np.abs(out[TARGET_COLUMN]) <= np.abs(out["action"]) + 1e-12).all()

    # In two calls, the LSTM and the risk engine carry their state over.
    first = model.predict(None, rows.iloc[:120], params={"reset": True})
    second = model.predict(None, rows.iloc[120:])
    again = pd.concat([first, second])
    pd.testing.assert_frame_equal(again, out)


def test_the_served_model_refuses_input_without_the_market_state(served, market, config) -> None:
    model, policy = served
    rows, _ = stepped(policy, market, config)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['daily_var:BTCUSD'\]"):
        model.predict(None, rows.drop(columns=["daily_var:BTCUSD"]), params={"reset": True})


def test_a_model_logged_without_its_risk_engine_does_not_serve(served) -> None:
    from ijules.errors import ModelCompatibilityError

    model, _ = served
    with pytest.raises(ModelCompatibilityError, match="without its risk engine"):
        RecurrentPolicyModel().load_context(SimpleNamespace(artifacts={ZIP_ARTIFACT: "x"}))
    assert model.risk is not None
